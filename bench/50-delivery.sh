# Delivery throughput and memory (issue 5 point 4).
#  1. Drain $MSGS (2,000) queued 1 KB messages from the durable spool to Postfix's
#     smtp-sink with `mailhook flush` (each spool file removed only after its 250),
#     next to smtp-source (one session, -d: connection reused) and msmtp (one process
#     per message: $MSMTP_N (100) timed, extrapolated).  Same sink, same run, rounds
#     alternating, the senders pinned to CPU 0 and the sink to CPU 1.
#     Goals: >= 1.5x smtp-source, >= 50x msmtp.
#  2. Peak RSS and time of delivering one $BIG_MB (200) MB message.
#  3. Peak RSS of `mailhook flush` draining a backlog of $BACKLOG messages
#     (default 20,000 to keep `make bench` to a few minutes; BACKLOG=100000 for
#     the figure of the goal: <= 10 MB and flat), RSS sampled every 0.2 s.
# With BENCH_WRITE_DOCS=1 (make bench) the output goes into docs/delivery.md (block delivery).
. "$(dirname "$0")/lib.sh"
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
MAILHOOK=${MAILHOOK:-$ROOT/build/mailhook}
MSGS=${MSGS:-2000}
MSMTP_N=${MSMTP_N:-100}
ROUNDS=${ROUNDS:-3}
BACKLOG=${BACKLOG:-20000}
PF=$ROOT/.deps/postfix/usr/sbin
export LD_LIBRARY_PATH="$ROOT/.deps/postfix/usr/lib/postfix${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
PY=/usr/bin/python3

missing=$("$MAILHOOK" -e 'for _, m in ipairs{"mailhook.spool", "mailhook.smtp", "mailhook.settings"} do
  if not pcall(require, m) then io.write(m, " ") end end' 2>&1)
if [ -n "$missing" ]; then echo "delivery  skipped: not built yet ($missing)"; exit 0; fi
sink_bench delivery || exit 0
doc_capture   # with BENCH_WRITE_DOCS=1, what follows goes into docs/delivery.md too

now_ms() { date +%s%3N; }

printf 'hello\r\n%s\r\n' "$(head -c 1000 /dev/zero | tr '\0' 'x')" > "$W/msg.txt"
mh_rates=() src_rates=() msmtp_rates=()
for r in $(seq "$ROUNDS"); do
  fill "$MSGS"
  t0=$(now_ms); taskset -c 0 "$MAILHOOK" flush >/dev/null 2>"$W/flush.err"; rc=$?; t1=$(now_ms)
  [ $rc = 0 ] || { echo "delivery  mailhook flush failed: $(tail -1 "$W/flush.err")"; exit 0; }
  mh_rates+=("$($PY -c "print('%.0f' % ($MSGS / (($t1 - $t0) / 1000)))")")

  t0=$(now_ms); taskset -c 0 "$PF/smtp-source" -d -s 1 -m "$MSGS" -l 1024 -f bench@example.com \
    -t sink@example.net 127.0.0.1:"$PORT" >/dev/null 2>&1; t1=$(now_ms)
  src_rates+=("$($PY -c "print('%.0f' % ($MSGS / (($t1 - $t0) / 1000)))")")

  t0=$(now_ms)
  for _ in $(seq "$MSMTP_N"); do
    taskset -c 0 msmtp --host=127.0.0.1 --port="$PORT" --auth=off --tls=off --from=bench@example.com \
      sink@example.net < "$W/msg.txt" >/dev/null 2>&1
  done
  t1=$(now_ms)
  msmtp_rates+=("$($PY -c "print('%.1f' % ($MSMTP_N / (($t1 - $t0) / 1000)))")")
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mh=$(med "${mh_rates[@]}"); src=$(med "${src_rates[@]}"); ms=$(med "${msmtp_rates[@]}")
echo "delivery  $MSGS x 1 KB, spool -> smtp-sink, median of $ROUNDS alternating rounds:"
echo "delivery    mailhook flush     ${mh} msg/s  (rounds: ${mh_rates[*]})"
echo "delivery    smtp-source -s 1   ${src} msg/s  (rounds: ${src_rates[*]})   ratio $($PY -c "print('%.2f' % ($mh/$src))")  (goal >= 1.5)"
echo "delivery    msmtp per message  ${ms} msg/s  ($MSMTP_N timed, extrapolated)   ratio $($PY -c "print('%.1f' % ($mh/$ms))")  (goal >= 50)"

# Memory: one big message (a fax with a large attachment), read piece by piece
# from its spool file as it is sent.
BIG_MB=${BIG_MB:-200}
$PY - "$W/big.eml" "$BIG_MB" <<'PY'
import sys
line = b"0123456789" * 7 + b"abcdef\r\n"
n = int(sys.argv[2]) * 1024 * 1024 // len(line)
with open(sys.argv[1], "wb") as f:
    f.write(b"From: bench@example.com\r\nTo: sink@example.net\r\nSubject: big\r\n\r\n")
    for _ in range(n // 1024):
        f.write(line * 1024)
PY
"$MAILHOOK" -e '
  local f = assert(io.open(..., "rb"))
  local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL"))
  assert(sp:enqueue(f:read("a"), { from = "bench@example.com", to = { "sink@example.net" } }))' "$W/big.eml"
/usr/bin/time -f "%e %M" -o "$W/big.time" taskset -c 0 "$MAILHOOK" flush >/dev/null 2>"$W/flush.err"
read -r secs kb < <(tail -1 "$W/big.time")
echo "delivery  one ${BIG_MB} MB message to smtp-sink: ${secs} s, peak RSS $((kb / 1024)) MB (read from its file piece by piece)"
rm -f "$W/big.eml"

# Memory: peak and flatness of RSS while draining the backlog.
fill "$BACKLOG"
"$MAILHOOK" flush >/dev/null 2>"$W/flush.err" &
pid=$!
: > "$W/rss"
while kill -0 "$pid" 2>/dev/null; do
  awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null >> "$W/rss"
  sleep 0.2
done
wait "$pid"
$PY - "$W/rss" "$BACKLOG" <<'PY'
import sys
v = [int(x) for x in open(sys.argv[1]) if x.strip()]
if not v:
    print("delivery  backlog: no RSS samples"); sys.exit()
n = len(v); q = lambda f: v[min(n - 1, int(f * n))]
print("delivery  backlog %s msgs: peak RSS %.1f MB (goal <= 10 MB); RSS at 10/50/90%% of the drain: %.1f / %.1f / %.1f MB; %d samples"
      % (sys.argv[2], max(v) / 1024, q(.1) / 1024, q(.5) / 1024, q(.9) / 1024, n))
PY
doc_write delivery
