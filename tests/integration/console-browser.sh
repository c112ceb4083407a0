# The console in a real browser (issue 15): headless chromium + selenium
# (tests/console/browser.py) log in, fill the seed's form against aiosmtpd with
# STARTTLS + AUTH, press Test and see each stage as it passes, press Update and
# find the values in the settings file, see a deferred message in the queue and
# retry it, watch the live log, and read the hint of a wrong password.  A
# screenshot of each page goes to $BUILD/console-*.png.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
export MAILHOOK_SPOOL=$T/spool MAILHOOK_CONF=$T/mailhook.conf
need_browser

make_certs "$T/certs" || exit 1
SMTP_PW='smtp-Browser-Pw-552'
ADMIN_PW='admin-Browser-Pw-117'
# the final dot waits 3 s, so the page can be seen showing the stages before it
start_smtpd S --tls starttls --require-starttls --cert "$T/certs/server.crt" --key "$T/certs/server.key" \
  --auth "smtpuser:$SMTP_PW" --maildir "$T/mail" --log "$T/smtpd.log" --delay-data 3 \
  --reply-rcpt-once "later@example.net=450 4.2.0 mailbox busy, try later" || exit 1
mkdir -p "$T/mail"
AP=$(free_port)
# what the form does not hold: the console's address, the test CA, short timeouts
write_conf "$MAILHOOK_CONF" admin_listen="127.0.0.1:$AP" tls_ca_file="$T/certs/ca.crt" connect_timeout=10
echo "$ADMIN_PW" | "$MAILHOOK" update admin_password=- >/dev/null; ok $? "admin password set"

MAILHOOK_LOG_LEVEL=info "$MAILHOOK" run >"$T/svc.log" 2>&1 &
SVC=$!
on_exit "kill -9 $SVC"
wait_for 10 grep -q "console: http://127.0.0.1:$AP" "$T/svc.log"; ok $? "the service serves the console"

SHOTS=$BUILD
mkdir -p "$SHOTS"
rm -f "$SHOTS"/console-*.png
"$PY" "$ROOT/tests/console/browser.py" "http://127.0.0.1:$AP" "$ADMIN_PW" "$S" "$SMTP_PW" "$MAILHOOK_CONF" \
  "$SHOTS" "$MAILHOOK" "$T/mail" > "$T/browser.tap" 2> "$T/browser.err"
rc=$?
[ "$rc" = 0 ] || sed 's/^/# /' "$T/browser.err" | tail -25
tap_merge "$T/browser.tap" "$rc" browser.py
# a failed step: what the service said meanwhile (logins, refusals), for the CI log
if [ "$rc" != 0 ] || grep -q "^not ok" "$T/browser.tap"; then tail -40 "$T/svc.log" | sed 's/^/# svc: /' >&2; fi
for p in login test-running test settings-error settings queue status test-failed; do
  [ -s "$SHOTS/console-$p.png" ]; ok $? "screenshot $SHOTS/console-$p.png"
done

unlike "$(cat "$T/svc.log")" "$ADMIN_PW|$SMTP_PW|not-the-password|new-Browser-Admin-Pw" "no password in the service's log"
kill -TERM "$SVC"; wait "$SVC"; rc=$?
is "$rc" 0 "the service stops cleanly with a browser session open"

done_testing
