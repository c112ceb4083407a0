#!/usr/bin/python3
"""tests/console/edges_checks.py — the console's HTTP edges as a browser and an
attacker's raw requests meet them, against a running `mailhook run` (started by
tests/integration/console-edges.sh):

 1. a header sent twice is never read by its first copy alone (a proxy in front
    may read the last): two Origin, Content-Type, X-CSRF-Token, Authorization,
    Sec-Fetch-Site: 400; Cookie lines are joined (every cookie seen);
 2. a flood of requests without a session leaves the way in open: the login
    page, its assets, the login itself (whose failures the console counts);
 3. what a browser relies on: no-store where settings, queue or session data
    show and after logout, cookie attributes, CSRF on every state-changing
    POST, framing refused, a charset on every text answer, nosniff, HEAD,
    a form login with charset=UTF-8 and '+' for blanks, UTF-8 in the From
    display name, Expect: 100-continue, pipelining, a body cut short, a client
    slower than the deadline while others are served, 414 and 431 with a text.
Raw sockets throughout: a library would fix up what is checked.  Speaks TAP.

Usage: edges_checks.py BASE ADMIN_PW REQ_TIMEOUT
"""
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import ok, done, wait_until  # noqa: E402

BASE, ADMIN_PW, REQ_TIMEOUT = sys.argv[1], sys.argv[2], float(sys.argv[3])
HOST, PORT = re.match(r"http://([\d.]+):(\d+)$", BASE).groups()
PORT = int(PORT)
HOSTH = "Host: %s:%d\r\n" % (HOST, PORT)


def is_(got, want, desc):
    return ok(got == want, desc, "got:  %r\nwant: %r" % (got, want))


