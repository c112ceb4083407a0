# The console probed as an attacker holding a session would (a stolen cookie, a
# script injected into the page): the stored SMTP password must never reach a
# server it was not saved for, even when the move is made in several steps,
# each harmless-looking on its own (auth off, then the server changed, then
# auth on again and Test).  Before the fix the three requests sent the stored
# password to the attacker's server (AUTH PLAIN on its wire).  Also: the same
# with password_command, removing the password makes the move possible, and
# turning authentication off and on alone never asks for the password.  And the
# login form, submitted by a browser without JavaScript, never puts the password
# in the URL and logs in (POST /login as a form; a wrong one says so; headless
# chromium, as console-browser.sh drives it).  And the
# queue page shows a folded or RFC 2047 encoded subject whole and decoded.
# Real parts: aiosmtpd (AUTH over plain text) as the server the password was
# saved for, the scripted peer (tests/peers/fault.lua) as the attacker's
# server recording every byte it receives, `mailhook run` with its console.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

SMTP_PW='smtp-Probe-Pw-5521'
ADMIN_PW='admin-Probe-Pw-3307'
mkdir -p "$T/mail"
need_browser --no-selenium
start_smtpd S --auth "smtpuser:$SMTP_PW" --auth-in-clear --maildir "$T/mail" || exit 1
# the attacker's server: offers AUTH, records what it gets
printf '%s\n' 'send 220 evil.example ESMTP' 'read' 'send 250-evil.example\r\n250 AUTH PLAIN LOGIN' \
  'read' 'send 535 5.7.8 no' 'read' 'send 535 5.7.8 no' 'read' 'close' > "$T/evil.script"
start_fault EVIL "$T/evil.script" || exit 1
AP=$(free_port)
conf_for "$S" admin_listen="127.0.0.1:$AP" auth=true username=smtpuser password="$SMTP_PW" \
  allow_plaintext_auth=true retry_interval=1 2>/dev/null
echo "$ADMIN_PW" | "$MAILHOOK" update admin_password=- >/dev/null 2>&1
ok $? "admin password set"

svc_start
up() { "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1"; }
wait_for 10 up "$AP"; ok $? "the console listens"

"$PY" - "http://127.0.0.1:$AP" "$ADMIN_PW" "$SMTP_PW" "$S" "$EVIL" "$EVIL_OUT" "$EVIL_REC" "$CONF" \
  > "$T/checks.tap" 2> "$T/checks.err" <<'PY'
import base64, http.client, json, os, re, subprocess, sys, time
base, admin_pw, smtp_pw, good_port, evil_port, evil_out, evil_rec, conf = sys.argv[1:9]
host, port = re.match(r"http://([\d.]+):(\d+)$", base).groups()
port = int(port)
secrets = conf[:-5] + ".secrets"
import os, sys; sys.path.insert(0, os.environ["ROOT"] + "/tests/console")   # taplib: ok(), done()
from taplib import ok
import taplib
def req(method, path, body=None, cookie=None, csrf=None):
    c = http.client.HTTPConnection(host, port, timeout=60)
    h = {}
    if cookie: h["Cookie"] = cookie
    if csrf: h["X-CSRF-Token"] = csrf
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c.request(method, path, data, h)
    r = c.getresponse()
    text = r.read().decode("utf-8", "replace")
    c.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), text
def jb(t):
    try: return json.loads(t)
    except ValueError: return {}
def read(p):
    try: return open(p).read()
    except OSError: return ""
def settings():
    return dict(re.findall(r"^(\w+) = (.*)$", read(conf), re.M))
def evil_saw():
    """what the attacker's server received, and whether it holds the password
    in any form (plain, or base64 as AUTH PLAIN / LOGIN carry it)"""
    rec = b""
    for f in os.listdir(os.path.dirname(evil_rec)):
        p = os.path.join(os.path.dirname(evil_rec), f)
        if p.startswith(evil_rec):
            rec += open(p, "rb").read()
    forms = [smtp_pw.encode(), base64.b64encode(smtp_pw.encode()),
             base64.b64encode(b"\0smtpuser\0" + smtp_pw.encode())]
    return rec, any(f in rec for f in forms)
def connections():
    return read(evil_out).count("CONNECT ")

st, h, b = req("POST", "/api/login", {"password": admin_pw})
m = re.match(r"mh_session=([0-9a-f]{64});", h.get("set-cookie", ""))
ok(st == 200 and m, "log in", b)
ck, csrf = "mh_session=" + m.group(1), jb(b).get("csrf")
def update(changes):
    st, h, b = req("POST", "/api/settings", {"changes": changes}, ck, csrf)
    return st, jb(b)
def test(changes):
    st, h, b = req("POST", "/api/test", {"changes": changes}, ck, csrf)
    lines = [jb(l) for l in b.splitlines() if l.strip()]
    return st, (lines[-1].get("result", {}) if lines else {})

