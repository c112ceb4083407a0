# The console under attack must not cost delivery (issue 15, point 4).
# `mailhook run` with the console on drains $MSGS (2,000) queued 1 KB messages to
# Postfix's smtp-sink, in alternating rounds: the console idle, then hammered by
# a local client doing its worst at once:
#   - 6 keep-alive clients requesting as fast as they can (status with the token,
#     /metrics, unauthenticated API calls: 401, the login page),
#   - 2 clients flooding POSTs of 60 KB bodies to the login (each read whole: 429/401),
#   - 10 clients guessing the admin password at once, each guess from another
#     127.x address (every check is scrypt's 32 MiB on the thread pool that
#     delivery's disk work shares: the console runs one at a time, limits them
#     per client and in all),
#   - 20 connections sending a request one byte every 200 ms (never finishing),
#   - 1 server-sent-events stream that is never read.
# Printed: the drain rate in each case (median of $ROUNDS rounds) and their ratio,
# what the console answered meanwhile (by status code), the latency of a probe
# request (does the loop stay responsive), and the service's CPU time.
# The service is pinned to CPU 0, the sink and the attacker to CPU 1.
. "$(dirname "$0")/lib.sh"
ROOT=${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
MAILHOOK=${MAILHOOK:-$ROOT/build/mailhook}
MSGS=${MSGS:-2000}
ROUNDS=${ROUNDS:-3}
PF=$ROOT/.deps/postfix/usr/sbin
PY=/usr/bin/python3
export LD_LIBRARY_PATH="$ROOT/.deps/postfix/usr/lib/postfix${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

[ -x "$PF/smtp-sink" ] || { echo "console  skipped: no smtp-sink (run scripts/deps)"; exit 0; }

W=$(mktemp -d /tmp/mh-bench-console.XXXXXX)
SINK= SVC= HAM=
cleanup() {
  for p in $HAM $SVC $SINK; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
PORT=$(free_port)
AP=$(free_port)
user=""; [ "$(id -u)" = 0 ] && user="-u nobody"
# shellcheck disable=SC2086
taskset -c 1 "$PF/smtp-sink" $user 127.0.0.1:"$PORT" 512 &
SINK=$!
for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.05; done

export MAILHOOK_CONF=$W/mailhook.conf MAILHOOK_SPOOL=$W/spool MAILHOOK_LOG_LEVEL=error
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
( umask 077; echo "$TOKEN" > "$W/token" )
"$MAILHOOK" update enabled=true server=127.0.0.1 port="$PORT" tls=none tls_required=false \
  from=bench@example.com admin_listen="127.0.0.1:$AP" admin_token_file="$W/token" >/dev/null ||
  { echo "console  skipped: cannot write settings"; exit 0; }
echo "bench-Admin-pw" | "$MAILHOOK" update admin_password=- >/dev/null

pickup_count() { find "$MAILHOOK_SPOOL/pickup" -maxdepth 1 -name '*.eml' | wc -l; }
now_ms() { date +%s%3N; }

cat > "$W/hammer.py" <<'PY'
import http.client, json, os, socket, sys, threading, time
host, port, token, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
stop = threading.Event()
codes, lock = {}, threading.Lock()
def count(c):
    with lock: codes[c] = codes.get(c, 0) + 1
def keepalive(paths, headers):
    while not stop.is_set():
        try:
            c = http.client.HTTPConnection(host, port, timeout=10)
            while not stop.is_set():
                for p in paths:
                    c.request("GET", p, headers=headers)
                    r = c.getresponse(); r.read(); count(r.status)
                    if r.getheader("Connection", "").lower() == "close":
                        raise ConnectionError
        except (OSError, http.client.HTTPException, ConnectionError):
            count("reset")
def big_posts():
    body = b'{"password":"' + b"x" * 60000 + b'"}'
    while not stop.is_set():
        try:
            c = http.client.HTTPConnection(host, port, timeout=10)
            c.request("POST", "/api/login", body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse(); r.read(); count(r.status); c.close()
        except (OSError, http.client.HTTPException):
            count("reset")
def guesses(i):
    k = 0
    while not stop.is_set():
        k += 1
        try:
            c = http.client.HTTPConnection(host, port, timeout=10, source_address=("127.0.%d.%d" % (i + 1, k % 250 + 1), 0))
            c.request("POST", "/api/login", body=json.dumps({"password": "guess-%d-%d" % (i, k)}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse(); r.read(); count(r.status); c.close()
        except (OSError, http.client.HTTPException):
            count("reset")
def trickle():
    while not stop.is_set():
        try:
            s = socket.create_connection((host, port), timeout=30)
            for b in b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10000:
                if stop.is_set(): break
                s.send(bytes([b])); time.sleep(0.2)
        except OSError:
            count("trickle cut")
def sse_never_read():
    try:
        s = socket.create_connection((host, port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(("GET /api/events HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n\r\n" % (host, port, token)).encode())
        stop.wait()
    except OSError:
        pass
auth = {"Authorization": "Bearer " + token}
threads = [threading.Thread(target=keepalive, args=(["/api/status", "/metrics"], auth)) for _ in range(3)]
threads += [threading.Thread(target=keepalive, args=(["/api/queue", "/login"], {})) for _ in range(3)]
threads += [threading.Thread(target=big_posts) for _ in range(2)]
threads += [threading.Thread(target=guesses, args=(i,)) for i in range(10)]
threads += [threading.Thread(target=trickle) for _ in range(20)]
threads += [threading.Thread(target=sse_never_read)]
for t in threads: t.daemon = True; t.start()
t0 = time.time()
try:
    sys.stdin.read()          # until the bench closes our stdin
finally:
    stop.set()
    with open(out, "w") as f:
        json.dump({"seconds": time.time() - t0, "codes": {str(k): v for k, v in codes.items()}}, f)
PY

cat > "$W/probe.py" <<'PY'
import http.client, sys, time, statistics
host, port, token, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
lat, end = [], time.time() + secs
while time.time() < end:
    t = time.perf_counter()
    try:
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.request("GET", "/login"); r = c.getresponse(); r.read(); c.close()
        lat.append((time.perf_counter() - t) * 1000)
    except OSError:
        pass
    time.sleep(0.1)
lat.sort()
print("%.1f %.1f %d" % (statistics.median(lat), lat[int(len(lat) * 0.99) - 1] if lat else 0, len(lat)) if lat else "- - 0")
PY

# one round: (re)start the service on a full spool, time the drain
round() {   # round LOAD(0|1) -> prints "rate cpu_s"
  fill "$MSGS"
  taskset -c 0 "$MAILHOOK" run >"$W/svc.log" 2>&1 &
  SVC=$!
  for _ in $(seq 200); do (echo > /dev/tcp/127.0.0.1/"$AP") 2>/dev/null && break; sleep 0.05; done
  if [ "$1" = 1 ]; then
    mkfifo "$W/ham.in" 2>/dev/null
    taskset -c 1 $PY "$W/hammer.py" 127.0.0.1 "$AP" "$TOKEN" "$W/ham.json" < "$W/ham.in" &
    HAM=$!
    exec 7>"$W/ham.in"
    sleep 1       # the attack is on before the clock starts
  fi
  t0=$(now_ms)
  # the longest time the queue did not move: a stall of delivery would show here
  last=$t0 prev=-1 gap=0
  while :; do
    c=$(pickup_count); t=$(now_ms)
    if [ "$c" != "$prev" ]; then [ $((t - last)) -gt "$gap" ] && gap=$((t - last)); last=$t prev=$c; fi
    [ "$c" = 0 ] && break
    sleep 0.02
  done
  t1=$(now_ms)
  if [ "$1" = 1 ]; then
    taskset -c 1 $PY "$W/probe.py" 127.0.0.1 "$AP" "$TOKEN" 2 > "$W/probe.out"
    exec 7>&-
    wait "$HAM"; HAM=
  fi
  cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$SVC/stat")
  kill -TERM "$SVC"; wait "$SVC"; SVC=
  $PY -c "print('%.0f %s %s' % ($MSGS / (($t1 - $t0) / 1000), '$cpu', '$gap'))"
}

idle=() loaded=() idle_cpu=() loaded_cpu=() idle_gap=() loaded_gap=()
for r in $(seq "$ROUNDS"); do
  round 0 > "$W/round"; read -r rate cpu gap < "$W/round"; idle+=("$rate"); idle_cpu+=("$cpu"); idle_gap+=("$gap")
  round 1 > "$W/round"; read -r rate cpu gap < "$W/round"; loaded+=("$rate"); loaded_cpu+=("$cpu"); loaded_gap+=("$gap")
  lastham=$(cat "$W/ham.json" 2>/dev/null); probe=$(cat "$W/probe.out" 2>/dev/null)
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
a=$(med "${idle[@]}"); b=$(med "${loaded[@]}")
echo "console  $MSGS x 1 KB drained by \`mailhook run\` (console on) to smtp-sink, median of $ROUNDS alternating rounds:"
echo "console    console idle       ${a} msg/s  (rounds: ${idle[*]}); service CPU per round ${idle_cpu[*]} s; longest time the queue did not move ${idle_gap[*]} ms"
echo "console    console hammered   ${b} msg/s  (rounds: ${loaded[*]}); service CPU per round ${loaded_cpu[*]} s; longest time the queue did not move ${loaded_gap[*]} ms"
echo "console    ratio hammered/idle $($PY -c "print('%.2f' % ($b/$a))") (the loop serves both: the attack takes its share of the one core, it never stops delivery)"
$PY - "$lastham" "$probe" <<'PY'
import json, sys
h = json.loads(sys.argv[1] or "{}")
codes = h.get("codes", {})
secs = h.get("seconds", 0) or 1
total = sum(v for k, v in codes.items() if k.isdigit())
print("console    the attack (last round, %.1f s): %d answers (%.0f/s): %s" %
      (secs, total, total / secs, ", ".join("%s %d" % (k, v) for k, v in sorted(codes.items()))))
p = sys.argv[2].split()
if len(p) == 3:
    print("console    a probe request during the attack: median %s ms, p99 %s ms (%s probes)" % tuple(p))
PY
