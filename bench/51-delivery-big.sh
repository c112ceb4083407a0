# Big-message delivery (issue 16 point 3): drain $BIG_N (300) messages of 100 KB and
# $HUGE_N (20) of 5 MB from the durable spool to Postfix's smtp-sink with `mailhook flush`,
# next to smtp-source (-d, one session) sending as many messages of the same size; rounds
# alternate, the senders pinned to CPU 0 and the sink to CPU 1 (as 50-delivery.sh).
# Prints each side's rate per round, the median ratio with its spread (min-max of the
# per-round ratios), and the CPU time each side used (user + sys, load-independent enough
# to compare on a busy machine).  Goal: ratio >= 1.0 for both sizes.  With BENCH_WRITE_DOCS=1
# (make bench) the output goes into docs/delivery.md (block delivery-big).
. "$(dirname "$0")/lib.sh"
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
MAILHOOK=${MAILHOOK:-$ROOT/build/mailhook}
ROUNDS=${ROUNDS:-5}
BIG_N=${BIG_N:-300}
HUGE_N=${HUGE_N:-20}
PF=$ROOT/.deps/postfix/usr/sbin
export LD_LIBRARY_PATH="$ROOT/.deps/postfix/usr/lib/postfix${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
PY=/usr/bin/python3
sink_bench delivery-big || exit 0
doc_capture   # with BENCH_WRITE_DOCS=1, what follows goes into docs/delivery.md too

# fill_size N BYTES: queue N messages of about BYTES, not timed, in lines of 78 characters and
# CRLF as smtp-source sends its payload (the sink's work is per line: shorter lines than the
# peer's would measure the sink, not the sender).
fill_size() {
  "$MAILHOOK" -e '
    local a, b = ...
    local n, size = tonumber(a), tonumber(b)
    local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL"))
    local line = string.rep("0123456789abc", 6) .. "\r\n"
    local body = string.rep(line, size // #line)
    local env = { from = "bench@example.com", to = { "sink@example.net" } }
    local i = 0
    while i < n do
      local batch = {}
      for k = 1, math.min(20, n - i) do
        i = i + 1
        batch[k] = { "From: bench@example.com\r\nTo: sink@example.net\r\nSubject: big " .. i ..
                     "\r\nMessage-ID: <" .. i .. "@bench>\r\n\r\n" .. body, env }
      end
      assert(sp:enqueue_many(batch))
    end' "$1" "$2"
}
# timed CMD...: "wall_ms cpu_ms" of CMD (cpu = user + sys)
timed() {
  /usr/bin/time -f "%e %U %S" -o "$W/time" "$@" >/dev/null 2>"$W/err"; local rc=$?
  awk '{ printf "%.0f %.0f\n", $1 * 1000, ($2 + $3) * 1000 }' "$W/time"
  return $rc
}

run_size() {   # run_size LABEL N BYTES
  local label=$1 n=$2 size=$3 r src k0 k1 dr_r=() mh_r=() src_r=() mh_c=() src_c=() mh_s=() src_s=()
  for r in $(seq "$ROUNDS"); do
    fill_size "$n" "$size"
    k0=$(sink_ticks)
    flush_timed "$n" || { echo "delivery-big  flush failed: $FLUSH_ERR"; return; }
    k1=$(sink_ticks)
    # the sink's share of the drain (its CPU while mailhook sent, over the time until the
    # last 250), and of smtp-source's run: near 1.0 for both, the receiver is the bound
    mh_s+=("$($PY -c "print('%.2f' % ((($k1 - $k0) / $CLK_TCK) / $FLUSH_DRAIN))")")
    k0=$(sink_ticks)
    src=$(timed taskset -c 0 "$PF/smtp-source" -d -s 1 -m "$n" -l "$size" -f bench@example.com \
      -t sink@example.net 127.0.0.1:"$PORT")
    k1=$(sink_ticks)
    src_s+=("$($PY -c "print('%.2f' % ((($k1 - $k0) / $CLK_TCK) / (${src% *} / 1000)))")")
    dr_r+=("$($PY -c "print('%.1f' % ($n / $FLUSH_DRAIN))")")
    mh_r+=("$($PY -c "print('%.1f' % ($n / $FLUSH_WALL))")"); mh_c+=("$FLUSH_CPU")
    src_r+=("$($PY -c "print('%.1f' % ($n / (${src% *} / 1000)))")"); src_c+=("${src#* }")
  done
  $PY - "$label" "$n" "${dr_r[*]}" "${mh_r[*]}" "${src_r[*]}" "${mh_c[*]}" "${src_c[*]}" "${mh_s[*]}" "${src_s[*]}" <<'PY'
import sys, statistics as st
label, n = sys.argv[1], sys.argv[2]
dr, mh, src, mc, sc, ms, ss = [list(map(float, a.split())) for a in sys.argv[3:10]]
rd = [a / b for a, b in zip(dr, src)]
rf = [a / b for a, b in zip(mh, src)]
print("delivery-big  %s x %s, spool -> smtp-sink, %d alternating rounds:" % (n, label, len(mh)))
print("delivery-big    mailhook drain     %.1f msg/s  (until the last 250 was recorded; rounds: %s)" % (st.median(dr), " ".join("%g" % x for x in dr)))
print("delivery-big    mailhook flush     %.1f msg/s  (until its files were removed too; rounds: %s)  cpu %.0f ms" % (st.median(mh), " ".join("%g" % x for x in mh), st.median(mc)))
print("delivery-big    smtp-source -s 1   %.1f msg/s  (rounds: %s)  cpu %.0f ms" % (st.median(src), " ".join("%g" % x for x in src), st.median(sc)))
print("delivery-big    ratio: drain %.2f (per round %.2f-%.2f), flush %.2f (%.2f-%.2f)  (goal >= 1.0)" %
      (st.median(rd), min(rd), max(rd), st.median(rf), min(rf), max(rf)))
print("delivery-big    smtp-sink busy     %.2f of mailhook's drain, %.2f of smtp-source's run (its CPU over the time; rounds: %s / %s)" %
      (st.median(ms), st.median(ss), " ".join("%g" % x for x in ms), " ".join("%g" % x for x in ss)))
PY
}
run_size "100 KB" "$BIG_N" 102400
run_size "5 MB" "$HUGE_N" 5000000
echo "delivery-big  load average: $(cut -d' ' -f1-3 /proc/loadavg)"
doc_write delivery-big
