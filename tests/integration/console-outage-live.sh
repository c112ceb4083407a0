# The Queue page's outage banner follows delivery while the page stays open
# (tests/console/outage_browser.py, headless chromium): the server down, the
# banner says so; the server back (a real aiosmtpd on the same port), the
# banner goes away without a reload; down again, it comes back.  Before, it was
# set only on load or a tab click.  Also: the Status page says the outage's
# reason once (the summary, the connection, the last error and the delivery
# line each repeated it), and the page's poll does not keep the session alive.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
export MAILHOOK_SPOOL=$T/spool MAILHOOK_CONF=$T/mailhook.conf
need_browser

ADMIN_PW='admin-Outage-Live-Pw-17'
SMTP=$(free_port)      # the server: nothing listens there yet
start_console "$SMTP"

"$PY" "$ROOT/tests/console/outage_browser.py" "http://127.0.0.1:$AP" "$ADMIN_PW" "$MAILHOOK" "$MAILHOOK_SPOOL" \
  "$SMTP" "$PEERS/smtpd.py" "$T" > "$T/browser.tap" 2> "$T/browser.err"
rc=$?
[ "$rc" = 0 ] || sed 's/^/# /' "$T/browser.err" | tail -20
tap_merge "$T/browser.tap" "$rc" outage_browser.py
kill -TERM "$SVC"; wait "$SVC"; is $? 0 "the service stops cleanly"
done_testing
