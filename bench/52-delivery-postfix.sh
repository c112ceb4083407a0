# Delivery against real Postfix peers (issue 16 point 5).  smtp-sink (50-delivery.sh) measures
# the sender alone; a real receiver and a real durable queue show what the figures mean in use:
#  a. Receiver: a real Postfix smtpd (cleanup writes and fsyncs each message into its queue,
#     the queue manager discards it) on 127.0.0.1.  `mailhook flush` of $MSGS (2,000) queued
#     1 KB messages next to smtp-source (one session, -d) sending as many to that same smtpd.
#  b. Durable peer: Postfix draining its own queue.  $MSGS messages are put in its hold queue
#     (through its smtpd, not timed); the time runs from their release (postsuper -H ALL,
#     postqueue -f) until its queue is empty, Postfix relaying to the same smtp-sink as
#     `mailhook flush` of $MSGS messages, with Postfix's own defaults (its queue manager opens
#     several connections, reused through its connection cache).
# $ROUNDS (5) rounds, both sides alternating in one run (the order reversed every other
# round); the senders pinned to CPU 0, the receiving Postfix and smtp-sink to CPU 1 (in b the
# draining Postfix is the sender: CPU 0).  Prints each side's rate per round, the median ratio
# with its spread (min-max of the per-round ratios) and the load average.  With
# BENCH_WRITE_DOCS=1 (make bench) the output goes into docs/delivery.md (block
# delivery-postfix).
#
# Postfix is unpacked in .deps/postfix (scripts/deps), never installed: each instance is a
# private one (bench/lib.sh pf_start), its configuration, queue and data in the bench's
# scratch folder (removed at exit), its smtpd on a free high port of 127.0.0.1, its log in its
# own file; the machine's mail system is never touched.  Skipped unless root.  Everything
# started (both masters with their daemons, each in its own session, and smtp-sink) is killed
# at exit, Ctrl-C included.
. "$(dirname "$0")/lib.sh"
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
MAILHOOK=${MAILHOOK:-$ROOT/build/mailhook}
MSGS=${MSGS:-2000}
ROUNDS=${ROUNDS:-5}
PY=/usr/bin/python3
B=delivery-postfix

skip() { echo "$B  skipped: $*"; exit 0; }
pf_ready postsuper postqueue smtp-source || skip "$PF_WHY"
missing=$("$MAILHOOK" -e 'for _, m in ipairs{"mailhook.spool", "mailhook.smtp", "mailhook.settings"} do
  if not pcall(require, m) then io.write(m, " ") end end' 2>&1)
[ -z "$missing" ] || skip "not built yet ($missing)"
sink_bench "$B" || exit 0   # sets W, SINK and PORT (smtp-sink's)

# Clean-up, replacing sink_bench's trap: each Postfix (pf_stop), then smtp-sink, then the
# scratch folder.
cleanup() {
  pf_stop
  [ -n "$SINK" ] && kill "$SINK" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
chmod 711 "$W"   # Postfix's daemons (nobody) reach their queue below it

# pf_wait_empty DIR [release]: with "release", first release DIR's hold queue (postsuper -H
# ALL, postqueue -f); then poll, every 10 ms from CPU 1, until DIR's queue holds no message;
# prints the ms it took.  The poll stops at the first file it sees (a few directory reads).
pf_wait_empty() {
  taskset -c 1 $PY - "$1" "${2:-}" "$PF" <<'PY'
import os, subprocess, sys, time
d, release, pf = sys.argv[1], sys.argv[2], sys.argv[3]
q = os.path.join(d, "queue")
conf = ["-c", os.path.join(d, "etc")]
def busy(path):
    for e in os.scandir(path):
        if e.is_file() or (e.is_dir() and busy(e.path)):
            return True
    return False
t = time.perf_counter()
if release:
    subprocess.run([pf + "/postsuper"] + conf + ["-H", "ALL"], check=True, stderr=subprocess.DEVNULL)
    subprocess.run([pf + "/postqueue"] + conf + ["-f"], check=True)
deadline = t + 600
while any(busy(os.path.join(q, s)) for s in ("maildrop", "incoming", "active", "deferred", "hold")):
    if time.perf_counter() > deadline:
        sys.exit("queue of %s not empty after 600 s" % d)
    time.sleep(0.01)
print("%.0f" % ((time.perf_counter() - t) * 1000))
PY
}

# ms CMD...: wall ms of CMD (its output thrown away; its stderr in $W/err); its status.
ms() {
  local t0 t1 rc
  t0=$(date +%s%N); "$@" >/dev/null 2>"$W/err"; rc=$?; t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 )); return $rc
}

