# The big providers' documented SMTP sessions, replayed by the scripted peer
# (tests/peers/fault.lua): Microsoft 365 (smtp.office365.com:587), Google (smtp.gmail.com:587),
# Amazon SES and SendGrid; their EHLO lists and their refusals word for word as public
# transcripts show them, multi-line replies included.  Under test is what the administrator
# sees and what happens to the mail: `mailhook test` (and --json), a delivery by `mailhook
# flush`, and `mailhook queue show` of the message.
# TLS: each session is the provider's part after STARTTLS (its post-TLS EHLO list, with
# AUTH), replayed in plain text with allow_plaintext_auth = true: only the reply handling
# is under test here (STARTTLS itself: smtp-security.sh, smtp-faults.sh).  Google's refusal
# of MAIL before STARTTLS is its pre-TLS part, with tls = none.
# `mailhook test --to` checks the sender first (MAIL, RSET) and then sends, a delivery
# sends at once, and both pipeline (MAIL, RCPT and BDAT or DATA together where offered):
# where the two differ, each gets its own peer, F for the test and D for the delivery.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
need_engine

BASE=(enabled=true server=127.0.0.1 helo_name=client.example.org from=app@example.com
      tls=none tls_required=false connect_timeout=5 command_timeout=5 session_deadline=15
      retry_interval=30 retry_max=60)
LOGIN=(auth=true username=app@example.com password=pw-7 allow_plaintext_auth=true)
hint() { printf '%s\n' "$OUT" | sed -n 's/^  hint *//p'; }
jq_() { printf '%s' "$OUT" | sed -n '/^{/,$p' | J "$1"; }