class Conn:
    """A socket with the bytes read past the last response (pipelined answers)."""
    def __init__(self, timeout=15):
        self.sk = socket.create_connection((HOST, PORT), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sk.sendall(data if isinstance(data, bytes) else data.encode())

    def fill(self):
        chunk = self.sk.recv(65536)
        self.buf += chunk
        return bool(chunk)

    def close(self):
        self.sk.close()


def read_response(c, head_only=False):
    """One response off c (a Conn) -> (status, [(name lower, value)], body bytes), or None."""
    while b"\r\n\r\n" not in c.buf:
        if not c.fill():
            return None
    head, c.buf = c.buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = [(k.strip().lower(), v.strip()) for k, v in (ln.split(":", 1) for ln in lines[1:])]
    n = 0 if head_only or status == 100 else int(dict(hdrs).get("content-length", "0"))
    while len(c.buf) < n:
        if not c.fill():
            break
    body, c.buf = c.buf[:n], c.buf[n:]
    return status, hdrs, body


def raw(data, head_only=False, timeout=15):
    """Sends bytes on a fresh connection -> (status, headers dict (last wins), all
    headers list, body text), or (None, {}, [], "") when the server closed."""
    c = Conn(timeout)
    c.send(data)
    try:
        r = read_response(c, head_only)
    except OSError:
        r = None
    c.close()
    if not r:
        return None, {}, [], ""
    return r[0], dict(r[1]), r[1], r[2].decode("utf-8", "replace")


def req(method, path, headers="", body=b"", head_only=None):
    if isinstance(body, str):
        body = body.encode()
    cl = "Content-Length: %d\r\n" % len(body) if body or method == "POST" else ""
    data = ("%s %s HTTP/1.1\r\n%s%s%sConnection: close\r\n\r\n" % (method, path, HOSTH, headers, cl)).encode() + body
    return raw(data, head_only=method == "HEAD" if head_only is None else head_only)


def jpost(path, obj, headers=""):
    return req("POST", path, "Content-Type: application/json\r\n" + headers, json.dumps(obj))


# ---------------------------------------------------------------- log in

st, h, hl, body = jpost("/api/login", {"password": ADMIN_PW})
is_(st, 200, "POST /api/login: 200")
cookie_line = h.get("set-cookie", "")
m = re.match(r"mh_session=([0-9a-f]{64});", cookie_line)
SID = m.group(1) if m else ""
COOKIE = "mh_session=" + SID
CSRF = json.loads(body).get("csrf", "") if st == 200 else ""
OWN = "Origin: %s\r\n" % BASE
AUTH = "Cookie: %s\r\nX-CSRF-Token: %s\r\n" % (COOKIE, CSRF)
attrs = [a.strip().lower() for a in cookie_line.split(";")[1:]]
ok("httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
   and not any(a.startswith("domain") for a in attrs), "the session cookie: HttpOnly; SameSite=Strict; Path=/, "
   "host-only (no Secure: plain HTTP, see docs/console.md)", cookie_line)


def alive():
    return req("GET", "/api/session", "Cookie: %s\r\n" % COOKIE)[0] == 200


ok(alive(), "the session works")

# ---------------------------------------------------------------- 1. repeated headers

# the console's Origin first, another site's last: a proxy reading the last says
# cross-site; the first copy alone let the logout through
st, h, hl, body = jpost("/api/logout", {}, AUTH + OWN + "Origin: http://evil.example\r\n")
is_(st, 400, "two Origin (the console's, then another site's) on a logout: 400")
ok("more than one Origin" in body, "  saying so: more than one Origin", body)
ok(alive(), "  and the session is not ended")
st, h, hl, body = jpost("/api/logout", {}, AUTH + "Origin: http://evil.example\r\n" + OWN)
is_(st, 400, "two Origin the other way round: 400")
st, *_ = req("POST", "/api/logout", AUTH + OWN + "Content-Type: application/json\r\nContent-Type: text/plain\r\n", "{}")
is_(st, 400, "two Content-Type: 400")
st, *_ = jpost("/api/logout", {}, AUTH + OWN + "X-CSRF-Token: 0\r\n")
is_(st, 400, "two X-CSRF-Token (the right one first): 400")
st, *_ = jpost("/api/logout", {}, AUTH + OWN + "Sec-Fetch-Site: same-origin\r\nSec-Fetch-Site: cross-site\r\n")
is_(st, 400, "two Sec-Fetch-Site: 400")
st, *_ = req("GET", "/api/status", "Authorization: Bearer x\r\nAuthorization: Bearer y\r\n")
is_(st, 400, "two Authorization: 400")
st, *_ = jpost("/api/logout", {}, AUTH + "Content-Length: 2\r\n")
is_(st, 400, "two Content-Length, different: 400")
st, *_ = req("GET", "/api/session", "Cookie: %s\r\nHost: evil.example\r\n" % COOKIE)
is_(st, 400, "two Host: 400")
ok(alive(), "the session lived through all of them")
# Cookie: one line from a browser; several lines (an HTTP/2 hop) are joined, so the
# console and the rate limit see the same cookies
st, *_ = req("GET", "/api/session", "Cookie: theme=dark\r\nCookie: %s\r\n" % COOKIE)
is_(st, 200, "the session cookie on a second Cookie line: seen (200; the first line alone: 401)")
st, *_ = req("GET", "/api/session", "Cookie: mh_session=%s\r\nCookie: %s\r\n" % ("0" * 64, COOKIE))
is_(st, 200, "a stale mh_session on the first Cookie line, the live one on the second: 200")

# ---------------------------------------------------------------- 2. flood without a session

flood = []
while len(flood) < 600 and (not flood or flood[-1] != 429):
    flood.append(req("GET", "/api/status")[0])
is_(flood[-1], 429, "a flood without a session empties its bucket (429 after %d)" % len(flood))
way_in = [("GET", "/login"), ("HEAD", "/login"), ("GET", "/assets/login.js"), ("GET", "/assets/console.css"),
          ("GET", "/api/login"), ("GET", "/")]


# flooders keep the bucket empty (it gains a token every 1/20 s, which they take): a
# request needing a token is answered 429 all but by chance
flooding = threading.Event()
flooded = []


def flooder():
    while not flooding.is_set():
        flooded.append(req("GET", "/api/status")[0])


flooders = [threading.Thread(target=flooder) for _ in range(3)]
for t in flooders:
    t.start()
wait_until(lambda: flooded.count(429) > 20, 15, 0.05)
got = [(m_, p, req(m_, p)[0]) for m_, p in way_in]
ok(all(s in (200, 303) for _, _, s in got), "meanwhile the way in is served: the login page, HEAD, its assets, "
   "GET /api/login, / (303 to /login)", got)
st, h, hl, body = jpost("/api/login", {"password": ADMIN_PW})
is_(st, 200, "and the administrator logs in (POST /api/login)")
m2 = re.match(r"mh_session=([0-9a-f]{64});", h.get("set-cookie", ""))
form_body = "password=" + urllib.parse.quote_plus(ADMIN_PW)
st, h, hl, body = req("POST", "/login", "Content-Type: application/x-www-form-urlencoded\r\n" + OWN +
                      "Sec-Fetch-Site: same-origin\r\n", form_body)
ok(st == 303 and h.get("location") == "/", "the form login too (303 to /)", (st, h.get("location")))
if m2:
    jpost("/api/logout", {}, "Cookie: mh_session=%s\r\n" % m2.group(1))
# the logins take no rate token: their bodies are bounded before the console reads them
t0 = time.monotonic()
st, h, hl, body = jpost("/api/login", {"password": "x" * 60000})
ok(st == 413 and time.monotonic() - t0 < 0.9, "a 60 KB login body: 413 at once (not decoded, not a failed login "
   "answered after 1 s)", (st, body[:100], time.monotonic() - t0))
st, h, hl, body = req("POST", "/login", "Content-Type: application/x-www-form-urlencoded\r\n" + OWN +
                      "Sec-Fetch-Site: same-origin\r\n", "password=" + "x" * 60000)
is_(st, 413, "a 60 KB login form: 413")
flooding.set()
for t in flooders:
    t.join()
ok(flooded.count(429) > len(flooded) // 2, "the flood all along: mostly 429 (%d of %d)" % (flooded.count(429),
                                                                                       len(flooded)))
