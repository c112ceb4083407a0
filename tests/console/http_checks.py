#!/usr/bin/python3
"""tests/console/http_checks.py — the console's security and API at the HTTP
level, against a running `mailhook run` (started by tests/integration/console-http.sh).
Speaks TAP.  Raw sockets where a browser library would hide what is checked
(cookie flags, a request sent a byte at a time, many connections).

Usage: http_checks.py BASE_URL ADMIN_PASSWORD TOKEN SMTP_PASSWORD SPOOL CONF MAILHOOK PEER_DIR
"""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

BASE, ADMIN_PW, TOKEN, SMTP_PW, SPOOL, CONF, MAILHOOK, PEER = sys.argv[1:9]
HOST, PORT = re.match(r"http://([\d.]+):(\d+)$", BASE).groups()
PORT = int(PORT)
SECRETS = [ADMIN_PW, SMTP_PW, TOKEN]

sys.dont_write_bytecode = True   # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import ok, done, wait_until  # noqa: E402  (one TAP writer for both checkers)

seen_bodies = []     # every response, to check no secret ever left


def is_(got, want, desc):
    return ok(got == want, desc, "got:  %r\nwant: %r" % (got, want))


def request(method, path, body=None, headers=None, cookie=None, raw_body=None, host=None):
    """One request on a fresh connection -> (status, headers dict (lower-case), body text)."""
    c = http.client.HTTPConnection(HOST, PORT, timeout=30)
    h = dict(headers or {})
    if host is not None:
        c.putrequest(method, path, skip_host=True)
        c.putheader("Host", host)
    else:
        c.putrequest(method, path)
    if cookie:
        h["Cookie"] = cookie
    data = raw_body
    if body is not None:
        data = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    if data is not None:
        h["Content-Length"] = str(len(data))
    for k, v in h.items():
        c.putheader(k, v)
    c.endheaders(data)
    r = c.getresponse()
    text = r.read().decode("utf-8", "replace")
    hdrs = {}
    for k, v in r.getheaders():
        hdrs.setdefault(k.lower(), []).append(v)
    c.close()
    seen_bodies.append((method + " " + path, r.status, "\n".join("%s: %s" % (k, v) for k, vs in hdrs.items() for v in vs), text))
    return r.status, hdrs, text


def jbody(text):
    try:
        return json.loads(text)
    except ValueError:
        return {}



def peer_count():
    try:
        with open(os.path.join(PEER, "log")) as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def enqueue(k, tag):
    code = ('local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL")) '
            'local list = {} for i = 1, %d do list[i] = {"From: app@example.com\\r\\nTo: ok@example.net\\r\\n'
            'Subject: %s " .. i .. "\\r\\n\\r\\nbody\\r\\n", {from = "app@example.com", to = {"ok@example.net"}}} end '
            'assert(sp:enqueue_many(list))') % (k, tag)
    subprocess.run([MAILHOOK, "-e", code], check=True)


# ------------------------------------------------------------------ bound address

def listening_addresses(port):
    out = []
    for name, fam in (("/proc/net/tcp", "4"), ("/proc/net/tcp6", "6")):
        try:
            lines = open(name).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            addr, p = f[1].split(":")
            if f[3] == "0A" and int(p, 16) == port:
                out.append((fam, addr))
    return out

addrs = listening_addresses(PORT)
is_(addrs, [("4", "0100007F")], "the console listens on 127.0.0.1 only (/proc/net/tcp)")
s = socket.socket()
s.settimeout(3)
try:
    s.connect(("127.0.0.2", PORT))
    reached = True
except OSError:
    reached = False
s.close()
ok(not reached, "another address of this machine (127.0.0.2) is refused")

# ------------------------------------------------------------------ no session

st, h, body = request("GET", "/")
is_(st, 303, "GET / without a session: 303")
is_(h.get("location"), ["/login"], "to /login")
for path in ("/api/status", "/api/settings", "/api/queue", "/api/events", "/metrics"):
    st, h, body = request("GET", path)
    is_(st, 401, "GET %s without a session: 401" % path)
