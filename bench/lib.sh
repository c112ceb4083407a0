# bench/lib.sh — helpers shared by the bench/*.sh files (sourced).

# median_ms N CMD...: run CMD N times, print the median wall time in ms (3 decimals).
median_ms() {
  local n=$1; shift
  /usr/bin/python3 - "$n" "$@" <<'PY'
import subprocess, sys, time, statistics
n = int(sys.argv[1]); cmd = sys.argv[2:]
ts = []
for _ in range(n):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ts.append((time.perf_counter() - t) * 1000)
print("%.3f" % statistics.median(ts))
PY
}

# alternate N CMD_A -- CMD_B: run A and B alternately N times each, pinned to the same CPU;
# prints "median_a median_b" in ms.
alternate() {
  local n=$1; shift
  /usr/bin/python3 - "$n" "$@" <<'PY'
import subprocess, sys, time, statistics, os
n = int(sys.argv[1]); args = sys.argv[2:]
i = args.index("--"); a, b = args[:i], args[i+1:]
os.sched_setaffinity(0, {0})
ta, tb = [], []
for _ in range(n):
    for cmd, ts in ((a, ta), (b, tb)):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ts.append((time.perf_counter() - t) * 1000)
print("%.3f %.3f" % (statistics.median(ta), statistics.median(tb)))
PY
}
