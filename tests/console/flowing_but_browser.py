#!/usr/bin/python3
"""tests/console/flowing_but_browser.py — the console in a real browser (headless
chromium through selenium) saying what `mailhook status` says in its two "flowing,
but" cases, and a real outage still as one.  PHASE:

  stuck   a file of maildrop/ the service cannot adopt (status maildrop_stuck): the
          pill "flowing, but" in amber (.warn), the summary "Mail is flowing, but 1
          file of maildrop/ the service cannot adopt ..."; /metrics has
          mailhook_attention{reason="maildrop_stuck"} 1 (mailhook_flowing 0)
  old     the settings file broken after the service started (status old_settings):
          the same pill, the summary "Mail is flowing with the settings the service
          loaded before, but the settings file is not ready: ..."; the file of
          maildrop/ still stuck: both mailhook_attention series 1
  not     the service reloaded the broken file: red "NOT flowing", "Mail is NOT
          flowing: ...", every mailhook_attention 0

Before, both "flowing, but" cases read as a red "NOT flowing" and "Mail is NOT
flowing: ...": untrue (mail flows), and no different from an outage.
Started by tests/integration/console-flowing-but.sh.

Usage: flowing_but_browser.py BASE ADMIN_PW PHASE SHOTS
"""
import os
import re
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

BASE, ADMIN_PW, PHASE, SHOTS = sys.argv[1:5]
WANT = {
    # pill text, pill class, summary's start, summary class, attention series at 1
    "stuck": ("flowing, but", "warn", "Mail is flowing, but 1 file of maildrop/ the service cannot adopt never "
              "leaves until it is fixed or removed (below; mailhook queue rm NAME)", "hint", "maildrop_stuck"),
    "old": ("flowing, but", "warn", "Mail is flowing with the settings the service loaded before, but the settings "
            "file is not ready: outgoing mail is disabled", "hint", "old_settings"),
    "not": ("NOT flowing", "bad", "Mail is NOT flowing: ", "error", None),
}[PHASE]

opts, profile = chromium_options()
try:
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
except WebDriverException as e:
    ok(False, "chromium starts headless", e)
    done()
driver.set_page_load_timeout(60)
E = lambda i: driver.find_element(By.ID, i)


def until(fn, desc, limit=30, show=None):
    return taplib_until(driver, fn, desc, limit, show=show)


def look():
    """The pill and the summary in one look: [pill text, pill classes, summary text, summary classes]."""
    return driver.execute_script(
        "const f = document.getElementById('flow'), s = document.getElementById('status-summary');"
        "return [f.textContent, Array.from(f.classList), s.textContent, Array.from(s.classList)]")


try:
    driver.get(BASE + "/login")
    E("password").send_keys(ADMIN_PW)
    E("password").send_keys(Keys.ENTER)
    until(lambda: E("page-settings").is_displayed(), "logged in")
    driver.get(BASE + "/#status")
    until(lambda: E("page-status").is_displayed(), "the Status page is shown")
    pill, pill_class, summary, summary_class, attention = WANT
    until(lambda: look()[0] == pill, "the pill says '%s'" % pill, show=lambda: look())
    v = steady(look)
    ok(pill_class in v[1] and not ({"ok", "bad", "warn"} - {pill_class}) & set(v[1]),
       "  coloured as .%s, and only that" % pill_class, v)
    ok(v[2].startswith(summary), "the summary says '%s...'" % summary[:60], v[2])
    ok(summary_class in v[3], "  as .%s" % summary_class, v)
    if attention:
        ok("NOT flowing" not in v[2] and "NOT flowing" not in E("status-rows").text,
           "  nowhere 'NOT flowing' (mail flows)", v)
    driver.save_screenshot(os.path.join(SHOTS, "console-flowing-but-%s.png" % PHASE))

    # /metrics with the page's session: the gauge that tells these cases from an outage
    body = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/metrics', {credentials: 'same-origin'}).then(r => r.text()).then(done, e => done('ERR ' + e))")
    series = dict(re.findall(r'^mailhook_attention\{reason="(\w+)"\} (\d+)$', body, re.M))
    ok(set(series) == {"old_settings", "maildrop_stuck"}, "/metrics: mailhook_attention for both reasons", body[:800])
    # (in "old" the maildrop/ file is still stuck: both reasons hold, and both
    # read 1; maildrop_stuck read 0 there, the first reason alone was said)
    want = {"stuck": {"old_settings": "0", "maildrop_stuck": "1"},
            "old": {"old_settings": "1", "maildrop_stuck": "1"}}.get(PHASE, {"old_settings": "0", "maildrop_stuck": "0"})
    ok(series == want, "  %s" % ("1 for each reason that holds (%s)" % ", ".join(k for k in want if want[k] == "1")
                                  if attention else "0 for both (an outage)"), series)
    ok(re.search(r"^mailhook_flowing 0$", body, re.M), "  mailhook_flowing 0 (the exit status is 1)",
       [l for l in body.splitlines() if l.startswith("mailhook_flowing")])
except Exception as e:   # noqa: BLE001  (any failure is a TAP line, then the end)
    ok(False, "the run went to its end", repr(e))
finally:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
done()
