#!/bin/bash
# task-cancel-log.sh — a task ended by task:cancel() (shutdown, reload, a wake-up:
# normal) is logged at debug level without a traceback; a task that raises is still
# logged at error level with its traceback.  A cancelled sleep was logged as
# "error ...: interrupted" with a traceback pointing at mailhook.core.sleep.
. "$ROOT/tests/lib/tap.sh"

# run_log LEVEL CODE: the stderr of `mailhook -e CODE` at log level LEVEL
run_log() { MAILHOOK_LOG_LEVEL=$1 timeout 30 "$MAILHOOK" -e "$2" 2>&1 >/dev/null; }

# a task cancelled while it sleeps, one cancelled before it ever ran, and a
# joiner-less end (nobody waits for them: the scheduler is the one to log)
CANCEL='local mh = require "mailhook"
local a = mh.spawn(function() mh.sleep(60) end)
mh.sleep(0.01)
a:cancel()
local b = mh.spawn(function() mh.sleep(60) end)
b:cancel()
while a:status() ~= "failed" or b:status() ~= "failed" do mh.sleep(0.01) end
print("done")'
out=$(run_log debug "$CANCEL")
is "$(grep -c 'debug .*cancelled' <<<"$out")" 2 "debug level: one line per cancelled task"
unlike "$out" " error " "no error line"
unlike "$out" "stack traceback" "no traceback"
is "$(run_log info "$CANCEL")" "" "info level: nothing at all"

RAISE='local mh = require "mailhook"
local a = mh.spawn(function() error("boom in a task") end)
while a:status() ~= "failed" do mh.sleep(0.01) end'
out=$(run_log warn "$RAISE")
like "$out" " error .*boom in a task" "a task that raises: an error line with its message"
like "$out" "stack traceback" "with its traceback"

# A NUL cut a log line and a task's error short (mh_log("%s", lua_tostring)):
# "x\0y z" was logged as "x", the next value lost too.  Now shown as \0.
out=$(run_log info 'require("mailhook").log.info("x\0y", "z")')
like "$out" ' info  x\\0y z$' "mh.log: a NUL is shown as \\0, the rest and the next value kept"
out=$(run_log warn 'local mh = require "mailhook"
local a = mh.spawn(function() error("a\0b tail") end)
while a:status() ~= "failed" do mh.sleep(0.01) end')
like "$out" ' error .*a\\0b tail' "a task's error with a NUL: logged whole"
# A table raised was logged as "(error object is a table value)": its fields lost.
out=$(run_log warn 'local mh = require "mailhook"
local a = mh.spawn(function() error({code = 5}) end)
while a:status() ~= "failed" do mh.sleep(0.01) end')
like "$out" ' error .*error object: a table \{code=5\}' "a table raised by a task: logged with its fields"

done_testing