# ------------------------------------------------ the password moved in steps
st, r = test({})
ok(st == 200 and r.get("ok") is True, "Test against the server the password was saved for: passes", r)
c0 = connections()
st, r = update({"auth": False})
ok(st == 200, "step 1: authentication turned off (nothing secret travels: allowed)", r)
st, r = update({"server": "127.0.0.1", "port": evil_port})
ok(st == 422 and r.get("key") == "password" and "type the password again" in r.get("error", ""),
   "step 2: the server moved with the stored password kept: 422 beside the password, even with auth off", r)
s = settings()
ok(s.get("port") == good_port and s.get("server") == "127.0.0.1", "nothing saved: the port is still the server's",
   s)
st, r = update({"auth": True})
ok(st == 200, "step 3: authentication on again (the destination did not move: allowed)", r)
st, r = test({})
ok(st == 200 and r.get("ok") is True, "and Test goes to the server the password was saved for", r)
rec, leaked = evil_saw()
ok(not leaked and connections() == c0, "the attacker's server never got the password (nor a connection)", rec[:300])

# the same with a Test as the last step (nothing saved by it)
st, r = update({"auth": False})
st2, r2 = test({"auth": True, "port": evil_port})
ok(r2.get("ok") is False and r2.get("key") == "password", "a Test turning auth on towards another server: refused", r2)
st, r = update({"auth": True})
ok(st == 200, "auth back on")

# ------------------------------------------------ auth alone never asks for the password
# tls_required unset (its default follows auth): turning auth off and on moves
# no destination (before, turning it back on asked for the password)
p = subprocess.run([os.environ["MAILHOOK"], "update", "tls_required=", "tls=auto"], capture_output=True)
ok(p.returncode == 0, "tls_required unset, tls=auto (with mailhook update)", p.stderr)
st, r = update({"auth": False})
ok(st == 200, "authentication off: no password asked", r)
st, r = update({"auth": True})
ok(st == 200, "authentication on again: no password asked (the destination is the one it was saved for)", r)
p = subprocess.run([os.environ["MAILHOOK"], "update", "tls_required=false", "tls=none"], capture_output=True)

# ------------------------------------------------ password_command: the same rule
p = subprocess.run([os.environ["MAILHOOK"], "update", "password=", "password_command=printf " + smtp_pw, "auth=false"],
                   capture_output=True)
ok(p.returncode == 0, "the password from password_command, auth off (with mailhook update)", p.stderr)
st, r = update({"server": "127.0.0.1", "port": evil_port})
ok(st == 422 and r.get("key") == "port" and "mailhook update" in r.get("error", ""),
   "password_command kept, the server moved from the console: 422, naming mailhook update", r)
ok(settings().get("port") == good_port, "nothing saved")
p = subprocess.run([os.environ["MAILHOOK"], "update", "password_command=", "password=" + smtp_pw, "auth=true"],
                   capture_output=True)

# ------------------------------------------------ removing the password lets it move
st, r = update({"auth": False, "server": "127.0.0.1", "port": evil_port, "password": ""})
ok(st == 200, "the server moved with the password removed: saved", r)
ok(smtp_pw not in read(secrets) and smtp_pw not in read(conf), "and the password is gone from both files")
st, r = update({"auth": True, "username": "smtpuser"})
st2, r2 = test({})
rec, leaked = evil_saw()
ok(not leaked, "the attacker's server never got the password", rec[:300])
taplib.done()
PY
rc=$?
tap_merge "$T/checks.tap" "$rc" console-probe checks
[ "$rc" = 0 ] || sed 's/^/# /' "$T/checks.err" | tail -20
# ------------------------------------------------ the queue page's subjects, as a person reads them
# A long subject is folded at 78 columns (mailhook's own enqueue folds it) and a
# non-ASCII one is RFC 2047 encoded words: before, the queue showed the first
# line only, and =?UTF-8?B?...?= for "Voicemail from Jürgen".
LONG="Voicemail from Jürgen Müller <+49 30 1234567> — $(printf 'word%.0s ' $(seq 30))<script>alert(1)</script> end"
echo body | "$MAILHOOK" enqueue --to x@example.net --subject "$LONG" >/dev/null
ok $? "a message with a long non-ASCII subject queued (mailhook enqueue)"
printf 'From: a@example.com\r\nTo: x@example.net\r\nSubject: first part of a folded\r\n subject, second part\r\nX-Other: y\r\n\r\nbody\r\n' |
  "$MAILHOOK" sendmail -t
ok $? "a folded plain subject queued (mailhook sendmail)"
printf 'From: a@example.com\r\nTo: x@example.net\r\nSubject: =?ISO-8859-1?Q?Fax_f=FCr_M=FCller?= =?koi8-r?B?8NLJ18XU?=\r\n\r\nbody\r\n' |
  "$MAILHOOK" sendmail -t
