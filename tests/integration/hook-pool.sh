# One-shot intake commands (hook, enqueue, sendmail) run their disk jobs on the
# loop thread itself (start-up cost, bench/60-hook.sh), and what must not hold
# the loop (rule state's lock) on one libuv worker thread instead of four; the
# caller's UV_THREADPOOL_SIZE still wins, and other commands keep four.
# Observed as the process's thread count (/proc/self/status) right after a
# durable enqueue, and proven to still work under lock contention: several
# concurrent hooks sharing rule state and the spool's id sequence.  A process
# that runs rules also has the rules' watchdog thread (docs/rules.md): one more.
. "$ROOT/tests/lib/tap.sh"
rules_env
unset UV_THREADPOOL_SIZE
cat > "$T/rules/10-pool.lua" <<'LUA'
local function threads()
  local f = assert(io.open("/proc/self/status"))
  local n = f:read("a"):match("\nThreads:%s*(%d+)")
  f:close()
  return n
end
on("alarm", function(ev)
  assert(mh.enqueue { to = "ops@example.com", subject = "alarm " .. ev.n, text = "x" })
  local f = assert(io.open(ev.out, "w")); f:write(threads(), "\n"); f:close()
end)
on("state", function(ev)
  assert(throttle { key = "state", max = 100, per = 3600 })
  local f = assert(io.open(ev.out, "w")); f:write(threads(), "\n"); f:close()
end)
on("burst", function(ev)
  if throttle { key = "burst", max = 3, per = 3600 } then
    assert(mh.enqueue { to = "ops@example.com", subject = "burst " .. ev.n, text = "x" })
  end
end)
LUA
pickup() { ls "$T/spool/pickup" 2>/dev/null | grep -c '\.eml$'; }

"$MAILHOOK" hook alarm n=1 out="$T/th1"; rc=$?
is "$rc" 0 "hook alarm exits 0"
is "$(cat "$T/th1")" 2 "hook: main thread + the rules' watchdog after a durable enqueue (its job ran on the loop thread)"
is "$(pickup)" 1 "the message is in pickup/"

"$MAILHOOK" hook state out="$T/th1s"
is "$(cat "$T/th1s")" 3 "a rule-state lock (it waits on other processes) takes one worker: main + 1 + watchdog"
UV_THREADPOOL_SIZE=3 "$MAILHOOK" hook state out="$T/th2"
is "$(cat "$T/th2")" 5 "UV_THREADPOOL_SIZE set by the caller is kept (main + 3 + watchdog)"

"$MAILHOOK" -e '
  local sp = assert(require("mailhook.queue").spool())
  assert(sp:enqueue("From: a@example.com\r\nTo: b@example.com\r\nSubject: s\r\n\r\nx\r\n"))
  local f = assert(io.open("/proc/self/status"))
  io.write(f:read("a"):match("\nThreads:%s*(%d+)"))' > "$T/th3"
is "$(cat "$T/th3")" 5 "a script keeps libuv's default pool (main + 4)"

printf 'x\n' | "$MAILHOOK" enqueue --to ops@example.com --subject one-worker >/dev/null; rc=$?
is "$rc" 0 "enqueue with one worker exits 0"
is "$(pickup)" 3 "and its message is queued (after the hook's and the script's)"

# A slow disk: the hook's one fsync of its message held 4.5 s (tests/lib/fsync-gate.c
# MH_FSYNC_SLOW), with rule_timeout = 2: 2 s of running time, which the watchdog ends
# 1 s past it; a loop that has not moved for 3 s ended too (the watchdog pings it at
# most 1 s late: 4 s at most, within the hold); 6 s of lifetime, waits included.  The
# job runs on the loop thread, yet it stays a wait, as on a pool thread: neither the
# rule's running time nor a stalled loop.
{ cat "$MAILHOOK_CONF"; printf 'rule_timeout = 2\n'; } > "$T/slow.conf"
t0=$(date +%s%N)
MAILHOOK_CONF="$T/slow.conf" MH_FSYNC_SLOW=4500 LD_PRELOAD="$BUILD/tests/fsync-gate.so" \
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
  "$MAILHOOK" hook alarm n=slow out="$T/th-slow" 2>"$T/slow.err"; rc=$?
t1=$(date +%s%N)
is "$rc" 0 "a hook whose fsync takes 4.5 s, past its rule's 2 s of running time, exits 0"
[ "$rc" = 0 ] || sed 's/^/#   /' "$T/slow.err"
ok "$([ $(( (t1 - t0) / 1000000 )) -ge 4500 ]; echo $?)" "the fsync was held (the run took $(( (t1 - t0) / 1000000 )) ms)"
unlike "$(cat "$T/slow.err")" "stopped|ending the process" "neither the rule's budget nor the watchdog stopped it"
grep -qs "Subject: alarm slow" "$T"/spool/pickup/*.eml; ok $? "its message is queued"

# contention with one worker each: 6 processes race for the rule-state lock
# and the spool's seq lock; each must finish, 3 pass the throttle
rm -f "$T"/spool/pickup/*.eml
pids=""
for i in 1 2 3 4 5 6; do "$MAILHOOK" hook burst n=$i & pids="$pids $!"; done
fails=0
for p in $pids; do wait "$p" || fails=$((fails + 1)); done
is "$fails" 0 "6 concurrent hooks with one worker each all exit 0"
is "$(pickup)" 3 "the shared throttle let exactly 3 through"
ids=$(ls "$T/spool/pickup" | sed 's/\.eml$//' | sort -u | wc -l)
is "$ids" 3 "with distinct ids"
done_testing
