#!/usr/bin/python3
"""tests/console/browser.py — the console in a real browser: Debian's chromium,
headless, driven by python3-selenium through chromium-driver.  Started by
tests/integration/console-browser.sh, which runs the service and aiosmtpd
(STARTTLS + AUTH).  Speaks TAP; saves a screenshot of each page into SHOTS.

Usage: browser.py BASE_URL ADMIN_PW SMTP_PORT SMTP_PW CONF SHOTS MAILHOOK MAILDIR
"""
import os
import shutil
import subprocess
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE, ADMIN_PW, SMTP_PORT, SMTP_PW, CONF, SHOTS, MAILHOOK, MAILDIR = sys.argv[1:9]
NEW_ADMIN_PW = "new-Browser-Admin-Pw-31"

sys.dont_write_bytecode = True   # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import ok, done, chromium_options, until as taplib_until  # noqa: E402  (one TAP writer for both checkers)


opts, profile = chromium_options()
driver = None
try:
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
except WebDriverException as e:
    ok(False, "chromium starts headless", e)
    done()
ok(True, "chromium starts headless")
driver.set_page_load_timeout(60)
wait = WebDriverWait(driver, 30)
E = lambda i: driver.find_element(By.ID, i)


def shot(name):
    path = os.path.join(SHOTS, "console-%s.png" % name)
    ok(driver.save_screenshot(path) and os.path.getsize(path) > 1000, "screenshot " + path)


def until(fn, desc, limit=30):
    # (a page that re-renders between two looks is looked at again, not a failure)
    return taplib_until(driver, fn, desc, limit, ignored=(StaleElementReferenceException,))


def stage_state(name):
    return E("stage-" + name).get_attribute("data-state")


# The secrets file beside CONF (settings.lua's secrets_path: NAME.conf -> NAME.secrets)
SECRETS = CONF[:-len(".conf")] + ".secrets" if CONF.endswith(".conf") else CONF + ".secrets"
# the settings file's mode as the admin made it: a Save keeps it (docs/settings.md)
CONF_MODE = os.stat(CONF).st_mode & 0o777


def secrets_text():
    try:
        with open(SECRETS) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def conf_text():
    with open(CONF) as f:
        return f.read()


