# The console's Queue page says which file of maildrop/ the service cannot adopt,
# with the service's reason, as `mailhook queue` and `mailhook status` do: here the
# service runs in a user namespace (`unshare -r`, as systemd's PrivateUsers=) and a
# drop's owner (uid 4242) is unseen from it (EUNSAFE: it stays in maildrop/, tried
# again at each scan).  Before, its row looked like any file waiting for the
# service, the reason under "Left out", and the Status page did not name it
# (tests/console/maildrop_stuck_browser.py: headless chromium + selenium).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
if ! unshare -r true 2>/dev/null; then echo "1..0 # SKIP no user namespaces here (unshare -r)"; exit 0; fi
export MAILHOOK_SPOOL=$T/spool MAILHOOK_CONF=$T/mailhook.conf
need_browser

ADMIN_PW='admin-Stuck-Pw-4242'
AP=$(free_port)
# outgoing mail disabled: the service adopts maildrop/ all the same (every scan)
write_conf "$MAILHOOK_CONF" enabled=false server=127.0.0.1 port="$(free_port)" tls=none tls_required=false \
  from=app@example.com admin_listen="127.0.0.1:$AP"
echo "$ADMIN_PW" | "$MAILHOOK" update admin_password=- >/dev/null 2>&1; ok $? "admin password set"
spool_make
mkdir -m 1730 "$MAILHOOK_SPOOL/maildrop"
NAME=0000000000000001.00000001
printf 'MAILHOOK-DROP 1\nuid 4242\ngid 4242\npid 1\ntime 1\nto ops@example.net\n\nSubject: s\n\nbody\n' > "$T/drop"
chown 4242:4242 "$T/drop"
mv "$T/drop" "$MAILHOOK_SPOOL/maildrop/$NAME"
MAILHOOK_LOG_LEVEL=info unshare -r "$MAILHOOK" run >"$T/svc.log" 2>&1 &
SVC=$!
on_exit "kill -9 $SVC"
wait_for 20 grep -q "console: http://127.0.0.1:$AP" "$T/svc.log"; ok $? "the service serves the console"
wait_for 20 grep -q "maildrop/$NAME: its owner shows as uid 65534" "$T/svc.log"
ok $? "the service cannot adopt $NAME ($(cat "$T/svc.log"))"
named() { "$MAILHOOK" status 2>&1 | grep -q "  $NAME since .*its owner shows as uid 65534"; }
wait_for 20 named; ok $? "mailhook status names it"

"$PY" "$ROOT/tests/console/maildrop_stuck_browser.py" "http://127.0.0.1:$AP" "$ADMIN_PW" "$NAME" \
  "$BUILD" > "$T/browser.tap" 2> "$T/browser.err"
rc=$?
[ "$rc" = 0 ] || sed 's/^/# /' "$T/browser.err" | tail -25
tap_merge "$T/browser.tap" "$rc" maildrop_stuck_browser.py
[ -f "$MAILHOOK_SPOOL/maildrop/$NAME" ]; ok $? "the file stays in maildrop/"
kill -TERM "$SVC"; wait "$SVC"; is $? 0 "the service stops cleanly"
done_testing
