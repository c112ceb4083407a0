# The console under attack (issue 15, the security review): request smuggling
# and malformed framing, oversized heads, pipelining and methods, DNS rebinding
# through Host, CSRF and same-origin on every endpoint that changes anything,
# brute force (per client, in all, concurrent checks bounded), session fixation,
# logout and password change ending sessions and their live streams, settings
# the console must not touch, the stored SMTP password kept from a server an
# attacker names, path traversal, slow clients while delivery goes on, and no
# secret or path in any response (tests/console/attack_checks.py).  Then, on a
# service whose sessions last seconds: idle and absolute expiry (streams end
# too), SIGHUP with and without a new admin password, and a console without an
# admin password saying how to set one.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

SMTP_PW='smtp-Attack-Pw-8812'
ADMIN_PW='admin-Attack-Pw-4410'
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
( umask 077; echo "$TOKEN" > "$T/token" )
mkdir -p "$T/mail"
# the real server: AUTH over plain text (allow_plaintext_auth), so the stored password is used
start_smtpd S --auth "smtpuser:$SMTP_PW" --auth-in-clear --maildir "$T/mail" || exit 1
# a server an attacker would name: it records what it gets
printf 'send 220 evil.example ESMTP\nread\nclose\n' > "$T/evil.script"
start_fault EVIL "$T/evil.script" || exit 1
AP=$(free_port)
conf_for "$S" admin_listen="127.0.0.1:$AP" admin_token_file="$T/token" auth=true username=smtpuser 2>/dev/null \
  password="$SMTP_PW" allow_plaintext_auth=true retry_interval=1
echo "$ADMIN_PW" | "$MAILHOOK" update admin_password=- >/dev/null
ok $? "admin password set"

# `mailhook run` with fields of the console module set first (a test hook: they are
# read once `run` starts): $1 Lua assignments to c, $2 the log
console_run() {
  MAILHOOK_LOG_LEVEL=info "$MAILHOOK" -e "
    local c = require 'mailhook.console'
    $1
    return require('mailhook.cli').main('run')" >>"$2" 2>&1 &
  SVC=$!
  on_exit "kill -9 $SVC"
}
# a failed login answered after 0.2 s, not 1 (the brute force below makes ~20), the
# request deadline 5 s, not 10 (the trickling clients wait for it), and the request rate
# out of the way (the checks make ~150 logged-in requests in a few seconds: on an idle
# machine they outran 20 a second and its burst of 100, and the last ones got 429; the
# rate limit has its own checks, tests/console/http_checks.py; the login limits stay)
console_run 'c.LOGIN_DELAY, c.LIMITS.req_timeout, c.LIMITS.rate, c.LIMITS.burst = 0.2, 5, 1000, 1000' "$T/svc.log"
up() { "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1"; }
wait_for 10 up "$AP"; ok $? "the console listens"

SVC_LOG=$T/svc.log "$PY" "$ROOT/tests/console/attack_checks.py" "http://127.0.0.1:$AP" "$ADMIN_PW" "$TOKEN" \
  "$SMTP_PW" "$SPOOL" "$CONF" "$T/token" "$MAILHOOK" "$T/mail" "$EVIL" "$EVIL_OUT" > "$T/checks.tap" 2> "$T/checks.err"
rc=$?
while IFS= read -r line; do
  case $line in
    "ok "*) ok 0 "${line#ok * - }" ;;
    "not ok "*) ok 1 "${line#not ok * - }" ;;
    "#"*) echo "$line" ;;
  esac
done < "$T/checks.tap"
[ "$rc" = 0 ] || { diag "attack_checks.py exit $rc"; sed 's/^/# /' "$T/checks.err" | tail -20; }
ok "$rc" "attack_checks.py ran to its end"
kill -0 "$SVC"; ok $? "the service is still running"
unlike "$(cat "$T/svc.log")" "$ADMIN_PW|$SMTP_PW|$TOKEN|second-Admin-Pw" "no secret in the service's log"
like "$(cat "$T/svc.log")" "logins from 127\.0\.0\.5 refused for [0-9]+ s" "the brute force is named in the log"
svc_stop; is $? 0 "SIGTERM: exit 0"

# ---------------------------------------------------------------- sessions that last seconds
# the same service, its console's session times shortened (a test hook: the
# module's fields, set before `run` starts)
ADMIN_PW=$(sed -n 's/^NEW_ADMIN_PW = "\(.*\)"$/\1/p' "$ROOT/tests/console/attack_checks.py")
console_run 'c.SESSION_IDLE, c.SESSION_MAX, c.LOGIN_DELAY = 3, 8, 0.2' "$T/svc2.log"
wait_for 10 up "$AP"; ok $? "a console whose sessions last 3 s unused, 8 s at most"
"$PY" - "http://127.0.0.1:$AP" "$ADMIN_PW" "$SVC" "$CONF" "$T/svc2.log" > "$T/short.tap" 2> "$T/short.err" <<'PY'
import http.client, json, os, re, signal, socket, subprocess, sys, threading, time
base, pw, pid, conf, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
host, port = re.match(r"http://([\d.]+):(\d+)$", base).groups()
port = int(port)
import os, sys; sys.path.insert(0, os.environ["ROOT"] + "/tests/console")   # taplib: ok(), done()
from taplib import ok
import taplib
def reloads():
    with open(log, errors="replace") as f:
        return f.read().count("SIGHUP: settings reloaded")