try:
    # ------------------------------------------------------------ login
    driver.get(BASE + "/")
    until(lambda: driver.current_url.endswith("/login"), "without a session the browser lands on /login")
    shot("login")
    E("password").send_keys("wrong password")
    E("login-button").click()
    until(lambda: "wrong password" in E("login-error").text, "a wrong admin password is said so")
    E("password").clear()
    E("password").send_keys(ADMIN_PW)
    E("login-button").click()
    until(lambda: driver.current_url.rstrip("/").endswith(BASE.split("//")[1]) or
          driver.current_url.endswith("/#settings") or driver.current_url.endswith("/"), "logged in: the console")
    until(lambda: E("page-settings").is_displayed(), "the Settings page is shown")
    cookies = driver.get_cookies()
    sess = [c for c in cookies if c["name"] == "mh_session"]
    ok(sess and sess[0]["httpOnly"] and sess[0].get("sameSite") == "Strict", "the session cookie is HttpOnly, SameSite=Strict", cookies)
    ok(driver.execute_script("return document.cookie") == "", "no script can read it")

    # ------------------------------------------------------------ fill the form
    until(lambda: E("password-state").text != "", "the form is loaded")
    ok("no password is set" in E("password-state").text, "the page says no password is set yet", E("password-state").text)
    if not E("f-enabled").is_selected():
        E("f-enabled").click()
    for key, value in (("from", "pbx@example.com"), ("server", "localhost"), ("port", SMTP_PORT),
                       ("username", "smtpuser")):
        E("f-" + key).clear()
        E("f-" + key).send_keys(value)
    Select(E("f-tls")).select_by_value("starttls")
    if not E("f-tls_verify").is_selected():
        E("f-tls_verify").click()
    if not E("f-auth").is_selected():
        E("f-auth").click()
    E("password-replace").click()
    E("f-password").send_keys(SMTP_PW)
    until(lambda: E("unsaved").is_displayed(), "unsaved changes are announced")
    changed = driver.find_elements(By.CSS_SELECTOR, ".row.changed")
    ok(len(changed) >= 7, "each changed field is marked (%d)" % len(changed))

    # ------------------------------------------------------------ Test: each stage as it passes
    E("f-test_to").send_keys("you@example.net")
    E("test-button").click()
    # the server holds the final dot 3 s: the stages before it show while it waits
    until(lambda: stage_state("sender") == "ok" and stage_state("recipient") == "pending",
          "Test: DNS, connect, TLS, AUTH and From are shown passed while the message is still on its way")
    ok(all(stage_state(s) == "ok" for s in ("dns", "connect", "tls", "auth")),
       "DNS, connect, TLS, AUTH: passed", [stage_state(s) for s in ("dns", "connect", "tls", "auth")])
    ok("testing" in E("test-result").text, "the result is not in yet", E("test-result").text)
    shot("test-running")
    until(lambda: "OK" in E("test-result").text, "then the result: OK", 60)
    ok(stage_state("recipient") == "ok", "the test message stage passed")
    info = E("test-info").text
    ok("TLSv1" in info and "STARTTLS" in E("stage-tls").text + info.upper(), "what was negotiated is shown", info)
    ok("CN=localhost" in info, "with the server's certificate", info)
    ok("localhost, 127.0.0.1" in info, "and the names it holds (what the host name is checked against)", info)
    ok("PLAIN" in info or "LOGIN" in info, "and the AUTH mechanism", info)
    ok("sent to you@example.net: 250" in info, "and the server's reply to the test message", info)
    shot("test")
    ok(SMTP_PW not in driver.page_source, "the password typed is not echoed anywhere in the page")
    ok("pbx@example.com" not in conf_text(), "Test did not save anything")

    # ------------------------------------------------------------ Update: saved, checked in the file
    E("f-port").clear()
    E("f-port").send_keys("99999")
    E("update-button").click()
    until(lambda: "1-65535" in E("err-port").text, "Update with a bad port: the error is beside the port field")
    ok("99999" not in conf_text(), "nothing was written")
    shot("settings-error")
    E("f-port").clear()
    E("f-port").send_keys(SMTP_PORT)
    E("update-button").click()
    until(lambda: E("update-result").text == "saved", "Update: saved")
    ok("Email From address" in E("update-saved").text and "Server" in E("update-saved").text,
       "Update names what it saved, by the fields' labels", E("update-saved").text)
    text = conf_text()
    for line in ("enabled = true", "from = pbx@example.com", "server = localhost", "port = " + SMTP_PORT,
                 "tls = starttls", "auth = true", "username = smtpuser"):
        ok(("\n" + line + "\n") in ("\n" + text), "the settings file has '%s'" % line, text)
    # the secrets live apart (docs/settings.md, "Secrets"): NAME.secrets, 0600; the settings keep their mode
    with open(SECRETS) as f:
        stext = f.read()
    ok(SMTP_PW in stext, "and the new password, in the secrets file (the one place it lives)")
    ok(SMTP_PW not in text, "not in the settings file")
    ok("tls_verify = false" not in text, "verification stays on (the default, so not written)")
    ok(oct(os.stat(SECRETS).st_mode & 0o777) == "0o600", "the secrets file is mode 0600")
    ok(os.stat(CONF).st_mode & 0o777 == CONF_MODE, "the settings file keeps its mode (%o)" % CONF_MODE)
    until(lambda: not E("unsaved").is_displayed(), "no unsaved changes any more")
    until(lambda: "a password is set" in E("password-state").text, "the page says a password is set (never shows it)")
    ok(E("f-password").get_attribute("value") == "", "the password field is empty")
    shot("settings")

    # ------------------------------------------------------------ the stored password stays with its server
    E("f-port").clear()
    E("f-port").send_keys("2525")
    until(lambda: "type the password again" in E("password-hint").text,
          "changing the port says the password must be typed again, before Update")
    E("f-port").send_keys(Keys.ENTER)
    until(lambda: "type the password again" in E("err-password").text, "Update (Enter) without it: refused, said "
          "beside the password")
    ok(E("f-password").is_displayed() and driver.execute_script("return document.activeElement.id") == "f-password",
       "the password field is opened and focused")
    ok("port = 2525" not in conf_text(), "nothing written")
    E("password-keep").click()
    E("f-port").clear()
    E("f-port").send_keys(SMTP_PORT)
    until(lambda: E("password-hint").text == "" and not E("unsaved").is_displayed(), "the port back: nothing to save")

    # ------------------------------------------------------------ leaving with unsaved changes asks first
    E("f-from").send_keys("x")
    # (WebDriver accepts a beforeunload prompt by itself: the page's answer to the event is what is checked)
    asked = driver.execute_script("const e = new Event('beforeunload', {cancelable: true});"
                                  "window.dispatchEvent(e); return e.defaultPrevented;")
    ok(asked, "leaving the page with an unsaved change asks first (beforeunload is cancelled)")
    ok(E("unsaved").is_displayed(), "the banner says so")
    E("f-from").send_keys(Keys.BACKSPACE)
    until(lambda: not E("unsaved").is_displayed(), "the change undone: nothing unsaved")

    # ------------------------------------------------------------ a queued message: see it, retry it
    subprocess.run([MAILHOOK, "enqueue", "--to", "later@example.net", "--subject", "voicemail from 200"],
                   input=b"42 s\n", check=True, stdout=subprocess.DEVNULL)
    driver.get(BASE + "/#queue")
    until(lambda: E("page-queue").is_displayed(), "the Queue page")

    def row_with(subject):
        for tr in driver.find_elements(By.CSS_SELECTOR, "#queue-table tbody tr"):
            if subject in tr.text:
                return tr
        return None

    def deferred_row():
        E("queue-pickup-tab").click()
        time.sleep(0.3)
        tr = row_with("voicemail from 200")
        return tr if tr is not None and "450" in tr.text else None

    until(lambda: deferred_row() is not None, "the deferred message is listed with the server's 450", 40)
    tr = deferred_row()
    ok(tr is not None and "later@example.net" in tr.text and " in " in tr.text,
       "with its recipient and its next attempt", tr.text if tr else None)
    shot("queue")
    delivered_before = len([f for f in os.listdir(MAILDIR) if f.endswith(".eml")])
    tr.find_element(By.CSS_SELECTOR, "button.retry").click()
    until(lambda: "queued for delivery" in E("queue-message").text, "Retry: queued for delivery")
    until(lambda: len([f for f in os.listdir(MAILDIR) if f.endswith(".eml")]) > delivered_before,
          "and it is delivered at once (not at its backoff)", 20)
    # the server stores the message a moment before the service removes it from pickup/
    # (after the 250): the page is asked again, once a second, until it is gone
    asked = [0.0]

    def gone():
        if time.time() - asked[0] >= 1:
            E("queue-pickup-tab").click()
            asked[0] = time.time()
        return row_with("voicemail from 200") is None
    until(gone, "the queue page no longer lists it")

    # ------------------------------------------------------------ status and the live log
    driver.get(BASE + "/#status")
    until(lambda: E("page-status").is_displayed(), "the Status page")
    until(lambda: "Mail is flowing" in E("status-summary").text, "mail is flowing")
    until(lambda: "(live)" in E("log-live").text, "the log is live (server-sent events)")
    until(lambda: "status=sent" in E("log-lines").text, "the delivery is in the log (the mail log line)")
    subprocess.run([MAILHOOK, "enqueue", "--to", "ok@example.net", "--subject", "live"], input=b"x\n", check=True,
                   stdout=subprocess.DEVNULL)
    count = E("log-lines").text.count("status=sent")
    until(lambda: E("log-lines").text.count("status=sent") > count,
          "a new delivery appears without reloading the page")
    rows = E("status-rows").text
    ok("running, pid" in rows and "delivered" in rows, "the status facts are shown", rows)
    shot("status")

    # ------------------------------------------------------------ a wrong password: the failure's hint
    driver.get(BASE + "/#settings")
    until(lambda: "a password is set" in E("password-state").text, "back on Settings")
    E("password-replace").click()
    E("f-password").send_keys("not-the-password")
    E("test-button").click()
    until(lambda: stage_state("auth") == "failed", "Test with a wrong password: AUTH failed", 60)
    ok(stage_state("sender") == "unreached", "the stages after it not reached")
    ok("535" in E("test-error").text, "the server's reply is shown", E("test-error").text)
    hint = E("test-hint").text
    ok("password" in hint and hint.startswith("Hint:"), "with the hint naming the password", hint)
    ok("not-the-password" not in conf_text() + secrets_text(), "a Test never saves")
    shot("test-failed")
    E("password-keep").click()

    # ------------------------------------------------------------ the console's own password; logout
    E("admin-current").send_keys("not-the-admin-password")
    E("admin-new").send_keys(NEW_ADMIN_PW)
    E("admin-new2").send_keys(NEW_ADMIN_PW)
    E("admin-new2").send_keys(Keys.ENTER)
    until(lambda: "wrong" in E("err-admin-current").text, "a wrong current password is said beside it")
    E("admin-current").clear()
    E("admin-current").send_keys(ADMIN_PW)
    E("admin-password-button").click()
    until(lambda: "changed" in E("admin-password-result").text, "the console password is changed")
    ok(NEW_ADMIN_PW not in conf_text(), "stored as a hash only")
    E("f-enabled").click()                       # a change made with the new session's token: saved
    E("update-button").click()
    until(lambda: E("update-result").text == "saved", "the page goes on with its new session")
    E("f-enabled").click()
    E("update-button").click()
    until(lambda: E("update-result").text == "saved", "(enabled again)")
    E("logout").click()
    until(lambda: driver.current_url.endswith("/login"), "Log out: the login page")
    driver.back()
    until(lambda: E("login-form").is_displayed(), "Back after logging out: the login page again (the session is gone)")
    E("password").send_keys(ADMIN_PW)
    E("login-button").click()
    until(lambda: "wrong password" in E("login-error").text, "the old console password no longer logs in")
    E("password").clear()
    E("password").send_keys(NEW_ADMIN_PW)
    E("password").send_keys(Keys.ENTER)
    until(lambda: E("page-settings").is_displayed(), "the new one does")
finally:
    try:
        driver.quit()
    except Exception:
        pass
    shutil.rmtree(profile, ignore_errors=True)

done()
