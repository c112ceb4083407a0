# `mailhook run` whatever its rules do (issue 10 point 2): the rules live in a
# worker process, so a `failed` handler stuck in an endless Lua loop, in a
# backtracking string pattern (C code: no hook runs) or growing its heap never
# stops delivery to a real SMTP server (aiosmtpd); the worker is killed and
# restarted, naming the rule; SIGTERM ends the service promptly even while a
# rule is stuck; a rule file whose top level never ends is stopped, named,
# skipped, and the others load.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool"
start_smtpd P --maildir "$T/inbox" --reply-rcpt "dead@example.org=550 5.1.1 no such user"
conf() {   # conf RULE_TIMEOUT
  write_conf "$MAILHOOK_CONF" enabled=true server=127.0.0.1 port="$P" from=pbx@example.com tls=none \
    tls_required=false rules=rules retry_interval=1 rule_timeout="$1" rule_memory=32
}
mkdir -p "$T/rules"
LOG=$T/run.log   # the service's log (part 3's own, in its subshell)
has_line() { tail -n +$((${2:-0} + 1)) "$LOG" | grep -qE -- "$1"; }   # has_line REGEX [AFTER_LINE]
logged() {   # logged SECONDS REGEX [AFTER_LINE]: waits for the line (after the first AFTER_LINE lines
             # of the log); shows the log's end if it never comes
  wait_for "$1" has_line "$2" "${3:-0}" && return 0
  sed 's/^/#   /' "$LOG" | grep -v '^#   	' | tail -15
  return 1
}
start_run() { "$MAILHOOK" run >>"$LOG" 2>&1 & RUN=$!; on_exit "kill -9 $RUN"; }
stop_run() {   # SIGTERM; sets STOP_S (seconds until it exited)
  local t0=$(date +%s%N)
  kill -TERM "$RUN"; wait "$RUN"; RUN_RC=$?
  STOP_S=$(( ($(date +%s%N) - t0) / 1000000000 ))
}
send() { "$MAILHOOK" enqueue --to "$1" --subject "$2" </dev/null >/dev/null; }

# 1. a `failed` handler stuck for longer than the test -- an endless Lua loop,
#    then a backtracking pattern (C code) -- with a budget of 600 s: the queue
#    still goes to the real server meanwhile, and SIGTERM ends the service
#    within seconds (it never waits for the rule).  Each kind its own service,
#    settings, rules and spool under $T/KIND, both in the background beside the
#    rest of the file (2. and 3.); what they saw is checked at the end.
in_inbox() {   # in_inbox N SUBJECT: N messages of that subject (prefix) were delivered
  [ "$(grep -ls "^Subject: $2" "$T"/inbox/*.eml | grep -c .)" -ge "$1" ]
}
stuck_kind() {   # stuck_kind KIND (in a subshell): writes its outcomes to $T/KIND/r.*
  local kind=$1 D=$T/$1
  export MAILHOOK_CONF=$D/mailhook.conf MAILHOOK_SPOOL=$D/spool
  conf 600
  cat > "$D/rules/stuck.lua" <<LUA
if "$kind" == "loop" then
  require("mailhook.rules").budget = 1e15   -- no instruction limit: only the 600 s of running time
end
on("failed", function(ev)
  local f = io.open(os.getenv("MAILHOOK_SPOOL") .. "/../stuck.flag", "w"); f:write("x"); f:close()
  if "$kind" == "loop" then while true do end end
  local _ = ("a"):rep(1e6):find(".-.-.-.-b")   -- hours of backtracking in C
end, "stuck-$kind")
LUA
  "$MAILHOOK" run >>"$D/run.log" 2>&1 & RUN=$!
  echo "$RUN" > "$D/pid"
  send dead@example.org "doomed $kind"
  wait_for 20 test -e "$D/stuck.flag"; echo $? > "$D/r.flag"
  for i in 1 2 3; do send ops@example.com "while stuck $kind $i"; done
  wait_for 20 in_inbox 3 "while stuck $kind "; echo $? > "$D/r.inbox"
  stop_run
  echo "$RUN_RC $STOP_S" > "$D/r.stop"
  no_worker() { [ "$(pgrep -f -- "-s $D/spool rules-worker" | grep -c .)" = 0 ]; }
  wait_for 10 no_worker; echo $? > "$D/r.noworker"
}
declare -A STUCK=()
for kind in loop pattern; do
  mkdir -p "$T/$kind/rules"
  on_exit "kill -9 \$(cat $T/$kind/pid)"
  ( stuck_kind "$kind" ) &
  STUCK[$kind]=$!