# deliver CONF: a spool of its own ($SP), one message from app@example.com to
# ops@example.net queued ($ID) and flushed once; FLUSH (its output), SHOW (`mailhook queue
# show ID`), WHERE (pickup or failed: the folder holding it)
n_sp=0
deliver() {
  n_sp=$((n_sp + 1)); SP=$T/sp$n_sp
  spool_make "$SP"
  ID=$(MAILHOOK_SPOOL=$SP "$MAILHOOK" -e '
    local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL"))
    print(assert(sp:enqueue("From: app@example.com\r\nTo: ops@example.net\r\nSubject: alarm\r\n\r\nthe pump stopped\r\n",
      { from = "app@example.com", to = { "ops@example.net" } })))')
  FLUSH=$(MAILHOOK_SPOOL=$SP timeout 30 "$MAILHOOK" -c "$1" flush --timeout 20 2>&1)
  SHOW=$(MAILHOOK_SPOOL=$SP "$MAILHOOK" -c "$1" queue show "$ID" 2>&1)
  WHERE=none
  [ -e "$SP/pickup/$ID.eml" ] && WHERE=pickup
  [ -e "$SP/failed/$ID.eml" ] && WHERE=failed
  if [ -n "${PEERS_DEBUG:-}" ]; then printf '%s\n' "-- flush ($WHERE)" "$FLUSH" "-- show" "$SHOW" | sed 's/^/#   /'; fi
}
has() { printf '%s\n' "$1" | grep -qF -- "$2"; }   # has TEXT STRING: TEXT holds STRING as it is
attempts() { sed -n 's/^attempts //p' "$SP/$WHERE/$ID.state" 2>/dev/null; }
last_reply() { printf '%s\n' "$SHOW" | sed -n 's/^last reply: *//p'; }
# peer_ok VAR DESC: the peer saw the session its script expects (no EXPECT-FAIL)
peer_ok() {
  local out=${1}_OUT
  ! grep -q EXPECT-FAIL "${!out}"; ok $? "$2$(grep EXPECT-FAIL "${!out}" | head -2 | sed 's/^/; peer: /')"
}
# with_check SCRIPT: the same session with the sender check `mailhook test --to` makes
# before it sends (MAIL, RSET, each answered 250); prints the new script's path
printf 'expect ^MAIL\nsend 250 2.1.0 Sender OK\nexpect ^RSET\nsend 250 2.0.0 Resetting\n' > "$T/check.part"
with_check() {
  awk -v f="$T/check.part" '!d && /^expect \^MAIL/ { while ((getline l < f) > 0) print l; d = 1 } { print }' "$1" |
    fault_script
}
# After a refused MAIL, pipelined: the test's RCPT then RSET; a delivery's RCPT and BDAT
# (CHUNKING) or DATA, each refused as out of sequence
BAD_SEQ='send 503 5.5.1 Bad sequence of commands'
AFTER_END="expect ^RSET|^QUIT
send 250 2.0.0 Resetting
expect ^QUIT
send 221 2.0.0 Service closing transmission channel"
AFTER_MAIL_TEST="expect ^RCPT
$BAD_SEQ
$AFTER_END"
AFTER_MAIL_BDAT="expect ^RCPT
$BAD_SEQ
chunk LAST
$BAD_SEQ
$AFTER_END"
AFTER_MAIL_DATA='expect ^RCPT
send 503 Bad sequence of commands
expect ^DATA
send 503 Bad sequence of commands
expect ^RSET|^QUIT
send 250 Ok
expect ^QUIT
send 221 See you later'
# mail_refused SESSION STEPS DELIVERY_TAIL: peers F (for the test) and D (for a delivery)
# playing SESSION, then MAIL answered by STEPS (fault.lua lines), then what follows
# pipelined: the test's (AFTER_MAIL_TEST) or DELIVERY_TAIL; the script without the
# tail in $s
mail_refused() {
  s=$(printf '%s\nexpect ^MAIL FROM:<app@example.com>\n%s\n' "$1" "$2" | fault_script)
  start_fault F "$(cat "$s" - <<<"$AFTER_MAIL_TEST" | fault_script)"
  start_fault D "$(cat "$s" - <<<"$3" | fault_script)"
}

# from_refused WHO SCRIPT REPLY: a provider refusing the message for its From (REPLY to
# the end of the data, SCRIPT's session): `mailhook test --to` shows REPLY whole, with
# the hint about `from`; a delivery puts the message in failed/ after one attempt
from_refused() {
  local who=$1 s=$2 r=$3
  start_fault F "$(with_check "$s")"
  start_fault D "$s"
  mh_test "$(new_conf port="$F" "${LOGIN[@]}")" --to ops@example.net
  is "$RC" 1 "$who: mailhook test --to fails"
  has "$OUT" "server reply   $r"; ok $? "$who: the whole reply is shown"
  like "$(hint)" "send as .*\`from\`" "$who hint: the From address, \`from\`, one the account may send as ($(hint))"
  deliver "$(new_conf port="$D" "${LOGIN[@]}")"
  is "$WHERE:$(attempts)" failed:1 "$who at delivery: to failed/ after one attempt"
  has "$SHOW" "$r"; ok $? "$who: queue show gives the whole reply"
  peer_ok F "$who: the test's session went as the provider's does"
  peer_ok D "$who: the delivery's too"
  stop_peer F; stop_peer D
}

# ============================================================ Microsoft 365
M365_EHLO='send 220 BN0PR04CA0153.outlook.office365.com Microsoft ESMTP MAIL Service ready at Mon, 7 Dec 2026 03:00:00 +0000
expect ^EHLO
send 250-BN0PR04CA0153.outlook.office365.com Hello [203.0.113.7]
send 250-SIZE 157286400
send 250-PIPELINING
send 250-DSN
send 250-ENHANCEDSTATUSCODES
send 250-AUTH LOGIN XOAUTH2
send 250-8BITMIME
send 250-BINARYMIME
send 250-CHUNKING
send 250 SMTPUTF8'
M365_LOGIN="$M365_EHLO
expect ^AUTH LOGIN
send 334 VXNlcm5hbWU6
read
send 334 UGFzc3dvcmQ6
read"

# --- SMTP AUTH disabled for the tenant: 535 5.7.139 ---------------------------------------
T139='535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [BN0PR04CA0153.namprd04.prod.outlook.com 2026-12-07T03:00:00.000Z 08DD1234ABCD5678]'
s=$(fault_script <<S
$M365_LOGIN
send $T139
expect ^QUIT
send 221 2.0.0 Service closing transmission channel
S
)
start_fault F "$s"
C=$(new_conf port="$F" "${LOGIN[@]}")
mh_test "$C"
is "$RC" 1 "M365 5.7.139: mailhook test fails"
like "$OUT" "FAILED at stage auth" "at stage auth"
like "$OUT" "server reply   535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant\. Visit https://aka\.ms/smtp_auth_disabled for more information\. \[BN0PR04CA0153" \
  "the server's whole reply is shown"
like "$(hint)" "SMTP AUTH.* disabled" "hint: SMTP AUTH is disabled on the server's side, not a wrong password ($(hint))"
unlike "$(hint)" "^authentication failed: check .username." "not the credentials hint"
mh_test "$C" --json
is "$(jq_ 'd["failed_stage"] + " " + d["reply"]["enhanced"]')" "auth 5.7.139" "--json: failed_stage auth, reply.enhanced 5.7.139"
like "$(jq_ 'd["hint"]')" "SMTP AUTH.* disabled" "--json: the same hint (the console's Test button shows it)"
deliver "$C"
is "$WHERE:$(attempts)" pickup:0 "M365 5.7.139 at delivery: the message waits, unpenalised (a login refused: docs/delivery.md)"
like "$FLUSH" "535 5\.7\.139 Authentication unsuccessful, SmtpClientAuthentication is disabled" "flush says the server's reply"
like "$(last_reply)" "535 5\.7\.139 .*SmtpClientAuthentication is disabled for the Tenant" "queue show: the reason"
peer_ok F "the sessions went as Microsoft's do"
stop_peer F

# --- no login, and the tenant wants one: 530 5.7.57 to MAIL ---------------------------------
T57='530 5.7.57 Client not authenticated to send mail. Error: 535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator. [BN0PR04CA0153.namprd04.prod.outlook.com]'
mail_refused "$M365_EHLO" "send $T57" "$AFTER_MAIL_BDAT"
mh_test "$(new_conf port="$F")"
is "$RC" 1 "M365 5.7.57, auth = false: mailhook test fails"
like "$OUT" "FAILED at stage sender" "at stage sender"
like "$OUT" "server reply   530 5\.7\.57 Client not authenticated to send mail\. Error: 535 5\.7\.139" "the whole reply"
like "$(hint)" "wants a login .*set .auth = true." "hint: set auth = true"
deliver "$(new_conf port="$D")"
is "$WHERE:$(attempts)" pickup:0 "M365 5.7.57 at delivery: the queue waits (530: the session's refusal, not the message's)"
like "$FLUSH" "wants a login before it takes mail \(530 5\.7\.57 Client not authenticated to send mail.*set auth = true" \
  "flush: the reply, and the setting to change (not 'check auth, username and tls')"
like "$(last_reply)" "530 5\.7\.57 Client not authenticated to send mail" "queue show: the reason"
peer_ok F "the test's session went as Microsoft's does"
peer_ok D "the delivery's too"
stop_peer F; stop_peer D

# --- send-as refused at the end of the data: 550 5.7.60, 554 5.2.252 -----------------------
T60='550 5.7.60 SMTP; Client does not have permissions to send as this sender [BN0PR04CA0153.namprd04.prod.outlook.com 2026-12-07T03:00:00.000Z 08DD1234ABCD5678]'
T252='554 5.2.252 SendAsDenied; app@example.com not allowed to send as app@example.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message due to a permanent exception with message [BeginDiagnosticData]Cannot submit message. 0.35250:0A00BF84 [Hostname=BN0PR04MB8123.namprd04.prod.outlook.com]'
for R in "$T60" "$T252"; do
  code=${R:0:11}
  s=$(fault_script <<S
$M365_LOGIN
send 235 2.7.0 Authentication successful
expect ^MAIL FROM:<app@example.com>
send 250 2.1.0 Sender OK
expect ^RCPT TO:
send 250 2.1.5 Recipient OK
chunk LAST
send $R
expect ^QUIT|^RSET
send 221 2.0.0 Service closing transmission channel
S
)
  from_refused "M365 $code" "$s" "$R"
done

# ============================================================ Google
GID='d2-20020a05620a240200b0074d6b0c2a2dsm1234567qkn.12 - gsmtp'
G_EHLO="send 220 smtp.gmail.com ESMTP $GID
expect ^EHLO
send 250-smtp.gmail.com at your service, [203.0.113.7]
send 250-SIZE 35882577
send 250-8BITMIME
send 250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH
send 250-ENHANCEDSTATUSCODES
send 250-PIPELINING
send 250-CHUNKING
send 250 SMTPUTF8"

# --- 535-5.7.8 Username and Password not accepted (two lines) -----------------------------
s=$(fault_script <<S
$G_EHLO
expect ^AUTH PLAIN
send 535-5.7.8 Username and Password not accepted. For more information, go to
send 535 5.7.8  https://support.google.com/mail/?p=BadCredentials $GID
expect ^QUIT
send 221 2.0.0 closing connection $GID
S
)
start_fault F "$s"
C=$(new_conf port="$F" "${LOGIN[@]}" auth_mechanism=plain)
mh_test "$C"
is "$RC" 1 "Google 535-5.7.8: mailhook test fails"
like "$OUT" "server reply   535 5\.7\.8 Username and Password not accepted\. For more information, go to 5\.7\.8  https://support\.google\.com/mail/\?p=BadCredentials" \
  "both lines of the reply, joined"
like "$(hint)" "check .username., .password." "hint: the credentials"
mh_test "$C" --json
is "$(jq_ 'd["reply"]["smtp"]')" 535 "--json: reply.smtp"
like "$(jq_ 'd["reply"]["text"]')" "not accepted\. For more information, go to .*BadCredentials" "--json: reply.text holds both lines"
deliver "$C"
is "$WHERE:$(attempts)" pickup:0 "Google 535 at delivery: the message waits (nothing fails over a password)"
like "$FLUSH" "Username and Password not accepted.*BadCredentials" "flush: both lines"
like "$(last_reply)" "Username and Password not accepted\. For more information, go to .*BadCredentials" "queue show: both lines"
peer_ok F "the sessions went as Google's do"
stop_peer F

# --- 534-5.7.9 Application-specific password required ---------------------------------------
s=$(fault_script <<S
$G_EHLO
expect ^AUTH PLAIN
send 534-5.7.9 Application-specific password required. For more information, go to
send 534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor $GID
expect ^QUIT
send 221 2.0.0 closing connection
S
)
start_fault F "$s"
C=$(new_conf port="$F" "${LOGIN[@]}" auth_mechanism=plain)
mh_test "$C"
is "$RC" 1 "Google 534-5.7.9: mailhook test fails"
like "$OUT" "server reply   534 5\.7\.9 Application-specific password required\. For more information, go to .*InvalidSecondFactor" "both lines"
like "$(hint)" "app password" "hint: an app password ($(hint))"
deliver "$C"
is "$WHERE:$(attempts)" pickup:0 "Google 534 at delivery: the message waits"
like "$(last_reply)" "Application-specific password required.*InvalidSecondFactor" "queue show: the reply"
stop_peer F

# --- XOAUTH2 refused: 334 with a base64 JSON error, an empty answer, then 535 ---------------
# (mailhook asks oauth_token_command for a fresh token once after a 5xx: two exchanges)
XERR=$(printf '%s' '{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}' | base64 -w0)
XFAIL="expect ^AUTH XOAUTH2 
send 334 $XERR
expect ^$
send 535-5.7.8 Username and Password not accepted. For more information, go to
send 535 5.7.8  https://support.google.com/mail/?p=BadCredentials $GID"
s=$(fault_script <<S
$G_EHLO
$XFAIL
$XFAIL
expect ^QUIT
send 221 2.0.0 closing connection
S
)
start_fault F "$s"
C=$(new_conf port="$F" auth=true username=app@example.com auth_mechanism=xoauth2 \
  oauth_token_command="echo ya29.expired-token" allow_plaintext_auth=true)
mh_test "$C"
is "$RC" 1 "Google XOAUTH2 refused: mailhook test fails"
like "$OUT" "FAILED at stage auth" "at stage auth (not a protocol error)"
like "$OUT" "server reply   535 5\.7\.8 Username and Password not accepted.*BadCredentials" "the final 535, both lines"
like "$ERR" 'the server.s OAuth error: \{"status":"400","schemes":"Bearer","scope":"https://mail\.google\.com/"\}' \
  "the error challenge's JSON, decoded, is reported with it (the final 535 never says what the token lacked)"
peer_ok F "the exchange completed: an empty line answered each 334"
# a server whose error challenge quotes the token: not shown
XERR=$(printf '%s' '{"status":"401","token":"ya29.expired-token"}' | base64 -w0)
start_fault G "$(printf '%s\n' "$G_EHLO" "expect ^AUTH XOAUTH2 " "send 334 $XERR" "expect ^\$" "send 535 5.7.8 no" \
  "expect ^AUTH XOAUTH2 " "send 334 $XERR" "expect ^\$" "send 535 5.7.8 no" | fault_script)"
mh_test "$(new_conf port="$G" auth=true username=app@example.com auth_mechanism=xoauth2 \
  oauth_token_command="echo ya29.expired-token" allow_plaintext_auth=true)"
like "$ERR" 'OAuth error: \{"status":"401","token":"\*+"\}' "an OAuth error quoting the token: masked ($ERR)"
stop_peer G
deliver "$C"
is "$WHERE:$(attempts)" pickup:0 "XOAUTH2 refused at delivery: the message waits"
like "$(last_reply)" "535 5\.7\.8 Username and Password not accepted.*OAuth error: \{\"status\":\"400\"" \
  "queue show: the reply, and the OAuth error"
stop_peer F

# --- MAIL before STARTTLS (its pre-TLS part): 530-5.7.0, two lines -------------------------
mail_refused "send 220 smtp.gmail.com ESMTP $GID
expect ^EHLO
send 250-smtp.gmail.com at your service, [203.0.113.7]
send 250-SIZE 35882577
send 250-8BITMIME
send 250-STARTTLS
send 250-ENHANCEDSTATUSCODES
send 250-PIPELINING
send 250-CHUNKING
send 250 SMTPUTF8" "send 530-5.7.0 Must issue a STARTTLS command first. For more information, go to
send 530 5.7.0  https://support.google.com/a/answer/3221692 $GID" "$AFTER_MAIL_BDAT"
mh_test "$(new_conf port="$F")"
is "$RC" 1 "Google 530-5.7.0 STARTTLS first, tls = none: mailhook test fails"
like "$ERR" "requires TLS before it accepts mail" "the error: TLS required"
like "$OUT" "server reply   530 5\.7\.0 Must issue a STARTTLS command first\. For more information, go to 5\.7\.0  https://support\.google\.com/a/answer/3221692" \
  "both lines"
like "$(hint)" "tls = starttls" "hint: tls = starttls"
deliver "$(new_conf port="$D")"
is "$WHERE:$(attempts)" pickup:0 "at delivery: the queue waits, nothing failed"
like "$FLUSH" "requires TLS.*set tls = starttls" "flush says what to change"
peer_ok F "the test's session went as Google's does"
peer_ok D "the delivery's too"
stop_peer F; stop_peer D

# --- 421-4.7.0 Try again later, closing connection (to MAIL), three lines ------------------
s=$(fault_script <<S
$G_EHLO
expect ^AUTH PLAIN
send 235 2.7.0 Accepted
expect ^MAIL
send 421-4.7.0 Try again later, closing connection. (MAIL)
send 421-4.7.0  For more information, go to
send 421 4.7.0  https://support.google.com/a/answer/3221692 $GID
close
S
)
start_fault F "$s"
C=$(new_conf port="$F" "${LOGIN[@]}" auth_mechanism=plain)
mh_test "$C"
is "$RC" 1 "Google 421-4.7.0: mailhook test fails"
like "$OUT" "server reply   421 4\.7\.0 Try again later, closing connection\. \(MAIL\) 4\.7\.0  For more information, go to 4\.7\.0  https://support\.google\.com/a/answer/3221692" \
  "all three lines"
like "$(hint)" "try again later" "hint: for now, not the From address ($(hint))"
deliver "$C"
is "$WHERE:$(attempts)" pickup:0 "Google 421 at delivery: the message waits for a retry (nothing failed)"
like "$FLUSH$(last_reply)" "Try again later, closing connection" "the reason reaches the admin"
stop_peer F

# ============================================================ Amazon SES
SES_EHLO='send 220 email-smtp.amazonaws.com ESMTP SimpleEmailService-d-ABCDEFGHI abcdefghijklmno
expect ^EHLO
send 250-email-smtp.amazonaws.com
send 250-8BITMIME
send 250-AUTH PLAIN LOGIN
send 250 Ok
expect ^AUTH PLAIN
send 235 Authentication successful.'
ses_txn() {   # ses_txn REPLY: MAIL, RCPT and DATA taken, REPLY to the final dot
  fault_script <<S
$SES_EHLO
expect ^MAIL FROM:<app@example.com>
send 250 Ok
expect ^RCPT TO:
send 250 Ok
expect ^DATA
send 354 End data with <CR><LF>.<CR><LF>
data
send $1
expect ^QUIT|^RSET
send 221 Bye
S
}
# --- 554 Message rejected: Email address is not verified (at the end of the data) ----------
SESV='554 Message rejected: Email address is not verified. The following identities failed the check in region EU-WEST-1: app@example.com'
from_refused "SES 554 not verified" "$(ses_txn "$SESV")" "$SESV"

# --- 454 Throttling failure: Maximum sending rate exceeded (temporary) ---------------------
start_fault D "$(ses_txn '454 Throttling failure: Maximum sending rate exceeded.')"
C=$(new_conf port="$D" "${LOGIN[@]}")
deliver "$C"
is "$WHERE:$(attempts)" pickup:1 "SES 454 throttling: deferred, to be retried"
like "$(last_reply)" "454 Throttling failure: Maximum sending rate exceeded" "queue show: the reply"
MAILHOOK_SPOOL=$SP timeout 30 "$MAILHOOK" -c "$C" flush --timeout 20 >/dev/null 2>&1
is "$(attempts)" 2 "the next flush tries it again"
peer_ok D "the sessions went as SES's do"
stop_peer D

# ============================================================ SendGrid
SG_EHLO='send 220 SG ESMTP service ready at geopod-ismtpd-3-0
expect ^EHLO
send 250-smtp.sendgrid.net
send 250-8BITMIME
send 250-PIPELINING
send 250-SIZE 31457280
send 250-AUTH PLAIN LOGIN
send 250 AUTH=PLAIN LOGIN'
mail_refused "$SG_EHLO" "send 550 Unauthenticated senders not allowed" "$AFTER_MAIL_DATA"
mh_test "$(new_conf port="$F")"
is "$RC" 1 "SendGrid 550 Unauthenticated senders, auth = false: mailhook test fails"
like "$OUT" "server reply   550 Unauthenticated senders not allowed" "the reply"
like "$(hint)" "set .auth = true." "hint: the login, not the From address ($(hint))"
deliver "$(new_conf port="$D")"
is "$WHERE:$(attempts)" pickup:0 "at delivery: the queue waits for the login setting (not each message to failed/)"
like "$FLUSH" "Unauthenticated senders not allowed.*set auth = true" "flush: the reply, and what to set"
like "$(last_reply)" "550 Unauthenticated senders not allowed" "queue show: the reason"
peer_ok F "the test's session went as SendGrid's does"
peer_ok D "the delivery's too"
stop_peer F; stop_peer D
# the same refusal, and the server hangs up before answering the pipelined RCPT: the
# report is MAIL's refusal (it said "takes the From address, then refuses mail after it")
start_fault F "$(printf 'expect ^RCPT\nclose\n' | cat "$s" - | fault_script)"
mh_test "$(new_conf port="$F")"
like "$OUT" "FAILED at stage sender" "refused MAIL, then a hang-up: stage sender"
like "$ERR" "MAIL FROM refused: 550 Unauthenticated senders not allowed" "the error is MAIL's refusal"
unlike "$OUT" "takes the From address" "not 'takes the From address'"
stop_peer F
done_testing
