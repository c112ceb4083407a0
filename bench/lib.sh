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

# alternate_spread N LABEL_A CMD_A... -- LABEL_B CMD_B... [-- ...]: like alternate for any
# number of commands (the order reversed every other round), stdin from $STDIN_FILE
# (else /dev/null); prints one line per command: "LABEL median q1 q3" in ms, then
# "load L1 L5 L15" (the machine's load average when the run ended).
alternate_spread() {
  local n=$1; shift
  /usr/bin/python3 - "$n" "$@" <<'PY'
import subprocess, sys, time, statistics, os
n = int(sys.argv[1]); groups = [[]]
for a in sys.argv[2:]:
    if a == "--": groups.append([])
    else: groups[-1].append(a)
os.sched_setaffinity(0, {0})
stdin = os.environ.get("STDIN_FILE") or os.devnull
ts = [[] for _ in groups]
for i in range(n):
    order = range(len(groups)) if i % 2 == 0 else reversed(range(len(groups)))
    for k in order:
        with open(stdin, "rb") as f:
            t = time.perf_counter()
            subprocess.run(groups[k][1:], stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ts[k].append((time.perf_counter() - t) * 1000)
for g, t in zip(groups, ts):
    q = statistics.quantiles(t, n=4)
    print("%s %.3f %.3f %.3f" % (g[0], statistics.median(t), q[0], q[2]))
print("load " + " ".join(open("/proc/loadavg").read().split()[:3]))
PY
}

# instructions CMD...: the instructions one run of CMD executes (callgrind; stdin from
# $STDIN_FILE), the same however loaded the machine is; "-" without valgrind.
instructions() {
  command -v valgrind >/dev/null || { echo -; return; }
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" < "${STDIN_FILE:-/dev/null}" 2>&1 >/dev/null |
    sed -n 's/.*Collected : *//p'
}

# syscalls CMD...: the system calls one run of CMD makes, its threads too (strace -c -f); "-"
# without strace.
syscalls() {
  command -v strace >/dev/null || { echo -; return; }
  local f; f=$(mktemp)
  strace -f -c -o "$f" "$@" < "${STDIN_FILE:-/dev/null}" >/dev/null 2>&1
  awk '/ total$/ {print $4}' "$f"; rm -f "$f"
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

# start_sink [CPU]: Postfix's smtp-sink ($PF/smtp-sink, unpacked by scripts/deps) on 127.0.0.1
# at a free port, pinned to CPU (default 1: the senders run on CPU 0; 0 puts it beside them), as
# nobody when root; returns once it accepts connections.  Sets PORT, and SINK to its pid (the
# caller's clean-up kills it).
start_sink() {
  local user="" _
  PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  [ "$(id -u)" = 0 ] && user="-u nobody"
  # shellcheck disable=SC2086
  taskset -c "${1:-1}" "$PF/smtp-sink" $user 127.0.0.1:"$PORT" 512 >/dev/null 2>&1 &   # (not into doc_capture's tee)
  SINK=$!
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.05; done
}

# sink_ticks: the CPU time smtp-sink (SINK) has used so far, user + sys, in clock ticks
# (CLK_TCK a second): how busy the receiver was between two reads.  A sender whose sink
# is busy all the time of its run is bound by the sink, not by its own work.
sink_ticks() { awk '{ print $14 + $15 }' "/proc/$SINK/stat" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# sink_bench NAME: what the delivery benches share: a scratch folder W (removed at exit),
# smtp-sink started (start_sink; killed at exit), and settings in W pointing at it, with
# MAILHOOK_CONF and MAILHOOK_SPOOL exported.  1, having said why under NAME, when the bench
# cannot run here.
sink_bench() {
  [ -x "$PF/smtp-sink" ] || { echo "$1  skipped: no smtp-sink (run scripts/deps)"; return 1; }
  W=$(mktemp -d "/tmp/mh-bench-$1.XXXXXX")
  SINK=
  trap '[ -n "$SINK" ] && kill "$SINK" 2>/dev/null; rm -rf "$W"' EXIT
  start_sink
  export MAILHOOK_CONF=$W/mailhook.conf MAILHOOK_SPOOL=$W/spool MAILHOOK_LOG_LEVEL=error
  "$MAILHOOK" update enabled=true server=127.0.0.1 port="$PORT" tls=none tls_required=false \
    from=bench@example.com >/dev/null || { echo "$1  skipped: cannot write settings"; return 1; }
}

# replace_block NAME FILE: replace, in FILE, the lines between "<!-- bench:NAME -->" and
# "<!-- /bench:NAME -->" by stdin (the markers kept), by rename; 1, saying so on stderr, when
# FILE lacks either marker (nothing written).  The docs' figures are the benches' output,
# never copied by hand (issue 16 point 5).
replace_block() {
  /usr/bin/python3 - "$1" "$2" "$(cat)" <<'PY'
import os, sys
name, path, body = sys.argv[1], sys.argv[2], sys.argv[3]
begin, end = "<!-- bench:%s -->" % name, "<!-- /bench:%s -->" % name
text = open(path).read()
i, j = text.find(begin), text.find(end)
if i < 0 or j < i:
    sys.exit("replace_block: no %s ... %s in %s" % (begin, end, path))
new = text[:i + len(begin)] + "\n" + body.rstrip("\n") + "\n" + text[j:]
with open(path + ".tmp", "w") as f:
    f.write(new)
os.rename(path + ".tmp", path)
PY
}

# doc_capture: when BENCH_WRITE_DOCS=1 (scripts/bench sets it: a run by hand leaves the docs
# alone), keep a copy of everything this bench prints from now on, for doc_write.  Call it
# after the checks that may skip the bench (a skipped bench keeps the figures in the docs).
doc_capture() {
  [ "${BENCH_WRITE_DOCS:-}" = 1 ] || return 0
  DOC_OUT=$(mktemp "${W:-/tmp}/bench-out.XXXXXX")   # in the scratch folder when there is one
  exec 3>&1 > >(tee "$DOC_OUT")
  DOC_TEE=$!
}

# doc_write NAME [FILE]: after doc_capture, put what the bench printed, with the date, the
# load average and nproc, in FILE's block NAME (replace_block; FILE defaults to
# docs/delivery.md).  Nothing without BENCH_WRITE_DOCS=1.
doc_write() {
  [ "${BENCH_WRITE_DOCS:-}" = 1 ] && [ -n "${DOC_OUT:-}" ] || return 0
  exec 1>&3 3>&-
  wait "$DOC_TEE" 2>/dev/null
  {
    echo '```'
    cat "$DOC_OUT"
    echo '```'
    echo
    echo "Written by bench/$(basename "$0") on $(date -u +%Y-%m-%dT%H:%MZ): load average" \
         "$(cut -d' ' -f1-3 /proc/loadavg) at the end, $(nproc) CPUs, $(uname -r)."
  } | replace_block "$1" "${2:-$ROOT/docs/delivery.md}"
  rm -f "$DOC_OUT"; DOC_OUT=
}

# flush_timed N: `mailhook flush` as mh.queue.flush() runs it, pinned to CPU 0, expecting N
# delivered and none left.  Sets FLUSH_DRAIN (seconds from the process's start until its last
# delivery was recorded: durable from then on, the delivered journal), FLUSH_WALL (until the
# process ended: the delivered files removed too) and FLUSH_CPU (user + sys, ms).  1, with
# FLUSH_ERR saying why, when it failed.
flush_timed() {
  local t0 t1 out n_done n_left drained
  t0=$(date +%s.%N)
  out=$(/usr/bin/time -f "%U %S" -o "$W/flush.time" taskset -c 0 "$MAILHOOK" -e '
    local s = require("mailhook").queue.flush()
    io.write(s.delivered, " ", s.left, " ", string.format("%.6f", s.drained_at or 0), "\n")' 2>"$W/flush.err")
  t1=$(date +%s.%N)
  read -r n_done n_left drained <<< "$out"
  if [ "${n_done:-0}" != "$1" ] || [ "${n_left:-1}" != 0 ]; then
    FLUSH_ERR="$out $(tail -1 "$W/flush.err")"
    return 1
  fi
  FLUSH_DRAIN=$(/usr/bin/python3 -c "print('%.6f' % ($drained - $t0))")
  FLUSH_WALL=$(/usr/bin/python3 -c "print('%.6f' % ($t1 - $t0))")
  FLUSH_CPU=$(awk '{ printf "%.0f", ($1 + $2) * 1000 }' "$W/flush.time")
}

# Postfix, unpacked in .deps/postfix by scripts/deps and never installed, for private
# instances (52-delivery-postfix.sh, 60-hook.sh): pf_ready, pf_start DIR CPU PORT, pf_stop,
# shared with the tests (tests/lib/postfix.sh says how each instance is kept apart from the
# machine's mail system).
. "$(dirname "${BASH_SOURCE[0]}")/../tests/lib/postfix.sh"

# free_port: a free TCP port of 127.0.0.1.
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
