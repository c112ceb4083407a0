# Delivery, issue 5 point 3 (b): SIGKILL of the service injected at each write,
# fsync, rename, unlink and socket write during delivery (strace -e inject),
# then a restart: every message delivered at least once, and a duplicate only
# for the message that was in flight.  The writes include each record of the
# delivered journal; the fsyncs, renames and unlinks those of every thread (the
# journal's purge runs on the thread pool: runtime/spool.c).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
command -v strace >/dev/null || { echo "1..0 # SKIP strace not installed"; exit 0; }
strace -f -o /dev/null true 2>/dev/null || { echo "1..0 # SKIP strace cannot trace here (ptrace not permitted)"; exit 0; }

PORT=$(free_port)
conf_for "$PORT" retry_interval=0.25 retry_max=0.25   # (the 450'd first message's retry: a quarter second a round, not one)
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
svc_gone_or_drained() { ! kill -0 "$1" 2>/dev/null || pickup_empty; }
# stop_traced PID: SIGTERM the service strace runs (strace itself ignores it), wait for both
stop_traced() {
  local c
  for c in $(pgrep -P "$1"); do kill -TERM "$c" 2>/dev/null; done
  wait "$1" 2>/dev/null
}

# calls SYSCALL [all]: from a traced clean run delivering one round; sets CALLS to the calls
# the main thread made (with all: the most any one thread made, as strace counts
# `when=` per thread), and SOCK to the ordinals of the main thread's calls that wrote
# SMTP commands or data to the socket or a record to the delivered journal (for
# write/writev).  One clean run, the first time, traces every system call injected here
# (strace counts each one's calls apart, per thread: the ordinals are those of a run
# tracing it alone), not one run per call.  (Not in $(...): the round counters must survive.)
TRACED=?write,?writev,?fsync,?fdatasync,?rename,?renameat,?renameat2,?unlink,?unlinkat   # (?: a call this architecture lacks is no error)
calls() {
  if [ ! -s "$T/trace" ]; then
    queue_round
    strace -f -o "$T/trace" -e trace="$TRACED" "$MAILHOOK" run >/dev/null 2>&1 &
    local st=$!
    wait_for 20 pickup_empty
    stop_traced $st
  fi
  local main   # the main thread: the process itself, the lowest id in the trace
  main=$(awk '{print $1}' "$T/trace" | sort -n | head -1)
  # (joined: a record's write another thread's line cut ends "17 <unfinished ...>", its
  # ") = 17" on the "resumed" half; the main thread's calls keep their order, their ordinals)
  strace_joined "$T/trace" | grep -E "^$main +$1\(" > "$T/main-calls"
  CALLS=$(wc -l < "$T/main-calls")
  [ "${2:-}" = all ] && CALLS=$(awk -v sc="$1(" 'index($2, sc) == 1 {n[$1]++}
    END {m = 0; for (t in n) if (n[t] > m) m = n[t]; print m}' "$T/trace")
  SOCK=$( (awk '/"(EHLO|MAIL FROM|RCPT TO|DATA|RSET|QUIT|From: )/ {print NR}' "$T/main-calls"
          grep -nE '"[0-9a-f]{16}\\n", 17\)' "$T/main-calls" | cut -d: -f1) | sort -n)
  JOURNAL_WRITES=$(grep -cE '"[0-9a-f]{16}\\n", 17\)' "$T/main-calls")
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

# socket writes: the main thread's write/writev calls that carry SMTP commands or data
for sc in write writev; do
  calls "$sc"
  diag "$sc: $CALLS call(s) in a clean round, $(echo $SOCK | wc -w) of them SMTP to the socket or a journal record ($JOURNAL_WRITES)"
  [ -n "$SOCK" ] || continue
  sockw=1
  [ "$JOURNAL_WRITES" -gt 0 ] && jw=1
  n=$(echo $SOCK | wc -w); step=$(( (n + POINTS - 2) / (POINTS - 1) )); [ $step -lt 1 ] && step=1
  for when in $( (echo $SOCK | tr ' ' '\n' | awk -v s=$step '(NR - 1) % s == 0'; echo $SOCK | awk '{print $NF}') | sort -un); do
    round "$sc" "$when"
  done
done
[ -n "${sockw:-}" ]; ok $? "socket writes of SMTP commands and data were found and injected"
# each record of the delivered journal, not only those the spread above hits
calls write
for when in $(grep -nE '"[0-9a-f]{16}\\n", 17\)' "$T/main-calls" | cut -d: -f1); do round write "$when"; done
[ -n "${jw:-}" ]; ok $? "writes of delivered-journal records were found and injected"

# file writes, fsync, rename, unlink: spread over the calls of a clean round
for group in "fsync fdatasync" "rename renameat renameat2" "unlink unlinkat"; do
  used=0
  for sc in $group; do
    calls "$sc" all; n=$CALLS
    diag "$sc: $n call(s) in a clean round (the busiest thread)"
    [ "$n" -gt 0 ] || continue
    used=1
    step=$(( (n + POINTS - 2) / (POINTS - 1) )); [ $step -lt 1 ] && step=1
    for when in $( (seq 1 $step "$n"; echo "$n") | sort -un); do round "$sc" "$when"; done
  done
  [ $used = 1 ]; ok $? "one of '$group' is used during delivery (so it was injected)"
done

# SIGKILL of `mailhook flush` at 12 moments of a 200-message drain on two connections,
# small (1 KB, data handles) and big (600 KB, streamed, released before the next submit)
# mixed: every message arrives, byte for byte, and at most one per connection and kill
# twice.
peer_stop
SPOOL=$T/spool-kill; export MAILHOOK_SPOOL=$SPOOL
KPORT=$(free_port)
peer_start "$KPORT" "$T/kpeer"
conf_for "$KPORT" connections=2
spool_make
$PY - "$T" <<'PY'
import sys, random
t = sys.argv[1]
random.seed(3)
for i in range(1, 201):
    size = 600000 if i % 10 == 0 else 1000
    head = b"From: app@example.com\r\nTo: ok@example.net\r\nSubject: k %d\r\nMessage-ID: <k%d@test>\r\n\r\n" % (i, i)
    body, left = [], size - len(head)
    while left > 0:
        line = bytes(random.choices(b"abcdefghij .", k=random.randrange(0, 200)))   # (choices: one C loop, not one call a byte: the 12 MB took ~100 s in a loaded root)
        body.append(line + b"\r\n"); left -= len(line) + 2
    open("%s/k-%03d.eml" % (t, i), "wb").write(head + b"".join(body))
PY
enqueue_file "$T"/k-*.eml >/dev/null
kills=0
for at in $(seq 3 17 199); do
  "$MAILHOOK" flush >>"$T/kill.log" 2>&1 &
  fl=$!
  wait_for 30 received_at_least "$T/kpeer" "$at"
  kill -9 "$fl"; wait "$fl" 2>/dev/null
  kills=$((kills + 1))
done
"$MAILHOOK" flush >>"$T/kill.log" 2>&1; is $? 0 "after $kills kills, a flush drains the rest"
got=$($PY - "$T" "$T/kpeer" <<'PY'
import sys, glob
t, peer = sys.argv[1], sys.argv[2]
src = {open(p, "rb").read(): p for p in glob.glob(t + "/k-*.eml")}
names = [src.get(open(p, "rb").read()) for p in glob.glob(peer + "/*.eml")]
print(len(set(n for n in names if n)), names.count(None), len(names) - len(set(names)))
PY
)
set -- $got
is "$1 $2" "200 0" "every message arrived, none with wrong bytes"
[ "$3" -le $((kills * 2)) ]; ok $? "at most one per connection and kill twice ($3 for $kills kills)"
done_testing
