# The console as an admin uses it at 3 a.m. (tests/console/admin3am.py, HTTP
# and headless chromium): a Save that stops mail, turns off certificate checks
# or narrows the secrets file's mode shows the warning the CLI prints (in the
# JSON and on the page, as text); a Test shows its warnings; two tabs saving
# different values: the second is refused (409) and shows the saved values
# instead of silently putting back what it never showed; the service restarts
# under an open page: "log in again", and the values typed come back after it;
# a wrong port, an unknown server, a bad From: each said where it belongs.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
need_browser

PORT=$(free_port)
AP=$(free_port)
ADMIN_PW='admin-3am-Pw-6620'
SMTP_PW='smtp-3am-Pw-8841'
conf_for "$PORT" admin_listen="127.0.0.1:$AP"
echo "$ADMIN_PW" | "$MAILHOOK" update admin_password=- >/dev/null; ok $? "admin password set"
# the final dot waits 2 s: a Save made while a message is in flight
peer_start "$PORT" "$T/peer" --delay-data 2

# admin3am.py starts (and restarts) `mailhook run` itself: its log in $T/svc.log
"$PY" "$ROOT/tests/console/admin3am.py" "http://127.0.0.1:$AP" "$ADMIN_PW" "$SMTP_PW" "$CONF" "$MAILHOOK" \
  "$T/svc.log" "$PORT" > "$T/checks.tap" 2> "$T/checks.err"
rc=$?
[ "$rc" = 0 ] || sed 's/^/# /' "$T/checks.err" | tail -25
tap_merge "$T/checks.tap" "$rc" admin3am.py
unlike "$(cat "$T/svc.log")" "$ADMIN_PW|$SMTP_PW" "no password in the service's log"
done_testing
