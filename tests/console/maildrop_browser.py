#!/usr/bin/python3
"""tests/console/maildrop_browser.py — the console's Queue page in a real browser
(headless chromium through selenium) showing what waits in maildrop/: a file a
local user handed over through an unprivileged `sendmail` that the service has
not adopted yet.  Its row says who dropped it, the sender, the subject, the
recipients and the items sendmail left out (kept escaped: \\x5C, \\xNN), all as
text (a recipient and a subject holding markup never become elements); Retry
says it waits for the adoption and leaves it; Remove (confirmed) deletes it, as
`mailhook queue rm NAME` does.  Started by tests/integration/console-maildrop.sh.

Usage: maildrop_browser.py BASE ADMIN_PW SPOOL NAME SHOTS
"""
import os
import shutil
import sys

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

sys.dont_write_bytecode = True   # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import chromium_options, done, ok, steady, until as taplib_until  # noqa: E402

BASE, ADMIN_PW, SPOOL, NAME, SHOTS = sys.argv[1:6]
FILE = os.path.join(SPOOL, "maildrop", NAME)

opts, profile = chromium_options()
try:
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
except WebDriverException as e:
    ok(False, "chromium starts headless", e)
    done()
driver.set_page_load_timeout(60)
E = lambda i: driver.find_element(By.ID, i)


def until(fn, desc, limit=30):
    return taplib_until(driver, fn, desc, limit)   # (an element not there yet, or stale: not yet)


def row():
    return driver.find_element(By.CSS_SELECTOR, "#maildrop-table tbody tr")


def cells():
    """The row's texts in one look: the page redraws the table at each loadQueue
    (a Retry, the outage watch), so a row found a moment before may be stale."""
    return driver.execute_script(
        "const r = document.querySelector('#maildrop-table tbody tr');"
        "return r ? Array.from(r.cells).map(td => td.innerText) : null")


try:
    driver.get(BASE + "/login")
    E("password").send_keys(ADMIN_PW)
    E("password").send_keys(Keys.ENTER)
    until(lambda: E("page-settings").is_displayed(), "logged in")
    driver.get(BASE + "/#queue")
    until(lambda: E("maildrop-box").is_displayed(), "the Queue page shows what waits in maildrop/")
    until(lambda: row().get_attribute("data-name") == NAME, "its file, by name")
    c = steady(cells) or []
    ok(c[0] == NAME, "the name column", c)
    ok(c[2] == "root (uid 0)", "who dropped it: login and uid", c)
    # the sender adoption gives it comes from the settings, moved away here so that
    # no adoption takes the file meanwhile: not shown rather than guessed (that rule,
    # submit.unprivileged_sender, is sendmail's own and tested with its local path)
    ok(c[3] == "", "no sender shown while the settings cannot be read", c)
    # and by the CLI's display rule: a direction override (it turned "txt.exe"
    # around) shown as \u202e (console.js shown())
    ok(c[4] == "<b>bold</b> notice \\u202etxt.exe", "the subject, as text, its U+202E as \\u202e", c)
    ok(c[5] == "ops@example.net, \"<img src=x onerror=document.title='PWNED-rcpt'>\"@example.net",
       "the recipients, as text", c)
    ok(c[6] == "Ops\\x5Cx1bName, Esc\\x1BName", "the items left out, as kept: a backslash \\x5C, an ESC \\x1B", c)
    made = driver.execute_script(
        "return Array.from(document.querySelectorAll('#maildrop-table img, #maildrop-table b, script:not([src])'))"
        ".map(e => e.outerHTML.slice(0, 80))")
    ok(made == [] and not driver.title.startswith("PWNED"), "no value became an element or ran", made)
    ok("in maildrop/" in E("queue-range").text, "the range line counts it", E("queue-range").text)
    driver.save_screenshot(os.path.join(SHOTS, "console-maildrop.png"))

    steady(lambda: row().find_element(By.CSS_SELECTOR, "button.retry").click())   # a redraw: found again
    until(lambda: "waits in" in E("queue-message").text and "adopt" in E("queue-message").text,
          "Retry says it waits for the service to adopt it")
    ok(os.path.exists(FILE), "and leaves the file")
    driver.execute_script("window.confirm = () => true")   # the confirmation, answered yes
    until(lambda: row().get_attribute("data-name") == NAME, "listed again after Retry")
    steady(lambda: row().find_element(By.CSS_SELECTOR, "button.remove").click())
    until(lambda: "removed" in E("queue-message").text, "Remove says it is removed")
    ok(not os.path.exists(FILE), "the file is gone from maildrop/")
    until(lambda: not E("maildrop-box").is_displayed(), "and the list is hidden, nothing left in it")
except Exception as e:   # noqa: BLE001  (any failure is a TAP line, then the end)
    ok(False, "the run went to its end", repr(e))
finally:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
done()
