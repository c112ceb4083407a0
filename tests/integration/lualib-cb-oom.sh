#!/bin/bash
# lualib-cb-oom.sh — a libuv callback (mh.every, core.rstate.ticker, a job's results,
# core.signal.on, a watch, an SMTP session's outcome,
# a child's channel frame) whose Lua work is refused by a rule's memory budget,
# in a stock lua5.4: there a rule's blocking wait runs the loop with the rule
# charged (tests/lualib/cb-oom.lua).  The callbacks spawned their task outside
# any protected call: the refusal unwound through uv_run into the rule's pcall
# (the loop was left half-run, marked running: no wait worked again; where no
# pcall is, around the mailhook binary's loop, a Lua panic ends the process).
# Now each callback's work is a protected call (mh_l_cb_call): the refusal is
# logged as the callback's, the rule fails for it, and the loop goes on.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/lualib.sh"
. "$ROOT/tests/lib/peers.sh"

[ -f "$LUAMOD" ] || { echo "Bail out! $LUAMOD is not built (make)"; exit 1; }
start_sink SINK || { echo "Bail out! smtp-sink did not start"; exit 1; }
export SINK_PORT=$SINK
mkdir -p "$T/watched/spool/maildrop" "$T/watched/spool/pickup"
for i in $(seq 1 200); do : > "$T/watched/spool/maildrop/m$i"; done
# KIND:NAME: the handle, and the name its callback's failure is logged under (job: a
# thread-pool job's results, mh_l_work; resolve: mh.resolve's; smtp: a session's, l_smtp.c;
# proc: a channel's frame, l_proc.c)
for what in "every:every@cb-oom.lua:[0-9]*" "ticker:rules sweep" "signal:signal USR2" "watch:maildrop watch" "job:" "resolve:" "smtp:" "proc:"; do
  kind=${what%%:*}; name=${what#*:}
  # tap_cmd: its lines as tests, and that it exits 0 (no panic, no error out of the
  # loop) with no sanitizer report; its stderr is kept in $T/tap_cmd.$$.out.err
  tap_cmd "cb-oom.lua $kind" lua_with timeout 120 "$LUA54" "$ROOT/tests/lualib/cb-oom.lua" "$T/watched" "$kind"
  # the refusal its callback met itself (not only a task it spawned), logged as a
  # rule's error is: what failed, in which rule, why
  if [ -n "$name" ]; then   # refused results go to their caller, who fails
    grep -q "error $name (in cb-oom $kind): stopped: exceeded the memory limit of 1 MB" "$T/tap_cmd.$$.out.err"
    ok $? "$kind: the callback's own refusal is logged, naming it and the rule"
  fi
done
done_testing
