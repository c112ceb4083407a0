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

# fill N: queue N 1 KB messages into $MAILHOOK_SPOOL (group commit, batches of 500), not
# timed; each its own Subject and Message-ID (50-delivery.sh, 70-console.sh).
fill() {
  "$MAILHOOK" -e '
    local n = tonumber(...)
    local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL"))
    local body = string.rep("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 14)
    local env = { from = "bench@example.com", to = { "sink@example.net" } }
    local i = 0
    while i < n do
      local batch = {}
      for k = 1, math.min(500, n - i) do
        i = i + 1
        batch[k] = { "From: bench@example.com\r\nTo: sink@example.net\r\nSubject: bench " .. i ..
                     "\r\nMessage-ID: <" .. i .. "@bench>\r\n\r\n" .. body, env }
      end
      assert(sp:enqueue_many(batch))
    end' "$1"
}

# hook_setup DIR PORT: DIR/mailhook.conf (plain SMTP to 127.0.0.1:PORT) and DIR/rules/alarm.lua,
# the rule the hook benches run (60-hook.sh, 61-hook-installed.sh): a template, one enqueue.
hook_setup() {
  mkdir -p "$1/rules"
  cat > "$1/mailhook.conf" <<CONF
enabled = true
server = 127.0.0.1
port = $2
from = pbx@example.com
tls = none
tls_required = false
CONF
  cat > "$1/rules/alarm.lua" <<'LUA'
on("alarm", function(ev)
  local m = mh.template.message("alarm", ev)
  assert(mh.enqueue { to = "ops@example.com", subject = m.subject, text = m.text })
end)
LUA
}
