#!/usr/bin/python3
"""tests/console/api_shapes.py — the console's JSON API as a script (curl, jq)
uses it, against a running `mailhook run` (tests/integration/console-api-shapes.sh):

 1. every list of every answer is a JSON array, [] when empty (an empty Lua
    table went out as {}: `jq '.[]'` and a page's `.forEach` fail on it);
 2. a Save's version check is one step with the write: a Save of a version
    checked before another writer (holding the settings folder's lock) changed
    the file is refused (409), and of two Saves of the same version exactly one
    wins;
 3. a Save without version is applied, and says the version it wrote (a script
    chains on it); a malformed version is a 400 naming it;
 4. malformed bodies (syntax, types, unknown fields, duplicate keys, invalid
    UTF-8, huge): a 4xx naming the field, never a 500, and the settings file
    untouched;
 5. GET /api/queue: every form the page and a script send works; a value a
    parameter does not take, an unknown or repeated parameter: 400 naming it,
    or what it takes for one it does not know (limit=abc, folder=../x fell back
    to the defaults); no error quotes what the request sent (console.lua);
 6. the HTTP layer's own errors (400, 411, 413, 431, 505...) to /api/ have
    the console's shape ({"ok": false, "error": ...}, application/json); to
    a page they stay text.
 7. the server outage (SPOOL/outage), as `mailhook queue` gives it: GET
    /api/queue and /api/status say since when, how long and why delivery is
    suspended (`outage`: {since, age, error}), and each waiting message the
    reason it waits on (`outage`, as `mailhook queue --json`); gone once the
    server answers again.
 In 4, the login, password, queue and logout routes too: an unknown or
 ill-typed field is a 400 naming it, as for a Save.

Usage: api_shapes.py BASE_URL TOKEN CONF SERVICE_PID PEER_PORT DEAD_PORT MAILHOOK
"""
import fcntl
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

BASE, TOKEN, CONF, SVC_PID, PEER_PORT, DEAD_PORT, MAILHOOK = sys.argv[1:8]
HOST, PORT = re.match(r"http://([\d.]+):(\d+)$", BASE).groups()
PORT = int(PORT)

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import ok, done, wait_until  # noqa: E402

AUTH = {"Authorization": "Bearer " + TOKEN}


def is_(got, want, desc, diag=None):
    return ok(got == want, desc, "got:  %r\nwant: %r\n%s" % (got, want, diag or ""))


def rate_limited(status, retry_after):
    """Whether an answer is the HTTP layer's rate limit (20 a second, bursts of
    100: this script sends more); then waits the Retry-After it asks for."""
    if status != 429 or retry_after != "1":
        return False
    time.sleep(1)
    return True


def request(method, path, body=None, raw=None, ctype="application/json"):
    """-> (status, text).  body: a value sent as JSON; raw: bytes as they are."""
    h = dict(AUTH)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None:
        h["Content-Type"] = ctype
    while True:
        c = http.client.HTTPConnection(HOST, PORT, timeout=60)
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode("utf-8", "replace")
        c.close()
        if not rate_limited(r.status, r.getheader("Retry-After")):
            return r.status, text


def get(path):
    st, text = request("GET", path)
    return st, json.loads(text), text


def save(body):
    st, text = request("POST", "/api/settings", body)
    try:
        return st, json.loads(text), text
    except ValueError:
        return st, None, text


def empty_objects(v, where="$"):
    """The paths of every {} in v: no answer of the console has an empty object
    that is not an empty list."""
    out = []
    if isinstance(v, dict):
        if not v:
            out.append(where)
        for k, x in v.items():
            out += empty_objects(x, where + "." + k)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += empty_objects(x, "%s[%d]" % (where, i))
    return out


def conf_text():
    with open(CONF) as f:
        return f.read()


def test_result(changes):
    """POST /api/test -> its last event's result (application/x-ndjson)."""
    st, text = request("POST", "/api/test", {"changes": changes})
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    return st, (events[-1].get("result") if events else None), events