def hup():
    """SIGHUP, then waits for the service's "settings reloaded" line: the console's reload
    follows it in the same signal handler, with no wait between, so a request sent after
    the line is answered by the reloaded console."""
    n = reloads()
    os.kill(pid, signal.SIGHUP)
    ok(taplib.wait_until(lambda: reloads() > n, 15, 0.05), "SIGHUP: the service reloaded the settings")
def req(method, path, body=None, cookie=None, csrf=None):
    c = http.client.HTTPConnection(host, port, timeout=20)
    h = {}
    if cookie: h["Cookie"] = cookie
    if csrf: h["X-CSRF-Token"] = csrf
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c.request(method, path, data, h)
    r = c.getresponse()
    text = r.read().decode()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), text
def login():
    st, h, b = req("POST", "/api/login", {"password": pw})
    m = re.match(r"mh_session=([0-9a-f]{64});", h.get("set-cookie", ""))
    return st, "mh_session=" + m.group(1) if m else None
# three sessions at once (each used, or not, at once after its login): a unused, c held
# by a live stream, b used every second
st, a = login()
ok(st == 200, "log in")
ta = time.monotonic()
st, c = login()
stream = {}
def watch():
    """A live stream on c until it ends, saying logout (a stream is not a use of the session)."""
    s = socket.create_connection((host, port), timeout=15)
    s.sendall(("GET /api/events HTTP/1.1\r\nHost: %s:%d\r\nCookie: %s\r\n\r\n" % (host, port, c)).encode())
    buf, ts = b"", time.monotonic()
    while time.monotonic() - ts < 12:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
        if b"event: logout" in buf:
            break
    stream["buf"], stream["el"] = buf, time.monotonic() - ts
th = threading.Thread(target=watch)
th.start()
st, b = login()
t0 = time.monotonic()
alive, idle_checked = True, False
while time.monotonic() - t0 < 7:
    alive = alive and req("GET", "/api/session", cookie=b)[0] == 200
    if not idle_checked and time.monotonic() - ta >= 4:
        ok(req("GET", "/api/session", cookie=a)[0] == 401, "unused for longer than the idle time: logged out")
        idle_checked = True
    time.sleep(1)
ok(alive, "used every second: alive for 7 s")
time.sleep(max(0, 9 - (time.monotonic() - t0)))
ok(req("GET", "/api/session", cookie=b)[0] == 401, "but not past the absolute limit (8 s)")
th.join()
buf, el = stream["buf"], stream["el"]
ok(b"event: logout" in buf and el < 8, "a live stream ends when its session expires (%.1f s), saying so" % el, buf[-200:])
# SIGHUP with the same settings: sessions go on; with a new admin password: they end
st, d = login()
hup()
ok(req("GET", "/api/session", cookie=d)[0] == 200, "SIGHUP, same admin password: the session goes on")
ok(req("GET", "/", cookie=d)[0] == 200, "and the page is served")
p = subprocess.run([os.environ["MAILHOOK"], "update", "admin_password=-"], input=b"third-Admin-Pw-1\n",
                   stdout=subprocess.DEVNULL)
ok(p.returncode == 0, "a new admin password set with mailhook update")
hup()
ok(req("GET", "/api/session", cookie=d)[0] == 401, "SIGHUP: every session of the old password ends")
pw = "third-Admin-Pw-1"
ok(login()[0] == 200, "the new password logs in")
# no admin password at all: the login page says how to set one
subprocess.run([os.environ["MAILHOOK"], "update", "admin_password="], stdout=subprocess.DEVNULL)
hup()
st, h, b = req("GET", "/api/login")
j = json.loads(b)
ok(st == 200 and j.get("password_set") is False and "mailhook update admin_password=-" in j.get("message", ""),
   "without an admin password the login page is told how to set one", b)
st, h, b = req("POST", "/api/login", {"password": "anything"})
ok(st == 401 and "mailhook update admin_password=-" in b, "and a login attempt says the same", b)
taplib.done()
PY
rc=$?
while IFS= read -r line; do
  case $line in
    "ok "*) ok 0 "${line#ok * - }" ;;
    "not ok "*) ok 1 "${line#not ok * - }" ;;
    "#"*) echo "$line" ;;
  esac
done < "$T/short.tap"
[ "$rc" = 0 ] || { diag "short-session checks exit $rc"; sed 's/^/# /' "$T/short.err" | tail -20; }
ok "$rc" "short-session checks ran to their end"
svc_stop; is $? 0 "SIGTERM: exit 0"

done_testing
