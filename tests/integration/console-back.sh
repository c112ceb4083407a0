# The Back button and a session that ended (tests/console/back_browser.py,
# headless chromium): a settings page whose session was ended elsewhere is
# never shown again by Back, whatever the browser's back/forward cache kept;
# all while another local user floods the console without a session: the
# login page, its assets and the login are never rate-limited.
# Real parts: `mailhook run` with its console, chromium.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
need_browser

ADMIN_PW='admin-Back-Pw-2207'
AP=$(free_port)
conf_for "$(free_port)" admin_listen="127.0.0.1:$AP" 2>/dev/null
printf '%s\n' "$ADMIN_PW" | "$MAILHOOK" update admin_password=- >/dev/null 2>&1
ok $? "admin password set"
svc_start
wait_for 10 grep -q "console: http://127.0.0.1:$AP" "$T/svc.log"; ok $? "the service serves the console"

"$PY" "$ROOT/tests/console/back_browser.py" "http://127.0.0.1:$AP" "$ADMIN_PW" > "$T/browser.tap" 2> "$T/browser.err"
rc=$?
[ "$rc" = 0 ] || sed 's/^/# /' "$T/browser.err" | tail -25
tap_merge "$T/browser.tap" "$rc" back_browser.py
svc_stop; is $? 0 "SIGTERM: exit 0"
done_testing