ok(wait_until(lambda: req("GET", "/api/status")[0] == 401, 15, 0.3), "the bucket fills again")

# ---------------------------------------------------------------- 3. what a browser relies on

# no-store on every page or API answer that shows settings, queue, session data, and after logout
for path in ["/", "/api/settings", "/api/queue", "/api/status", "/api/session", "/api/log",
             "/assets/console.js"]:
    st, h, hl, body = req("GET", path, "Cookie: %s\r\n" % COOKIE)
    ok(st == 200 and "no-store" in h.get("cache-control", ""), "GET %s: 200, Cache-Control: no-store" % path,
       (st, h.get("cache-control")))
    ct = h.get("content-type", "")
    ok(not ct.startswith("text/") or "charset=utf-8" in ct.lower(), "  its text type names its charset (%s)" % ct)
    ok(h.get("x-content-type-options") == "nosniff" and h.get("x-frame-options") == "DENY" and
       "frame-ancestors 'none'" in h.get("content-security-policy", ""),
       "  nosniff, X-Frame-Options: DENY, frame-ancestors 'none'", h)
st, h, hl, body = req("GET", "/login", "")
ok(st == 200 and "no-store" in h.get("cache-control", "") and "charset=utf-8" in h.get("content-type", ""),
   "GET /login: 200, no-store, text/html; charset=utf-8", (st, h))
# the event stream (its head only: it goes on) and its HEAD
c = Conn()
c.send("GET /api/events HTTP/1.1\r\n%sCookie: %s\r\n\r\n" % (HOSTH, COOKIE))
r = read_response(c, head_only=True)
c.close()
ct = dict(r[1]).get("content-type", "") if r else ""
ok(r and r[0] == 200 and ct.startswith("text/event-stream") and "charset=utf-8" in ct,
   "GET /api/events: text/event-stream naming its charset (%s)" % ct)
st, h, hl, body = req("HEAD", "/api/events", "Cookie: %s\r\n" % COOKIE)
ok(st == 200 and "charset=utf-8" in h.get("content-type", "") and "no-store" in h.get("cache-control", ""),
   "HEAD /api/events: the same type, no-store", (st, h))