ok $? "encoded words in two charsets queued"
"$PY" - "http://127.0.0.1:$AP" "$ADMIN_PW" "$LONG" > "$T/subj.tap" 2> "$T/subj.err" <<'PY'
import http.client, json, re, sys
base, pw, long_subject = sys.argv[1], sys.argv[2], sys.argv[3]
host, port = re.match(r"http://([\d.]+):(\d+)$", base).groups()
import os, sys; sys.path.insert(0, os.environ["ROOT"] + "/tests/console")   # taplib: ok(), done()
from taplib import ok
import taplib
def req(method, path, body=None, cookie=None):
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    h = {"Content-Type": "application/json"} if body is not None else {}
    if cookie: h["Cookie"] = cookie
    c.request(method, path, json.dumps(body).encode() if body is not None else None, h)
    r = c.getresponse()
    return r.status, r.getheader("set-cookie") or "", r.read()
st, sc, b = req("POST", "/api/login", {"password": pw})
ck = sc.split(";")[0]
subjects, raw = [], b""
for folder in ("pickup", "failed"):
    st, _, b = req("GET", "/api/queue?folder=" + folder, cookie=ck)
    raw += b
    subjects += [e.get("subject") for e in json.loads(b.decode("utf-8"))["entries"]]
ok(long_subject in subjects, "a folded, encoded subject is shown whole and decoded", subjects)
ok("first part of a folded subject, second part" in subjects, "a folded plain subject: its lines joined", subjects)
ok("Fax für Müller =?koi8-r?B?8NLJ18XU?=" in subjects,
   "ISO-8859-1 Q words decoded to UTF-8, a charset not known left as written", subjects)
ok(b"<script>" not in raw and b"\\u003cscript\\u003e" in raw, "the decoded <script> stays escaped in the JSON")
taplib.done()
PY
rc=$?
tap_merge "$T/subj.tap" "$rc" "the queue's subjects"
[ "$rc" = 0 ] || sed 's/^/# /' "$T/subj.err" | tail -20

# ------------------------------------------------ the login form submitted by the browser itself
# Enter pressed before login.js ran (it is deferred), JavaScript off, or a
# login.js a site broke: the browser submits the form on its own.  Before, that
# was GET /login?password=...: the password in the address bar and the history.
"$PY" - "http://127.0.0.1:$AP" "$ADMIN_PW" > "$T/nojs.tap" 2> "$T/nojs.err" <<'PY'
import sys, tempfile
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
base, pw = sys.argv[1], sys.argv[2]
import os, sys; sys.path.insert(0, os.environ["ROOT"] + "/tests/console")   # taplib: ok(), done()
from taplib import ok
import taplib
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--user-data-dir=" + tempfile.mkdtemp(prefix="mh-chromium-")):
    opts.add_argument(a)
opts.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
d = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
try:
    d.set_page_load_timeout(60)
    d.get(base + "/login")
    ok("JavaScript" in d.find_element(By.TAG_NAME, "body").text, "JavaScript off: the login page says it needs it")
    e = d.find_element(By.ID, "password")
    e.send_keys(pw)
    e.send_keys(Keys.ENTER)
    # the browser's own submission has gone somewhere: a new page (the old field is
    # gone from the document), which is the login page again (POST /login: 303 to it)
    from selenium.webdriver.support import expected_conditions as EC
    WebDriverWait(d, 30).until(EC.staleness_of(e))
    ok(pw not in d.current_url and "password" not in d.current_url,
       "the form submitted by the browser itself: no password in the URL", d.current_url)
    ok(d.current_url == base + "/" and d.get_cookie("mh_session"),
       "it logs in: on to the console with a session (it was a raw JSON 405, then the login page again)",
       d.current_url)
    d.delete_all_cookies()
    d.get(base + "/login")
    e = d.find_element(By.ID, "password")
    e.send_keys("not-" + pw)
    e.send_keys(Keys.ENTER)
    WebDriverWait(d, 30).until(EC.staleness_of(e))
    ok(d.current_url.startswith(base + "/login") and "wrong password" in d.find_element(By.ID, "login-error").text,
       "a wrong password: back on the login page, which says so without a script", d.current_url)
finally:
    d.quit()
taplib.done()
PY
rc=$?
tap_merge "$T/nojs.tap" "$rc" "the browser without JavaScript"
[ "$rc" = 0 ] || sed 's/^/# /' "$T/nojs.err" | tail -20

kill -0 "$SVC"; ok $? "the service is still running"
unlike "$(cat "$T/svc.log")" "$ADMIN_PW|$SMTP_PW" "no secret in the service's log"
svc_stop; is $? 0 "SIGTERM: exit 0"
done_testing
