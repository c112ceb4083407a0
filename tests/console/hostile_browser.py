#!/usr/bin/python3
"""tests/console/hostile_browser.py — the console in a real browser (headless
chromium through selenium) showing values an attacker wrote: a message's
Subject, From and recipients (dropped in by any local user or sent through
`sendmail`), a hostile SMTP server's replies (<script>, <img onerror>) in the
queue, the Test, the status and the live log, a setting's value, an error
message echoing the input, the URL's query and fragment.  Each payload tries a
side effect (document.title = "PWNED-..."); none may run, none may become an
element, and each must be shown as the text it is.  Also: Trusted Types are
enforced (an HTML string sink throws), queue paging buttons over 130 messages,
and Enter in a field saves.  Last, an outage at a server whose 421 greeting
holds markup (OUTAGE_PORT): the queue and the status say "delivery suspended
since ..." with it, and each waiting message the outage, all as text.  Started
by tests/integration/console-hostile.sh.

Usage: hostile_browser.py BASE ADMIN_PW SHOTS MAILHOOK SPOOL SERVICE_PID OUTAGE_PORT
"""
import os
import shutil
import signal
import subprocess
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import (ElementClickInterceptedException, ElementNotInteractableException,
                                        NoSuchElementException, StaleElementReferenceException, WebDriverException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

sys.dont_write_bytecode = True   # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import chromium_options, done, ok, until as taplib_until  # noqa: E402  (one TAP writer, one wait)

BASE, ADMIN_PW, SHOTS, MAILHOOK, SPOOL, SVC_PID, OUTAGE_PORT = sys.argv[1:8]


opts, profile = chromium_options()
opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
try:
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
except WebDriverException as e:
    ok(False, "chromium starts headless", e)
    done()
driver.set_page_load_timeout(60)
E = lambda i: driver.find_element(By.ID, i)


# what a page that re-renders while it is polled raises now and then (an element
# replaced between its lookup and its use, a click landing on an overlay being
# removed): asked again, never the end of the run
TRANSIENT = (NoSuchElementException, StaleElementReferenceException, ElementClickInterceptedException,
             ElementNotInteractableException)


def until(fn, desc, limit=30):
    return taplib_until(driver, fn, desc, limit, ignored=TRANSIENT)


def shot(name):
    driver.save_screenshot(os.path.join(SHOTS, "console-%s.png" % name))


def injected():
    """Elements a payload would have made, anywhere in the page."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('img, svg, script:not([src]), iframe, object, embed'))"
        ".map(e => e.outerHTML.slice(0, 80))")


def clean(where):
    title = driver.title
    made = injected()
    ok(not title.startswith("PWNED") and made == [] and not driver.execute_script("return window.PWNED === 1"),
       where + ": no payload ran, none became an element", "title %r, elements %r" % (title, made))


try:
    driver.get(BASE + "/login")
    E("password").send_keys(ADMIN_PW)
    E("password").send_keys(Keys.ENTER)
    until(lambda: E("page-settings").is_displayed(), "logged in (Enter in the password field)")
    until(lambda: E("password-state").text != "", "the settings are loaded")

    # ------------------------------------------------------------ Trusted Types and CSP in force
    sink = driver.execute_script("try { document.createElement('div').innerHTML = '<b>x</b>'; return 'allowed'; }"
                                 " catch (e) { return e.name; }")
    ok(sink == "TypeError", "an HTML string given to innerHTML throws (Trusted Types enforced)", sink)
    sink = driver.execute_script("try { document.body.insertAdjacentHTML('beforeend', '<i>x</i>'); return 'allowed'; }"
                                 " catch (e) { return e.name; }")
    ok(sink == "TypeError", "so does insertAdjacentHTML", sink)
    ran = driver.execute_script("try { var s = document.createElement('script'); s.textContent = 'window.PWNED = 1';"
                                " document.body.appendChild(s); } catch (e) { return e.name; } return window.PWNED === 1;")
    ok(ran in (False, "TypeError"), "an inline script cannot be added, nor would it run (CSP)", ran)

    # ------------------------------------------------------------ a setting's value, an error about it
    hostile_user = "\"><img src=x onerror=\"document.title='PWNED-user'\">"
    E("f-username").clear()
    E("f-username").send_keys(hostile_user)
    E("f-username").send_keys(Keys.ENTER)
    until(lambda: E("update-result").text == "saved", "Enter in a field saves (Update)")
    driver.refresh()
    # shown, not only filled: a hidden field takes no keys and a hidden element's text reads ""
    until(lambda: E("page-settings").is_displayed() and E("f-username").get_attribute("value") == hostile_user,
          "the username is shown as typed after a reload")
    clean("a hostile username in the form")
    E("f-port").clear()
    E("f-port").send_keys("<img src=x onerror=\"document.title='PWNED-port'\">")
    E("update-button").click()
    # (the error names the field, never its value: no answer quotes the request, console.lua)
    until(lambda: "must be a port number" in E("err-port").text and "<img" not in E("err-port").text,
          "the error is shown beside the field, as text, without the value")
    ok(driver.execute_script("return document.activeElement.id") == "f-port" and
       E("f-port").get_attribute("aria-invalid") == "true", "the bad field is focused and marked invalid")
    clean("an error message with markup")
    E("f-port").clear()

    # ------------------------------------------------------------ Test against the hostile server
    driver.refresh()
    until(lambda: E("password-state").text != "", "reloaded")
    E("f-test_to").send_keys("fail@example.net")
    E("f-test_to").send_keys(Keys.ENTER)
    until(lambda: "FAILED" in E("test-result").text, "Enter in 'send a test message to' runs the Test", 60)
    until(lambda: "<img src=x onerror=" in E("test-error").text, "the server's 550 with markup is shown as text")
    clean("the Test with a hostile reply")
    shot("hostile-test")

    # ------------------------------------------------------------ the queue
    driver.get(BASE + "/#queue")
    until(lambda: E("page-queue").is_displayed(), "the Queue page")
    until(lambda: "<script>window.PWNED=1</script> drop-in" in E("queue-table").text,
          "a drop-in's Subject holding <script> is listed, as text")
    until(lambda: "<script>document.title" in E("queue-table").text, "the server's reply (451 with <script>) as text")
    clean("the queue with hostile subjects and replies")
    shot("hostile-queue")
    # paging over the 129 messages waiting
    until(lambda: "of 129" in E("queue-range").text, "paging: 'messages 1–50 of 129'", 20)
    E("queue-next").click()
    until(lambda: E("queue-range").text.startswith("messages 51–100"), "Next: 51–100")
    E("queue-last").click()
    until(lambda: E("queue-range").text.startswith("messages 80–129") and
          E("queue-next").get_attribute("disabled") is not None, "Last: 80–129, Next disabled")
    E("queue-prev").click()
    until(lambda: E("queue-range").text.startswith("messages 30–79"), "Previous: 30–79")
    E("queue-first").click()
    until(lambda: E("queue-range").text.startswith("messages 1–50") and
          E("queue-prev").get_attribute("disabled") is not None, "First: 1–50, Previous disabled")
    E("queue-failed-tab").click()
    until(lambda: "PWNED-subject" in E("queue-table").text, "failed/: a Subject holding <img onerror>, as text")
    table = E("queue-table").text
    ok("<img src=x onerror=\"document.title='PWNED-subject'\">" in table, "shown literally", table[:600])
    ok("<svg/onload=document.title='PWNED-rcpt'>" in table, "a quoted recipient holding markup, as text", table[:800])
    ok("PWNED-550" in table and "<img src=x" in table, "the server's 550 with <img onerror>, as text", table[:800])
    clean("failed/ with hostile subjects, recipients and replies")

    # ------------------------------------------------------------ status and the live log
    driver.get(BASE + "/#status")
    until(lambda: "(live)" in E("log-live").text, "the Status page, live")
    until(lambda: "<script>document.title" in E("log-lines").text, "log lines holding a hostile reply, as text")
    until(lambda: "<script>" in E("status-rows").text or "<img" in E("status-rows").text,
          "the status's last error holds it too, as text")
    clean("the status and log")
    shot("hostile-status")

    # ------------------------------------------------------------ the URL
    driver.get(BASE + "/?q=<script>window.PWNED=1</script>#<img src=x onerror=\"document.title='PWNED-hash'\">")
    until(lambda: E("page-settings").is_displayed(), "a hostile query and fragment: the Settings page")
    clean("a hostile URL")
    driver.get(BASE + "/nope<img src=x onerror=alert(1)>")
    clean("a 404 with markup in the path")

    logs = [e for e in driver.get_log("browser") if e.get("level") in ("SEVERE", "WARNING")
            and "PWNED" in e.get("message", "").split(" - ", 1)[-1]]
    ok(all("Content Security Policy" in e["message"] or "Trusted" in e["message"] for e in logs),
       "no error in the browser's console about a payload but refusals", logs[:3])

    # ------------------------------------------------------------ an outage, its reason hostile
    subprocess.run([MAILHOOK, "update", "port=" + OUTAGE_PORT], check=True, stdout=subprocess.DEVNULL)
    os.kill(int(SVC_PID), signal.SIGHUP)
    for i in (1, 2):
        subprocess.run([MAILHOOK, "enqueue", "--to", "hold@example.net", "--subject", "during the outage %d" % i],
                       input=b"x\n", check=True, stdout=subprocess.DEVNULL)
    until(lambda: os.path.exists(os.path.join(SPOOL, "outage")), "the server down (421 at the greeting): an outage", 30)
    driver.get(BASE + "/#queue")

    def banner():
        E("queue-pickup-tab").click()   # (asked again until the outage is there)
        return E("queue-outage").is_displayed() and E("queue-outage").text
    until(lambda: "delivery suspended since" in (banner() or ""), "the Queue page says delivery is suspended")
    line = E("queue-outage").text
    ok(" ago): greeting: server closing the connection: 421 4.3.2 <img src=x onerror=" in line,
       "since when, how long ago, and why: the stage and the server's reply with its markup, as text", line)
    E("queue-last").click()
    until(lambda: "outage: greeting: server closing the connection: 421" in E("queue-table").text,
          "a waiting message with no reply of its own shows the outage it waits on")
    clean("the queue in an outage with a hostile reason")
    shot("hostile-outage")
    driver.get(BASE + "/#status")
    until(lambda: "delivery suspended since" in E("status-rows").text and
          "<img src=x onerror=" in E("status-rows").text, "the Status page says it too, as text")
    clean("the status in an outage with a hostile reason")

    # ------------------------------------------------------------ no admin password: the login page says how
    subprocess.run([MAILHOOK, "update", "admin_password="], check=True, stdout=subprocess.DEVNULL)
    os.kill(int(SVC_PID), signal.SIGHUP)

    def back_to_login():   # the reload takes a moment: ask again until it has happened
        driver.get(BASE + "/")
        return driver.current_url.endswith("/login")
    # (a reload on a loaded 2-core machine, two fresh roots and chromium beside it, once
    # took more than 30 s to be seen: the condition comes, the bound is for a hang)
    until(back_to_login, "the session ended with the password: back to /login", limit=90)
    until(lambda: "mailhook update admin_password=-" in E("login-error").text,
          "without an admin password the login page says how to set one, before anyone types")
    ok(not E("password").is_enabled(), "and the password field is disabled")
    shot("login-no-password")
finally:
    try:
        driver.quit()
    except Exception:
        pass
    shutil.rmtree(profile, ignore_errors=True)

done()
