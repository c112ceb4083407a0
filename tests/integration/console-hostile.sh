# The console in a real browser against hostile data (issue 15, the security
# review): a message's Subject, From and recipients written by any local user
# (`sendmail`, a drop-in .eml), a hostile SMTP server's replies (<script>,
# <img onerror>) in the Test, the queue, the status and the live log, an outage's reason, a setting
# and an error message holding markup, the URL's query and fragment; none may
# run (tests/console/hostile_browser.py: headless chromium + selenium).  Also
# Trusted Types enforced, queue paging over 129 messages, Enter to save, and the
# login page without an admin password.  Screenshots: $BUILD/console-hostile-*.png.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
export MAILHOOK_SPOOL=$T/spool MAILHOOK_CONF=$T/mailhook.conf
need_browser

ADMIN_PW='admin-Hostile-Pw-903'
# the hostile server: every MAIL from evil@ deferred with a script in the reply,
# RCPT fail@ refused with an <img onerror>
start_smtpd S --log "$T/smtpd.log" \
  --reply-mail 'evil@example.com=451 4.3.0 <script>document.title="PWNED-reply"</script> try later' \
  --reply-rcpt "fail@example.net=550 5.1.1 <img src=x onerror=\"document.title='PWNED-550'\"> no such user" || exit 1
# a server down, saying why with markup (the outage's reason, shown last)
printf '%s\n' "send 421 4.3.2 <img src=x onerror=\"document.title='PWNED-outage'\"> down" close > "$T/down.script"
start_fault D "$T/down.script" || exit 1
start_console "$S"

# any local user: sendmail with hostile headers and a quoted recipient holding markup
printf '%s\n' "From: \"<svg/onload=document.title='PWNED-from'>\" <evil@example.com>" \
  "To: \"<script>document.title='PWNED-to'</script>\" <\"<svg/onload=document.title='PWNED-rcpt'>\"@example.net>" \
  "Subject: <img src=x onerror=\"document.title='PWNED-subject'\">" "" "body" |
  "$MAILHOOK" sendmail -t -f evil@example.com; ok $? "sendmail takes a message with markup in its headers"
# a drop-in .eml, renamed into pickup/ (the IIS pickup convention)
printf '%s\r\n' "X-Sender: evil@example.com" "X-Receiver: hold@example.net" "From: evil@example.com" \
  "To: hold@example.net" "Subject: <script>window.PWNED=1</script> drop-in" "" "body" > "$MAILHOOK_SPOOL/tmp/dropin.eml"
mv "$MAILHOOK_SPOOL/tmp/dropin.eml" "$MAILHOOK_SPOOL/pickup/dropin.eml"
# adopted (given an id) before the others are queued, so it is on the queue's first page,
# oldest first (under load the 128 below could otherwise come first and push it to page 3)
adopted() { [ ! -e "$MAILHOOK_SPOOL/pickup/dropin.eml" ]; }
wait_for 30 adopted; ok $? "the service adopts the drop-in"
# 128 more for the pages, and one the server refuses
"$MAILHOOK" -e '
  local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL"))
  local list = {}
  for i = 1, 128 do list[i] = { "From: evil@example.com\r\nTo: hold@example.net\r\nSubject: page " .. i ..
    "\r\n\r\nbody\r\n", { from = "evil@example.com", to = { "hold@example.net" } } } end
  assert(sp:enqueue_many(list))'
ok $? "128 more queued"
echo x | "$MAILHOOK" enqueue --to fail@example.net --subject refused >/dev/null; ok $? "one for a refused recipient"
count_is() { [ "$(find "$MAILHOOK_SPOOL/$1" -name '*.eml' | wc -l)" = "$2" ]; }
# the quoted recipient is refused before it is sent (not a valid SMTP address): failed/ too
wait_for 30 count_is failed 2; ok $? "the refused one and the hostile recipient are in failed/"
wait_for 30 grep -q "status=deferred.*PWNED-reply" "$T/svc.log"; ok $? "the others are deferred with the hostile reply"
wait_for 30 count_is pickup 129; ok $? "129 in pickup/ (the drop-in adopted)"

"$PY" "$ROOT/tests/console/hostile_browser.py" "http://127.0.0.1:$AP" "$ADMIN_PW" "$BUILD" "$MAILHOOK" \
  "$MAILHOOK_SPOOL" "$SVC" "$D" > "$T/browser.tap" 2> "$T/browser.err"
rc=$?
while IFS= read -r line; do
  case $line in
    "ok "*) ok 0 "${line#ok * - }" ;;
    "not ok "*) ok 1 "${line#not ok * - }" ;;
    "#"*) echo "$line" ;;
  esac
done < "$T/browser.tap"
# (on stderr too, with the service's last lines: prove shows a failing file's stderr,
# and a CI log must tell why the browser saw what it saw, not only which check failed)
[ "$rc" = 0 ] || { diag "hostile_browser.py exit $rc"; sed 's/^/# /' "$T/browser.err" | tail -25
                   { grep '^not ok' -A3 "$T/browser.tap"; tail -15 "$T/svc.log"; } | sed 's/^/# /' >&2; }
ok "$rc" "hostile_browser.py ran to its end"
[ -n "$KEEP_LOG" ] && cp "$T/svc.log" "$KEEP_LOG"
term_wait "$SVC"; is $? 0 "the service stops cleanly"
done_testing