done
stuck_checks() {
  local kind rc s
  for kind in loop pattern; do
    wait "${STUCK[$kind]}"
    ok "$(cat "$T/$kind/r.flag")" "$kind: the failed event reached the rule, now stuck" ||
      sed 's/^/#   /' "$T/$kind/run.log" | tail -15
    ok "$(cat "$T/$kind/r.inbox")" "$kind: the queue is delivered to the SMTP server while the rule is stuck"
    read -r rc s < "$T/$kind/r.stop"
    is "$rc" 0 "$kind: SIGTERM: clean stop"
    ok "$([ "$s" -le 10 ]; echo $?)" "$kind: SIGTERM ends the service promptly although the rule is still stuck (${s} s)"
    like "$(cat "$T/$kind/run.log")" "rules worker did not exit within 2 s: killed" "$kind: the stuck worker is killed at the stop"
    ok "$(cat "$T/$kind/r.noworker")" "$kind: no rules worker left behind"
  done
}

# 3. a rule file whose top level never ends: stopped, named, skipped; the
#    other files load and their rules work; fixed, it loads again at SIGHUP.
#    Its own service, settings, rules, spool and log under $T/top, in the
#    background beside 2. (whose blocked rule waits out 10 graces); its
#    outcomes go to $T/top/results, checked at the end.
toplevel() {   # in a subshell
  local D=$T/top
  export MAILHOOK_CONF=$D/mailhook.conf MAILHOOK_SPOOL=$D/spool
  LOG=$D/run.log
  res() { echo "$1 $2" >> "$D/results"; }
  conf 3
  printf 'while true do end\n' > "$D/rules/10-spin.lua"
  printf 'local x = ("a"):rep(1e6):find(".-.-.-.-b")\n' > "$D/rules/20-pattern.lua"
  cat > "$D/rules/30-ok.lua" <<'LUA'
on("failed", function(ev)
  assert(mh.enqueue { to = "postmaster@example.com", subject = "toplevel-ok " .. tostring(ev.subject), text = "x" })
end)
LUA
  start_run
  echo "$RUN" > "$D/pid"
  logged 30 "rule file .*10-spin.lua.*stopped: exceeded its budget"
  res $? "a Lua loop at a rule file's top level is stopped, naming the file"
  logged 40 "while loading .*20-pattern.lua; that file is skipped until the next reload"
  res $? "a pattern at a rule file's top level: the worker is stopped and the file skipped"
  send dead@example.org third
  inbox_has_ok() { grep -qs "Subject: toplevel-ok third" "$T"/inbox/*.eml; }
  wait_for 40 inbox_has_ok; res $? "the other rule file loaded and handled the event"
  # fixed, the skipped file loads again at SIGHUP
  cat > "$D/rules/20-pattern.lua" <<'LUA'
on("failed", function(ev)
  assert(mh.enqueue { to = "postmaster@example.com", subject = "fixed " .. tostring(ev.subject), text = "x" })
end)
LUA
  kill -HUP "$RUN"
  send dead@example.org fourth
  fixed_has() { grep -qs "Subject: fixed fourth" "$T"/inbox/*.eml; }
  wait_for 60 fixed_has; res $? "SIGHUP: the worker reloads the fixed file, and its rule handles the next event"
  stop_run
  res "$([ "$RUN_RC" = 0 ]; echo $?)" "clean stop"
}
mkdir -p "$T/top/rules"
on_exit "kill -9 \$(cat $T/top/pid)"
( toplevel ) &
TOP=$!
toplevel_checks() {
  local st desc
  wait "$TOP"
  while read -r st desc; do ok "$st" "$desc"; done < "$T/top/results"
  is "$(grep -c . "$T/top/results")" 5 "part 3 ran to its end (five outcomes)"
}

# 2. budgets that end: an endless Lua loop (caught by the count hook), the same
#    pattern (caught by the worker's watchdog), and a memory hog (the allocator)
#    are stopped, each named in the log; the worker is restarted and the next
#    `failed` event reaches the rules again
cat > "$T/rules/guard.lua" <<'LUA'
local n = 0
on("failed", function(ev)
  n = n + 1
  local kind = ev.subject
  if kind == "loop" then
    coroutine.wrap(function() while true do end end)()     -- a plain coroutine: budgeted too
  elseif kind == "pattern" then
    local _ = ("a"):rep(1e6):find(".-.-.-.-b")
  elseif kind == "blocked" then   -- one C call that burns no CPU: a FIFO nobody opens to write
    io.open(os.getenv("MAILHOOK_SPOOL") .. "/../never.fifo", "r")
  elseif kind == "hog" then
    local t, chunk = {}, ("0123456789abcdef"):rep(4096)
    for i = 1, 1e9 do t[i] = chunk .. i end
  else
    assert(mh.enqueue { to = "postmaster@example.com", subject = "told: " .. tostring(kind), text = "x" })
  end
end, "guard")
LUA
conf 3   # short budgets: each stop below waits for it (the hogs reach 32 MB in ms)
start_run
send dead@example.org loop
logged 30 "rule guard for event 'failed' failed: stopped: exceeded its budget"
ok $? "a Lua loop in a coroutine.wrap is stopped by the budget, naming the rule"
send dead@example.org hog
logged 30 "rule guard for event 'failed' failed: stopped: exceeded the memory limit of 32 MB"
ok $? "a memory hog is stopped by the allocator's limit, naming the rule"
send dead@example.org pattern
logged 30 "rule guard for event 'failed': stopped: still running .* inside one call"
ok $? "a backtracking pattern is stopped by the worker's watchdog, naming the rule"
logged 30 "the rules worker \(pid [0-9]+\) exited with status 1; .*restarting"
ok $? "the service logs the worker's end and restarts it"
# blocked in one C call, burning no CPU (as a worker starved on a busy machine): its
# watchdog ends it 10 graces past the budget, naming the rule; the service's guard
# waits longer (it killed the worker 6 s past the budget, before the watchdog's line)
mkfifo "$T/never.fifo"
lines0=$(wc -l < "$T/run.log")   # (the worker's end below is looked for after: the pattern's is there)
send dead@example.org blocked
logged 40 "rule guard for event 'failed': stopped: not finished [0-9.]+ s past its budget, burning no CPU"
ok $? "a rule blocked in one C call is stopped by the worker's own watchdog, saying so"
! grep -q "gave no sign of life" "$T/run.log"; ok $? "not killed by the service's guard first"
logged 30 "the rules worker \(pid [0-9]+\) exited with status 1; .*restarting" "$lines0"
ok $? "the service logs the worker's end and restarts it (blocked)"
send ops@example.com "after the stops"
send dead@example.org notify
went_on() { in_inbox 1 "after the stops" && in_inbox 1 "told: notify"; }
wait_for 30 went_on; ok $? "delivery went on; the restarted worker handles the next event"
like "$(grep -l 'Subject: told: notify' "$T"/inbox/*.eml)" "eml" "the rule's mail for it was delivered"
stop_run
ok "$([ "$STOP_S" -le 10 ]; echo $?)" "SIGTERM: prompt stop (${STOP_S} s)"

toplevel_checks
stuck_checks
done_testing