# ------------------------------------------------------------ 1. [] not {}

answers = {}
for path in ("/api/settings", "/api/status", "/api/log", "/api/session", "/api/login",
             "/api/queue?folder=pickup", "/api/queue?folder=failed"):
    st, d, raw = get(path)
    answers["GET " + path] = (st, d, raw)
st, d, raw = save({"changes": {"helo_name": "shapes.example"}})
answers["POST /api/settings (no warnings)"] = (st, d, raw)
st, r, ev = test_result({})
answers["POST /api/test (a server offering no AUTH)"] = (st, {"events": ev}, json.dumps(ev))
ok(r is not None and r.get("ok") is True, "the Test against the real peer passes", json.dumps(ev)[-600:])
st, r, ev = test_result({"port": int(DEAD_PORT)})
answers["POST /api/test (nothing listening)"] = (st, {"events": ev}, json.dumps(ev))
ok(r is not None and r.get("failed_stage") == "connect", "the Test of a port nothing listens on fails at connect",
   json.dumps(ev)[-600:])
# server and from unset (a fresh install): a settings problem, as on the command line
# (`mailhook test`: it was "FAILED at stage connect"), both named, the server's field marked
st, r, ev = test_result({"server": "", "from": ""})
answers["POST /api/test (server and from unset)"] = (st, {"events": ev}, json.dumps(ev))
ok(r is not None and r.get("failed_stage") == "settings" and r.get("missing") == ["server", "from"]
   and r.get("key") == "server" and "mailhook update server=" in r.get("error", "")
   and all(s["state"] == "not reached" for s in r.get("stages", [])),
   "the Test with server and from unset fails at stage settings, naming both and the command",
   json.dumps(ev)[-600:])

for what, (st, d, raw) in answers.items():
    is_(st, 200, what + ": 200", raw[:300])
    is_(empty_objects(d), [], what + ": no {} anywhere (an empty list is [])", raw[:1500])

s = answers["GET /api/settings"][1]
v = answers["POST /api/settings (no warnings)"][1]
is_(v.get("warnings"), [], "a Save with nothing to warn about: warnings is []", answers["POST /api/settings (no warnings)"][2][-400:])
q = answers["GET /api/queue?folder=pickup"][1]
is_(q.get("entries"), [], "an empty queue: entries is []")
tr = answers["POST /api/test (a server offering no AUTH)"][1]["events"][-1]["result"]
is_(tr.get("warnings"), [], "a Test with nothing to warn about: warnings is []")
is_(tr.get("connection", {}).get("auth_offered"), [], "a server that offers no AUTH: auth_offered is []")
tr = answers["POST /api/test (nothing listening)"][1]["events"][-1]["result"]
is_(tr.get("connection", {}).get("capabilities"), [], "nothing connected: capabilities is []",
    json.dumps(tr)[:600])

# ------------------------------------------- 3. a Save without version; chaining

st, d, raw = save({"changes": {"retry_max": 3}})
is_(st, 200, "a Save without version (a script): applied", raw[:300])
ok(re.match(r"^[0-9a-f]{16}$", str(d.get("version"))) is not None, "and it answers the version it wrote", raw[:300])
is_(get("/api/settings")[1].get("version"), d.get("version"), "the version GET /api/settings gives next")
st, d2, raw = save({"changes": {"retry_max": 4}, "version": d.get("version")})
is_(st, 200, "a script chains: a Save on the version the last Save answered is saved", raw[:300])
st, d3, raw = save({"changes": {"retry_max": 5}, "version": d.get("version")})
is_(st, 409, "and one on the version before it: 409", raw[:300])
st, d4, raw = save({"changes": {"retry_max": 5}, "version": None})
is_(st, 200, "version null (a page that loaded no settings): as absent", raw[:300])
for bad in (5, "zz", "", [], True):
    before = conf_text()
    st, d5, raw = save({"changes": {"retry_max": 6}, "version": bad})
    ok(st == 400 and d5 and d5.get("key") == "version" and "16 hex digits" in d5.get("error", ""),
       "version %s: 400 naming version and what to send" % json.dumps(bad), "%d %s" % (st, raw[:300]))
    is_(conf_text(), before, "  and nothing written")