st, h, hl, body = req("GET", "/", "")
ok(st == 303 and "no-store" in h.get("cache-control", ""), "GET / without a session: 303, no-store", (st, h))
# a HEAD the HTTP layer refuses (its framing): the head alone, no body after it
c = Conn()
c.send("HEAD /login HTTP/1.1\r\n%sOrigin: a\r\nOrigin: b\r\n\r\n" % HOSTH)
r = read_response(c, head_only=True)
try:
    while c.fill():
        pass
except OSError:
    pass
c.close()
ok(r and r[0] == 400 and c.buf == b"" and int(dict(r[1]).get("content-length", "0")) > 0,
   "HEAD refused by the HTTP layer (two Origin): 400, its length, no body", (r and r[0], c.buf[:80]))
# HEAD: the GET's head, no body
st, h, hl, body = req("HEAD", "/api/settings", "Cookie: %s\r\n" % COOKIE)
ok(st == 200 and body == "" and int(h.get("content-length", "0")) > 0, "HEAD /api/settings: 200, its length, no body",
   (st, h.get("content-length"), body[:40]))

# CSRF: every state-changing POST without the token is refused, with it from another site too
posts = [("/api/settings", {"changes": {}}), ("/api/test", {"changes": {}, "to": None}),
         ("/api/queue/retry", {"id": "0000000000000000"}), ("/api/queue/remove", {"id": "0000000000000000"}),
         ("/api/queue/flush", {}), ("/api/password", {"current": "x", "new": "yyyyyyyy"}), ("/api/logout", {})]
for path, obj in posts:
    st, *_ = jpost(path, obj, "Cookie: %s\r\n" % COOKIE + OWN)
    is_(st, 403, "POST %s without the CSRF token: 403" % path)
    st, *_ = jpost(path, obj, AUTH + "Origin: http://evil.example\r\n")
    is_(st, 403, "POST %s with the token from another Origin: 403" % path)
    st, *_ = req("POST", path, AUTH + "Content-Type: application/x-www-form-urlencoded\r\n", "a=b")
    is_(st, 415, "POST %s as a form (what another site can send): 415" % path)
ok(alive(), "the session lived through them")

# UTF-8 in a JSON body sent with HTTP's charset parameter in capitals (as browsers
# spell it): read as UTF-8, saved and read back as typed
USER = "zoë.müller+Ångström smtp"
st, h, hl, body = req("POST", "/api/settings", AUTH + OWN + "Content-Type: application/json; charset=UTF-8\r\n",
                      json.dumps({"changes": {"username": USER}}, ensure_ascii=False))
is_(st, 200, "an Update with UTF-8 in a value (Content-Type: application/json; charset=UTF-8): 200")
st, h, hl, body = req("GET", "/api/settings", "Cookie: %s\r\n" % COOKIE)
is_(json.loads(body).get("settings", {}).get("username") if st == 200 else None, USER, "  and it reads back as typed")
# a display name in From: `from` is an address only (docs/settings.md); refused beside
# its field, nothing written
st, h, hl, body = req("POST", "/api/settings", AUTH + OWN + "Content-Type: application/json; charset=UTF-8\r\n",
                      json.dumps({"changes": {"from": "Zoë Müller <pbx@example.com>"}}, ensure_ascii=False))
ok(st == 422 and json.loads(body).get("key") == "from", "a From with a UTF-8 display name: 422 beside From", (st, body))

# a form login as a browser sends it: charset=UTF-8, '+' for blanks
st, h, hl, body = req("POST", "/login", "Content-Type: application/x-www-form-urlencoded; charset=UTF-8\r\n" + OWN +
                      "Sec-Fetch-Site: same-origin\r\n", form_body)
ok(st == 303 and h.get("location") == "/" and "mh_session=" in h.get("set-cookie", ""),
   "a form login, charset=UTF-8, '+' for its blanks (%s): 303 to / with a cookie" % form_body[:20], (st, h))
m3 = re.match(r"mh_session=([0-9a-f]{64});", h.get("set-cookie", ""))
if m3:
    jpost("/api/logout", {}, "Cookie: mh_session=%s\r\n" % m3.group(1))

