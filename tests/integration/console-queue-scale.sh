# The console's queue page over 100,000 waiting messages (issue 15: "paging for
# 100,000 messages without loading them all"): first, next, previous, last and a
# page in the middle are the right 50, each answered in well under a second
# (each reads the folder's names on the thread pool, then 50 files), the loop
# keeps answering other requests meanwhile, status and /metrics count them all,
# and delivery to Postfix's smtp-sink goes on while a client pages as fast as it
# can.  The figures are printed as diagnostics.  `make test` queues 20,000
# (writing 100,000 files was over half of this file's time: ~13 s of 28 on a loaded
# machine); `make test-long` the 100,000 of the issue (QUEUE_SCALE_N).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
N=${QUEUE_SCALE_N:-20000}

start_sink SINK || exit 1
AP=$(free_port)
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
( umask 077; echo "$TOKEN" > "$T/token" )
conf_for "$SINK" enabled=false admin_listen="127.0.0.1:$AP" admin_token_file="$T/token"
"$MAILHOOK" -e 'assert(require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL")))'
# N spool files as enqueue writes them (ids: microseconds, in order, all recent)
t0=$(date +%s%N)
"$PY" - "$SPOOL/pickup" "$N" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
base = int(time.time() * 1e6) - n * 1000 - 10 ** 6
flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
for i in range(n):
    fd = os.open("%s/%016x.eml" % (d, base + i * 1000), flags, 0o600)
    os.write(fd, b"X-Sender: app@example.com\r\nX-Receiver: sink@example.net\r\nFrom: app@example.com\r\n"
                 b"To: sink@example.net\r\nSubject: scale %d\r\n\r\nbody\r\n" % (i + 1))
    os.close(fd)
PY
ok $? "$N messages queued"
diag "written in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

svc_start
up() { "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$AP"; }
wait_for 30 up; ok $? "the service starts with $N queued, the console listens"
wait_for 30 grep -q "($N queued" "$T/svc.log"; ok $? "it counts them"

"$PY" - "$AP" "$TOKEN" "$N" "$SPOOL" > "$T/scale.tap" 2> "$T/scale.err" <<'PY'
import http.client, json, os, sys, threading, time
port, token, N, spool = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
H = {"Authorization": "Bearer " + token}
import os, sys; sys.path.insert(0, os.environ["ROOT"] + "/tests/console")   # taplib: ok(), done()
from taplib import ok
import taplib
def get(path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t = time.monotonic()
    c.request("GET", path, headers=H)
    r = c.getresponse()
    b = r.read()
    return r.status, b, time.monotonic() - t
def page(q):
    st, b, el = get("/api/queue?folder=pickup" + q)
    d = json.loads(b) if st == 200 else {}
    return d, el
times = []
d, el = page(""); times.append(el)
first_ids = [e["id"] for e in d.get("entries", [])]
ok(d.get("total") == N and d.get("first") == 1 and d.get("last") == 50 and len(first_ids) == 50,
   "first page: 1-50 of %d" % N, {k: d.get(k) for k in ("total", "first", "last")})
ok(d["entries"][0].get("subject") == "scale 1" and d["entries"][49].get("subject") == "scale 50", "the oldest 50, in order")
d2, el = page("&after=" + first_ids[-1]); times.append(el)
ok(d2.get("first") == 51 and d2["entries"][0].get("subject") == "scale 51", "next: 51-100")
dl, el = page("&last=1"); times.append(el)
ok(dl.get("first") == N - 49 and dl.get("last") == N and dl["entries"][-1].get("subject") == "scale %d" % N,
   "last: %d-%d" % (N - 49, N))
dp, el = page("&last=1&before=" + dl["entries"][0]["id"]); times.append(el)
ok(dp.get("first") == N - 99 and dp["entries"][-1].get("subject") == "scale %d" % (N - 50), "previous from the last")
mid = sorted(f[:16] for f in os.listdir(os.path.join(spool, "pickup")))[N // 2 - 1]
dm, el = page("&after=" + mid); times.append(el)
ok(dm.get("first") == N // 2 + 1 and dm["entries"][0].get("subject") == "scale %d" % (N // 2 + 1), "a page in the middle")
print("# a page of 50 over %d: %s s" % (N, " ".join("%.2f" % t for t in times)), flush=True)
ok(max(times) < 10, "each page well within the request's bounds (max %.2f s)" % max(times))
st, b, el = get("/api/status")
ok(st == 200 and json.loads(b)["queue"]["pickup"] == N, "status counts %d in pickup/ (%.2f s)" % (N, el))
st, b, el = get("/metrics")
ok(st == 200 and ("mailhook_queue_messages %d" % N) in b.decode(), "/metrics too")
# the loop answers while pages are computed
lat, stop = [], threading.Event()
def probe():
    while not stop.is_set():
        lat.append(get("/api/session")[2])
        time.sleep(0.05)
th = threading.Thread(target=probe)
th.start()
for i in range(10):
    page("&after=%s" % first_ids[0])
stop.set()
th.join()
print("# /api/session while 10 pages were read: median %.3f s, max %.3f s (%d requests)"
      % (sorted(lat)[len(lat) // 2], max(lat), len(lat)), flush=True)
ok(max(lat) < 2, "the loop answers other requests meanwhile")
taplib.done()
PY
rc=$?
while IFS= read -r line; do
  case $line in
    "ok "*) ok 0 "${line#ok * - }" ;; "not ok "*) ok 1 "${line#not ok * - }" ;; "#"*) echo "$line" ;;
  esac
done < "$T/scale.tap"
[ "$rc" = 0 ] || { diag "scale checks exit $rc"; sed 's/^/# /' "$T/scale.err" | tail -20; }
ok "$rc" "the paging checks ran to their end"

# delivery goes on while a client pages as fast as it can.  Counted by the
# service's own counter of recorded deliveries (/metrics): a delivered file
# leaves pickup/ only at the next purge (every 4,096 records, or when idle:
# docs/delivery.md), so a count of files moves by steps, and under ASan a
# 4-second window could hold none
"$MAILHOOK" update enabled=true >/dev/null && kill -HUP "$SVC"
delivered() {
  curl -s -m 30 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$AP/metrics" |
    awk '$1 == "mailhook_delivered_total" { print $2; f = 1 } END { if (!f) print 0 }'
}
draining() { [ "$(delivered)" -gt 100 ]; }
wait_for 30 draining; ok $? "delivery starts"
"$PY" - "$AP" "$TOKEN" > "$T/pager.out" <<'PY' &
import http.client, sys, time
port, token = int(sys.argv[1]), sys.argv[2]
end, k = time.monotonic() + 4, 0
while time.monotonic() < end:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", "/api/queue?folder=pickup&last=1", headers={"Authorization": "Bearer " + token})
    r = c.getresponse(); r.read(); k += 1 if r.status == 200 else 0
print(k)
PY
PG=$!
c=$(delivered); wait "$PG"; d=$(delivered)
pages=$(cat "$T/pager.out")
diag "while paging ($pages pages in 4 s): $(( (d - c) / 4 )) deliveries/s"
[ "$((d - c))" -gt 0 ] && [ "${pages:-0}" -gt 0 ]; ok $? "messages are delivered while the queue is paged"
svc_stop; is $? 0 "SIGTERM: exit 0"
done_testing
