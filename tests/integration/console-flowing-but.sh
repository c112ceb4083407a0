# The console says what `mailhook status` says in its two "flowing, but" cases
# (exit 1, flowing false, and yet the mail that can go goes): a file of maildrop/
# the service cannot adopt (maildrop_stuck: here the service runs in a user
# namespace, `unshare -r` as systemd's PrivateUsers=, and a drop's owner, uid 4242,
# is unseen from it) and a settings file broken after the service started
# (old_settings: `mailhook update enabled=false`, not reloaded).  Both are an amber
# "flowing, but" pill with the CLI's reason; /metrics has mailhook_attention{reason}
# for each.  Then the service reloads the broken file: a real stop, the red "NOT
# flowing" it always was.  Before, the console said "NOT flowing" / "Mail is NOT
# flowing: ..." in all three (tests/console/flowing_but_browser.py: headless
# chromium + selenium).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
if ! unshare -r true 2>/dev/null; then echo "1..0 # SKIP no user namespaces here (unshare -r)"; exit 0; fi
export MAILHOOK_SPOOL=$T/spool MAILHOOK_CONF=$T/mailhook.conf
need_browser

ADMIN_PW='admin-FlowBut-Pw-4242'
AP=$(free_port)
# enabled, a server nobody listens on: nothing is queued, so nothing is tried
# (the connection stays idle: no outage to make it "NOT flowing")
write_conf "$MAILHOOK_CONF" enabled=true server=127.0.0.1 port="$(free_port)" tls=none tls_required=false \
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

# status_is KEY: `mailhook status --json` has KEY true (the CLI's view, waited for)
status_is() { [ "$("$MAILHOOK" status --json 2>/dev/null | J "d.get('$1')")" = true ]; }
browser() {
  "$PY" "$ROOT/tests/console/flowing_but_browser.py" "http://127.0.0.1:$AP" "$ADMIN_PW" "$1" \
    "$BUILD" > "$T/browser-$1.tap" 2> "$T/browser-$1.err"
  local rc=$?
  [ "$rc" = 0 ] || sed 's/^/# /' "$T/browser-$1.err" | tail -25
  tap_merge "$T/browser-$1.tap" "$rc" "flowing_but_browser.py $1"
}

wait_for 20 status_is maildrop_stuck
ok $? "mailhook status: flowing, but a file of maildrop/ is stuck ($("$MAILHOOK" status 2>&1 | head -1))"
browser stuck

"$MAILHOOK" update enabled=false >/dev/null 2>&1; ok $? "the settings file broken under the running service"
wait_for 20 status_is old_settings
ok $? "mailhook status: flowing with the settings loaded before ($("$MAILHOOK" status 2>&1 | head -1))"
status_is maildrop_stuck; ok $? "and the maildrop/ file is still said stuck (both reasons hold: only the first was)"
browser old

kill -HUP "$SVC"
wait_for 20 grep -q "paused" "$T/svc.log"; ok $? "the service reloads the broken file: delivery paused"
notflow() { "$MAILHOOK" status 2>&1 | head -1 | grep -q "^mail is NOT flowing"; }
wait_for 20 notflow; ok $? "mailhook status: NOT flowing"
browser not

[ -f "$MAILHOOK_SPOOL/maildrop/$NAME" ]; ok $? "the file stays in maildrop/"
term_wait "$SVC"; is $? 0 "the service stops cleanly"
done_testing
