#!/usr/bin/python3
"""tests/console/admin3am.py — the console as an admin uses it at 3 a.m.: the
warnings of a Save and a Test (JSON and page), two tabs saving (409, nothing
put back silently), the service restarted under an open page, a wrong port, an
unknown server, a bad From.  HTTP checks with http.client, then headless
chromium through selenium.  Started by tests/integration/console-3am.sh; starts
and restarts `mailhook run` itself (its output appended to SVC_LOG).  Speaks TAP.

Usage: admin3am.py BASE_URL ADMIN_PW SMTP_PW CONF MAILHOOK SVC_LOG SMTP_PORT
"""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

BASE, ADMIN_PW, SMTP_PW, CONF, MAILHOOK, SVC_LOG, SMTP_PORT = sys.argv[1:8]
HOST, PORT = re.match(r"http://([\d.]+):(\d+)$", BASE).groups()
PORT = int(PORT)
SECRETS = CONF[:-len(".conf")] + ".secrets" if CONF.endswith(".conf") else CONF + ".secrets"

sys.dont_write_bytecode = True   # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import ok, done, wait_until, chromium_options, steady, until as taplib_until  # noqa: E402


def is_(got, want, desc):
    return ok(got == want, desc, "got:  %r\nwant: %r" % (got, want))


def conf_text():
    with open(CONF) as f:
        return f.read()


# ------------------------------------------------------------------ the service

svc = None


def up():
    try:
        socket.create_connection((HOST, PORT), 1).close()
        return True
    except OSError:
        return False



def svc_start():
    global svc
    env = dict(os.environ, MAILHOOK_LOG_LEVEL="info")
    svc = subprocess.Popen([MAILHOOK, "run"], stdout=open(SVC_LOG, "a"), stderr=subprocess.STDOUT, env=env)
    return wait_until(up, 30)


def svc_stop():
    global svc
    if svc:
        svc.terminate()
        rc = svc.wait(60)
        svc = None
        return rc
    return None


def request(method, path, body=None, cookie=None, csrf=None):
    c = http.client.HTTPConnection(HOST, PORT, timeout=60)
    h = {}
    if cookie:
        h["Cookie"] = cookie
    if csrf:
        h["X-CSRF-Token"] = csrf
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    text = r.read().decode("utf-8", "replace")
    cookies = r.getheader("Set-Cookie")
    c.close()
    return r.status, text, cookies


def jbody(text):
    try:
        return json.loads(text)
    except ValueError:
        return {}


def login():
    st, text, ck = request("POST", "/api/login", {"password": ADMIN_PW})
    m = re.match(r"mh_session=([0-9a-f]+);", ck or "")
    return "mh_session=" + (m.group(1) if m else ""), jbody(text).get("csrf", "")


def save(cookie, csrf, changes, version=None):
    body = {"changes": changes}
    if version is not None:
        body["version"] = version
    st, text, _ = request("POST", "/api/settings", body, cookie, csrf)
    return st, jbody(text), text


def settings(cookie):
    st, text, _ = request("GET", "/api/settings", cookie=cookie)
    return jbody(text)


def test(cookie, csrf, changes):
    st, text, _ = request("POST", "/api/test", {"changes": changes}, cookie, csrf)
    res = [json.loads(l) for l in text.splitlines() if l.strip()]
    return (res[-1].get("result") if res else None) or {}


