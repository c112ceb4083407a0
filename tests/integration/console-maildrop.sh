# The console's Queue page lists what local users handed over through an
# unprivileged `sendmail` and the service has not adopted yet (maildrop/), as
# `mailhook queue` and mailq do: who dropped it, sender, subject, recipients,
# items left out, as text; Retry says it waits for the adoption, Remove deletes
# it (tests/console/maildrop_browser.py: headless chromium + selenium).  Before,
# the page did not show such a file at all.  The service adopts maildrop/ at
# every scan (every 5 s when idle, outgoing mail disabled or not: the sendmail
# that dropped it has said yes), so once it is up its settings file is moved
# away: an adoption then waits ("the settings cannot be read"), and the file
# stays for the page to show, however slowly the browser goes (ASan, load).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
export MAILHOOK_SPOOL=$T/spool MAILHOOK_CONF=$T/mailhook.conf
need_browser

ADMIN_PW='admin-Maildrop-Pw-418'
AP=$(free_port)
write_conf "$MAILHOOK_CONF" enabled=false server=127.0.0.1 port="$(free_port)" tls=none tls_required=false \
  from=app@example.com admin_listen="127.0.0.1:$AP"
echo "$ADMIN_PW" | "$MAILHOOK" update admin_password=- >/dev/null 2>&1; ok $? "admin password set"
MAILHOOK_LOG_LEVEL=info "$MAILHOOK" run >"$T/svc.log" 2>&1 &
SVC=$!
on_exit "kill -9 $SVC"
wait_for 10 grep -q "console: http://127.0.0.1:$AP" "$T/svc.log"; ok $? "the service serves the console"
mv "$MAILHOOK_CONF" "$T/mailhook.conf.away"   # from here on no adoption: the page's file stays
# a file as the drop program leaves it (runtime/drop.c): its items left out as
# sendmail kept them (a typed backslash \x5C, an ESC \x1B), escaped once more for the record
mkdir -m 1730 "$MAILHOOK_SPOOL/maildrop"
NAME=0000000000000001.00000001
printf 'MAILHOOK-DROP 1\nuid %s\ngid %s\npid 1\ntime 1\nto ops@example.net\nto %s\nleftout %s\twhy\nleftout %s\twhy\n\nSubject: %s\n\nbody\n' \
  "$(id -u)" "$(id -g)" "\"<img src=x onerror=document.title='PWNED-rcpt'>\"@example.net" \
  'Ops\x5Cx5Cx1bName' 'Esc\x5Cx1BName' "$(printf '<b>bold</b> notice \342\200\256txt.exe')" > "$T/drop"
mv "$T/drop" "$MAILHOOK_SPOOL/maildrop/$NAME"
like "$("$MAILHOOK" queue)" "maildrop .*refused:Ops\\\\x5Cx1bName,Esc\\\\x1BName" "mailhook queue lists it"

"$PY" "$ROOT/tests/console/maildrop_browser.py" "http://127.0.0.1:$AP" "$ADMIN_PW" "$MAILHOOK_SPOOL" "$NAME" \
  "$BUILD" > "$T/browser.tap" 2> "$T/browser.err"
rc=$?
[ "$rc" = 0 ] || sed 's/^/# /' "$T/browser.err" | tail -25
tap_merge "$T/browser.tap" "$rc" maildrop_browser.py
grep -q "console: maildrop/$NAME removed" "$T/svc.log"; ok $? "the removal is logged"
term_wait "$SVC"; is $? 0 "the service stops cleanly"
done_testing