# ---------------------------------------- 2. the version check under the lock

conf_dir = os.path.dirname(os.path.abspath(CONF))
ino = os.stat(conf_dir).st_ino


def lock_waits(after=0):
    """The console's log lines after seq `after` that say a Save waits for the
    settings lock (the service tries it without blocking, and retries), and the
    last seq."""
    st, d, _ = get("/api/log")
    lines = d.get("lines", [])
    last = max([l["seq"] for l in lines] or [0])
    return sum(1 for l in lines if l["seq"] > after and "waits for the settings lock" in l["text"]), last


def service_waits_for_lock(n=1):
    """A predicate: whether n Saves have said they wait for the lock since now."""
    last = lock_waits()[1]
    return lambda: lock_waits(last)[0] >= n



def locked(fn):
    """fn() while holding the settings folder's lock (as `mailhook update` does)."""
    fd = os.open(conf_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fn()
    finally:
        os.close(fd)


def in_thread(body, out, i):
    out[i] = save(body)


# another writer holds the lock: a Save of the version the page loaded waits;
# the writer changes helo_name; the Save must then see the new version: 409
base = get("/api/settings")[1]["version"]
res = [None]
t = None


def other_writer():
    global t
    waiting = service_waits_for_lock()
    t = threading.Thread(target=in_thread, args=({"changes": {"retry_interval": 7}, "version": base}, res, 0))
    t.start()
    waited = wait_until(waiting)
    ok(waited, "the Save waits for the lock another writer holds")
    text = conf_text()
    new = re.sub(r"(?m)^helo_name\s*=.*$", "helo_name = elsewhere.example", text)
    tmp = CONF + ".other"
    with open(tmp, "w") as f:
        f.write(new)
    os.rename(tmp, CONF)


locked(other_writer)
t.join(60)
st, d, raw = res[0]
is_(st, 409, "a Save checked before another writer changed the file: 409, not a silent overwrite", raw[:400])
ok("helo_name = elsewhere.example" in conf_text(), "the other writer's change is kept")
ok(not re.search(r"(?m)^retry_interval\s*=\s*7\b", conf_text()), "and the refused Save wrote nothing", conf_text())
is_((d or {}).get("current", {}).get("settings", {}).get("helo_name"), "elsewhere.example",
    "the 409 shows the values saved meanwhile")

# two Saves of the same version at once: exactly one is saved, the other gets 409
base = get("/api/settings")[1]["version"]
res = [None, None]
threads = []


def two_saves():
    waiting = service_waits_for_lock(2)
    for i, val in enumerate((11, 12)):
        threads.append(threading.Thread(target=in_thread,
                                        args=({"changes": {"retry_interval": val}, "version": base}, res, i)))
        threads[-1].start()
    ok(wait_until(waiting), "two Saves wait for the lock another writer holds")


locked(two_saves)
for th in threads:
    th.join(60)
codes = sorted(r[0] for r in res)
is_(codes, [200, 409], "two Saves of the same version at once: one saved, the other 409",
    "\n".join(r[2][:200] for r in res))
winner = [11, 12][[r[0] for r in res].index(200)] if 200 in [r[0] for r in res] else None
ok(winner is not None and re.search(r"(?m)^retry_interval\s*=\s*%d\b" % winner, conf_text()),
   "the settings file holds the winner's value", conf_text())

# ------------------------------------------------------ 4. malformed bodies

CASES = [
    # (description, raw body or value, content type, status, text the error must hold, key)
    ("not JSON", b'{"changes": {"port": 25', "application/json", 400, "line 1", None),
    # (no answer quotes the request: a key, field, value or charset it named is not said back)
    ("a duplicate key", b'{"changes": {"port": 25, "port": 26}}', "application/json", 400, "line 1, column 32: duplicate key", None),
    ("invalid UTF-8", b'{"changes": {"helo_name": "\xff"}}', "application/json", 400, "invalid UTF-8", None),
    ("an array body", b'[]', "application/json", 400, "not an object", None),
    ("a null body", b'null', "application/json", 400, "not an object", None),
    ("changes an empty array", b'{"changes": []}', "application/json", 400, "changes: must be an object", "changes"),
    ("changes null", b'{"changes": null}', "application/json", 400, "(got null)", "changes"),
    ("a string body", b'"x"', "application/json", 400, "not an object", None),
    ("no changes", b'{}', "application/json", 400, "changes: missing", "changes"),
    ("changes an array", b'{"changes": [1]}', "application/json", 400, "changes: must be an object", "changes"),
    ("changes a string", b'{"changes": "port=25"}', "application/json", 400, "changes: must be an object", "changes"),
    ("changes empty", b'{"changes": {}}', "application/json", 400, "nothing to save", "changes"),
    ("a misspelt field", b'{"change": {"port": 25}}', "application/json", 400,
     "a field this request does not take (it takes changes, version)", None),
    ("an extra field", b'{"changes": {"port": 25}, "dry_run": true}', "application/json", 400,
     "a field this request does not take", None),
    ("a setting that does not exist", b'{"changes": {"prot": 25}}', "application/json", 422,
     "a key that is no setting (the console changes", None),
    ("a setting not in the form", b'{"changes": {"rules": "/etc/x"}}', "application/json", 422,
     "rules: not changed from the console", "rules"),
    ("a port as an array", b'{"changes": {"port": [25]}}', "application/json", 400, "port: must be a string, a number",
     "port"),
    ("a port as an object", b'{"changes": {"port": {"v": 25}}}', "application/json", 400, "got an object", "port"),
    ("a server as null", b'{"changes": {"server": null}}', "application/json", 400, "server: must be a string", "server"),
    ("a port as a word", b'{"changes": {"port": "twenty-five"}}', "application/json", 422, "port:", "port"),
    ("a port out of range", b'{"changes": {"port": 70000}}', "application/json", 422, "port:", "port"),
    ("a port with a fraction", b'{"changes": {"port": 25.5}}', "application/json", 422, "port:", "port"),
    ("a port past 64 bits", b'{"changes": {"port": 99999999999999999999999}}', "application/json", 422, "port:", "port"),
    ("a boolean as a number", b'{"changes": {"enabled": 1}}', "application/json", 422, "enabled:", "enabled"),
    ("a boolean as a word", b'{"changes": {"enabled": "maybe"}}', "application/json", 422, "enabled:", "enabled"),
    ("a control character", b'{"changes": {"helo_name": "a\\r\\nb"}}', "application/json", 422, "helo_name:",
     "helo_name"),
    ("a huge value", json.dumps({"changes": {"helo_name": "a" * 60000}}).encode(), "application/json", 422,
     "helo_name:", "helo_name"),
    ("text/plain", b'{"changes": {"port": 25}}', "text/plain", 415, "application/json", None),
    ("form-encoded", b'port=25', "application/x-www-form-urlencoded", 415, "application/json", None),
    # a charset other than UTF-8 was taken and the body read as UTF-8 anyway
    ("JSON in UTF-16", '{"changes": {"port": 25}}'.encode("utf-16"), "application/json; charset=utf-16", 415,
     "that charset is not taken", None),
    ("JSON in UTF-16 (quoted, upper case)", '{"changes": {"port": 25}}'.encode("utf-16-le"),
     'application/json; Charset="UTF-16LE"', 415, "that charset is not taken", None),
    ("JSON as latin1", b'{"changes": {"port": 25}}', "application/json;charset=iso-8859-1", 415,
     "that charset is not taken", None),
    ("charset=UTF-8 (taken)", b'{"changes": {"port": 70000}}', "application/json; charset=UTF-8", 422, "port:", "port"),
    ("charset=\"us-ascii\" (taken)", b'{"changes": {"port": 70000}}', 'application/json; charset="us-ascii"', 422,
     "port:", "port"),
]
for desc, raw, ctype, want, text, key in CASES:
    before = conf_text()
    st, body = request("POST", "/api/settings", raw=raw, ctype=ctype)
    try:
        d = json.loads(body)
    except ValueError:
        d = {}
    ok(st == want and text in str(d.get("error")) and (key is None or d.get("key") == key),
       "%s: %d, naming %s" % (desc, want, key or repr(text)), "%d %s" % (st, body[:400]))
    is_(conf_text(), before, "  %s: nothing written" % desc)

# a Test: the same for its fields (a misspelt "to" ran a Test that sent nothing, and passed)
for desc, body, want, key in (("a misspelt to", {"changes": {}, "To": "x@example.net"}, 400, None),
                              ("to a number", {"changes": {}, "to": 5}, 400, "test_to"),
                              ("to an array", {"changes": {}, "to": ["x@example.net"]}, 400, "test_to"),
                              ("a port as an array", {"changes": {"port": [25]}}, 400, "port")):
    st, text = request("POST", "/api/test", body)
    try:
        d = json.loads(text)
    except ValueError:
        d = {}
    ok(st == want and d.get("key") == key, "a Test with %s: %d naming %s" % (desc, want, key), "%d %s" % (st, text[:300]))

# every other POST route: the same one check of its fields (a misspelt or
# ill-typed field was ignored: a login with "pasword" was a wrong password, an
# id as a list "not a message id" without saying which field)
ID = "0123456789abcdef"
FIELD_CASES = [
    # (route, body, key, text the error holds)
    ("/api/login", {"pasword": "x"}, None, "a field this request does not take (it takes password)"),
    ("/api/login", {"password": "x", "remember": True}, None, "a field this request does not take"),
    ("/api/login", {}, "password", "password: missing"),
    ("/api/login", {"password": 12345678}, "password", "password: must be a string (got a number)"),
    ("/api/login", {"password": ["x"]}, "password", "password: must be a string (got an array)"),
    ("/api/password", {"current": "x", "new": "long-enough-1", "confirm": "long-enough-1"}, None,
     "a field this request does not take (it takes current, new)"),
    ("/api/password", {"current": 5, "new": "long-enough-1"}, "current", "current: must be a string (got a number)"),
    ("/api/password", {"current": "x", "new": None}, "new", "new: must be a string (got null)"),
    ("/api/queue/retry", {"id": [ID]}, "id", "id: must be a string (got an array)"),
    ("/api/queue/retry", {"ids": ID}, None, "a field this request does not take (it takes id)"),
    ("/api/queue/retry", {}, "id", "id: missing"),
    ("/api/queue/retry", {"id": "../../etc/passwd"}, "id", "id: not a message id"),
    ("/api/queue/remove", {"id": 1}, "id", "id: must be a string (got a number)"),
    ("/api/queue/remove", {"id": ID, "force": True}, None, "a field this request does not take"),
    ("/api/queue/flush", {"folder": "failed"}, None, "a field this request does not take (it takes none: send {})"),
    ("/api/logout", {"all": True}, None, "a field this request does not take"),
]
for path, body, key, text in FIELD_CASES:
    st, raw = request("POST", path, body)
    try:
        d = json.loads(raw)
    except ValueError:
        d = {}
    ok(st == 400 and d.get("key") == key and text in str(d.get("error")),
       "POST %s %s: 400 naming %s" % (path, json.dumps(body), key), "%d %s" % (st, raw[:300]))
st, raw = request("POST", "/api/password", {"current": "x", "new": "long-enough-1", "confirm": 12345678})
ok("12345678" not in raw and "long-enough-1" not in raw, "  an error never shows a field's value", raw[:300])
st, d, raw = get("/api/session")
is_(st, 200, "  and the refused logout left the token working")

before = conf_text()
st, body = request("POST", "/api/settings", raw=b'{"changes": {"helo_name": "' + b"a" * 70000 + b'"}}')
is_(st, 413, "a body over the limit: 413", body[:200])
is_(conf_text(), before, "  nothing written")

# what scripts send as strings is what `mailhook update` takes: accepted, stored typed
st, d, raw = save({"changes": {"port": PEER_PORT, "enabled": "true"}})
ok(st == 200 and d["settings"]["port"] == int(PEER_PORT) and d["settings"]["enabled"] is True,
   "a port and a boolean as strings (\"%s\", \"true\"): saved as a number and a boolean" % PEER_PORT, raw[:400])

# a session cookie of blanks (no login needed to send one): trimmed in one pass;
# the lazy trim was quadratic, 0.2 s of the service's loop a request
cookie = "mh_session=x" + " " * 7000 + "y"
t0 = time.monotonic()
for _ in range(10):
    c = http.client.HTTPConnection(HOST, PORT, timeout=60)
    c.request("GET", "/api/settings", headers={"Cookie": cookie})
    r = c.getresponse()
    r.read()
    c.close()
dt = time.monotonic() - t0
ok(r.status == 401 and dt < 1.0, "10 requests with a 7 KB blank cookie: 401, answered in %.2f s" % dt)

# ------------------------------------------- 5. GET /api/queue's parameters

# what the page sends (console.js queueQuery: URLSearchParams {folder, limit: '50'},
# after, or before with last=1, or last=1), and what a script may
GOOD = ["", "folder=pickup", "folder=failed", "folder=pickup&limit=50", "folder=failed&limit=50&last=1",
        "folder=pickup&limit=50&after=" + ID, "folder=pickup&limit=50&before=" + ID + "&last=1",
        "limit=1", "limit=200", "limit=050", "last=0", "after=", "after=&before=" + ID]
for q in GOOD:
    st, raw = request("GET", "/api/queue?" + q)
    try:
        d = json.loads(raw)
    except ValueError:
        d = {}
    ok(st == 200 and d.get("ok") is True and d.get("folder") == ("failed" if "failed" in q else "pickup"),
       "GET /api/queue?%s: 200" % q, "%d %s" % (st, raw[:300]))
BAD = [
    # (query, key, text the error holds)
    ("limit=abc", "limit", 'limit: must be a whole number 1-200 (50 when left out)'),
    ("limit=1.5", "limit", "whole number 1-200"),
    ("limit=-1", "limit", "whole number 1-200"),
    ("limit=10^9", "limit", "whole number 1-200"),
    ("limit=1000000000", "limit", "whole number 1-200"),
    ("limit=99999999999999999999999", "limit", "whole number 1-200"),
    ("limit=0", "limit", "whole number 1-200"),
    ("limit=201", "limit", "whole number 1-200"),
    ("limit=0x10", "limit", "whole number 1-200"),
    ("limit=", "limit", "whole number 1-200"),
    ("limit=%2050", "limit", "whole number 1-200"),
    ("folder=../x", "folder", 'folder: must be pickup or failed (pickup when left out)'),
    ("folder=Failed", "folder", "pickup or failed"),
    ("folder=", "folder", "pickup or failed"),
    ("folder=failed%00", "folder", "pickup or failed"),
    ("last=true", "last", "last: must be 1 (the last page) or 0"),
    ("after=../../etc", "after", "after: must be a message id"),
    ("before=0123456789ABCDEF", "before", "before: must be a message id"),
    ("folder=pickup&page=2", None, "a parameter /api/queue does not take (it takes after, before, folder, last, limit)"),
    ("Folder=failed", None, "a parameter /api/queue does not take"),
    ("folder=pickup&folder=failed", "folder", "folder: given twice"),
    ("after=%s&before=%s" % (ID, ID), "before", "not both"),
    ("limit=" + "9" * 5000, "limit", "limit: must be a whole number 1-200"),
]
for q, key, text in BAD:
    st, raw = request("GET", "/api/queue?" + q)
    try:
        d = json.loads(raw)
    except ValueError:
        d = {}
    ok(st == 400 and d.get("key") == key and text in str(d.get("error")) and len(raw) < 400,
       "GET /api/queue?%s: 400 naming %s and what it takes" % (q[:60], key), "%d %s" % (st, raw[:300]))

# ------------------------------------- 6. the HTTP layer's own errors to /api/

H = ("Host: %s:%d\r\n" % (HOST, PORT)).encode()


def exchange(data):
    """data sent as it is on a new connection -> (status, headers {lower: value}, body), read to the
    connection's end (the HTTP layer closes it after its own answers)."""
    while True:
        st, hdrs, body = exchange_once(data)
        if not rate_limited(st, hdrs.get("retry-after")):
            return st, hdrs, body


def exchange_once(data):
    sk = socket.create_connection((HOST, PORT), timeout=30)
    sk.sendall(data)
    out = b""
    try:
        while True:
            b = sk.recv(65536)
            if not b:
                break
            out += b
    except (ConnectionResetError, socket.timeout):
        pass
    sk.close()
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.1 (\d+)", lines[0])
    hdrs = dict((k.strip().lower(), v.strip()) for k, _, v in (l.partition(":") for l in lines[1:]))
    hdrs[":status-line"] = lines[0]
    return (int(m.group(1)) if m else 0), hdrs, body.decode("utf-8", "replace")


def json_error_of(hdrs, body):
    """The error of an answer shaped as the console's ({"ok": false, "error": "..."}), or None."""
    if hdrs.get("content-type") != "application/json":
        return None
    try:
        d = json.loads(body)
    except ValueError:
        return None
    return d.get("error") if d.get("ok") is False and isinstance(d.get("error"), str) and len(d) == 2 else None


POST = b"POST /api/settings HTTP/1.1\r\n" + H + b"Content-Type: application/json\r\n"
LAYER = [
    # (description, request bytes, status, text the error holds): each status says what was wrong in its own
    # words ("bad request: " began every one of them, a 413 "bad request: request body too large")
    ("a body over max_body", POST + b"Content-Length: 999999\r\n\r\n", 413,
     "request body too large: 999999 bytes, the limit is 65536"),
    ("a chunked body", POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411,
     "length required: a chunked request body is not taken, send Content-Length"),
    ("another Transfer-Encoding", POST + b"Transfer-Encoding: gzip\r\n\r\n", 501,
     "not implemented: Transfer-Encoding 'gzip'"),
    ("a head over max_head", b"GET /api/status HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n", 431,
     "request head too large: over 8192 bytes"),
    ("a URL over max_head (no path parsed)", b"GET /api/queue?" + b"a" * 20000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414,
     "URI too long: the request line is over 8192 bytes"),
    ("a malformed request line", b"GET /api/status HTTP/1.1 x\r\n" + H + b"\r\n", 400,
     "bad request: malformed request line"),
    ("an absolute-form target, HTTP/2.0", b"GET http://%s:%d/api/status HTTP/2.0\r\n\r\n" % (HOST.encode(), PORT), 505,
     "HTTP version not supported: HTTP/2.0 (HTTP/1.0 and HTTP/1.1 only)"),
    ("a bare LF", b"GET /api/status HTTP/1.1\n" + H + b"\r\n", 400, "bad request: a bare LF"),
    ("two Content-Length", POST + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400,
     "bad request: more than one Content-Length"),
    ("an Expect it does not know", POST + b"Content-Length: 2\r\nExpect: magic\r\n\r\n{}", 417,
     "expectation failed: Expect 'magic' (only 100-continue is understood)"),
]
REASON = {400: "Bad Request", 411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
          417: "Expectation Failed",
          431: "Request Header Fields Too Large", 501: "Not Implemented", 505: "HTTP Version Not Supported"}
for desc, data, want, text in LAYER:
    st, hdrs, body = exchange(data)
    err = json_error_of(hdrs, body)
    is_(hdrs.get(":status-line"), "HTTP/1.1 %d %s" % (want, REASON[want]), "%s: its status line" % desc)
    ok(st == want and err is not None and err.startswith(text),
       "/api/ and %s: %d as JSON {\"ok\": false, \"error\": \"%s...\"} (application/json), as the console's own errors"
       % (desc, want, text), "%d %r %r" % (st, hdrs.get("content-type"), body[:300]))
    ok(hdrs.get("x-content-type-options") == "nosniff" and "no-store" in hdrs.get("cache-control", ""),
       "  with nosniff and no-store")
# other paths keep the text the HTTP layer always answered
st, hdrs, body = exchange(b"GET /login HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n")
ok(st == 431 and hdrs.get("content-type", "").startswith("text/plain") and body.startswith("request head too large: over "),
   "a page (/login), a head over max_head: 431 as text", "%d %r %r" % (st, hdrs.get("content-type"), body[:200]))
# a HEAD gets the head only, JSON or not
st, hdrs, body = exchange(b"HEAD /api/status HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n")
ok(st == 431 and hdrs.get("content-type") == "application/json" and int(hdrs.get("content-length", -1)) > 0,
   "HEAD /api/status, a head over max_head: 431, application/json, its length", "%d %r" % (st, hdrs))

# ------------------------------------------- 7. the server outage
st, q, raw = get("/api/queue")
ok(st == 200 and "outage" not in q, "/api/queue: no outage while the server answers", raw[:300])
st, d, raw = save({"changes": {"port": int(DEAD_PORT)}})
is_(st, 200, "the server's port set to one nothing listens on", raw[:300])
for i in (1, 2):
    subprocess.run([MAILHOOK, "enqueue", "--to", "down@example.net", "--subject", "outage %d" % i], input=b"x\n",
                   check=True, stdout=subprocess.DEVNULL)
seen = {}


def outage_in(path):
    st, d, raw = get(path)
    seen[path] = (d, raw)
    o = d.get("outage")
    return isinstance(o, dict) and (path != "/api/queue" or len(d.get("entries", [])) >= 2)


ok(wait_until(lambda: outage_in("/api/queue"), 30), "/api/queue: the outage, once the server cannot be reached",
   seen.get("/api/queue", (0, ""))[1][:400])
q = seen["/api/queue"][0]
o = q.get("outage") or {}
ok(isinstance(o.get("since"), int) and isinstance(o.get("age"), int) and 0 <= o["age"] < 120
   and isinstance(o.get("error"), str) and o["error"].startswith("connect: ") and "refused" in o["error"],
   "  {since, age, error}: since when, how long, and why with its stage ('connect: ... refused')", o)
ok(all(k in q for k in ("ok", "folder", "total", "first", "last", "entries", "drop_ins", "counts")),
   "  the other fields stay", sorted(q))
ents = [e for e in q.get("entries", []) if e.get("state") != "failed"]
ok(len(ents) >= 2 and all(e.get("outage") == o.get("error") for e in ents),
   "  each waiting message: the outage it waits on (`outage`, as mailhook queue --json)",
   [(e.get("id"), e.get("last_reply"), e.get("outage")) for e in ents])
ok(wait_until(lambda: outage_in("/api/status"), 10), "/api/status: the outage too",
   seen.get("/api/status", (0, ""))[1][:400])
so = seen["/api/status"][0].get("outage") or {}
ok(so.get("since") == o.get("since") and so.get("error") == o.get("error") and isinstance(so.get("age"), int),
   "  the same since and reason, with its age", (so, o))
st, d, raw = save({"changes": {"port": int(PEER_PORT)}})
is_(st, 200, "the server's port set back", raw[:300])


def over():
    st, d, raw = get("/api/queue")
    seen["over"] = raw
    return st == 200 and "outage" not in d and d.get("total") == 0


ok(wait_until(over, 40), "the server answers again: both delivered, no outage in /api/queue", seen.get("over", "")[:400])
ok(wait_until(lambda: "outage" not in get("/api/status")[1], 10), "nor in /api/status")

st, d, raw = get("/api/status")
is_(st, 200, "the service still answers")
done()
