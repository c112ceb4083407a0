#!/usr/bin/python3
"""tests/console/attack_checks.py — the console under attack, at the HTTP level,
against a running `mailhook run` (started by tests/integration/console-attack.sh):
request smuggling and malformed framing, oversized heads, pipelining, methods,
DNS rebinding through Host, CSRF and same-origin on every state-changing
endpoint, login brute force (per client, in all, concurrent), session fixation
and cookie tossing, logout ending live streams, the console's own password,
settings the console must not touch (commands, paths, its own access), the
stored SMTP password never sent to a server an attacker names, path traversal,
slow clients while delivery goes on, and no secret or path in any response.
Speaks TAP.  Raw sockets where a library would hide what is checked.

Usage: attack_checks.py BASE ADMIN_PW TOKEN SMTP_PW SPOOL CONF TOKEN_FILE MAILHOOK MAILDIR EVIL_PORT EVIL_OUT
"""
import http.client
import json
import urllib.parse
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import wait_until  # noqa: E402  (the checkers' one way to wait)

(BASE, ADMIN_PW, TOKEN, SMTP_PW, SPOOL, CONF, TOKEN_FILE, MAILHOOK, MAILDIR,
 EVIL_PORT, EVIL_OUT) = sys.argv[1:12]
HOST, PORT = re.match(r"http://([\d.]+):(\d+)$", BASE).groups()
PORT = int(PORT)
EVIL_PORT = int(EVIL_PORT)
NEW_ADMIN_PW = "second-Admin-Pw-7733"
# the secrets (the admin hash, the SMTP password) live beside the settings: NAME.secrets
SECRETS_FILE = (CONF[:-5] if CONF.endswith(".conf") else CONF) + ".secrets"


def conf():
    """The settings and the secrets file, as one text."""
    text = open(CONF).read()
    if os.path.exists(SECRETS_FILE):
        text += open(SECRETS_FILE).read()
    return text


ADMIN_HASH = re.search(r"^admin_password\s*=\s*(\S+)", conf(), re.M).group(1)
SECRETS = [ADMIN_PW, NEW_ADMIN_PW, SMTP_PW, TOKEN, ADMIN_HASH]
PATHS = [CONF, SECRETS_FILE, SPOOL, TOKEN_FILE]

n = 0
failed = 0
seen = []     # (what, status, headers text, body) of every response


def ok(cond, desc, diag=None):
    global n, failed
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, desc), flush=True)
    if not cond:
        failed += 1
        if diag is not None:
            for line in str(diag).splitlines()[:20]:
                print("#   " + line, flush=True)
    return cond


def is_(got, want, desc):
    return ok(got == want, desc, "got:  %r\nwant: %r" % (got, want))


def request(method, path, body=None, headers=None, cookie=None, raw_body=None, host=None, source=None):
    """One request on a fresh connection -> (status, headers dict (lower-case), body text)."""
    c = http.client.HTTPConnection(HOST, PORT, timeout=30, source_address=(source, 0) if source else None)
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
    seen.append((method + " " + path, r.status, "\n".join("%s: %s" % (k, v) for k, vs in hdrs.items() for v in vs), text))
    return r.status, hdrs, text


def answers(out):
    """How many whole answers (a head, then its Content-Length of body) out holds."""
    k, pos = 0, 0
    while True:
        end = out.find(b"\r\n\r\n", pos)
        if end < 0:
            return k
        m = re.search(rb"\r\ncontent-length: *(\d+)\r\n", out[pos:end + 2], re.I)
        if not m and not out.startswith(b"HTTP/1.1 1", pos):
            return k      # a body without a length: it ends when the server closes
        pos = end + 4 + (int(m.group(1)) if m else 0)
        if pos > len(out):
            return k
        k += 1


def raw(data, wait=3.0, source=None, until=None):
    """Bytes sent on a fresh connection; everything read until the server closes
    or `wait` passes -> (bytes, closed_by_server).  until=N: or until N whole answers
    came (where the request sent can have no more, and the server keeps the connection)."""
    s = socket.socket()
    if source:
        s.bind((source, 0))
    s.settimeout(wait)
    s.connect((HOST, PORT))
    try:
        s.sendall(data)
    except OSError:
        pass
    out, closed = b"", False
    end = time.monotonic() + wait
    try:
        while time.monotonic() < end:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            out += chunk
            if until is not None and answers(out) >= until:
                break
    except socket.timeout:
        pass
    except OSError:
        closed = True
    s.close()
    seen.append(("raw " + data[:40].decode("latin1"), 0, "", out.decode("latin1")))
    return out, closed


def statuses(data):
    return [int(m) for m in re.findall(rb"^HTTP/1\.[01] (\d{3})", data, re.M)]


