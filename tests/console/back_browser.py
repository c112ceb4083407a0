#!/usr/bin/python3
"""tests/console/back_browser.py — the Back button never shows a settings page
whose session is gone, in headless chromium (started by
tests/integration/console-back.sh): logged in on the settings page, the
browser goes to another page of the console; the session ends elsewhere
(a logout with the same cookie from another client: the browser's cookie
does not change, so nothing evicts the page from the back/forward cache);
then Back: the login page, not the settings.  And after Log out: Back shows
the login page too.  All of it while another local user floods the console
with requests needing no login (its bucket empty all along): the login page,
its script and styles and the login are never limited.  Speaks TAP.

Usage: back_browser.py BASE ADMIN_PW
"""
import http.client
import json
import os
import re
import shutil
import sys
import threading

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import ok, done, chromium_options, until as taplib_until  # noqa: E402

BASE, ADMIN_PW = sys.argv[1:3]
HOST, PORT = re.match(r"http://([\d.]+):(\d+)$", BASE).groups()

opts, profile = chromium_options()
driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
driver.set_page_load_timeout(60)
E = lambda i: driver.find_element(By.ID, i)


def until(fn, desc, limit=30):
    return taplib_until(driver, fn, desc, limit)


def login():
    driver.get(BASE + "/login")
    if not until(lambda: E("password").is_displayed(), "the login page is shown", 10):
        raise SystemExit("no login page")
    E("password").send_keys(ADMIN_PW)
    E("login-button").click()
    until(lambda: E("page-settings").is_displayed() and E("f-server") is not None, "logged in: the settings page")


def end_elsewhere():
    """Logs the browser's session out from another client (its cookie unchanged)."""
    sid = driver.get_cookie("mh_session")["value"]
    c = http.client.HTTPConnection(HOST, int(PORT), timeout=10)
    c.request("GET", "/api/session", headers={"Cookie": "mh_session=" + sid})
    csrf = json.loads(c.getresponse().read()).get("csrf", "")
    c.request("POST", "/api/logout", body="{}", headers={"Cookie": "mh_session=" + sid, "X-CSRF-Token": csrf,
                                                        "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


flooding = threading.Event()
flooded = []


def flooder():
    """Requests without a session, as fast as they are answered (429 once the bucket is empty)."""
    while not flooding.is_set():
        try:
            c = http.client.HTTPConnection(HOST, int(PORT), timeout=10)
            c.request("GET", "/api/status")
            flooded.append(c.getresponse().status)
            c.close()
        except OSError:
            pass


flooders = [threading.Thread(target=flooder) for _ in range(3)]
for t in flooders:
    t.start()
try:
    taplib_wait = __import__("taplib").wait_until
    ok(taplib_wait(lambda: flooded.count(429) > 20, 15, 0.05), "a flood without a session: 429s")
    login()
    driver.get(BASE + "/login?error=form")      # another document of the console (logged in: on to /)
    driver.get(BASE + "/assets/console.css")
    is_out = end_elsewhere()
    ok(is_out == 200, "the session ended from another client", is_out)
    driver.back()
    until(lambda: driver.current_url.endswith("/login") and E("login-form").is_displayed(),
          "Back to the settings page after its session ended: the login page, not the settings")
    ok(not driver.find_elements(By.ID, "page-settings"), "  no settings page in the document")
    login()
    E("logout").click()
    until(lambda: driver.current_url.endswith("/login"), "Log out: the login page")
    driver.back()
    until(lambda: driver.current_url.endswith("/login") and E("login-form").is_displayed(),
          "Back after logging out: the login page")
    flooding.set()
    ok(flooded.count(429) > len(flooded) // 2, "the flood was limited all along (%d of %d: 429)"
       % (flooded.count(429), len(flooded)))
finally:
    flooding.set()
    for t in flooders:
        t.join()
    try:
        driver.quit()
    except Exception:
        pass
    shutil.rmtree(profile, ignore_errors=True)
done()
