#!/usr/bin/python3
"""tests/console/maildrop_stuck_browser.py — the console in a real browser (headless
chromium through selenium) naming a file of maildrop/ the service cannot adopt (its
owner unseen from the service's user namespace): its Queue row says "the service
cannot adopt it: REASON", as text, marked as an error; the Status page names it
under maildrop/ with since when and why, as `mailhook status` does.  Before, the
row looked like any file waiting for the service and the Status page said nothing.
Started by tests/integration/console-maildrop-stuck.sh.

Usage: maildrop_stuck_browser.py BASE ADMIN_PW NAME SHOTS
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

BASE, ADMIN_PW, NAME, SHOTS = sys.argv[1:5]
WHY = "maildrop/%s: its owner shows as uid 65534 (nobody)" % NAME

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


def last_cell():
    """The row's last text cell in one look (the table is redrawn at each loadQueue):
    [text, the classes of the elements it holds, the row's data-name]."""
    return driver.execute_script(
        "const r = document.querySelector('#maildrop-table tbody tr');"
        "if (!r) return null; const td = r.cells[6];"
        "return [td.innerText, Array.from(td.querySelectorAll('*')).map(e => e.className), r.dataset.name]")


try:
    driver.get(BASE + "/login")
    E("password").send_keys(ADMIN_PW)
    E("password").send_keys(Keys.ENTER)
    until(lambda: E("page-settings").is_displayed(), "logged in")
    driver.get(BASE + "/#queue")
    until(lambda: E("maildrop-box").is_displayed(), "the Queue page shows what waits in maildrop/")
    until(lambda: (last_cell() or [None] * 3)[2] == NAME, "its file, by name")
    c = steady(last_cell) or ["", [], None]
    ok(c[0].startswith("the service cannot adopt it: " + WHY), "its row says the service cannot adopt it, and why", c)
    ok("error" in c[1], "marked as an error (the page's .error)", c)
    made = driver.execute_script(
        "return Array.from(document.querySelectorAll('#maildrop-table td *'))"
        ".filter(e => !['SPAN', 'BR', 'BUTTON'].includes(e.tagName)).map(e => e.outerHTML.slice(0, 80))")
    ok(made == [], "its values are text", made)
    driver.save_screenshot(os.path.join(SHOTS, "console-maildrop-stuck.png"))

    driver.get(BASE + "/#status")
    rows = lambda: E("status-rows").text
    until(lambda: "the service cannot adopt" in rows(), "the Status page says a file of maildrop/ cannot be adopted")
    t = rows()
    ok("1 file of maildrop/ the service cannot adopt" in t, "  how many", t)
    ok((NAME + " since ") in t and WHY in t, "  naming it, since when and why", t)
except Exception as e:   # noqa: BLE001  (any failure is a TAP line, then the end)
    ok(False, "the run went to its end", repr(e))
finally:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
done()
