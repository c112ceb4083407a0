# The console's HTTP server itself (runtime/http.c, core.http), with small
# limits and no console on top (tests/peers/http-serve.lua): keep-alive,
# pipelined answers in order (a slow one first), HTTP/1.0 with and without
# keep-alive, Connection: close, HEAD without a body, Expect: 100-continue,
# a refused body's sender reading the 413 (no reset), chunked streams (1.1)
# and streams until close (1.0), the request deadline (408; an idle
# keep-alive connection closed), a stream nobody reads dropped, a whole answer
# nobody reads dropped (stall), half-open connections (slowloris) ended for a
# whole request, connections over the limit all busy (429), and close(): 503 for requests still held, the
# end of a live stream.  Raw sockets: a library would hide the framing.
. "$ROOT/tests/lib/tap.sh"
PY=/usr/bin/python3

"$MAILHOOK" "$ROOT/tests/peers/http-serve.lua" > "$T/serve.out" 2> "$T/serve.err" &
SRV=$!
on_exit "kill -9 $SRV"
wait_for 10 grep -q '^[0-9]' "$T/serve.out"; ok $? "the server listens"
PORT=$(head -1 "$T/serve.out")

"$PY" - "$PORT" > "$T/checks.tap" 2> "$T/checks.err" <<'PY'
import socket, sys, threading, time
PORT = int(sys.argv[1])
import os, sys; sys.path.insert(0, os.environ["ROOT"] + "/tests/console")   # taplib: ok(), done()
from taplib import ok
import taplib

class Conn:
    """A raw connection and a reader of answers (framed by Content-Length,
    chunks, or the connection's end)."""
    def __init__(self, rcvbuf=None):
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(10)
        self.s.connect(("127.0.0.1", PORT))
        self.buf = b""
        self.closed = False
    def send(self, data):
        self.s.sendall(data)
    def fill(self):
        try:
            d = self.s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            d = None
        except socket.timeout:
            return False          # nothing for 10 s: the caller's check fails
        if not d:
            self.closed = True
            return False
        self.buf += d
        return True
    def until(self, marker):
        while marker not in self.buf:
            if not self.fill():
                return None
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out
    def take(self, k):
        while len(self.buf) < k:
            if not self.fill():
                return None
        out, self.buf = self.buf[:k], self.buf[k:]
        return out
    def answer(self, head_only=False):
        """-> (status, {header: value}, body) or None when the connection ended."""
        head = self.until(b"\r\n\r\n")
        if head is None:
            return None
        lines = head.decode("latin1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        h = {}
        for l in lines[1:]:
            if l:
                k, v = l.split(":", 1)
                h[k.strip().lower()] = v.strip()
        if head_only or status in (100, 204, 304):
            return status, h, b""
        if h.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self.until(b"\r\n")[:-2], 16)
                if size == 0:
                    self.until(b"\r\n")
                    return status, h, body
                body += self.take(size)
                self.take(2)
        if "content-length" in h:
            return status, h, self.take(int(h["content-length"]))
        while self.fill():
            pass
        body, self.buf = self.buf, b""
        return status, h, body
    def ended(self):
        """True when the server closes (with nothing more sent)."""
        while True:
            if not self.fill():
                return self.buf == b""
    def close(self):
        self.s.close()

def req(path, extra="", method="GET", version="1.1", body=b""):
    return ("%s %s HTTP/%s\r\nHost: 127.0.0.1:%d\r\n%s" % (method, path, version, PORT, extra)).encode() + \
        (("Content-Length: %d\r\n" % len(body)).encode() if body else b"") + b"\r\n" + body

def stats():
    c = Conn()
    c.send(req("/stats", "Connection: close\r\n"))
    a = c.answer()
    c.close()
    if not a or a[0] != 200:
        return {}
    return dict(l.split("=", 1) for l in a[2].decode().split("\n") if "=" in l)