ok(svc_start(), "the service serves the console")
try:
    # ============================================================== HTTP
    COOKIE, CSRF = login()
    ok(CSRF != "", "logged in")
    s0 = settings(COOKIE)
    ok(re.match(r"^[0-9a-f]{16}$", str(s0.get("version"))) is not None, "GET /api/settings carries a version", s0)

    # --- a Save that stops mail says so, in the JSON
    st, d, raw = save(COOKIE, CSRF, {"enabled": False}, s0.get("version"))
    is_(st, 200, "Save enabled=false: saved")
    w = d.get("warnings")
    ok(isinstance(w, list) and any("sendmail exits 69" in x and "queue waits" in x for x in w),
       "its warnings say new mail is refused (exit 69) and the queue waits", raw)
    ok(d.get("version") and d.get("version") != s0.get("version"), "the Save answers the new version", raw)
    is_(settings(COOKIE).get("version"), d.get("version"), "the version of the Save is the one the page loads next")
    st, d, raw = save(COOKIE, CSRF, {"enabled": True}, d.get("version"))
    is_((st, d.get("warnings")), (200, []), "enabled again: saved, no warning (an empty list)")
    st, d, raw = save(COOKIE, CSRF, {"server": ""}, d.get("version"))
    ok(st == 200 and any("server" in x and "exits 69" in x for x in d.get("warnings", [])),
       "Save server= (emptied): the warning says mail stops", raw)
    st, d, raw = save(COOKIE, CSRF, {"server": "127.0.0.1", "tls_verify": False}, d.get("version"))
    ok(st == 200 and any(x.startswith("tls_verify = false") for x in d.get("warnings", [])),
       "Save tls_verify=false without a pin: warned", raw)

    # --- a secrets file others may read is narrowed: the page is told, without the file's path
    st, d, raw = save(COOKIE, CSRF, {"password": SMTP_PW}, d.get("version"))
    is_(st, 200, "a password saved (the secrets file made)")
    os.chmod(SECRETS, 0o644)
    st, d, raw = save(COOKIE, CSRF, {"password": SMTP_PW + "x"}, d.get("version"))
    ok(st == 200 and any("readable by other users" in x for x in d.get("warnings", [])),
       "a secrets file open to others: its narrowing is a warning of the Save", raw)
    is_(os.stat(SECRETS).st_mode & 0o777, 0o640, "and the file is 0640 now")
    ok(SECRETS not in raw and os.path.dirname(CONF) not in raw, "the warning does not show the file's path", raw)
    ok(SMTP_PW not in raw, "nor the password", raw)
    st, d, raw = save(COOKIE, CSRF, {"password": "", "tls_verify": True}, d.get("version"))
    is_(st, 200, "password removed, tls_verify on again")

    # --- Test: its warnings in its result
    r = test(COOKIE, CSRF, {"tls_verify": False, "tls": "none", "tls_required": False})
    ok(any(x.startswith("tls_verify = false") for x in r.get("warnings", [])),
       "a Test with tls_verify=false: the warning is in its result", r)

    # --- two tabs: the second Save, made on values it loaded before the first, is refused
    a, b = settings(COOKIE), settings(COOKIE)
    st, d, raw = save(COOKIE, CSRF, {"from": "tab-a@example.com"}, a.get("version"))
    is_(st, 200, "tab A saves from=tab-a@example.com")
    st, d, raw = save(COOKIE, CSRF, {"from": "tab-b@example.com"}, b.get("version"))
    is_(st, 409, "tab B, on the values it loaded before: 409")
    ok(d.get("conflict") is True and "changed elsewhere" in d.get("error", ""), "which says the settings changed elsewhere", raw)
    is_(d.get("current", {}).get("settings", {}).get("from"), "tab-a@example.com", "and gives the saved values")
    ok("tab-a@example.com" in conf_text() and "tab-b" not in conf_text(), "nothing was written")
    subprocess.run([MAILHOOK, "update", "port=" + SMTP_PORT, "connect_timeout=3"], capture_output=True)
    st, d, raw = save(COOKIE, CSRF, {"from": "tab-b@example.com"}, d.get("current", {}).get("version"))
    is_(st, 409, "`mailhook update` on the server in between: 409 as well")
    st, d, raw = save(COOKIE, CSRF, {"from": "tab-b@example.com"}, d.get("current", {}).get("version"))
    ok(st == 200 and "tab-b@example.com" in conf_text(), "a Save on the current version is saved", raw)
    st, d, raw = save(COOKIE, CSRF, {"from": "tab-c@example.com"}, "0000000000000000")
    is_(st, 409, "a made-up version: 409")
    d2 = settings(COOKIE)

    # --- a Save while a message is in flight (the peer holds the final dot 2 s):
    # answered, and every message delivered once, none lost
    PEER = os.path.join(os.path.dirname(CONF), "peer")
    SPOOL = os.environ["MAILHOOK_SPOOL"]
    subprocess.run([MAILHOOK, "-e", 'local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL")) '
                    'for i = 1, 3 do assert(sp:enqueue("From: app@example.com\\r\\nTo: ok@example.net\\r\\n'
                    'Message-ID: <night" .. i .. "@test>\\r\\nSubject: night " .. i .. "\\r\\n\\r\\nbody\\r\\n", '
                    '{from = "app@example.com", to = {"ok@example.net"}})) end'], check=True)
    ok(wait_until(lambda: os.path.exists(os.path.join(PEER, "in-data")), 60), "a message is in flight (the peer holds its dot)")
    st, d, raw = save(COOKIE, CSRF, {"connect_timeout": "4s"}, d2.get("version"))
    is_(st, 200, "a Save while it is in flight: saved")

    def delivered():
        try:
            with open(os.path.join(PEER, "log")) as f:
                return [l.split()[3] for l in f if "@test>" in l and "night" in l]
        except OSError:
            return []
    pick = lambda: [n for n in os.listdir(os.path.join(SPOOL, "pickup")) if n.endswith(".eml")]
    ok(wait_until(lambda: len(delivered()) >= 3 and not pick(), 90), "then the 3 messages are delivered, the queue empty",
       (delivered(), pick()))
    is_(sorted(delivered()), ["<night1@test>", "<night2@test>", "<night3@test>"], "each once")
    d2 = settings(COOKIE)

    # ============================================================== browser
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    opts, profile = chromium_options()
    try:
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
    except WebDriverException as e:
        ok(False, "chromium starts headless", e)
        raise SystemExit
    driver.set_page_load_timeout(60)
    E = lambda i: driver.find_element(By.ID, i)

    def until(fn, desc, limit=40, show=None):
        # taplib's (its own copy waited through the same: a stale element, and the
        # element not there yet, which WebDriverWait always adds)
        return taplib_until(driver, fn, desc, limit, ignored=(StaleElementReferenceException,), show=show)

    def browser_login():
        until(lambda: driver.current_url.endswith("/login"), "on /login")
        E("password").clear()
        E("password").send_keys(ADMIN_PW)
        E("login-button").click()
        until(lambda: E("page-settings").is_displayed() and E("password-state").text != "", "logged in: the form is loaded")

    def set_field(key, value):
        E("f-" + key).clear()
        E("f-" + key).send_keys(value)

    def warnings(list_id):
        lst = E(list_id)
        return lst.text if lst.is_displayed() else ""

    try:
        driver.get(BASE + "/")
        browser_login()
        tab_a = driver.current_window_handle

        # --- Save enabled off: the warning on the page, as text
        E("f-enabled").click()
        E("update-button").click()
        until(lambda: E("update-result").text == "saved", "Update with Enable off: saved")
        until(lambda: "sendmail exits 69" in warnings("update-warnings"), "the page shows that mail stops (exit 69)")
        ok(driver.execute_script("return document.querySelectorAll('#update-warnings *:not(li)').length") == 0,
           "the warnings are text: no markup inside", driver.execute_script("return document.getElementById('update-warnings').outerHTML"))
        ok(E("update-warnings").value_of_css_property("color") == E("test-hint").value_of_css_property("color"),
           "in the page's warning colour")
        E("f-enabled").click()
        E("update-button").click()
        until(lambda: E("update-result").text == "saved" and not E("update-warnings").is_displayed(),
              "enabled again: saved, the warning gone")

        # --- Test with the certificate check off: its warning under the result
        E("f-tls_verify").click() if E("f-tls_verify").is_selected() else None
        E("test-button").click()
        until(lambda: "tls_verify = false" in warnings("test-warnings"), "Test with verify off: the warning is shown", 60)
        E("f-tls_verify").click()

        # --- a bad From, a wrong port, an unknown server
        set_field("from", "not an address")
        E("update-button").click()
        until(lambda: E("err-from").text != "", "Update with a bad From: the error is beside From")
        ok("not an address" not in conf_text(), "nothing saved")
        set_field("from", "tab-b@example.com")
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        closed.close()
        set_field("port", str(closed_port))
        E("test-button").click()
        until(lambda: "FAILED at stage connect" in E("test-result").text, "Test on a closed port: failed at connect", 60,
              lambda: E("test-panel").text)
        set_field("port", SMTP_PORT)
        set_field("server", "no-such-host.invalid")
        E("test-button").click()
        until(lambda: "FAILED at stage dns" in E("test-result").text, "Test on an unknown server: failed at DNS", 60,
              lambda: E("test-panel").text)
        set_field("server", "127.0.0.1")
        until(lambda: not E("unsaved").is_displayed(), "the form back to the saved values")

        # --- two tabs
        driver.switch_to.new_window("tab")
        tab_b = driver.current_window_handle
        driver.get(BASE + "/")
        until(lambda: E("page-settings").is_displayed() and E("f-from").get_attribute("value") != "", "tab B loaded")
        driver.switch_to.window(tab_a)
        set_field("from", "night-a@example.com")
        E("update-button").click()
        until(lambda: E("update-result").text == "saved", "tab A saves From")
        driver.switch_to.window(tab_b)
        set_field("port", "2525")
        E("update-button").click()
        until(lambda: "changed elsewhere" in E("update-result").text, "tab B's Save (of Port): refused, it says why")
        ok("from" in warnings("update-warnings"), "naming From as changed elsewhere", warnings("update-warnings"))
        c = conf_text()
        ok("night-a@example.com" in c and "2525" not in c, "nothing of tab B written, tab A's From kept", c)
        is_(E("f-from").get_attribute("value"), "night-a@example.com", "tab B now shows the From tab A saved")
        is_(E("f-port").get_attribute("value"), "2525", "and keeps the Port typed, marked unsaved")
        ok(E("unsaved").is_displayed(), "(unsaved)")
        E("update-button").click()
        until(lambda: E("update-result").text == "saved", "Update again: saved")
        c = conf_text()
        ok("night-a@example.com" in c and re.search(r"^port = 2525$", c, re.M), "both changes are in the file", c)
        set_field("from", "night-b@example.com")
        driver.switch_to.window(tab_a)
        set_field("from", "night-a2@example.com")
        E("update-button").click()
        until(lambda: "changed elsewhere" in E("update-result").text, "tab A, behind tab B's Save: refused too")
        is_(E("f-from").get_attribute("value"), "night-a2@example.com", "the From typed is kept, not replaced")
        is_(E("f-port").get_attribute("value"), "2525", "the Port tab B saved is shown")
        ok("night-a2" not in conf_text(), "nothing written")
        driver.switch_to.window(tab_b)
        driver.close()
        driver.switch_to.window(tab_a)
        E("update-button").click()
        until(lambda: E("update-result").text == "saved", "pressed again: saved")
        set_field("port", SMTP_PORT)
        E("update-button").click()
        until(lambda: E("update-result").text == "saved", "port back")

        # --- the service restarts under an open page with values typed
        set_field("server", "smtp.night.example")
        set_field("username", "night-user")
        E("password-replace").click()
        E("f-password").send_keys(SMTP_PW)
        before = conf_text()
        is_(svc_stop(), 0, "the service stops (SIGTERM)")
        E("update-button").click()
        until(lambda: "does not answer" in E("update-result").text, "Update with the service down: it says it does not answer")
        is_(E("f-server").get_attribute("value"), "smtp.night.example", "and the values typed stay in the form")
        ok(svc_start(), "the service starts again")
        E("update-button").click()
        until(lambda: driver.current_url.endswith("/login"), "Update with the session gone: to the login page")
        until(lambda: "log in again" in E("login-error").text and "unsaved changes are kept" in E("login-error").text,
              "which says the session ended: log in again, the changes are kept")
        is_(conf_text(), before, "nothing was saved")
        browser_login()
        is_(E("f-server").get_attribute("value"), "smtp.night.example", "after the login the Server typed is back")
        is_(E("f-username").get_attribute("value"), "night-user", "and the Username")
        ok(E("unsaved").is_displayed(), "marked unsaved")
        w = warnings("update-warnings")
        ok("server" in w and "username" in w and "password you typed was not kept" in w,
           "the page says which values came back, and that the password must be typed again", w)
        ok(SMTP_PW not in driver.execute_script("return JSON.stringify(sessionStorage)"), "no password in sessionStorage")
        driver.refresh()
        until(lambda: E("page-settings").is_displayed() and E("password-state").text != "", "reloaded")
        ok(not E("unsaved").is_displayed(), "the values come back once only (a reload shows the saved ones)")
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
finally:
    svc_stop()
done()
