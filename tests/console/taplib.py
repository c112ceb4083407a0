"""TAP output for the console's Python checkers (browser.py, http_checks.py...):
one ok() and one done() for all, so their plan and exit status follow one rule,
and wait_until(), their one way to wait on a condition.
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