def said(out, status, reason, text):
    """Whether the raw answer out is status with its own reason phrase and text: the HTTP layer's own answers
    once all began "bad request: ", a 413 too ("bad request: request body too large")."""
    head, _, body = out.partition(b"\r\n\r\n")
    body = body.decode("latin1")
    if b"\r\nContent-Type: application/json\r\n" in head:      # under /api/: {"ok":false,"error":TEXT}
        body = jbody(body).get("error") or ""
    return head.startswith(b"HTTP/1.1 %d %s\r\n" % (status, reason.encode())) and body.startswith(text)


def jbody(text):
    try:
        return json.loads(text)
    except ValueError:
        return {}



def login(password=ADMIN_PW, cookie=None, source=None):
    st, h, body = request("POST", "/api/login", {"password": password}, cookie=cookie, source=source)
    m = re.match(r"mh_session=([0-9a-f]{64});", (h.get("set-cookie") or [""])[0])
    return st, ("mh_session=" + m.group(1)) if m else None, jbody(body).get("csrf", ""), h


def delivered():
    return len([f for f in os.listdir(MAILDIR) if f.endswith(".eml")])


def enqueue(k, tag):
    code = ('local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL")) '
            'local list = {} for i = 1, %d do list[i] = {"From: app@example.com\\r\\nTo: ok@example.net\\r\\n'
            'Subject: %s " .. i .. "\\r\\n\\r\\nbody\\r\\n", {from = "app@example.com", to = {"ok@example.net"}}} end '
            'assert(sp:enqueue_many(list))') % (k, tag)
    subprocess.run([MAILHOOK, "-e", code], check=True)


def evil_connections():
    try:
        return open(EVIL_OUT).read().count("CONNECT ")
    except OSError:
        return 0


H = ("Host: %s:%d\r\n" % (HOST, PORT)).encode()

st, COOKIE, CSRF, _ = login()
is_(st, 200, "log in")

# ================================================================== framing (request smuggling)

out, closed = raw(b"POST /api/login HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\n"
                  b"Content-Length: 5\r\nContent-Length: 40\r\n\r\n{\"password\":\"x\"}GET /login HTTP/1.1\r\n" + H + b"\r\n")
