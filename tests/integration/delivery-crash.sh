# Delivery, issue 5 point 3 (b): SIGKILL of the service injected at each write,
# fsync, rename, unlink and socket write during delivery (strace -e inject),
# then a restart: every message delivered at least once, and a duplicate only
# for the message that was in flight.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/peers/delivery-lib.sh"
delivery_require
command -v strace >/dev/null || { echo "1..0 # SKIP strace not installed"; exit 0; }
strace -f -o /dev/null true 2>/dev/null || { echo "1..0 # SKIP strace cannot trace here (ptrace not permitted)"; exit 0; }

PORT=$(free_port)
conf_for "$PORT" retry_interval=1 retry_max=1
peer_start "$PORT" "$T/peer"
N=4        # messages per round; the first is refused once (450), so a deferral is written too
POINTS=${DELIVERY_CRASH_POINTS:-4}   # kill points per system call
ROUND=0

queue_round() {   # queue N messages for this round; the ids are <ENQ_SEQ+1..+N@test>
  ROUND=$((ROUND + 1))
  FIRST=$((ENQ_SEQ + 1))
  enqueue 1 "round$ROUND@example.com" temp-once@example.net >/dev/null
  enqueue $((N - 1)) >/dev/null
}
# received IDs of this round, with repetitions
round_ids() { received_ids "$T/peer" | tr -d '<>' | awk -F@ -v a="$FIRST" -v b="$((FIRST + N - 1))" '$1 >= a && $1 <= b'; }
# strace started with -o FILE PROG blocks SIGTERM (its -I3 default): stop the traced
# service itself, and strace ends with it.
stop_traced() { pkill -TERM -P "$1" 2>/dev/null; kill -TERM "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
svc_gone_or_drained() { ! kill -0 "$1" 2>/dev/null || pickup_empty; }

# calls SYSCALL: how many times a clean run makes it while delivering one round
calls() {
  queue_round
  strace -f -c -o "$T/count" -e trace="$1" "$MAILHOOK" run >/dev/null 2>&1 &
  local st=$!
  wait_for 20 pickup_empty
  stop_traced $st
  awk -v s="$1" '$NF == s { print $4; f = 1 } END { if (!f) print 0 }' "$T/count"
}

# round SYSCALL WHEN: kill the service at the WHEN-th SYSCALL, restart, check.
round() {
  local sc=$1 when=$2
  queue_round
  : > "$T/svc.log"
  MAILHOOK_LOG_LEVEL=warn strace -f -o "$T/strace.log" -e trace="$sc" \
    -e inject="$sc":signal=SIGKILL:when="$when" "$MAILHOOK" run >>"$T/svc.log" 2>&1 &
  local st=$!
  wait_for 20 svc_gone_or_drained $st
  stop_traced $st
  local killed=no; grep -q "killed by SIGKILL" "$T/strace.log" && killed=yes
  svc_start                    # restart without injection: the spool holds the rest
  wait_for 20 pickup_empty
  local drained=$?
  svc_stop
  local total uniq
  total=$(round_ids | wc -l); uniq=$(round_ids | sort -u | wc -l)
  if [ $drained = 0 ] && [ "$uniq" = "$N" ] && [ $((total - uniq)) -le 1 ]; then
    ok 0 "SIGKILL at $sc #$when (killed: $killed): all $N delivered, $((total - uniq)) duplicate(s)"
  else
    ok 1 "SIGKILL at $sc #$when (killed: $killed): drained=$drained unique=$uniq/$N sent=$total"
    tail -5 "$T/svc.log" | sed 's/^/#   /'
  fi
}

# write and writev cover file writes and socket writes (libuv writes sockets with them)
for group in "write writev" "fsync fdatasync" "rename renameat renameat2" "unlink unlinkat"; do
  used=0
  for sc in $group; do
    n=$(calls "$sc")
    diag "$sc: $n call(s) in a clean round"
    [ "$n" -gt 0 ] || continue
    used=1
    step=$(( (n + POINTS - 2) / (POINTS - 1) )); [ $step -lt 1 ] && step=1
    for when in $( (seq 1 $step "$n"; echo "$n") | sort -un); do round "$sc" "$when"; done
  done
  [ $used = 1 ]; ok $? "one of '$group' is used during delivery (so it was injected)"
done
done_testing
