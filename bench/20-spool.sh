# The spool: durable enqueue rate of 1 KB messages next to the disk's own
# write+fsync+rename+folder-fsync floor (bench/spool-probe.py), measured
# alternately in one run, on a fresh and on a churned spool; group commit;
# peak RSS of `mailhook queue` over 100,000 messages and of enqueuing 200 MB of
# attachments and of piping a 200 MB message through mailhook sendmail.
# Goals: single >= 80% of the floor; batch > floor; RSS <= 10 / 20 / 20 MB.
. "$(dirname "$0")/lib.sh"
: "${ROOT:=$(cd "$(dirname "$0")/.." && pwd)}"
B=${BENCH_DIR:-$ROOT/build/bench-spool}
N=${SPOOL_BENCH_N:-150}; ROUNDS=${SPOOL_BENCH_ROUNDS:-7}
rm -rf "$B"; mkdir -p "$B"
med() { /usr/bin/python3 -c 'import sys,statistics; print("%.0f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
mb() { /usr/bin/python3 -c 'import sys; print("%.1f MB" % (int(sys.argv[1]) / 1024))' "$1"; }
pct() { /usr/bin/python3 -c 'import sys; print("%.0f%%" % (100*float(sys.argv[1])/float(sys.argv[2])))' "$1" "$2"; }

# rounds LABEL: probe, single enqueue, batch enqueue, alternately, ROUNDS times
rounds() {
  local p=() s=() b=() i
  for ((i = 0; i < ROUNDS; i++)); do
    # the order flips every round, so neither side always runs first after the clean-up
    if ((i % 2 == 0)); then
      p+=("$(/usr/bin/python3 "$ROOT/bench/spool-probe.py" "$B/probe" "$N")")
      s+=("$("$MAILHOOK" "$ROOT/bench/spool-enqueue.lua" "$B/spool" "$N" 1)")
      b+=("$("$MAILHOOK" "$ROOT/bench/spool-enqueue.lua" "$B/spool" "$N" 32)")
    else
      b+=("$("$MAILHOOK" "$ROOT/bench/spool-enqueue.lua" "$B/spool" "$N" 32)")
      s+=("$("$MAILHOOK" "$ROOT/bench/spool-enqueue.lua" "$B/spool" "$N" 1)")
      p+=("$(/usr/bin/python3 "$ROOT/bench/spool-probe.py" "$B/probe" "$N")")
    fi
    rm -rf "$B/probe/new" "$B/spool/pickup"/*   # keep the folders from growing between rounds
  done
  local fp fs fb
  fp=$(med "${p[@]}"); fs=$(med "${s[@]}"); fb=$(med "${b[@]}")
  echo "spool  $1: floor (write+fsync+rename+dir fsync) $fp files/s | enqueue $fs msg/s ($(pct "$fs" "$fp") of floor, goal >= 80%) | batch of 32 $fb msg/s ($(pct "$fb" "$fp") of floor, goal > 100%)"
}
rounds "fresh  "

# churn: mass creation and deletion in the very folders, then measure at once
churn() {
  /usr/bin/python3 - "$@" <<'PY'
import os, sys
for d in sys.argv[1:]:
    os.makedirs(d, exist_ok=True)
    names = ["%s/churn-%d" % (d, i) for i in range(8000)]
    for n in names:
        with open(n, "wb") as f: f.write(b"x" * 1024)
    os.sync()
    for n in names: os.unlink(n)
PY
}
churn "$B/probe/tmp" "$B/probe/new" "$B/spool/tmp" "$B/spool/pickup"
rounds "churned"

# peak RSS of `mailhook queue` over 100,000 messages (files written directly:
# the listing is what is measured)
Q=$B/q100k; mkdir -p "$Q/pickup" "$Q/tmp" "$Q/failed" "$Q/corrupt"
/usr/bin/python3 - "$Q/pickup" <<'PY'
import sys, time
d = sys.argv[1]; base = int(time.time() * 1e6)
body = b"X-Sender: a@ex.org\r\nX-Receiver: b@ex.org\r\nFrom: a@ex.org\r\nTo: b@ex.org\r\nSubject: s\r\n\r\n" + b"x" * 900 + b"\r\n"
for i in range(100000):
    with open("%s/%016x.eml" % (d, base + i), "wb") as f: f.write(body)
PY
read -r rss secs < <( { /usr/bin/time -f "%M %e" "$MAILHOOK" -s "$Q" queue > "$B/q.out"; } 2>&1 | tail -1)
echo "spool  mailhook queue over $(($(wc -l < "$B/q.out") - 1)) messages: peak RSS $(mb "$rss") (goal <= 10 MB), ${secs} s"
read -r rss secs < <( { /usr/bin/time -f "%M %e" "$MAILHOOK" -s "$Q" queue --json > /dev/null; } 2>&1 | tail -1)
echo "spool  mailhook queue --json: peak RSS $(mb "$rss"), ${secs} s"
rm -rf "$Q"
read -r rss secs < <( { /usr/bin/time -f "%M %e" "$MAILHOOK" -e '' ; } 2>&1 | tail -1)
echo "spool  (for scale: mailhook -e '' peak RSS $(mb "$rss"))"

# peak RSS of enqueuing 200 MB of attachments (the message builder streams them): four
# 50 MB files, one attachment being limited to 64 MiB (docs/spool.md, Limits)
C=$B/conf
"$MAILHOOK" -c "$C" update enabled=true server=127.0.0.1 from=bench@ex.org > /dev/null
att=()
for i in 1 2 3 4; do head -c 50000000 /dev/urandom > "$B/big$i.bin"; att+=(--attach "$B/big$i.bin"); done
echo body | /usr/bin/time -o "$B/time" -f "%M %e" "$MAILHOOK" -c "$C" -s "$B/spool" enqueue --to sink@ex.org "${att[@]}" > /dev/null 2> "$B/err"
read -r rss secs < <(tail -1 "$B/time")
if f=$(ls "$B"/spool/pickup/*.eml 2>/dev/null) && [ -n "$f" ]; then
  echo "spool  enqueue of 4 x 50 MB attachments: peak RSS $(mb "$rss") (goal <= 20 MB), ${secs} s (file $(( $(stat -c %s $f) / 1000000 )) MB)"
else
  echo "spool  enqueue of 4 x 50 MB attachments failed: $(tail -1 "$B/err")"
fi
rm -f "$B"/big*.bin "$B"/spool/pickup/*.eml

# peak RSS and time of piping a 200 MB message through mailhook sendmail -t
# (stdin streams into the spool file in 64 KiB chunks; LF lines made CRLF)
{ printf 'From: app@ex.org\nTo: sink@ex.org\nSubject: fax\n\n'; head -c 150000000 /dev/urandom | base64 -w 76; } > "$B/big.eml"
read -r rss secs < <( { cat "$B/big.eml" | /usr/bin/time -f "%M %e" "$MAILHOOK" -c "$C" -s "$B/spool" sendmail -t > /dev/null; } 2>&1 | tail -1)
echo "spool  sendmail of a $(( $(stat -c %s "$B/big.eml") / 1000000 )) MB message through a pipe: peak RSS $(mb "$rss") (goal <= 20 MB), ${secs} s (file $(( $(du -m "$B"/spool/pickup/*.eml | tail -1 | cut -f1) )) MB)"
rm -rf "$B"
