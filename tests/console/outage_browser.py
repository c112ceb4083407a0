#!/usr/bin/python3
"""tests/console/outage_browser.py — the outage banner of the Queue page in a real
browser (headless chromium through selenium), the page open all along: the
server down (nothing on SMTP_PORT), the banner says delivery is suspended; a
real aiosmtpd started on that port, the banner goes away without a reload; the
server stopped again and a message queued, the banner comes back.  Then the
Status page says the outage's reason once, and the page's own poll (which
says X-Mailhook-Poll) is not a use of the session.  Started by
tests/integration/console-outage-live.sh.

Usage: outage_browser.py BASE ADMIN_PW MAILHOOK SPOOL SMTP_PORT SMTPD_PY TMPDIR
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

BASE, ADMIN_PW, MAILHOOK, SPOOL, SMTP_PORT, SMTPD_PY, TMP = sys.argv[1:8]

sys.dont_write_bytecode = True   # no __pycache__ in the checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import ok, done, wait_until, chromium_options, steady, until as taplib_until  # noqa: E402

OUTAGE = os.path.join(SPOOL, "outage")


def until(fn, desc, limit=30):
    return taplib_until(driver, fn, desc, limit)   # (an element not there yet, or stale: not yet)


def enqueue(subject):
    subprocess.run([MAILHOOK, "enqueue", "--to", "x@example.net", "--subject", subject], input=b"x\n", check=True,
                   stdout=subprocess.DEVNULL)


def port_open():
    try:
        socket.create_connection(("127.0.0.1", int(SMTP_PORT)), 1).close()
        return True
    except OSError:
        return False


def banner():
    e = E("queue-outage")
    return e.text if e.is_displayed() else ""


def same_page():
    """Whether the page is the one loaded at the start (a reload would drop the mark)."""
    return driver.execute_script("return window.outageMark === 1") is True


def session_left(cookie, poll):
    req = urllib.request.Request(BASE + "/api/session", headers={"Cookie": cookie})
    if poll:
        req.add_header("X-Mailhook-Poll", "1")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["expires_in"]


opts, profile = chromium_options(1000)
driver = server = None
try:
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(60)
    E = lambda i: driver.find_element(By.ID, i)  # noqa: E731

    enqueue("while the server is down")
    ok(wait_until(lambda: os.path.exists(OUTAGE), 30), "nothing listens on the server's port: an outage")
    driver.get(BASE + "/login")
    E("password").send_keys(ADMIN_PW)
    E("password").send_keys(Keys.ENTER)
    until(lambda: E("page-settings").is_displayed(), "logged in")

    # ---------------------------------------------------------- the status page: the reason once
    driver.get(BASE + "/#status")
    until(lambda: "delivery suspended since" in E("page-status").text, "the Status page shows the outage")
    reason = "could not connect"
    page = steady(lambda: E("status-summary").text + "\n" + E("status-rows").text)  # (the log below quotes it)
    ok(page.count(reason) == 1 and "delivery suspended since" in steady(lambda: E("status-rows").text),
       "  its reason once, in the delivery line (the summary, the connection and the last error each said it too)",
       page[:1500])

    # ---------------------------------------------------------- the queue page follows the outage
    driver.get(BASE + "/#queue")
    driver.execute_script("window.outageMark = 1")
    until(lambda: "delivery suspended since" in banner() and reason in banner(),
          "the Queue page: delivery suspended, and why")
    server = subprocess.Popen(["/usr/bin/python3", SMTPD_PY, "--port", SMTP_PORT],
                              stdout=open(os.path.join(TMP, "outage-smtpd.out"), "w"),
                              stderr=open(os.path.join(TMP, "outage-smtpd.err"), "w"))
    ok(wait_until(port_open, 15), "the server comes back (aiosmtpd on the same port)")
    ok(wait_until(lambda: not os.path.exists(OUTAGE), 60), "the service delivers: the outage is over")
    until(lambda: banner() == "", "the banner goes away, the page open all along", 20)
    ok(same_page(), "  without a reload")
    # the reverse on its own: a page loaded while mail flows (no banner), the server then gone
    driver.refresh()
    until(lambda: E("page-queue").is_displayed() and E("queue-range").text != "", "the Queue page loaded again")
    driver.execute_script("window.outageMark = 1")
    ok(banner() == "", "no banner while the server answers")
    server.terminate()
    server.wait()
    server = None
    ok(wait_until(lambda: not port_open(), 15), "the server goes down again")
    enqueue("the server down again")
    ok(wait_until(lambda: os.path.exists(OUTAGE), 30), "an outage again")
    until(lambda: "delivery suspended since" in banner(), "the banner comes back, the page open all along", 20)
    ok(same_page(), "  without a reload")

    # ---------------------------------------------------------- the poll is not a use of the session
    cookie = "; ".join("%s=%s" % (c["name"], c["value"]) for c in driver.get_cookies() if c["name"] == "mh_session")
    first = session_left(cookie, True)
    ok(wait_until(lambda: session_left(cookie, True) <= first - 2, 10, 0.5),
       "requests with X-Mailhook-Poll leave the session's idle timer running", first)
    later = session_left(cookie, False)
    ok(later > first - 1, "an ordinary request restarts it", (first, later))
    # the page's own polling (one every 3 s) meanwhile: the timer still runs down
    driver.execute_script("window.outageMark = 1")
    base = session_left(cookie, True)
    ok(wait_until(lambda: session_left(cookie, True) <= base - 7, 15, 0.5) and same_page(),
       "the Queue page polling for 7 s does not keep the session alive")
except WebDriverException as e:
    try:
        where = driver.current_url if driver else "(no browser)"
    except WebDriverException:
        where = "(the browser does not answer)"
    ok(False, "the browser ran", "at %s: %s" % (where, e))
finally:
    if server:
        server.terminate()
        server.wait()
    if driver:
        driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
done()