is_(statuses(out), [400], "two Content-Length headers: 400, and the bytes after the first body are never a request")
ok(closed, "and the connection is closed")
ok(said(out, 400, "Bad Request", "bad request: more than one Content-Length"), "  saying so", out[:300])
out, closed = raw(b"POST /api/login HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\nContent-Length: 4\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n10\r\n{\"password\":\"x\"}\r\n0\r\n\r\nGET /nope HTTP/1.1\r\n" + H + b"\r\n")
is_(statuses(out), [400], "Content-Length with Transfer-Encoding: 400, nothing smuggled")
ok(said(out, 400, "Bad Request", "bad request: both Content-Length and Transfer-Encoding"), "  saying so", out[:300])
ok(closed, "and the connection is closed")
out, closed = raw(b"POST /api/login HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n10\r\n{\"password\":\"x\"}\r\n0\r\n\r\n")
is_(statuses(out), [400], "two Transfer-Encoding headers: 400")
out, closed = raw(b"POST /api/login HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                  b"10\r\n{\"password\":\"x\"}\r\n0\r\n\r\n")
ok(statuses(out) == [501] and closed, "a Transfer-Encoding other than chunked: 501, closed", out[:200])
ok(said(out, 501, "Not Implemented", "not implemented: Transfer-Encoding 'gzip, chunked'"), "  naming it", out[:300])
out, closed = raw(b"POST /api/login HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"10\r\n{\"password\":\"x\"}\r\n0\r\n\r\nGET /nope HTTP/1.1\r\n" + H + b"\r\n")
ok(statuses(out) == [411] and closed, "a chunked body (no request body is chunked here): 411, closed, the bytes after "
   "it never read as a request", out[:200])
ok(said(out, 411, "Length Required", "length required: a chunked request body is not taken, send Content-Length"),
   "  saying what to send instead", out[:300])
out, closed = raw(b"GET /login HTTP/1.1\r\nHost: evil.example\r\n" + H + b"\r\n")
is_(statuses(out), [400], "two Host headers (the last would win): 400")
out, closed = raw(b"GET /login HTTP/1.1\r\n" + H + b"X-Folded: a\r\n b\r\n\r\n")
is_(statuses(out), [400], "an obsolete folded header line: 400")
ok(said(out, 400, "Bad Request", "bad request: obsolete header line folding"), "  saying so", out[:300])
big = b"7fff\r\n" + b"a" * 0x7fff + b"\r\n"
out, closed = raw(b"POST /api/login HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + big * 3 + b"0\r\n\r\n", wait=5)
is_(statuses(out)[:1], [411], "a chunked body over 64 KB: 411 (refused before a byte of it is read)")
out, closed = raw(b"POST /api/login HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"zz\r\nabc\r\n0\r\n\r\n")
is_(statuses(out)[:1], [411], "a broken chunk size: 411 (never read)")
out, closed = raw(b"GET /login HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n")
is_(statuses(out), [431], "a request head over 8 KB: 431")
ok(said(out, 431, "Request Header Fields Too Large", "request head too large: over 8192 bytes"), "  naming the limit",
   out[:300])
out, closed = raw(b"POST /login HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\nContent-Length: 70000\r\n\r\n")
ok(said(out, 413, "Content Too Large", "request body too large: 70000 bytes, the limit is 65536") and closed,
   "a body over 64 KB: 413 naming its length and the limit (before a byte of it is read), closed", out[:300])
out, closed = raw(b"GET /login?" + b"a" * 20000 + b" HTTP/1.1\r\n" + H + b"\r\n")
is_(statuses(out), [414], "a 20 KB URL: 414 (the request line over the head's 8 KB)")
out, closed = raw(b"GET /login HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n")
is_(statuses(out), [400], "150 header lines: 400")
out, closed = raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
ok(statuses(out) == [400] and closed, "an HTTP/2 preface: 400, closed (HTTP/1.1 only)", out[:200])
out, closed = raw(b"GET /login HTTP/1.1\r\n" + H + b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", wait=2, until=1)
is_(statuses(out), [200], "an h2c upgrade is not taken (answered in HTTP/1.1)")

# pipelining: ten requests in one write, ten answers in order (told apart by their
# statuses: no answer quotes the path it was asked for)
pipe, want = b"", []
for i in range(10):
    path, st = [(b"/nope", 404), (b"/login", 200), (b"/api/settings", 401)][i % 3]
    pipe += b"GET " + path + b" HTTP/1.1\r\n" + H + b"\r\n"
    want.append(st)
pipe += b"GET /login HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
out, closed = raw(pipe, wait=5)
is_(statuses(out), want + [200], "eleven pipelined requests: eleven answers, in order")

# methods
st, h, body = request("OPTIONS", "/api/login", headers={"Origin": "http://evil.example",
                                                         "Access-Control-Request-Method": "POST"})
ok(st == 405 and "POST" in (h.get("allow") or [""])[0], "OPTIONS (a CORS preflight): 405 with Allow", (st, h.get("allow")))
ok(not any(k.startswith("access-control-") for k in h), "no CORS header ever", list(h))
for m in ("TRACE", "PUT", "DELETE", "BREW"):
    st, h, body = request(m, "/api/settings", cookie=COOKIE)
    is_(st, 405, "%s /api/settings: 405" % m)
# the login form sent by the browser itself (JavaScript off): a form from the
# console's own page logs in or goes back to the login page with the error;
# one without that proof (another site's form, a script) is refused before the
# password is looked at, never a raw JSON 405
st, h, body = request("POST", "/login", raw_body=b"password=x",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
ok(st == 403 and "set-cookie" not in h, "POST /login (a form, no same-origin proof): 403, no session",
   (st, h.get("location"), body))
st, h, body = request("POST", "/login", raw_body=b"password=x",
                      headers={"Content-Type": "application/x-www-form-urlencoded",
                               "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
ok(st == 403 and "set-cookie" not in h, "POST /login (another site's form): 403, no session", (st, body))
st, h, body = request("HEAD", "/login")
ok(st == 200 and body == "" and "text/html" in (h.get("content-type") or [""])[0], "HEAD /login: the head, no body")
st, h, body = request("HEAD", "/api/events", cookie=COOKIE)
ok(st == 200 and body == "", "HEAD /api/events: answered at once, no stream")
st, h, body = request("GET", "/assets/console.js", headers={"Range": "bytes=0-10"})
ok(st == 200 and len(body) > 1000, "a Range request gets the whole file (no partial content)", (st, len(body)))

# ================================================================== Host (DNS rebinding)

good_hosts = ["127.0.0.1:%d" % PORT, "localhost:%d" % PORT, "LOCALHOST:%d" % PORT, "[::1]:%d" % PORT]
bad_hosts = ["127.0.0.1.evil.com:%d" % PORT, "evil.example:%d" % PORT, "localhost.:%d" % PORT,
             "sub.localhost:%d" % PORT, "127.0.0.1", "127.0.0.1:%d" % (PORT + 1), "2130706433:%d" % PORT,
             "127.1:%d" % PORT, "0x7f000001:%d" % PORT, "127.0.0.1:%d@evil.example" % PORT,
             "[::ffff:127.0.0.1]:%d" % PORT, ""]
for hh in good_hosts:
    st, h, body = request("GET", "/api/session", cookie=COOKIE, host=hh)
    is_(st, 200, "Host: %s is this console" % hh)
for hh in bad_hosts:
    st, h, body = request("GET", "/api/session", cookie=COOKIE, host=hh)
    is_(st, 421, "Host: %r is refused (421)" % hh)
out, closed = raw(b"GET /api/session HTTP/1.0\r\nCookie: " + COOKIE.encode() + b"\r\n\r\n")
is_(statuses(out), [421], "HTTP/1.0 without Host: 421")
out, closed = raw(b"GET /api/session HTTP/1.1\r\nCookie: " + COOKIE.encode() + b"\r\n\r\n", until=1)
is_(statuses(out), [421], "HTTP/1.1 without Host: 421")
out, closed = raw(b"GET /api/session HTTP/1.0\r\n" + H + b"Cookie: " + COOKIE.encode() + b"\r\n\r\n")
ok(statuses(out) == [200] and closed, "HTTP/1.0 with Host: served, then closed", out[:200])

# ================================================================== paths

for p in ("/assets/../mailhook.conf", "/assets/%2e%2e/%2e%2e/etc/passwd", "/assets/..%2f..%2fetc%2fpasswd",
          "/assets/console.js%00.html", "/assets/%00", "/assets//etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
          "/assets/.%2e/.%2e/etc/passwd", "/assets/%c0%ae%c0%ae/x", "/assets/..\\..\\etc\\passwd",
          "/assets/console.js/..", "/assets/.hidden.js"):
    st, h, body = request("GET", p, cookie=COOKIE)
    ok(st == 404 and "root:" not in body and "admin_password" not in body, "GET %s: 404, nothing read" % p, (st, body[:100]))

# ================================================================== CSRF and same origin

st2, COOKIE2, CSRF2, _ = login()
is_(st2, 200, "a second session")
enqueue(1, "csrf")
victim = None
for e in jbody(request("GET", "/api/queue?folder=pickup", cookie=COOKIE)[2]).get("entries", []):
    victim = e["id"]
posts = [("/api/settings", {"changes": {"retry_interval": "37s"}}), ("/api/test", {"changes": {}}),
         ("/api/queue/retry", {"id": victim}), ("/api/queue/remove", {"id": victim}), ("/api/queue/flush", {}),
         ("/api/password", {"current": ADMIN_PW, "new": "never-Set-This-1"}), ("/api/logout", {})]
before = conf()
for path, body in posts:
    st, h, b = request("POST", path, body, cookie=COOKIE)
    is_(st, 403, "POST %s without the CSRF token: 403" % path)
    st, h, b = request("POST", path, body, cookie=COOKIE, headers={"X-CSRF-Token": CSRF2})
    is_(st, 403, "POST %s with another session's token: 403" % path)
    st, h, b = request("POST", path, body, cookie=COOKIE, headers={"X-CSRF-Token": CSRF, "Origin": "http://evil.example"})
    is_(st, 403, "POST %s from another Origin: 403" % path)
    st, h, b = request("POST", path, body, cookie=COOKIE, headers={"X-CSRF-Token": CSRF, "Origin": "null"})
    is_(st, 403, "POST %s from Origin null (a sandboxed frame): 403" % path)
    st, h, b = request("POST", path, body, cookie=COOKIE, headers={"X-CSRF-Token": CSRF, "Sec-Fetch-Site": "cross-site"})
    is_(st, 403, "POST %s marked Sec-Fetch-Site: cross-site: 403" % path)
    st, h, b = request("POST", path, body, cookie=COOKIE, headers={"X-CSRF-Token": CSRF, "Sec-Fetch-Site": "same-site"})
    is_(st, 403, "POST %s from a sibling site (another port of this host): 403" % path)
    st, h, b = request("POST", path, raw_body=json.dumps(body).encode(), cookie=COOKIE,
                       headers={"X-CSRF-Token": CSRF, "Content-Type": "text/plain"})
    is_(st, 415, "POST %s as text/plain (a form can send that): 415" % path)
    st, h, b = request("GET", path, cookie=COOKIE)
    if path == "/api/settings":
        is_(st, 200, "GET %s: the settings, read only" % path)
    else:
        is_(st, 405, "GET %s: 405 (GET changes nothing)" % path)
is_(conf(), before, "none of these changed the settings file")
ok(("console: %s removed" % victim) not in open(os.environ["SVC_LOG"]).read(), "nor removed the message")
st, h, b = request("GET", "/api/session", cookie=COOKIE)
is_(st, 200, "nor logged the session out")
st, h, b = request("POST", "/api/queue/flush", {}, cookie=COOKIE,
                   headers={"X-CSRF-Token": CSRF, "Origin": BASE, "Sec-Fetch-Site": "same-origin"})
is_(st, 200, "the console's own page (token, Origin, same-origin): 200")

# ================================================================== settings the console must not touch

marker = os.path.join(os.path.dirname(CONF), "PWNED")
for key, value in (("password_command", "touch " + marker), ("oauth_token_command", "touch " + marker),
                   ("admin_password", "hunter2-hunter2"), ("admin_listen", "0.0.0.0:%d" % PORT),
                   ("admin_token_file", "/etc/hostname"), ("tls_ca_file", "/etc/hostname"),
                   ("rules", "/tmp"), ("templates", "/tmp"), ("aliases", "/etc/passwd"), ("log", "syslog")):
    st, h, b = request("POST", "/api/settings", {"changes": {key: value}}, cookie=COOKIE, headers={"X-CSRF-Token": CSRF})
    d = jbody(b)
    ok(st == 422 and d.get("key") == key and "mailhook update" in d.get("error", ""),
       "Update of %s from the console: 422, beside the field, says how to change it" % key, (st, b[:300]))
st, h, b = request("POST", "/api/test", {"changes": {"auth": True, "password": "x", "password_command": "touch " + marker}},
                   cookie=COOKIE, headers={"X-CSRF-Token": CSRF})
res = [jbody(l) for l in b.splitlines() if l.strip()]
ok(st in (200, 422) and (st == 422 or (res and res[-1].get("result", {}).get("key") == "password_command")),
   "a Test with password_command: refused", b[:300])
time.sleep(0.5)
ok(not os.path.exists(marker), "no command ran (no marker file)")
is_(conf(), before, "the settings file is unchanged")

st, h, b = request("POST", "/api/test", {"changes": {}, "to": "a@example.com>\r\nRCPT TO:<x@evil.example"},
                   cookie=COOKIE, headers={"X-CSRF-Token": CSRF})
ok(st == 422 and jbody(b).get("key") == "test_to", "a Test message address with CRLF (SMTP injection): 422 beside the field", b[:300])

# ================================================================== the stored SMTP password stays with its server

ev0 = evil_connections()
st, h, b = request("POST", "/api/test", {"changes": {"server": "127.0.0.1", "port": str(EVIL_PORT)}},
                   cookie=COOKIE, headers={"X-CSRF-Token": CSRF})
res = [jbody(l) for l in b.splitlines() if l.strip()]
r = res[-1].get("result", {}) if res else {}
ok(r.get("ok") is False and r.get("key") == "password" and "type the password again" in r.get("error", ""),
   "Test against another server with the stored password: refused, the password field says why", b[:400])
st, h, b = request("POST", "/api/test", {"changes": {"tls_verify": False}}, cookie=COOKIE, headers={"X-CSRF-Token": CSRF})
res = [jbody(l) for l in b.splitlines() if l.strip()]
r = res[-1].get("result", {}) if res else {}
ok(r.get("key") == "password", "so is a Test with the certificate check turned off", b[:300])
st, h, b = request("POST", "/api/settings", {"changes": {"port": str(EVIL_PORT)}}, cookie=COOKIE,
                   headers={"X-CSRF-Token": CSRF})
ok(st == 422 and jbody(b).get("key") == "password", "Update of the port with the stored password: 422 (password)", b[:300])
is_(conf(), before, "nothing saved")
time.sleep(0.5)
is_(evil_connections(), ev0, "the other server never saw a connection")
st, h, b = request("POST", "/api/test", {"changes": {"port": str(EVIL_PORT), "password": "typed-Just-Now-55"}},
                   cookie=COOKIE, headers={"X-CSRF-Token": CSRF})
ok(wait_until(lambda: evil_connections() > ev0, 10), "with the password typed again, the Test goes there")
try:
    rec = open(EVIL_OUT.replace(".out", ".rec"), "rb").read()
except OSError:
    rec = b""
ok(SMTP_PW.encode() not in rec, "and the stored password never left")

# ================================================================== sessions

# fixation: a login never keeps an id the browser already had
st, fresh, fresh_csrf, _ = login(cookie=COOKIE2, source="127.0.0.9")
ok(st == 200 and fresh and fresh != COOKIE2, "a login with a session cookie gets a new id")
is_(request("GET", "/api/session", cookie=COOKIE2)[0], 401, "and the id it had is ended (session fixation)")
# cookie tossing: another service on this host adds a cookie of the same name
bogus = "mh_session=" + "0" * 64
is_(request("GET", "/api/session", cookie=fresh + "; " + bogus)[0], 200, "a second, unknown mh_session cookie after: still in")
is_(request("GET", "/api/session", cookie=bogus + "; " + fresh)[0], 200, "and before it: still in")

# logout ends the session on the server, and its live stream
sse = socket.create_connection((HOST, PORT), timeout=20)
sse.sendall(("GET /api/events HTTP/1.1\r\nHost: %s:%d\r\nCookie: %s\r\n\r\n" % (HOST, PORT, fresh)).encode())
buf = b""
while b"event: status" not in buf:
    chunk = sse.recv(65536)
    if not chunk:
        break
    buf += chunk
ok(b"event: status" in buf, "a live stream with that session")
st, h, b = request("POST", "/api/logout", {}, cookie=fresh, headers={"X-CSRF-Token": fresh_csrf})
is_(st, 200, "logout")
is_(request("GET", "/api/session", cookie=fresh)[0], 401, "the session is gone on the server")
t_end = time.monotonic() + 10
ended = False
while time.monotonic() < t_end:
    try:
        chunk = sse.recv(65536)
    except socket.timeout:
        break
    if not chunk:
        ended = True
        break
    buf += chunk
    if b"0\r\n\r\n" in buf.split(b"event: logout")[-1] and b"event: logout" in buf:
        ended = True
        break
sse.close()
ok(b"event: logout" in buf and ended, "and its live stream ends at once, saying so", buf[-300:])

# the console's own password
st, c3, _, _ = login(ADMIN_PW, source="127.0.0.6")
is_(st, 200, "another session, from another client")
st, h, b = request("POST", "/api/password", {"current": "wrong-one", "new": NEW_ADMIN_PW}, cookie=COOKIE,
                   headers={"X-CSRF-Token": CSRF})
ok(st == 403 and jbody(b).get("key") == "current", "a password change with a wrong current password: 403", b)
st, h, b = request("POST", "/api/password", {"current": ADMIN_PW, "new": "short"}, cookie=COOKIE,
                   headers={"X-CSRF-Token": CSRF})
ok(st == 422 and jbody(b).get("key") == "new", "a new password under 8 characters: 422", b)
st, h, b = request("POST", "/api/password", {"current": ADMIN_PW, "new": NEW_ADMIN_PW}, cookie=COOKIE,
                   headers={"X-CSRF-Token": CSRF})
m = re.match(r"mh_session=([0-9a-f]{64});", (h.get("set-cookie") or [""])[0])
ok(st == 200 and m is not None, "the right current password: changed, with a new session", b)
ok(NEW_ADMIN_PW not in conf() and re.search(r"^admin_password = \$scrypt\$", conf(), re.M), "stored as a hash only")
is_(request("GET", "/api/session", cookie=COOKIE)[0], 401, "the session that asked is replaced")
is_(request("GET", "/api/session", cookie=c3)[0], 401, "every other session is ended")
COOKIE, CSRF = "mh_session=" + (m.group(1) if m else ""), jbody(b).get("csrf", "")
is_(request("GET", "/api/session", cookie=COOKIE)[0], 200, "the new one works")
is_(login(ADMIN_PW, source="127.0.0.10")[0], 401, "the old password no longer logs in")
is_(login(NEW_ADMIN_PW, source="127.0.0.11")[0], 200, "the new one does")
ADMIN_HASH2 = re.search(r"^admin_password\s*=\s*(\S+)", conf(), re.M).group(1)
SECRETS.append(ADMIN_HASH2)

# ================================================================== brute force

# 30 guesses at once from one client (127.0.0.5): the check of one costs 32 MiB
# and a thread-pool worker for tens of ms; they must not all run.
results = []
lock = threading.Lock()


def guess(i, src):
    try:
        st, _, _, h = login("guess-%d" % i, source=src)
        with lock:
            results.append((st, (h.get("retry-after") or [None])[0]))
    except Exception as e:        # noqa: BLE001 (a reset counts as a refusal here)
        with lock:
            results.append((type(e).__name__, None))


def fails_logged():
    return open(os.environ["SVC_LOG"]).read().count("console: failed login from 127.0.0.5")


t0 = time.monotonic()
threads = [threading.Thread(target=guess, args=(i, "127.0.0.5")) for i in range(30)]
for t in threads:
    t.start()
for t in threads:
    t.join()
codes = [r[0] for r in results]
ok(codes.count(401) <= 5, "30 concurrent guesses: at most 5 checked (%d x 401)" % codes.count(401), codes)
ok(codes.count(429) >= 25, "the others: 429 at once (%d)" % codes.count(429), codes)
ok(all(r[1] for r in results if r[0] == 429), "each 429 with Retry-After")
ok(wait_until(lambda: fails_logged() <= 5, 1), "at most 5 failed logins logged for that client (%d)" % fails_logged())
st, _, _, h = login(NEW_ADMIN_PW, source="127.0.0.5")
ok(st == 429 and int((h.get("retry-after") or ["0"])[0]) > 30,
   "then even the right password from that client: 429 for the rest of the minute", (st, h.get("retry-after")))
st, _, _, _ = login(NEW_ADMIN_PW, source="127.0.0.12")
is_(st, 200, "another client logs in meanwhile (the limit is per client)")
st, h, b = request("GET", "/api/session", cookie=COOKIE)
is_(st, 200, "and sessions opened before go on")
# wrong bearer tokens count as failed logins
codes = []
for i in range(7):
    codes.append(request("GET", "/api/status", headers={"Authorization": "Bearer x%031d" % i}, source="127.0.0.7")[0])
ok(codes[:5] == [401] * 5 and codes[5:] == [429, 429], "wrong bearer tokens: 401 five times, then 429", codes)
st, h, b = request("GET", "/api/status", headers={"Authorization": "Bearer " + TOKEN}, source="127.0.0.7")
is_(st, 429, "then the right token from that client waits too")
st, h, b = request("GET", "/api/status", headers={"Authorization": "Bearer " + TOKEN}, source="127.0.0.8")
is_(st, 200, "from another client the token works")
# many clients (127.0.0.0/8: one local attacker has 16 million addresses), one
# guess each, until the console refuses
codes = []
for i in range(25):
    codes.append(login("guess-%d" % i, source="127.0.1.%d" % (i + 1))[0])
    if codes[-1] == 429:
        break
logged = open(os.environ["SVC_LOG"]).read().count("failed login from") + \
    open(os.environ["SVC_LOG"]).read().count("wrong bearer token from") + \
    open(os.environ["SVC_LOG"]).read().count("wrong current password from")
ok(codes[-1] == 429 and codes.count(401) < 20, "a guess from each of many clients: refused once 20 failures "
   "were counted in all (%d here, %d logged since the start)" % (codes.count(401), logged), codes)
st, _, _, h = login(NEW_ADMIN_PW, source="127.0.2.1")
is_(st, 429, "then logins wait a minute, from any client")
st, h, b = request("GET", "/api/status", cookie=COOKIE)
is_(st, 200, "while open sessions go on")
print("# brute force: %.1f s" % (time.monotonic() - t0), flush=True)

# ================================================================== slow clients while delivery goes on

stop = threading.Event()
cut = []


def trickle(head_only):
    """A request sent a byte at a time (its head, or a body that never ends)."""
    req = ("POST /api/settings HTTP/1.1\r\nHost: %s:%d\r\nX-Padding: %s\r\nContent-Type: application/json\r\n"
           "Content-Length: 1000\r\n\r\n" % (HOST, PORT, "p" * 200)).encode()
    if not head_only:
        req += b"x" * 1000
    sk = socket.create_connection((HOST, PORT), timeout=30)
    t0 = time.monotonic()
    try:
        for byte in req:
            if stop.is_set():
                break
            sk.send(bytes([byte]))
            time.sleep(0.1)
        sk.recv(1)
    except OSError:
        pass
    cut.append(time.monotonic() - t0)
    sk.close()


never_read = socket.create_connection((HOST, PORT), timeout=5)
never_read.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
never_read.sendall(("GET /api/events HTTP/1.1\r\nHost: %s:%d\r\nCookie: %s\r\n\r\n" % (HOST, PORT, COOKIE)).encode())
threads = [threading.Thread(target=trickle, args=(i % 2 == 0,), daemon=True) for i in range(6)]
for t in threads:
    t.start()
d0 = delivered()
enqueue(40, "slow")
ok(wait_until(lambda: delivered() >= d0 + 40, 40), "40 messages delivered while 6 clients trickle heads and bodies "
   "and a live stream is never read")
st, h, b = request("GET", "/api/status", cookie=COOKIE)
is_(st, 200, "the console answers others meanwhile")
ok(wait_until(lambda: len(cut) == 6, 25, 0.5), "each trickling client is cut (the request deadline)", cut)
ok(all(x < 15 for x in cut), "within the 5 s deadline console-attack.sh sets (+ slack)", cut)
stop.set()
never_read.close()

# ================================================================== the scrubber is no oracle
# No answer quotes what the request sent: the scrubber masks the stored SMTP password wherever
# it appears, so a path, Host, Content-Type, field, key or value said back with the mask in it
# (or without) told whether it was the password, without a session (a path of 600 guesses
# answered which one in 10 requests).  Each request is made twice, with the password and with
# a decoy of its length: the answers must be the same (the guess written <C>) and hold no mask.
DECOY = "q" * len(SMTP_PW)
SAME = {"Origin": BASE, "X-CSRF-Token": CSRF}


def probes(c):
    q = urllib.parse.quote(c, safe="")
    out = [
        ("GET /<guess>, no session", request("GET", "/" + q)),
        ("Host: <guess>", request("GET", "/", host=c)),
        ("POST /api/login as application/<guess>", request("POST", "/api/login", raw_body=b"{}",
                                                             headers={"Content-Type": "application/" + c})),
        ("POST /api/login with charset=<guess>", request("POST", "/api/login", raw_body=b"{}",
                                                          headers={"Content-Type": "application/json; charset=" + c})),
        ("POST /api/login, a key <guess> twice", request("POST", "/api/login", raw_body=('{"%s": 1, "%s": 2}' % (c, c)).encode(),
                                                          headers={"Content-Type": "application/json"})),
        ("POST /api/login, a field <guess>", request("POST", "/api/login", {c: "x"})),
        ("GET /api/queue?folder=<guess>", request("GET", "/api/queue?folder=" + q, cookie=COOKIE)),
        ("GET /api/queue?<guess>=1", request("GET", "/api/queue?" + q + "=1", cookie=COOKIE)),
        ("Save of a setting <guess>", request("POST", "/api/settings", {"changes": {c: "x"}}, cookie=COOKIE, headers=SAME)),
        ("Save of from = <guess>", request("POST", "/api/settings", {"changes": {"from": c}}, cookie=COOKIE, headers=SAME)),
        ("Save of port = <guess>", request("POST", "/api/settings", {"changes": {"port": c}}, cookie=COOKIE, headers=SAME)),
        ("Test of from = <guess>", request("POST", "/api/test", {"changes": {"from": c}}, cookie=COOKIE, headers=SAME)),
        ("Test to <guess>", request("POST", "/api/test", {"changes": {}, "to": c}, cookie=COOKIE, headers=SAME)),
    ]
    return [(what, st, text.replace(c, "<C>")) for what, (st, h, text) in out]


with_pw, with_decoy = probes(SMTP_PW), probes(DECOY)
def first_difference(x, y):
    i = next((k for k in range(min(len(x), len(y))) if x[k] != y[k]), min(len(x), len(y)))
    return "...%s | ...%s" % (x[max(0, i - 60):i + 80], y[max(0, i - 60):i + 80])


differ = ["%s: %d | %d %s" % (a[0], a[1], b[1], first_difference(a[2], b[2]))
          for a, b in zip(with_pw, with_decoy) if a[1:] != b[1:] or "********" in a[2]]
is_(differ, [], "%d requests quoting a guess: the same answer for the password and for a decoy, no mask in it"
    % len(with_pw))
ok(all(st in (400, 404, 415, 421, 422) or (what.startswith("Test") and st == 200) for what, st, _ in with_pw),
   "each was refused for what it holds", [(w, st) for w, st, _ in with_pw])

# ================================================================== security headers, secrets, paths

st, h, b = request("GET", "/api/settings", cookie=COOKIE)
d = jbody(b)
ok(st == 200 and "path" not in d and "admin_token_file" not in d.get("settings", {}) and d.get("admin_token_file_set") is True,
   "/api/settings: no file path, no token file; only that one is set", b[:300])
ok("password_command" not in d.get("settings", {}), "no command either")
# a broken settings file: the error names the line, not where the file is
good = open(CONF).read()
with open(CONF, "a") as f:
    f.write("bogus_key = 1\n")
st, h, b = request("GET", "/api/settings", cookie=COOKIE)
with open(CONF, "w") as f:
    f.write(good)
ok(st == 500 and "[settings file]" in b and "bogus_key" in b, "a broken settings file: the error says which line, "
   "not where the file lives", b[:300])
st, h, b = request("GET", "/api/status", cookie=COOKIE)
ok(st == 200 and "spool" not in jbody(b) and "path" not in jbody(b).get("settings", {}), "/api/status: no spool, no settings path")

need = {"content-security-policy": "script-src 'self'", "x-content-type-options": "nosniff",
        "x-frame-options": "DENY", "cache-control": "no-store", "referrer-policy": "no-referrer"}
missing = []
for what, status, hdrs, text in seen:
    if status == 0:
        continue          # raw exchanges (the HTTP layer's own answers carry them too, with default-src 'none')
    lines = [l.lower() for l in hdrs.splitlines()]
    for k, v in need.items():
        if not any(l.startswith(k + ": ") and (v.lower() in l or "default-src 'none'" in l) for l in lines):
            missing.append("%s (%d): %s" % (what, status, k))
is_(missing[:10], [], "every answer (%d) carries CSP, nosniff, X-Frame-Options, no-store, no-referrer" % len(seen))
csp = (request("GET", "/login")[1].get("content-security-policy") or [""])[0]
ok("'unsafe-inline'" not in csp and "require-trusted-types-for 'script'" in csp and "frame-ancestors 'none'" in csp,
   "the CSP: no unsafe-inline, Trusted Types required, no framing", csp)

leaks = []
for what, status, hdrs, text in seen:
    for secret in SECRETS + PATHS:
        if secret and (secret in text or secret in hdrs):
            leaks.append("%s (%d): %s" % (what, status, secret[:12]))
is_(leaks[:10], [], "no response held a password, the admin hash, the token, or the settings, spool or token "
    "file's path (%d responses)" % len(seen))

print("1..%d" % n)
sys.exit(1 if failed else 0)
