# mailhook hook: rules run in the hook process, mail durable in the spool on
# exit, malformed events, failing and endless handlers, concurrent processes
# sharing throttle state, a summary sent by a later process, failed
# mh.enqueue calls of rules (issue 11 point 4) and rule files' templates found
# beside them (issue 11 point 5).
. "$ROOT/tests/lib/tap.sh"
rules_env
cat > "$T/rules/10-test.lua" <<'LUA'
on("alarm", function(ev)
  assert(mh.enqueue { to = ev.to or "ops@example.com", subject = "alarm " .. tostring(ev.severity),
                      text = (ev.message or "") .. "\n" .. (ev.site and ev.site.name or "") })
end)
on("count", function(ev)
  local ok = throttle { key = "burst", max = 5, per = 3600 }
  local f = io.open(ev.out, "a"); f:write(ok and "yes\n" or "no\n"); f:close()
end)
on("flap", function(ev)
  if throttle { key = "flap", max = 1, per = tonumber(ev.per), summary = true, to = "ops@example.com" } then
    assert(mh.enqueue { to = "ops@example.com", subject = "flap " .. ev.n, text = "x" })
  end
end)
on("boom", function() error("kaboom") end)
on("spin", function() while true do end end)
on("nul", function(ev) error("bad caller " .. ev.v .. " end") end)
on("tbl", function() error({ code = 5, why = "disk" }) end)
on("tsk", function(ev) mh.spawn(function() error("in task " .. ev.v .. " end") end) end)
LUA
pickup() { ls "$T/spool/pickup" 2>/dev/null | grep -c '\.eml$'; }
eml() { cat "$T"/spool/pickup/*.eml 2>/dev/null; }

out=$("$MAILHOOK" hook alarm severity=high message=on-battery 2>&1); rc=$?
is "$rc" 0 "hook alarm exits 0"
is "$(pickup)" 1 "one message durable in pickup/ when hook returns"
like "$(eml)" "Subject: alarm high" "built by the rule"
like "$(eml)" "X-Receiver: <?ops@example.com>?" "addressed by the rule"
rm -f "$T"/spool/pickup/*.eml

out=$(printf '{"severity":"low","message":"caf\\u00e9","site":{"name":"Lyon"},"x":null}' | "$MAILHOOK" hook alarm --json 2>&1); rc=$?
is "$rc" 0 "hook --json exits 0"
like "$(eml)" "Lyon" "nested JSON fields reach the rule"
rm -f "$T"/spool/pickup/*.eml

for bad in "severity" "=x" "9x=1"; do
  out=$("$MAILHOOK" hook alarm "$bad" 2>&1); rc=$?
  is "$rc" 2 "'$bad' is a malformed event (exit 2)"
done
like "$out" "bad field name '9x'" "the message names the field"
out=$("$MAILHOOK" hook alarm severity 2>&1)
like "$out" "argument 'severity' is not KEY=VALUE" "KEY without = is named"
for j in '{"a":' '[1,2]' '"text"' '{"a":1} {}' ''; do
  out=$(printf '%s' "$j" | "$MAILHOOK" hook alarm --json 2>&1); rc=$?
  is "$rc" 2 "JSON '$j' refused with exit 2"
done
like "$(printf '{"a":1,}' | "$MAILHOOK" hook alarm --json 2>&1)" "bad JSON on stdin: line 1, column 8" "bad JSON: where"
like "$(printf '[]' | "$MAILHOOK" hook alarm --json 2>&1)" "must be an object" "non-object: says so"
like "$(printf 'null' | "$MAILHOOK" hook alarm --json 2>&1)" "must be an object \(\{\.\.\.\}\), not null" "null: named as null (it said 'an array')"
out=$("$MAILHOOK" hook 2>&1); rc=$?
is "$rc" 2 "no event: exit 2"
is "$(pickup)" 0 "malformed events queued nothing"

out=$("$MAILHOOK" hook boom 2>&1); rc=$?
is "$rc" 1 "a failing rule exits 1"
like "$out" "rule boom@10-test.lua:[0-9]+ failed: .*kaboom" "naming the handler and its error"
like "$out" "stack traceback" "the log has the traceback"

# An error holding a NUL (an event's value) was cut there on stderr and in the
# log ("bad caller a"), a task's too; a table raised showed as "(error object
# is a table value)", its fields lost.  Now shown whole, the NUL as \0.
out=$("$MAILHOOK" hook --json nul <<<'{"v":"a\u0000b"}' 2>&1); rc=$?
is "$rc" 1 "a rule whose error holds a NUL fails (exit 1)"
like "$out" "mailhook hook nul: rule nul@10-test.lua:[0-9]+ failed: .*bad caller a\\\\0b end" "stderr shows the NUL as \\0, the rest kept"
like "$out" " error .*failed: .*bad caller a\\\\0b end" "and so does the log"
out=$("$MAILHOOK" hook --json tsk <<<'{"v":"a\u0000b"}' 2>&1); rc=$?
is "$rc" 1 "a task of a rule whose error holds a NUL: exit 1"
like "$out" "mailhook hook tsk: .*a task it started.*in task a\\\\0b end" "its failure shows the NUL as \\0, the rest kept"
out=$("$MAILHOOK" hook tbl 2>&1); rc=$?
is "$rc" 1 "a rule raising a table fails (exit 1)"
like "$out" "mailhook hook tbl: rule tbl@.* failed: \\(error object: a table \\{.*code=5" "stderr shows the table's fields"
like "$out" "why=.disk." "all of them"

start=$(date +%s)
out=$(timeout 20 "$MAILHOOK" hook spin 2>&1); rc=$?
is "$rc" 1 "an endless handler is stopped (exit 1)"
like "$out" "rule spin@10-test.lua:[0-9]+ .*stopped: exceeded its budget" "with a clear log line"
ok "$([ $(( $(date +%s) - start )) -lt 10 ]; echo $?)" "within seconds"

out=$("$MAILHOOK" hook nobody-listens a=1 2>&1); rc=$?
is "$rc" 0 "an event without rules exits 0"
like "$out" "no rule handles event 'nobody-listens'" "with a warning"

# 20 concurrent hook processes share one throttle (max 5) through the flock
for i in $(seq 20); do "$MAILHOOK" hook count "out=$T/count" & done; wait
is "$(grep -c yes "$T/count")" 5 "exactly 5 of 20 concurrent processes allowed"
is "$(grep -c no "$T/count")" 15 "the other 15 suppressed, none lost"
is "$(stat -c %a "$T/spool/state/rules/throttle/burst.lua")" 600 "state file next to the spool, 0600"

# throttle with summary: three events in a 4 s window from three processes (a
# `mailhook hook` of an ASan build on a loaded machine takes 0.7 s: the three took
# more than the 2 s window this had); then a service process (rules.start, as
# `mailhook run` does) started after them sends the summary at the window's end,
# and runs 1 s (5 sweeps) past it: one summary, not one a sweep.
for n in 1 2 3; do "$MAILHOOK" hook flap per=4 n=$n; done
is "$(pickup)" 1 "one flap mail, two suppressed"
has_summary() { cat "$T"/spool/pickup/*.eml | grep -q "Subject: \[mailhook\] 2 more suppressed: flap"; }
"$MAILHOOK" -e '
  local mh = require "mailhook"; local rules = require "mailhook.rules"
  rules.sweep_interval = 0.2
  local s, t0 = rules.start(arg[1]), mh.monotonic()
  while not os.execute(arg[2]) and mh.monotonic() - t0 < 20 do mh.sleep(0.1) end
  mh.sleep(1); s.stop()' "$T/rules" "cat '$T'/spool/pickup/*.eml 2>/dev/null | grep -q 'more suppressed: flap'" &
svc=$!; on_exit "kill $svc"
wait_for 25 has_summary
ok $? "the summary \"2 more suppressed\" is queued at the end of the window"
wait $svc
is "$(pickup)" 2 "exactly one summary"

# a rule file that does not load is reported; the others still run
echo 'x = 1' > "$T/rules/20-broken.lua"
out=$("$MAILHOOK" hook alarm severity=mid 2>&1); rc=$?
is "$rc" 1 "a broken rule file makes hook exit 1"
like "$out" "20-broken.lua did not load: .*assignment to undeclared global 'x'" "naming file and reason"
is "$(grep -l 'alarm mid' "$T"/spool/pickup/*.eml | wc -l)" 1 "the other rules still queued their mail"
rm "$T/rules/20-broken.lua"

# outgoing mail disabled: the rule's enqueue fails, hook says so, nothing queued
sed -i 's/enabled = true/enabled = false/' "$MAILHOOK_CONF"
before=$(pickup)
out=$("$MAILHOOK" hook alarm severity=x 2>&1); rc=$?
is "$rc" 1 "enqueue refused: exit 1"
like "$out" "disabled" "the reason reaches the output"
is "$(pickup)" "$before" "nothing queued"

# a rule's mh.enqueue that fails is never silent: logged naming the rule, and
# the hook fails -- checked or not -- unless the rule marks it handled
sed -i 's/enabled = false/enabled = true/' "$MAILHOOK_CONF"
mkdir -p "$T/rules3" "$T/elsewhere"
cat > "$T/rules3/mail.lua" <<'LUA'
on("noto", function(ev) mh.enqueue { subject = "no recipient", text = "x" } end, "unchecked-noto")
on("noatt", function(ev)
  mh.enqueue { to = "a@example.com", subject = "s", text = "x", attachments = { { path = ev.file } } }
end, "unchecked-attachment")
on("checked", function(ev)
  local id, err = mh.enqueue { subject = "no recipient", text = "x" }
  if not id then mh.log.warn("could not queue: " .. err) end     -- looked, then went on
end, "checked-only")
on("handled", function(ev)
  local id, err, info = mh.enqueue { to = "a@example.com", subject = "s", text = "x",
                                     attachments = { { path = ev.file } } }
  if not id then
    info.handled = true                                           -- the notice goes without it
    assert(mh.enqueue { to = "a@example.com", subject = "without the recording", text = err })
  end
end, "handled")
LUA
before=$(pickup)
for ev in noto "noatt file=$T/missing.wav" checked; do
  # shellcheck disable=SC2086
  out=$(cd "$T/elsewhere" && "$MAILHOOK" hook $ev --rules "$T/rules3" 2>&1); rc=$?
  is "$rc" 1 "a failed mh.enqueue fails the hook: ${ev%% *}"
done
like "$out" "rule checked-only for event 'checked': mh.enqueue failed: to: no recipient" "logged, naming the rule"
like "$out" "rule checked-only failed: its mail was not queued: mh.enqueue failed" "and the hook says the rule failed"
out=$("$MAILHOOK" hook noatt file="$T/missing.wav" --rules "$T/rules3" 2>&1)
like "$out" "unchecked-attachment .*mh.enqueue failed: attachment .*missing.wav" "a missing attachment is named"
out=$("$MAILHOOK" hook handled file="$T/missing.wav" --rules "$T/rules3" 2>&1); rc=$?
is "$rc" 0 "a rule that handled the failure (info.handled = true) succeeds"
like "$out" "rule handled for event 'handled': mh.enqueue failed" "the failure is still logged"
is "$(pickup)" "$((before + 1))" "only the fallback was queued"

# templates of a rule file are found beside it, whatever the working directory
mkdir -p "$T/rules4/templates"
printf 'Alarm: {{what}}\n' > "$T/rules4/templates/body.txt"
cat > "$T/rules4/tpl.lua" <<'LUA'
local body = mh.template.file("templates/body.txt")
on("tpl", function(ev) assert(mh.enqueue { to = "a@example.com", subject = "tpl", text = body(ev) }) end)
LUA
out=$(cd / && "$MAILHOOK" hook tpl what=fire --rules "$T/rules4" 2>&1); rc=$?
is "$rc" 0 "template.file relative to the rule file, from another working directory"
grep -qs "Alarm: fire" "$T"/spool/pickup/*.eml; ok $? "rendered into the mail"
sed -i 's/body.txt/nope.txt/' "$T/rules4/tpl.lua"
out=$("$MAILHOOK" hook tpl what=fire --rules "$T/rules4" 2>&1); rc=$?
is "$rc" 1 "a missing template fails the hook"
like "$out" "rule file .*tpl.lua did not load: .*templates/nope.txt \(.*rules4/templates/nope.txt\): No such file" \
  "at load, naming the rule file and the template's path"

printf 'enabled = maybe\n' > "$T/bad.conf"
out=$("$MAILHOOK" -c "$T/bad.conf" hook alarm severity=x 2>&1); rc=$?
is "$rc" 1 "unreadable settings: exit 1"
like "$out" "settings: .*bad.conf:1" "naming the file and line"

# timers of the rules never hold a process, and one exiting with them running exits cleanly
mkdir -p "$T/rules2"
echo 'if SERVICE then every(0.02, function() end) end on("x", function() end)' > "$T/rules2/t.lua"
out=$(timeout 10 "$MAILHOOK" -e '
  local mh = require "mailhook"; local rules = require "mailhook.rules"
  rules.start(arg[1]); mh.sleep(0.1); print("bye")' "$T/rules2" 2>&1); rc=$?
is "$rc" 0 "a service process exits while the rules' timers still run"
is "$out" "bye" "cleanly"

# events a rule emits: its handlers run under that rule's budget (a fresh one each let a
# handler that emits its own event run for ever, queueing mail without limit), and their
# failure is the rule's (it left hook at 0, the mail not queued)
mkdir -p "$T/rules-emit"
cat > "$T/rules-emit/t.lua" <<'LUA'
on("storm", function(ev)
  local n = (ev.n or 0) + 1
  assert(mh.enqueue { to = "ops@example.com", subject = "storm " .. n, text = "x" })
  emit("storm", { n = n })
end)
on("*", function(ev) if ev.event == "tick" or ev.event == "audit" then emit("audit", { what = ev.event }) end end)
on("sub", function() error("template bug") end)
on("relay", function() emit("sub", { x = 1 }) end)
LUA
before=$(pickup)
out=$(timeout -s KILL 60 "$MAILHOOK" hook storm --rules "$T/rules-emit" 2>&1); rc=$?
is "$rc" 1 "a handler that emits its own event: stopped, exit 1 (it ran for ever)"
like "$out" "events emitted by rules nested 8 deep \\(a rule that emits an event it handles itself\\?\\)" "saying why"
is "$(( $(pickup) - before ))" 9 "nine messages queued, the event's and one per nested level, not thousands"
out=$(timeout -s KILL 60 "$MAILHOOK" hook tick --rules "$T/rules-emit" 2>&1); rc=$?
is "$rc" 1 "a '*' handler that emits 'audit', which it receives too: stopped, exit 1"
out=$(timeout -s KILL 60 "$MAILHOOK" hook relay --rules "$T/rules-emit" 2>&1); rc=$?
is "$rc" 1 "a handler reached through emit raises: hook exits 1 (it said 0)"
like "$out" "rule sub@t\\.lua:[0-9]+ for event 'sub' failed: .*template bug" "naming it"

# a `rules` setting naming a folder that is not there (a typo): refused, exit 1, naming it
# (every event was dropped with exit 0); `update` says so when it saves it
out=$("$MAILHOOK" update rules="$T/rulez" 2>&1 >/dev/null); rc=$?
is "$rc" 0 "update rules=<a missing folder>: saved"
like "$out" "warning: rules = $T/rulez: no such folder" "with a warning"
out=$("$MAILHOOK" hook alarm severity=x 2>&1); rc=$?
is "$rc" 1 "hook with that setting: exit 1 (it was 0, the event dropped)"
like "$out" "rules = $T/rulez: no such folder or file .*no rule ran for event 'alarm'" "naming the setting and the event"
"$MAILHOOK" update rules=rules >/dev/null 2>&1

# what is kept for later (hold, a throttle's summary, a digest) is checked when it is kept,
# and one bad held file never stops the others (it blocked every rule's held mail, and
# correct rules exited 1 for it)
mkdir -p "$T/rules-held"; printf 'x\n' > "$T/att.txt"
cat > "$T/rules-held/h.lua" <<LUA
on("typo", function() return hold({ to = "a@example.com", sbject = "typo", text = "x" }, os.time() - 1) end)
on("badaddr", function()
  local name, err = hold({ to = "not an address", subject = "s", text = "x" }, os.time() + 60)
  assert(not name and err:find("hold: "), tostring(err))
end)
on("good", function() assert(hold({ to = "a@example.com", subject = "good held", text = "y",
                                   attachments = { "$T/att.txt" } }, os.time() - 1)) end)
on("th", function(ev)
  local ok = throttle { key = "th:" .. ev.k, max = 1, per = 3, summary = true, to = "ops@example.com", item = ev.i }
  if ok then assert(mh.enqueue { to = "ops@example.com", subject = "th allowed", text = "x" }) end
end)
LUA
out=$("$MAILHOOK" hook typo --rules "$T/rules-held" 2>&1); rc=$?
is "$rc" 1 "hold() with a misspelt field: the rule fails at once"
like "$out" "hold: unknown field 'sbject'" "naming the field"
out=$("$MAILHOOK" hook badaddr --rules "$T/rules-held" 2>&1); rc=$?
is "$rc" 0 "hold() with a bad address: nil, err (the rule may deal with it) ($out)"
# a held file that can never go (written by an older version): set aside, the rest go on
mkdir -p "$T/spool/state/rules/held"
"$MAILHOOK" -e 'io.write(require("mailhook.luaval").encode { due = 0, reason = "bad old",
  message = { to = "a@example.com", sbject = "x" } })' > "$T/spool/state/rules/held/000000000000-00000000-0001.lua"
before=$(pickup)
out=$("$MAILHOOK" hook good --rules "$T/rules-held" 2>&1); rc=$?
is "$rc" 0 "a correct hold() beside a bad held file: exit 0 (it was 1) ($out)"
is "$(( $(pickup) - before ))" 1 "its mail queued (a bare attachment path kept as mh.message takes it)"
[ -e "$T/spool/state/rules/held/000000000000-00000000-0001.lua.bad" ]; ok $? "the bad file set aside as .bad"
like "$out" "can never be sent .*set aside as" "said as an error"
out=$("$MAILHOOK" hook good --rules "$T/rules-held" 2>&1); rc=$?
unlike "$out" "bad old" "and not said again"
# a throttle key holding a line break (from an event field): its summary still goes, on one line
# (a window of 3 s: three `mailhook hook` of an ASan build on a loaded machine took more than
# the 1 s it was, nothing was suppressed, and no summary came)
k=$(printf 'w\nBcc: evil@example.com')
for i in 1 2 3; do "$MAILHOOK" hook th --rules "$T/rules-held" "k=$k" "i=$i" >/dev/null 2>&1; done
summary_queued() { grep -lqs "more suppressed: th:w Bcc: evil@example.com" "$T/spool/pickup/"*.eml; }
wait_for 20 eval '"$MAILHOOK" hook good --rules "$T/rules-held" >/dev/null 2>&1; summary_queued'
ok $? "the summary of a key with a line break is queued, its subject on one line"
for f in "$T/spool/pickup/"*.eml; do sed '/^\r\?$/q' "$f"; done | grep -q "^Bcc: evil"
is "$?" 1 "no header from the key"

# a rules folder another user cannot list (0700, root's): its error is said (it read
# "a folder, not a regular file")
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  mkdir -p "$T/closed-rules" && chmod 700 "$T/closed-rules"
  NB=$(mailhook_for_others "$T/others")
  printf 'from = pbx@example.com\n' > "$T/others/nb.conf"; chmod 644 "$T/others/nb.conf"
  out=$(env -u LD_LIBRARY_PATH setpriv --reuid=nobody --regid=nogroup --clear-groups \
        "$NB" -c "$T/others/nb.conf" -s "$T/others/spool" hook alarm --rules "$T/closed-rules" 2>&1); rc=$?
  is "$rc" 1 "a rules folder nobody cannot list: exit 1"
  like "$out" "$T/closed-rules.*Permission denied" "saying why ($out)"
  unlike "$out" "not a regular file" "not 'a folder, not a regular file'"
  # mode 000, and a rules folder (or file) behind a folder nobody may not search: "cannot
  # reach", naming it and why (it read "no such folder or file": exit 2 for --rules, and
  # exit 1 for the setting, both saying the folder was missing)
  mkdir -p "$T/zero-rules" "$T/closed-rules/inner" && chmod 000 "$T/zero-rules"
  printf 'on("alarm", function() end)\n' > "$T/closed-rules/inner/a.lua"
  asnobody() { env -u LD_LIBRARY_PATH setpriv --reuid=nobody --regid=nogroup --clear-groups "$NB" "$@"; }
  out=$(asnobody -c "$T/others/nb.conf" -s "$T/others/spool" hook alarm --rules "$T/zero-rules" 2>&1); rc=$?
  is "$rc" 1 "a rules folder of mode 000: exit 1"
  like "$out" "$T/zero-rules: Permission denied" "naming it and why"
  unlike "$out" "not a regular file" "mode 000: not 'a folder, not a regular file'"
  for p in "$T/closed-rules/inner" "$T/closed-rules/inner/a.lua"; do
    out=$(asnobody -c "$T/others/nb.conf" -s "$T/others/spool" hook alarm --rules "$p" 2>&1); rc=$?
    is "$rc" 1 "--rules ${p#$T/} behind a folder nobody cannot search: exit 1 (was 2, a usage error)"
    like "$out" "cannot reach $p: Permission denied" "naming it and why"
    unlike "$out" "no such folder or file" "not 'no such folder or file'"
  done
  printf 'from = pbx@example.com\nrules = %s\n' "$T/closed-rules/inner" > "$T/others/nb2.conf"
  chmod 644 "$T/others/nb2.conf"
  out=$(asnobody -c "$T/others/nb2.conf" -s "$T/others/spool" hook alarm 2>&1); rc=$?
  is "$rc" 1 "the setting rules naming such a folder: exit 1"
  like "$out" "cannot reach $T/closed-rules/inner: Permission denied" "naming it and why"
  unlike "$out" "no such folder or file" "the setting: not 'no such folder or file'"
  # a site templates folder nobody cannot search: the shipped words go, and it is said
  # why (the site's folder was passed over without a word)
  mkdir -p "$T/closed-tpl" "$T/others/tplrules" && chmod 700 "$T/closed-tpl"
  printf 'Site {{caller}}\n' > "$T/closed-tpl/voicemail.subject"
  printf 'on("voicemail", function(ev) io.stderr:write("SUBJECT ", mh.template.message("voicemail", ev).subject, "\\n") end)\n' \
    > "$T/others/tplrules/t.lua"
  printf 'from = pbx@example.com\ntemplates = %s\n' "$T/closed-tpl" > "$T/others/nb3.conf"
  chmod -R a+rX "$T/others/tplrules" "$T/others/nb3.conf"
  out=$(asnobody -c "$T/others/nb3.conf" -s "$T/others/spool" hook voicemail caller=42 \
        --rules "$T/others/tplrules" 2>&1); rc=$?
  is "$rc" 0 "a site templates folder nobody cannot search: the rule still runs"
  like "$out" "SUBJECT New voicemail from 42" "with the shipped template"
  like "$out" "cannot reach $T/closed-tpl/voicemail.subject: Permission denied" "and the folder is named, with why"
else
  ok 1 "# SKIP an unlistable rules folder needs root to set up"
fi

# A task a rule spawned, and a tick of a timer it started, are named by where
# their function is (FILE:LINE): they were "PATH" and "every", so a rule file
# with several tasks or timers left its author guessing which one failed.
mkdir -p "$T/where"
cat > "$T/where/tk.lua" <<'LUA'
on("tk", function(ev)
  mh.spawn(function() end)
  mh.spawn(function() error("task raised") end)
end)
on("tmr", function(ev)
  mh.every(0.01, function() error("tick raised") end)
  mh.sleep(0.3)
end)
LUA
out=$("$MAILHOOK" hook tk --rules "$T/where/tk.lua" 2>&1); rc=$?
is "$rc" 1 "a task that raises fails its rule"
like "$out" "mailhook hook tk: rule tk@tk.lua:1 for event 'tk' \\(a task it started, tk\\.lua:3\\): .*task raised" \
  "the task is named by its file and line"
out=$("$MAILHOOK" hook tmr --rules "$T/where/tk.lua" 2>&1)
like "$out" "error +every@tk\\.lua:6 \\(a task of rule tmr@tk\\.lua:5 for event 'tmr'\\): .*tick raised" \
  "a tick of mh.every is named every@FILE:LINE"

# A rule stopped for its running time names the setting that gives more
cat > "$T/where/cpu.lua" <<'LUA'
on("cpu", function(ev) local x = 0 while true do x = x + #("a"):rep(100000) end end)
LUA
{ cat "$MAILHOOK_CONF"; printf 'rule_timeout = 1\n'; } > "$T/cpu.conf"
out=$(MAILHOOK_CONF="$T/cpu.conf" "$MAILHOOK" hook cpu --rules "$T/where/cpu.lua" 2>&1)
like "$out" "stopped: exceeded its budget of 1 seconds of running time \\(an endless loop\\? the setting rule_timeout gives more\\)" \
  "a rule out of running time: the setting named"

done_testing
