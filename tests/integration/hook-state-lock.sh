# hook-state-lock.sh — the rule-state lock (SPOOL/state/rules/lock) is waited for
# 10 s at most (docs/rules.md): a process stuck while holding it made every
# `mailhook hook` whose rule uses throttle/digest/hold wait for ever, on one of the
# four libuv pool threads.  Past the wait the rule fails naming the lock file and the
# holder's pid, `hook` exits non-zero (its caller retries), nothing was queued, and the
# same hook run again once the holder is gone queues the event's mail.
. "$ROOT/tests/lib/tap.sh"
rules_env
cat > "$T/rules/10-lock.lua" <<'LUA'
on("alarm", function(ev)
  if throttle { key = "alarm", max = 5, per = 3600 } then
    assert(mh.enqueue { to = "ops@example.com", subject = "alarm " .. ev.n, text = "x" })
  end
end)
LUA
pickup() { ls "$T/spool/pickup" 2>/dev/null | grep -c '\.eml$'; }

"$MAILHOOK" hook alarm n=0; is "$?" 0 "a first hook makes the state folder and queues"
lockf=$T/spool/state/rules/lock
[ -f "$lockf" ]; ok $? "the lock file exists"

# the holder: a process that takes the lock and stays (as a stuck hook would)
"$MAILHOOK" -e 'local c = require("mailhook").core
  local lk = assert(c.rstate.lock(arg[1])); print("held"); io.stdout:flush(); c.sleep(120)' "$lockf" > "$T/holder.out" &
holder=$!
on_exit "kill $holder 2>/dev/null"
wait_for 10 grep -q held "$T/holder.out"; ok $? "the holder has the lock"

t0=$(date +%s)
timeout 60 "$MAILHOOK" hook alarm n=1 > "$T/out" 2> "$T/err"; rc=$?
t1=$(date +%s)
ok $((rc == 0 || rc == 124 ? 1 : 0)) "hook exits non-zero, and not by the test's timeout (rc $rc)"
like "$(cat "$T/err")" "cannot lock $lockf: held by process $holder for more than 10 s" \
  "the error names the lock file, the holder's pid and the wait"
ok $(( (t1 - t0) >= 9 && (t1 - t0) <= 16 ? 0 : 1 )) "it waited about 10 s, once: the sweep after the rule does not wait again ($((t1 - t0)) s)"
is "$(pickup)" 1 "nothing was queued by the failed run"

kill "$holder"; wait "$holder" 2>/dev/null
"$MAILHOOK" hook alarm n=1; is "$?" 0 "the same hook, run again after the holder ended, succeeds"
is "$(pickup)" 2 "and queues the event's mail"

# the binding itself: its own timeout, checked
"$MAILHOOK" -e 'local c = require("mailhook").core
  print(pcall(c.rstate.lock, "/x", 0)) print(pcall(c.rstate.lock, "/x", "soon"))' > "$T/out" 2>&1
like "$(cat "$T/out")" "rstate.lock: timeout must be seconds, more than 0 up to 3600 \(got 0\)" "timeout 0 refused"
like "$(cat "$T/out")" "rstate.lock: timeout must be a number \(got string\)" "a string refused"
done_testing