# report TITLE LABEL_A MS_A LABEL_B MS_B: rates per round (MSGS / ms), medians, the ratio A/B
# with its spread, as 51-delivery-big.sh prints them.
report() {
  $PY - "$MSGS" "$@" <<'PY'
import sys, statistics as st
n = int(sys.argv[1]); title, la, ta, lb, tb = sys.argv[2:7]
a = [n / (float(x) / 1000) for x in ta.split()]
b = [n / (float(x) / 1000) for x in tb.split()]
r = [x / y for x, y in zip(a, b)]
print("delivery-postfix  %s, %d alternating rounds:" % (title, len(a)))
for l, v in ((la, a), (lb, b)):
    print("delivery-postfix    %-26s %6.0f msg/s  (rounds: %s)" % (l, st.median(v), " ".join("%.0f" % x for x in v)))
print("delivery-postfix    ratio %.2f (per round %.2f-%.2f)" % (st.median(r), min(r), max(r)))
PY
}

RD=$W/pf-receiver QD=$W/pf-queue
RPORT=$(free_port) QPORT=$(free_port)
while [ "$QPORT" = "$RPORT" ]; do QPORT=$(free_port); done
pf_start "$RD" 1 "$RPORT" <<EOF || exit 0
# The receiver: what its smtpd accepts is queued (written, fsynced), then discarded.
default_transport = discard
EOF
# shellcheck disable=SC2153  # PORT: smtp-sink's, set by sink_bench
pf_start "$QD" 0 "$QPORT" <<EOF || exit 0
# The durable peer: what its smtpd accepts waits in the hold queue until released, then goes
# to smtp-sink.
default_transport = smtp
relayhost = [127.0.0.1]:$PORT
smtpd_recipient_restrictions = check_recipient_access static:HOLD, permit_mynetworks, reject
EOF
MAILHOOK_CONF=$W/receiver.conf "$MAILHOOK" update enabled=true server=127.0.0.1 port="$RPORT" \
  tls=none tls_required=false from=bench@example.com >/dev/null || skip "cannot write settings"

doc_capture
echo "$B  $MSGS x 1 KB per side and round; Postfix $("$PF/postconf" -c "$RD/etc" -h mail_version)," \
     "private instances (configuration and queue in a scratch folder)"

# a. The receiver: a real smtpd.  Its queue is emptied (discarded) before each side starts.
mh_a=() src_a=()
for r in $(seq "$ROUNDS"); do
  fill "$MSGS"
  for side in $( [ $((r % 2)) = 1 ] && echo "mh src" || echo "src mh"); do
    pf_wait_empty "$RD" >/dev/null || exit 0
    if [ "$side" = mh ]; then
      t=$(MAILHOOK_CONF=$W/receiver.conf ms taskset -c 0 "$MAILHOOK" flush) ||
        { echo "$B  mailhook flush to Postfix's smtpd failed: $(tail -1 "$W/err")"; exit 0; }
      mh_a+=("$t")
    else
      t=$(ms taskset -c 0 "$PF/smtp-source" -d -s 1 -m "$MSGS" -l 1024 -f bench@example.com \
        -t sink@example.net 127.0.0.1:"$RPORT") ||
        { echo "$B  smtp-source to Postfix's smtpd failed: $(tail -1 "$W/err")"; exit 0; }
      src_a+=("$t")
    fi
  done
done
report "spool -> a real Postfix smtpd (queues, then discards)" \
  "mailhook flush" "${mh_a[*]}" "smtp-source -s 1 -d" "${src_a[*]}"

# b. The durable peer: Postfix draining its own queue to smtp-sink.
mh_b=() pf_b=()
for r in $(seq "$ROUNDS"); do
  fill "$MSGS"
  ms "$PF/smtp-source" -d -s 1 -m "$MSGS" -l 1024 -f bench@example.com -t sink@example.net \
    127.0.0.1:"$QPORT" >/dev/null || { echo "$B  queueing into Postfix failed: $(tail -1 "$W/err")"; exit 0; }
  for side in $( [ $((r % 2)) = 1 ] && echo "mh pf" || echo "pf mh"); do
    if [ "$side" = mh ]; then
      t=$(ms taskset -c 0 "$MAILHOOK" flush) ||
        { echo "$B  mailhook flush to smtp-sink failed: $(tail -1 "$W/err")"; exit 0; }
      mh_b+=("$t")
    else
      t=$(pf_wait_empty "$QD" release) || { echo "$B  Postfix's drain failed"; exit 0; }
      pf_b+=("$t")
    fi
  done
done
report "queue -> smtp-sink, each draining its own durable queue" \
  "mailhook flush" "${mh_b[*]}" "Postfix (qmgr + smtp)" "${pf_b[*]}"
echo "$B    (Postfix with its defaults: up to $("$PF/postconf" -c "$QD/etc" -h default_destination_concurrency_limit)" \
     "parallel deliveries to the sink, connections cached; mailhook: 1 connection)"
echo "$B  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
doc_write "$B"
