"""TAP output for the console's Python checkers (browser.py, http_checks.py...):
one ok() and one done() for all, so their plan and exit status follow one rule,
and wait_until(), their one way to wait on a condition (until(), the browser
checkers' one: a condition in the page, checked as one TAP line).
Their TAP is renumbered into the calling shell test's plan by tap_merge
(tests/lib/tap.sh)."""
import sys
import time

n = 0        # checks printed so far
failed = 0   # of which failed


def ok(cond, desc, diag=None, lines=20):
    """Prints one TAP line for cond; diag (any text) under a failure, at most lines lines."""
    global n, failed
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, desc), flush=True)
    if not cond:
        failed += 1
        if diag is not None:
            for line in str(diag).splitlines()[:lines]:
                print("#   " + line, flush=True)
    return cond


def done():
    """Prints the plan and exits: 0 when every check passed, else 1."""
    print("1..%d" % n, flush=True)
    sys.exit(1 if failed else 0)


def wait_until(fn, limit=15.0, step=0.1):
    """Whether fn() came true within limit seconds, asked every step seconds."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if fn():
            return True
        time.sleep(step)
    return fn()


def steady(fn, limit=10.0):
    """fn()'s value, asked again while the browser says a navigation aborted the look
    (chromedriver's "aborted by navigation": seen once, under CI's load, right after a
    same-page navigation, on a page that had not gone anywhere) or the element went
    stale, for at most limit seconds; any other error, or the same past the limit, is
    raised.  A page that really went elsewhere (a logout to /login) still fails: its
    next look finds no such element."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    end = time.monotonic() + limit
    while True:
        try:
            return fn()
        except WebDriverException as e:
            transient = isinstance(e, StaleElementReferenceException) or "aborted by navigation" in str(e)
            if not transient or time.monotonic() > end:
                raise
        time.sleep(0.1)


def until(driver, fn, desc, limit=30, ignored=None, show=None):
    """One check (ok) that fn() comes true in the browser within limit seconds, looked at
    every 0.1 s: fn is asked through steady (a look a navigation aborted, or a stale
    element, is looked at again); the exceptions in ignored (default: the element not
    there yet, or stale; WebDriverWait adds the first always) mean "not yet", any
    other ends the run.  On
    a timeout the failure says where the page was and what it said (show(), when
    given, instead of the page's text): a CI log must tell why, not only which.  The
    browser checkers' one way to wait (each had its own copy)."""
    from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,
                                            TimeoutException)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    if ignored is None:
        ignored = (NoSuchElementException, StaleElementReferenceException)
    try:
        WebDriverWait(driver, limit, poll_frequency=0.1, ignored_exceptions=ignored).until(lambda _: steady(fn))
        return ok(True, desc)
    except TimeoutException:
        if show is not None:
            return ok(False, desc, show())
        return ok(False, desc, "at %s: %s" % (driver.current_url,
                                              driver.find_element(By.TAG_NAME, "body").text[:1500]))


def chromium_options(height=1100):
    """(options, profile): headless chromium's options for a console checker (no network
    of its own, no GPU, no sandbox: root in CI), its window 1280 x height, and the
    throwaway profile folder they name (the caller removes it)."""
    import tempfile
    from selenium import webdriver
    profile = tempfile.mkdtemp(prefix="mh-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1280,%d" % height, "--user-data-dir=" + profile):
        opts.add_argument(a)
    return opts, profile