def wait_until(fn, limit=15.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(0.1)
    return fn()

# keep-alive: three requests, one connection
c = Conn()
got = []
for i in range(3):
    c.send(req("/echo?i=%d" % i))
    got.append(c.answer())
ok([a[0] for a in got] == [200] * 3 and [a[2] for a in got] == [b"GET /echo i=%d \n" % i for i in range(3)],
   "keep-alive: three requests on one connection, three answers", got)
ok("connection" not in got[0][1], "HTTP/1.1: no Connection header needed")

# pipelined: a slow answer first, then two fast ones: in order
c.send(req("/later") + req("/echo?n=2") + req("/echo", method="POST", body=b"three"))
got = [c.answer() for _ in range(3)]
ok([a[2] for a in got] == [b"later\n", b"GET /echo n=2 \n", b"POST /echo nil three\n"],
   "three pipelined requests (the first slow): answered in order", got)

# HEAD: the head with the body's length, no body (the next answer follows at once)
c.send(req("/echo", method="HEAD") + req("/echo?after-head"))
a = c.answer(head_only=True)
b = c.answer()
ok(a[0] == 200 and a[1].get("content-length") == "16" and b and b[2] == b"GET /echo after-head \n",
   "HEAD: Content-Length of the body not sent; the next answer right after the head", (a, b))

# a stream, chunked, then the connection serves on
c.send(req("/stream"))
a = c.answer()
ok(a[0] == 200 and a[1].get("transfer-encoding") == "chunked" and a[2] == b"piece 1\npiece 2\npiece 3\n",
   "a stream over HTTP/1.1: chunks, ended", a)
c.send(req("/echo?after-stream"))
ok(c.answer()[2] == b"GET /echo after-stream \n", "the connection serves on after the stream")

# a handler that raises: answered 500 at once, not when its request object is collected
# (the client waited for the next collection); one that answered first keeps its answer
for path, why in (("/raise", "at once"), ("/raise-later", "after a wait")):
    rc = Conn()
    rc.s.settimeout(3)
    rc.send(req(path))
    a = rc.answer()
    ok(a is not None and a[0] == 500 and b"handler failed" in a[2],
       "a handler that raised %s: 500 at once (%r)" % (why, a and (a[0], a[2][:60])))
    rc.send(req("/echo"))
    a = rc.answer()
    ok(a is not None and a[0] == 200, "and its connection goes on serving")
rc = Conn()
rc.send(req("/raise-answered"))
a = rc.answer()
ok(a is not None and a[0] == 200 and a[2] == b"answered\n", "one that raised after answering: its answer stands")

# a stream its handler abandons ends when the request object is collected
ab = Conn()
ab.send(req("/abandon"))
ab.until(b"left\n")
c.send(req("/gc"))
ok(c.answer()[2] == b"collected\n", "the request objects are collected")
ok(ab.until(b"0\r\n\r\n") is not None, "a stream left without finish() is ended when its request is released")
ab.close()

# the path as the caller sees it
c.send(req("/a/%2e%2e/b/../echo?x=%2e%2e"))
a = c.answer()
ok(a[2] == b"GET /echo x=%2e%2e \n", "the path: decoded, dot segments gone; the query as sent", a)

# Connection: close
c.send(req("/echo", "Connection: close\r\n"))
a = c.answer()
ok(a[1].get("connection") == "close" and c.ended(), "Connection: close: said, and the connection ends", a)
c.close()

# HTTP/1.0
c = Conn()
c.send(req("/echo?v=10", version="1.0"))
a = c.answer()
ok(a[0] == 200 and a[1].get("connection") == "close" and c.ended(), "HTTP/1.0: answered, then closed", a)
c.close()
c = Conn()
c.send(req("/echo?v=10ka", "Connection: keep-alive\r\n", version="1.0"))
a = c.answer()
c.send(req("/echo?again", "Connection: keep-alive\r\n", version="1.0"))
b = c.answer()
ok(a[1].get("connection") == "keep-alive" and b and b[2] == b"GET /echo again \n",
   "HTTP/1.0 with keep-alive: said, and a second request served", (a, b))
c.close()
c = Conn()
c.send(req("/stream", version="1.0"))
a = c.answer()
ok(a[0] == 200 and "transfer-encoding" not in a[1] and a[2] == b"piece 1\npiece 2\npiece 3\n" and c.closed,
   "a stream over HTTP/1.0: no chunks, ended by the close", a)
c.close()

# Expect: 100-continue
c = Conn()
c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
a = c.answer()
c.send(b"body")
b = c.answer()
ok(a[0] == 100 and b[0] == 200 and b[2] == b"POST /echo nil body\n", "Expect: 100-continue: 100, then the answer", (a, b))
c.close()

# a body over max_body sent at once: the sender reads the 413, no reset
c = Conn()
err = None
try:
    c.send(req("/echo", method="POST", body=b"z" * 200000))
except OSError as e:
    err = e
a = c.answer()
ok(err is None and a and a[0] == 413 and a[1].get("connection") == "close", "a 200 KB body sent at once: 413 read "
   "(the rest dropped, no reset)", (err, a))
ok(a and a[2] == b"request body too large: 200000 bytes, the limit is 1024\n",
   "  its text says so, the length and the limit (not \"bad request: ...\")", a)
c.close()

# the deadline: a request that does not arrive whole in 3 s gets 408; an idle connection is
# closed.  The three connections wait out their deadlines together (3 s, not 9; max_conns is 4)
c, cj, ci = Conn(), Conn(), Conn()
c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
cj.send(b"GET /api/echo HTTP/1.1\r\nHost: x\r\n")
ci.send(req("/echo"))
ci.answer()
a = c.answer()
ok(a and a[0] == 408 and c.ended(), "half a request: 408 at the deadline, then closed", a)
ok(a and a[1].get("content-type", "").startswith("text/plain"), "  as text (a path outside json_prefix)", a)
ok(a and a[2] == b"request timeout: the request did not arrive in time (the limit is 3 s)\n", "  saying so, and the limit", a)
c.close()
a = cj.answer()
ok(a and a[0] == 408 and a[1].get("content-type") == "application/json" and
   a[2] == b'{"ok":false,"error":"request timeout: the request did not arrive in time (the limit is 3 s)"}\n',
   "half a request under json_prefix: 408 as JSON {\"ok\":false,\"error\":...}", a)
cj.close()
ok(ci.ended(), "an idle keep-alive connection is closed at the deadline, with nothing sent")
ci.close()

# clients that do not read: a stream over max_stream_buffer, a whole answer stalled
c = Conn(rcvbuf=4096)
c.send(req("/flood"))
ok(wait_until(lambda: stats().get("flood") == "client not reading (dropped)"), "a stream nobody reads: dropped "
   "(write says so)", stats())
c.close()
s0 = int(stats()["stalled"])
c = Conn(rcvbuf=4096)
c.send(req("/big"))
ok(wait_until(lambda: int(stats().get("stalled", 0)) > s0), "a 4 MB answer nobody reads: dropped after stall_ms", stats())
c.close()

# slowloris: 12 connections each holding half a head (three times max_conns, cheap to open, each
# renewed at the deadline): a client whose request arrives whole is still served, the connections
# waiting longest for their request ended to make room (it was closed at accept)
slow = []
for i in range(12):
    s_ = Conn()
    s_.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
    slow.append(s_)
c = Conn()
c.send(req("/echo"))
a = c.answer()
ok(a and a[0] == 200, "12 half-open connections (slowloris): a whole request is still answered", a)
c.close()
ok(slow[0].ended() and slow[7].ended(), "  the oldest half-open ones were ended for it")
for s_ in slow:
    s_.close()
ok(wait_until(lambda: int(stats().get("evicted", 0)) >= 9 and int(stats().get("connections", 99)) <= 1),
   "  counted (evicted); all closed", stats())

# connections lingering after a refusal (their answer out, the client's leftover input dropped for
# LINGER_MS) are ended first for a new one: 10 malformed requests (no rate token, no login) each
# left a connection lingering that nothing could end, and a whole request got 429 or a closed socket
e0 = int(stats()["evicted"])
lingering = []
for i in range(10):
    l_ = Conn()
    l_.send(b"GET /echo HTTP/1.1\r\nHost: x\nX: y\r\n\r\n")
    a = l_.answer()
    lingering.append((l_, a and a[0] == 400 and l_.ended()))      # the answer, then the server's FIN
ok(all(x for _, x in lingering), "10 malformed requests: 400, each connection lingering (open, shut for writing)")
c = Conn()
c.send(req("/echo"))
a = c.answer()
ok(a and a[0] == 200, "  a whole request is answered (they are ended for it, oldest first)", a)
c.close()
ok(int(stats()["evicted"]) >= e0 + 6, "  counted (evicted)", stats())
for l_, _ in lingering:
    l_.close()
ok(wait_until(lambda: int(stats().get("connections", 99)) <= 1), "  all closed", stats())

# eviction spares a request whose head is in, carrying a trusted credential, while its body
# arrives (the administrator's Save, after 100 Continue or on a slow link): anyone opening
# connections, no login needed, ended it as the oldest waiting; without it (or with a credential
# no longer trusted) such a request is ended like any half-open one
def body_arriving(cookie):
    b = Conn()
    b.send(("POST /echo HTTP/1.1\r\nHost: x\r\n%sContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nhalf-"
            % ("Cookie: a=1; sid=%s\r\n" % cookie if cookie else "")).encode())
    return b
# (at most 4 values of the cookie are compared: a head of hundreds must not cost each request more)
for cookie, spared in (("trusted-sid", True), ("gone-sid", False), (None, False),
                       ("x; sid=x; sid=x; sid=x; sid=trusted-sid", False), ("x; sid=x; sid=trusted-sid", True)):
    e0 = int(stats()["evicted"])
    b = body_arriving(cookie)
    ok(wait_until(lambda: int(stats().get("connections", 0)) <= 2), "  (the request's head is read)")
    flood = [Conn() for _ in range(8)]
    for f in flood:
        f.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
    ok(wait_until(lambda: int(stats().get("evicted", 0)) >= e0 + 5), "  8 half-open connections evict", stats())
    try:
        b.send(b"body!")
        a = b.answer()
    except OSError:
        a = None
    if spared:
        ok(a and a[0] == 200 and a[2] == b"POST /echo nil half-body!\n",
           "a body arriving with a trusted session cookie (%s) is not evicted by 8 new connections" % cookie, a)
    else:
        ok(a is None, "a body arriving with %s is evicted like a half-open head" %
           (("the cookie %s" % cookie) if cookie else "no credential"), a)
    for f in flood + [b]:
        f.close()
    ok(wait_until(lambda: int(stats().get("connections", 99)) <= 1), "  all closed", stats())

# connections: 4 served; when all 4 are busy with a request a 5th gets 429.  Two
# requests held (and seen by the server), two live streams.
r0 = int(stats()["requests"])
held = []
for i in range(2):
    h = Conn()
    h.send(req(("/hold", "/api/hold")[i]))
    held.append(h)
ok(wait_until(lambda: int(stats().get("requests", 0)) >= r0 + 3), "two requests held open")
tick = Conn()
tick.send(req("/tick"))
head = tick.until(b"\r\n\r\n")
ok(head is not None and b"chunked" in head, "a live stream runs")
extra = Conn()                       # a second stream: it ends when its client leaves
extra.send(req("/tick"))
ok(extra.until(b"\r\n\r\n") is not None, "and a second one")
c = Conn()
c.send(req("/echo"))
a = c.answer()
ok(a and a[0] == 429 and "retry-after" in a[1], "a fifth connection, all four busy: 429 with Retry-After", a)
ok(a and a[2].startswith(b"too many requests: over 4 connections open"), "  naming the limit it met (connections)", a)
c.close()
c = Conn()
c.send(req("/api/echo"))
a = c.answer()
ok(a and a[0] == 429 and a[1].get("content-type") == "application/json" and a[2].startswith(b'{"ok":false,"error":"too many'),
   "under json_prefix: 429 as JSON", a)
c.close()
idle = [Conn() for _ in range(3)]
ok(idle[0].ended() and idle[1].ended(), "idle connections over the limit end one another, oldest first; the busy "
   "ones stay")
for i in idle:
    i.close()
extra.close()
ok(wait_until(lambda: int(stats().get("limited", 0)) >= 2), "counted: limited", stats())

# close(): the held requests get 503, a live stream ends
q = Conn()
q.send(req("/quit"))
ok(q.answer()[2] == b"bye\n", "quit")
got = [h.answer() for h in held]
ok([a and a[0] for a in got] == [503] * 2 and all(h.ended() for h in held), "close(): each request still held gets 503, "
   "and its connection ends", [a and a[0] for a in got])
ok([a and a[1].get("content-type") for a in got] == ["text/plain; charset=utf-8", "application/json"],
   "  as text, and under json_prefix as JSON", [a and a[1].get("content-type") for a in got])
rest = b""
while tick.fill():
    pass
ok(tick.buf.endswith(b"0\r\n\r\n"), "close(): the live stream ends with its last chunk", tick.buf[-40:])
taplib.done()
PY
rc=$?
while IFS= read -r line; do
  case $line in
    "ok "*) ok 0 "${line#ok * - }" ;;
    "not ok "*) ok 1 "${line#not ok * - }" ;;
    "#"*) echo "$line" ;;
  esac
done < "$T/checks.tap"
[ "$rc" = 0 ] || { diag "checks exit $rc"; sed 's/^/# /' "$T/checks.err" | tail -20; }
ok "$rc" "the checks ran to their end"
wait_for 10 grep -q '^closed' "$T/serve.out"; r=$?; ok $r "the server's close() returned"
[ $r = 0 ] || kill -9 "$SRV"
wait "$SRV"; is $? 0 "and the script ended (exit 0: no handle left open)"
# each handler that raised is logged once, with the line where it raised
err=$(cat "$T/serve.err")
is "$(grep -c 'raised at once\|raised after a wait\|raised after answering' <<<"$err")" 3 "the three raises are logged, once each"
like "$err" "http-serve.lua:[0-9]+: in function <" "with the traceback of where the handler raised"
is "$(grep -c '^[[:space:]]*stack traceback' <<<"$err")" 3 "one traceback each"
is "$(grep -v 'raised at once\|raised after a wait\|raised after answering\|^[[:space:]]\|^stack traceback' <<<"$err")" "" "nothing else on stderr"
done_testing