st, h, body = request("POST", "/api/settings", {"changes": {"enabled": False}})
is_(st, 401, "POST /api/settings without a session: 401")
st, h, body = request("GET", "/login")
ok(st == 200 and "Admin password" in body, "the login page is served")
csp = (h.get("content-security-policy") or [""])[0]
ok("default-src 'self'" in csp and "frame-ancestors 'none'" in csp, "with a strict Content-Security-Policy", csp)
is_(h.get("x-content-type-options"), ["nosniff"], "nosniff")

# ------------------------------------------------------------------ login

st, h, body = request("POST", "/api/login", {"password": "not-it"})
is_(st, 401, "a wrong admin password: 401")
ok("set-cookie" not in h, "and no cookie")
st, h, body = request("POST", "/api/login", raw_body=b"password=" + ADMIN_PW.encode(),
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
is_(st, 415, "a login posted as a form (what a cross-site page can send): 415")
st, h, body = request("POST", "/api/login", {"password": ADMIN_PW}, headers={"Origin": "http://evil.example"})
is_(st, 403, "a login from another Origin: 403")
st, h, body = request("POST", "/api/login", {"password": ADMIN_PW})
is_(st, 200, "the admin password: 200")
cookies = h.get("set-cookie", [])
is_(len(cookies), 1, "one cookie")
cookie_line = cookies[0] if cookies else ""
m = re.match(r"mh_session=([0-9a-f]{64});", cookie_line)
ok(m is not None, "a session id of 256 random bits", cookie_line)
attrs = [a.strip().lower() for a in cookie_line.split(";")[1:]]
ok("httponly" in attrs, "HttpOnly", cookie_line)
ok("samesite=strict" in attrs, "SameSite=Strict", cookie_line)
ok("path=/" in attrs, "Path=/", cookie_line)
ok(not any(a.startswith("domain") for a in attrs), "no Domain (host-only)", cookie_line)
COOKIE = "mh_session=" + (m.group(1) if m else "")
CSRF = jbody(body).get("csrf", "")
ok(re.match(r"^[0-9a-f]{64}$", CSRF) is not None, "a CSRF token comes with it")

# ------------------------------------------------------------------ with a session

st, h, body = request("GET", "/", cookie=COOKIE)
ok(st == 200 and "SMTP parameters" in body, "GET / with the session: the console page")
st, h, body = request("GET", "/api/settings", cookie=COOKIE)
d = jbody(body)
ok(st == 200 and d.get("password_set") is True, "the settings say a password is set")
ok("password" not in d.get("settings", {}), "but carry no password field at all")
st, h, body = request("GET", "/api/session", cookie=COOKIE)
is_(jbody(body).get("csrf"), CSRF, "the page gets its CSRF token from /api/session")

# ------------------------------------------------------------------ CSRF, Origin, Content-Type, Host

change = {"changes": {"retry_interval": "31s"}}
st, h, body = request("POST", "/api/settings", change, cookie=COOKIE)
is_(st, 403, "a change without the CSRF token: 403")
ok("header X-CSRF-Token" in jbody(body).get("error", ""),
   "the error names the header a script sends the token in (curl users got 'reload the page' only)")
st, h, body = request("POST", "/api/settings", change, cookie=COOKIE, headers={"X-CSRF-Token": "0" * 64})
is_(st, 403, "with a wrong CSRF token: 403")
st, h, body = request("POST", "/api/queue/flush", {}, cookie=COOKIE, headers={"X-CSRF-Token": CSRF[:-1]})
is_(st, 403, "with a truncated CSRF token: 403")
st, h, body = request("POST", "/api/settings", change, cookie=COOKIE,
                      headers={"X-CSRF-Token": CSRF, "Origin": "http://evil.example"})
is_(st, 403, "the right token from another Origin: 403")
st, h, body = request("POST", "/api/settings", raw_body=b"changes=1", cookie=COOKIE,
                      headers={"X-CSRF-Token": CSRF, "Content-Type": "text/plain"})
is_(st, 415, "a body that is not JSON: 415")
conf_before = open(CONF).read()
ok("retry_interval = 31s" not in conf_before, "none of these changed the settings file")
st, h, body = request("POST", "/api/settings", change, cookie=COOKIE,
                      headers={"X-CSRF-Token": CSRF, "Origin": BASE})
ok(st == 200 and jbody(body).get("ok") is True, "the right token, same Origin: saved", body)
ok("retry_interval = 31s" in open(CONF).read(), "the settings file has the change")
st, h, body = request("POST", "/api/settings", {"changes": {"port": "99999"}}, cookie=COOKIE,
                      headers={"X-CSRF-Token": CSRF})
d = jbody(body)
ok(st == 422 and d.get("key") == "port" and "1-65535" in d.get("error", ""),
   "an invalid value: 422 naming the key and why (as `mailhook update`)", body)
st, h, body = request("GET", "/api/status", cookie=COOKIE, host="evil.example:%d" % PORT)
is_(st, 421, "a Host that is not this console (DNS rebinding): 421")
st, h, body = request("GET", "/api/status", cookie=COOKIE, host="localhost:%d" % PORT)
is_(st, 200, "Host: localhost:PORT is this console")

# ------------------------------------------------------------------ bearer token (scripts)

st, h, body = request("GET", "/api/status", headers={"Authorization": "Bearer " + TOKEN})
ok(st == 200 and jbody(body).get("service", {}).get("running") is True, "the token file's token: /api/status")
st, h, body = request("GET", "/api/status", headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
is_(st, 401, "a wrong token: 401")
st, h, body = request("POST", "/api/queue/flush", {}, headers={"Authorization": "Bearer " + TOKEN})
is_(st, 200, "a token needs no CSRF token (it is not a cookie a page could ride on)")

# ------------------------------------------------------------------ request size

big = b'{"changes": {"from": "' + b"a" * 200000 + b'"}}'
st, h, body = request("POST", "/api/settings", raw_body=big, cookie=COOKIE,
                      headers={"Content-Type": "application/json", "X-CSRF-Token": CSRF})
is_(st, 413, "a 200 KB request body: 413")
st, h, body = request("POST", "/api/login", raw_body=big, headers={"Content-Type": "application/json"})
is_(st, 413, "also before any login")
ok(open(CONF).read().find("a" * 1000) < 0, "nothing of it was saved")

# ------------------------------------------------------------------ queue paging

st, h, body = request("POST", "/api/settings", {"changes": {"enabled": False}}, cookie=COOKIE,
                      headers={"X-CSRF-Token": CSRF})
ok(st == 200, "disable delivery through the console (the service reloads)")
enqueue(120, "page")
st, h, body = request("GET", "/api/queue?folder=pickup&limit=50", cookie=COOKIE)
d = jbody(body)
ok(st == 200 and d.get("total") == 120 and d.get("first") == 1 and d.get("last") == 50 and len(d["entries"]) == 50,
   "page 1: messages 1-50 of 120", body[:300])
first_page = [e["id"] for e in d.get("entries", [])]
ok(first_page == sorted(first_page), "oldest first")
ok(d["entries"][0].get("subject") == "page 1" and "age" in d["entries"][0] and "attempts" in d["entries"][0],
   "each entry with its subject, age and attempts")
st, h, body = request("GET", "/api/queue?folder=pickup&limit=50&after=" + first_page[-1], cookie=COOKIE)
d2 = jbody(body)
ok(d2.get("first") == 51 and d2.get("last") == 100, "next: 51-100")
st, h, body = request("GET", "/api/queue?folder=pickup&limit=50&after=" + d2["entries"][-1]["id"], cookie=COOKIE)
d3 = jbody(body)
ok(d3.get("first") == 101 and d3.get("last") == 120 and len(d3["entries"]) == 20, "next: 101-120, the last 20")
st, h, body = request("GET", "/api/queue?folder=pickup&limit=50&last=1&before=" + d3["entries"][0]["id"], cookie=COOKIE)
d4 = jbody(body)
ok([e["id"] for e in d4.get("entries", [])] == [e["id"] for e in d2["entries"]], "previous: 51-100 again")
st, h, body = request("GET", "/api/queue?folder=pickup&limit=50&last=1", cookie=COOKIE)
d5 = jbody(body)
ok(d5.get("first") == 71 and d5.get("last") == 120, "last page: 71-120")
st, h, body = request("GET", "/api/queue?folder=pickup&after=../../etc", cookie=COOKIE)
is_(st, 400, "a cursor that is not a message id: 400")
victim = first_page[0]
st, h, body = request("POST", "/api/queue/remove", {"id": victim}, cookie=COOKIE, headers={"X-CSRF-Token": CSRF})
ok(st == 200 and not os.path.exists(os.path.join(SPOOL, "pickup", victim + ".eml")), "remove: the file is gone")
st, h, body = request("POST", "/api/queue/remove", {"id": "../../etc/passwd"}, cookie=COOKIE,
                      headers={"X-CSRF-Token": CSRF})
is_(st, 400, "remove with a path instead of an id: 400")
st, h, body = request("GET", "/api/queue?folder=pickup&limit=1", cookie=COOKIE)
is_(jbody(body).get("total"), 119, "119 left")
n_before = peer_count()
st, h, body = request("POST", "/api/settings", {"changes": {"enabled": True}}, cookie=COOKIE,
                      headers={"X-CSRF-Token": CSRF})
ok(wait_until(lambda: peer_count() >= n_before + 119, 60), "enabled again: the 119 are delivered")

# ------------------------------------------------------------------ /metrics

st, h, body = request("GET", "/metrics", headers={"Authorization": "Bearer " + TOKEN})
is_(st, 200, "/metrics with the token: 200")
ok((h.get("content-type") or [""])[0].startswith("text/plain; version=0.0.4"), "Prometheus' text format 0.0.4",
   h.get("content-type"))
types, helps, samples, bad = {}, set(), {}, []
name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
for line in body.splitlines():
    if not line:
        continue
    mm = re.match(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % name_re, line)
    if mm:
        if mm.group(1) in types:
            bad.append("TYPE twice: " + line)
        types[mm.group(1)] = mm.group(2)
        continue
    mm = re.match(r"^# HELP (%s) \S.*$" % name_re, line)
    if mm:
        helps.add(mm.group(1))
        continue
    mm = re.match(r'^(%s)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,|(?=\})))*\})? (\S+)$' % name_re, line)
    if not mm:
        bad.append("unparsable: " + line)
        continue
    name, value = mm.group(1), mm.group(3)
    try:
        float(value)
    except ValueError:
        bad.append("value: " + line)
    if name not in types:
        bad.append("sample before its TYPE: " + line)
    samples.setdefault(name, []).append((mm.group(2) or "", float(value) if re.match(r"^[-+0-9.eE]+$", value) else None))
is_(bad, [], "every line parses (HELP, TYPE before samples, name{labels} value)")
for name, t in types.items():
    if t == "counter":
        ok(name.endswith("_total"), "counter %s ends in _total" % name)
ok(all(name in helps for name in types), "every metric has a HELP line")
for need in ("mailhook_queue_messages", "mailhook_queue_oldest_age_seconds", "mailhook_failed_messages",
             "mailhook_delivered_total", "mailhook_deferred_total", "mailhook_failed_total",
             "mailhook_connection_state", "mailhook_last_success_timestamp_seconds", "mailhook_up",
             "mailhook_attention"):
    ok(need in samples, "has " + need)
ok(samples.get("mailhook_delivered_total", [("", 0)])[0][1] >= 119, "delivered_total counts what was delivered",
   [l for l in body.splitlines() if l.startswith("mailhook_")])
states = dict(samples.get("mailhook_connection_state", []))
ok(sum(v for v in states.values()) == 1 and len(states) >= 5, "one connection_state series is 1, the others 0", states)
attention = dict(samples.get("mailhook_attention", []))
ok(sorted(attention) == ['{reason="maildrop_stuck"}', '{reason="old_settings"}'],
   "mailhook_attention: one series per \"flowing, but\" reason", attention)
ok(samples.get("mailhook_last_success_timestamp_seconds", [("", 0)])[0][1] > 1.6e9, "last success is a unix time")
st, h, body = request("GET", "/metrics", cookie=COOKIE)
is_(st, 200, "/metrics with the session too")

# ------------------------------------------------------------------ events (SSE)

def sse_first_events(want, limit=10):
    sock = socket.create_connection((HOST, PORT), timeout=limit)
    sock.sendall(("GET /api/events HTTP/1.1\r\nHost: %s:%d\r\nCookie: %s\r\nAccept: text/event-stream\r\n\r\n"
                  % (HOST, PORT, COOKIE)).encode())
    data = b""
    end = time.monotonic() + limit
    while time.monotonic() < end and data.count(b"event: ") < want:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    sock.close()
    return data.decode("utf-8", "replace")

events = sse_first_events(1)
ok(events.startswith("HTTP/1.1 200") and "text/event-stream" in events and "event: status" in events,
   "GET /api/events streams a status event at once", events[:400])

# ------------------------------------------------------------------ too many requests

# (first, while the logged-in bucket is full: the burst below empties it, and a check right
# after it would see that bucket's own limit, as under ASan in CI)
# a flood needing no login (401s, from anyone on this machine) spends the rate's tokens: the
# logged-in page and a script with the token are still served (every request of theirs was 429
# for as long as the flood lasted); a made-up session id is not let through with them
flood = []
while len(flood) < 400 and (not flood or flood[-1] != 429):
    flood.append(request("GET", "/metrics")[0])
is_(flood[-1], 429, "a flood without a session is limited (429 after %d)" % len(flood))
is_(request("GET", "/api/session", cookie=COOKIE)[0], 200, "  meanwhile the logged-in page is served")
is_(request("GET", "/metrics", headers={"Authorization": "Bearer " + TOKEN})[0], 200, "  and the token's scrape")
# the bucket gains a token every 1/rate s: under load the requests above can take that
# long, and the made-up id then finds one.  A made-up id let through with the logged-in
# ones would never see 429: the flood is topped up until it is refused, five times at most.
made_up = []
for _ in range(5):
    while request("GET", "/metrics")[0] != 429 and len(flood) < 800:
        flood.append(0)
    made_up.append(request("GET", "/api/session", cookie="mh_session=" + "0" * 64)[0])
    if made_up[-1] == 429:
        break
ok(made_up[-1] == 429, "  a made-up session id is not", made_up)
ok(wait_until(lambda: request("GET", "/metrics")[0] == 401, 15, 0.3), "  and the flood's bucket fills again")

limited, statuses = None, []
c = http.client.HTTPConnection(HOST, PORT, timeout=30)
for i in range(300):
    c.request("GET", "/api/session", headers={"Cookie": COOKIE})
    r = c.getresponse()
    r.read()
    statuses.append(r.status)
    if r.status == 429:
        limited = r
        break
c.close()
ok(limited is not None, "a burst of requests gets 429 (after %d)" % len(statuses))
ok(limited is not None and limited.getheader("Retry-After") is not None, "with Retry-After")
ok(wait_until(lambda: request("GET", "/api/session", cookie=COOKIE)[0] == 200, 15, 0.5),
   "and the console answers again once the burst is over")

# 70 idle or half-open connections (slowloris: more than twice the 32 served): a whole request is
# still answered, the connections waiting longest for a request ended for it (they held every place,
# the administrator's request was answered 429 or closed at accept)
def metric(name):
    """The value of one unlabelled sample of /metrics (None when missing); a 429 (the
    burst above spent the rate's tokens) is asked again."""
    got = []
    wait_until(lambda: got.append(request("GET", "/metrics", headers={"Authorization": "Bearer " + TOKEN}))
               or got[-1][0] != 429, 15, 0.2)
    st, h, body = got[-1]
    mm = re.search(r"^%s (\S+)$" % re.escape(name), body if isinstance(body, str) else body.decode(), re.M)
    return float(mm.group(1)) if st == 200 and mm else None


evicted0 = metric("mailhook_console_evicted_total")
ok(evicted0 is not None, "/metrics has mailhook_console_evicted_total", evicted0)
socks = []
for i in range(70):
    sk = socket.create_connection((HOST, PORT), timeout=5)
    if i % 2:
        sk.sendall(("GET /api/session HTTP/1.1\r\nHost: %s:%d\r\n" % (HOST, PORT)).encode())
    socks.append(sk)
st = request("GET", "/api/session", cookie=COOKIE)[0]
is_(st, 200, "70 idle and half-open connections (slowloris): a whole request is answered")
for sk in socks:
    sk.close()
evicted1 = metric("mailhook_console_evicted_total")
ok(evicted0 is not None and evicted1 is not None and evicted1 >= evicted0 + 30,
   "  the half-open connections ended for it counted in /metrics (mailhook_console_evicted_total)",
   (evicted0, evicted1))
# every place busy with a request (32 event streams): 429 for the next
streams = []


def open_stream():
    """One more event stream, or False (a 429: the burst above spent the rate's tokens)."""
    sk = socket.create_connection((HOST, PORT), timeout=10)
    sk.sendall(("GET /api/events HTTP/1.1\r\nHost: %s:%d\r\nCookie: %s\r\n\r\n" % (HOST, PORT, COOKIE)).encode())
    try:
        head = sk.recv(200)
    except OSError:
        head = b""
    if head.startswith(b"HTTP/1.1 200"):
        streams.append(sk)
        return True
    sk.close()
    return False


ok(all(wait_until(open_stream, 15, 0.2) for i in range(32)), "32 event streams open", len(streams))
ok(wait_until(lambda: request("GET", "/api/session", cookie=COOKIE)[0] == 429, 15, 0.1),
   "all 32 connections busy with a request: 429")
for sk in streams:
    sk.close()
ok(wait_until(lambda: request("GET", "/api/session", cookie=COOKIE)[0] == 200, 15, 0.3),
   "they close: served again")

# ------------------------------------------------------------------ slow clients vs delivery

stop = threading.Event()
cut = []

def trickle(i):
    """A request sent one byte at a time, for ever (or until the server cuts it)."""
    req = ("POST /api/settings HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
           "Content-Length: 100000\r\n\r\n" % (HOST, PORT)).encode() + b"x" * 100000
    sk = socket.create_connection((HOST, PORT), timeout=30)
    t0 = time.monotonic()
    try:
        for b in req:
            if stop.is_set():
                break
            sk.send(bytes([b]))
            time.sleep(0.2)
    except OSError:
        cut.append(time.monotonic() - t0)
    sk.close()

threads = [threading.Thread(target=trickle, args=(i,), daemon=True) for i in range(5)]
for t in threads:
    t.start()
time.sleep(1)
n0 = peer_count()
enqueue(30, "slow")
ok(wait_until(lambda: peer_count() >= n0 + 30, 30), "30 messages are delivered while 5 clients trickle requests")
st, h, body = request("GET", "/api/status", cookie=COOKIE)
is_(st, 200, "and the console answers others meanwhile")
ok(wait_until(lambda: len(cut) == 5, 25, 0.5), "the server cuts each trickling client (the request deadline)", cut)
ok(all(x < 15 for x in cut), "within the 5 s request deadline console-http.sh sets (+ slack)", cut)
stop.set()

# ------------------------------------------------------------------ logout; secrets

st, h, body = request("POST", "/api/logout", {}, cookie=COOKIE, headers={"X-CSRF-Token": CSRF})
is_(st, 200, "logout")
st, h, body = request("GET", "/api/status", cookie=COOKIE)
is_(st, 401, "the old session is gone")

leaks = []
for where, status, hdrs, text in seen_bodies:
    for secret in SECRETS:
        if secret and (secret in text or secret in hdrs):
            leaks.append("%s (%d)" % (where, status))
is_(leaks, [], "no response, header or body, held the admin password, the SMTP password or the token (%d responses)"
    % len(seen_bodies))

done()
