# SMTP throughput: 2,000 messages of 1 KB over one connection to Postfix's smtp-sink.
# mailhook (one session, PIPELINING; s:send one message at a time, and s:submit with
# two in flight: pipelining across messages) next to smtp-source
# (-d: one session, connection reuse) and msmtp (one process per message: 100 of
# them, extrapolated), run alternately, clients pinned to CPU 0 and the sink to
# CPU 1 alike.  Goals: >= 1.5x smtp-source, >= 50x msmtp.  Figures only.
. "$(dirname "$0")/lib.sh"
SINK=$ROOT/.deps/postfix/usr/sbin/smtp-sink
SOURCE=$ROOT/.deps/postfix/usr/sbin/smtp-source
[ -x "$SINK" ] || { echo "smtp: smtp-sink missing (run scripts/deps)"; exit 0; }
T=$(mktemp -d /tmp/mh-bench40.XXXXXX)
trap 'kill $SINKPID 2>/dev/null; rm -rf "$T"' EXIT
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 1 "$SINK" -u nobody -4 127.0.0.1:"$PORT" 256 >/dev/null 2>&1 &
SINKPID=$!
for _ in $(seq 50); do /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT)).close()" 2>/dev/null && break; sleep 0.1; done

printf 'From: a@example.test\r\nTo: b@example.test\r\nSubject: bench\r\n\r\n%s' \
  "$(for _ in $(seq 15); do printf '%062d\r\n' 0; done)" > "$T/msg"
cat > "$T/msmtp.sh" <<SH
for i in \$(seq 100); do msmtp --host=127.0.0.1 --port=$PORT --auth=off --tls=off --from=a@example.test b@example.test < "$T/msg" || exit 1; done
SH

MAILHOOK_SPOOL=$T /usr/bin/python3 - "$MAILHOOK" "$ROOT/bench/engine-send.lua" "$SOURCE" "$PORT" "$T/msmtp.sh" <<'PY'
import subprocess, sys, time, statistics, shutil, resource
mh, script, source, port, msmtp = sys.argv[1:6]
N = 2000
cpu = {}
def run(cmd):
    t = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(["taskset", "-c", "0"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.setdefault(cmd[0], []).append(ru1.ru_utime - ru0.ru_utime + ru1.ru_stime - ru0.ru_stime)
    if r.returncode != 0:
        sys.exit("failed: %s: %s" % (cmd[0], r.stderr.decode()[-300:]))
    return dt
a, b, c, p = [], [], [], []
for _ in range(5):
    a.append(N / run([mh, script, str(N), port]))
    p.append(N / run([mh, script, str(N), port, "pipe"]))
    b.append(N / run([source, "-d", "-s", "1", "-m", str(N), "-l", "1024", "-f", "a@example.test",
                      "-t", "b@example.test", "127.0.0.1:" + port]))
have_msmtp = shutil.which("msmtp") is not None
for _ in range(3 if have_msmtp else 0):
    c.append(100 / run(["sh", msmtp]))
ma, mb = statistics.median(a), statistics.median(b)
ca, cb = statistics.median(cpu[mh]) / N * 1e6, statistics.median(cpu[source]) / N * 1e6
mp = statistics.median(p)
print("smtp  mailhook     %7.0f msg/s   (2000 x 1 KB, one session, s:send one at a time, median of 5)" % ma)
print("smtp  mailhook     %7.0f msg/s   (s:submit, two in flight: pipelining across messages)   ratio %.2f" % (mp, mp / statistics.median(b)))
print("smtp  smtp-source  %7.0f msg/s   (-d: one session, reuse)   ratio %.2f (goal >= 1.5)" % (mb, ma / mb))
print("smtp  client CPU per message: mailhook %.0f us, smtp-source %.0f us (the sink not counted)" % (ca, cb))
if c:
    mc = statistics.median(c)
    print("smtp  msmtp        %7.1f msg/s   (one process per message, 100 runs)   ratio %.0f (goal >= 50)" % (mc, ma / mc))
else:
    print("smtp  msmtp        not installed")
PY
