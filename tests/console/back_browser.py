#!/usr/bin/python3
"""tests/console/back_browser.py — the Back button never shows a settings page
whose session is gone, in headless chromium (started by
tests/integration/console-back.sh): logged in on the settings page, the
browser goes to another page of the console; the session ends elsewhere
(a logout with the same cookie from another client: the browser's cookie
does not change, so nothing evicts the page from the back/forward cache);
then Back: the login page, not the settings.  And after Log out: Back shows
the login page too.  Speaks TAP.

Usage: back_browser.py BASE ADMIN_PW
"""
import http.client
import json
import os
import re
import shutil
import sys

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


try:
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
finally:
    try:
        driver.quit()
    except Exception:
        pass
    shutil.rmtree(profile, ignore_errors=True)
done()