# Expect: 100-continue: the interim answer, then the body, then the answer
c = Conn()
b = json.dumps({}).encode()
c.send("POST /api/queue/flush HTTP/1.1\r\n%s%sContent-Type: application/json\r\nContent-Length: %d\r\n"
       "Expect: 100-continue\r\n\r\n" % (HOSTH, AUTH + OWN, len(b)))
first = read_response(c)
c.send(b)
r = read_response(c)
c.close()
ok(first and first[0] == 100 and r and r[0] == 200, "Expect: 100-continue: 100 Continue before the body, then "
   "the answer", (first and first[0], r and r[0]))

# pipelined: three requests in one write, three answers in order
c = Conn()
one = "GET %%s HTTP/1.1\r\n%sCookie: %s\r\n\r\n" % (HOSTH, COOKIE)
c.send(one % "/api/session" + one % "/nothing-here" + one % "/api/login")
got = []
for _ in range(3):
    r = read_response(c)
    got.append(r and r[0])
c.close()
is_(got, [200, 404, 200], "three pipelined requests: three answers, in order")

# a request line over the head's bound: 414; headers over it: 431; each with a text
st, h, hl, body = raw("GET /login?" + "a" * 9000 + " HTTP/1.1\r\n" + HOSTH + "\r\n")
ok(st == 414 and body.startswith("URI too long: the request line is over 8192 bytes"),
   "a 9 KB request line: 414 URI Too Long, saying why", (st, body[:80]))
ok("charset=utf-8" in h.get("content-type", "") and "no-store" in h.get("cache-control", ""),
   "  text/plain; charset=utf-8, no-store", h)
st, h, hl, body = raw("GET /login HTTP/1.1\r\n" + HOSTH + "X-Big: " + "a" * 9000 + "\r\n\r\n")
ok(st == 431 and body.startswith("request head too large: over 8192 bytes"), "a 9 KB header: 431, saying why",
   (st, body[:80]))

# a body cut short, and a client slower than the deadline: 408, and the console serves
# others meanwhile (no hang)
slow_out = {}


def slow(name, data):
    c = Conn(REQ_TIMEOUT + 20)
    t0 = time.monotonic()
    try:
        c.send(data)
        r = read_response(c)
        slow_out[name] = (r and r[0], time.monotonic() - t0)
    except OSError as e:
        slow_out[name] = (str(e), time.monotonic() - t0)
    c.close()


body_req = ("POST /api/queue/flush HTTP/1.1\r\n%s%sContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{}"
            % (HOSTH, AUTH + OWN)).encode()
threads = [threading.Thread(target=slow, args=("body", body_req)),      # 2 bytes of 400
           threading.Thread(target=slow, args=("head", ("GET /api/session HTTP/1.1\r\n" + HOSTH).encode()))]
for t in threads:
    t.start()
t0 = time.monotonic()
served = [alive() for _ in range(5)]
ok(all(served) and time.monotonic() - t0 < REQ_TIMEOUT, "while a body is cut short and a head trickles, other "
   "requests are answered at once", served)
for t in threads:
    t.join(REQ_TIMEOUT + 25)
ok(slow_out.get("body", (0,))[0] == 408 and slow_out.get("head", (0,))[0] == 408,
   "the body cut short and the head that never ends: 408 after the deadline (%g s)" % REQ_TIMEOUT, slow_out)

# after logout: the pages are gone (a Back button reloads them: no-store) and the cookie cleared
st, h, hl, body = jpost("/api/logout", {}, AUTH + OWN)
ok(st == 200 and "no-store" in h.get("cache-control", "") and "max-age=0" in h.get("set-cookie", "").lower(),
   "logout: 200, no-store, the cookie cleared (Max-Age=0)", (st, h))
st, h, hl, body = req("GET", "/", "Cookie: %s\r\n" % COOKIE)
ok(st == 303 and h.get("location") == "/login" and "no-store" in h.get("cache-control", ""),
   "then GET / with the old cookie: 303 to /login, no-store", (st, h))
st, *_ = req("GET", "/api/settings", "Cookie: %s\r\n" % COOKIE)
is_(st, 401, "and GET /api/settings: 401")

done()
