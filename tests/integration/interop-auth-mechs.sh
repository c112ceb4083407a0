# AUTH against servers that offer other mechanisms, in other orders (aiosmtpd with
# --auth-mechs: AUTH only under STARTTLS, as Postfix's smtpd_tls_auth_only and Exim's
# server_advertise_condition do): PLAIN only, LOGIN only, LOGIN before PLAIN (PLAIN is
# still chosen), CRAM-MD5 before LOGIN (LOGIN: under TLS PLAIN, then LOGIN, then
# CRAM-MD5), CRAM-MD5 only (CRAM-MD5, the server checking the HMAC), and a password
# with ':', '%', '"', '\', non-ASCII and a trailing blank through each.  Without TLS
# (allow_plaintext_auth) CRAM-MD5 comes first, so the password never crosses; a wrong
# one gets the 535 as with PLAIN; a challenge that is no base64 is cancelled, named,
# and nothing derived from the password is sent.  A server offering only mechanisms
# mailhook does not speak (DIGEST-MD5) is said to be that, not a wrong password: the
# test's auth row names DIGEST-MD5, its hint is about the mechanism; the service logs
# "no login possible with these settings", not "server unreachable", and keeps the
# message.  A port with no AUTH at all, and an auth_mechanism the server does not
# offer, each get their own hint.  The password is in no output.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
need_engine

make_certs "$T/certs" || exit 1
C=$T/certs
export MAILHOOK_SPOOL=$T/spool
mkdir -p "$MAILHOOK_SPOOL"
PW='s3cr:%"\ é '
PWQ='"s3cr:%\"\\ é "'          # as written in the settings file
BASE=(enabled=true from=mailhook@example.org server=localhost tls=starttls tls_ca_file=$C/ca.crt
      auth=true username=pbx@example.org password="$PWQ" connect_timeout=5 command_timeout=5
      session_deadline=20 retry_interval=1)
ALL_OUT=""
hint() { printf '%s\n' "$OUT" | sed -n 's/^  hint  *//p'; }
row() { printf '%s\n' "$OUT" | sed -n "s/^  $1  *//p"; }
AUTH_HINT="authentication failed: check \`username\`, \`password\`/\`password_command\`, \`auth_mechanism\`"

# mechanisms offered -> the one used, by `test` and by a delivery
for case in "PLAIN:plain" "LOGIN:login" "LOGIN,PLAIN:plain" "CRAM-MD5,LOGIN:login" "CRAM-MD5:cram-md5" \
            "CRAM-MD5,PLAIN,LOGIN:plain"; do
  mechs=${case%%:*} want=${case#*:}
  start_smtpd S --tls starttls --cert "$C/server.crt" --key "$C/server.key" --auth "pbx@example.org:$PW" \
    --auth-mechs "$mechs" --maildir "$T/mail-$want-$mechs" --log "$T/log-$mechs" || exit 1
  conf=$(new_conf port="$S")
  mh_test "$conf"
  ALL_OUT+=$OUT
  is "$RC" 0 "AUTH $mechs offered: mailhook test passes${ERR:+ ($ERR)}"
  is "$(row auth)" "${want^^} as pbx@example.org" "AUTH $mechs offered: it logs in with ${want^^}"
  printf 'body\n' | "$MAILHOOK" -c "$conf" enqueue --to rcpt@example.net --subject "$mechs" >/dev/null
  out=$("$MAILHOOK" -c "$conf" flush 2>&1); rc=$?
  ALL_OUT+=$out
  is "$rc" 0 "AUTH $mechs offered: flush delivers${out:+ ($out)}"
  is "$(grep -c "^auth ok ${want^^} pbx@example.org" "$T/log-$mechs")" 2 "and the server saw two ${want^^} logins"
  stop_peer S
done

# without TLS (tls = none, allow_plaintext_auth = true; the server offers AUTH in the
# clear): CRAM-MD5 before PLAIN and LOGIN, so only an HMAC of the challenge crosses
CLEAR=(tls=none tls_required=false allow_plaintext_auth=true)
start_smtpd S --auth "pbx@example.org:$PW" --auth-in-clear --auth-mechs PLAIN,LOGIN,CRAM-MD5 \
  --maildir "$T/mail-clear" --log "$T/log-clear" || exit 1
conf=$(new_conf port="$S" "${CLEAR[@]}")
mh_test "$conf"
ALL_OUT+=$OUT
is "$RC" 0 "no TLS, PLAIN LOGIN CRAM-MD5 offered: mailhook test passes${ERR:+ ($ERR)}"
is "$(row auth)" "CRAM-MD5 as pbx@example.org" "it logs in with CRAM-MD5, not PLAIN"
OUT=$(MAILHOOK_SPOOL=$T/spool timeout 60 "$MAILHOOK" -c "$conf" test --json 2>/dev/null)
ALL_OUT+=$OUT
is "$(printf '%s' "$OUT" | J 'd["connection"].get("auth_mechanism")')" "cram-md5" \
  "test --json names cram-md5"
printf 'body\n' | "$MAILHOOK" -c "$conf" enqueue --to rcpt@example.net --subject clear >/dev/null
out=$(MAILHOOK_LOG_LEVEL=debug "$MAILHOOK" -v -c "$conf" flush 2>&1); rc=$?
ALL_OUT+=$out
is "$rc" 0 "no TLS: flush delivers with CRAM-MD5${out:+ ($(printf '%s' "$out" | tail -1))}"
like "$out" "smtp > AUTH \(credentials not logged\)" "the debug log shows the AUTH command, not its argument"
is "$(grep -c '^auth ok CRAM-MD5 pbx@example.org' "$T/log-clear")" 3 \
  "the server checked three CRAM-MD5 logins (test, test --json, flush; HMAC verified)"
is "$(grep -c '^auth .* PLAIN\|^auth .* LOGIN' "$T/log-clear")" 0 "and saw no PLAIN or LOGIN"
stop_peer S

# a wrong password: 535, as PLAIN and LOGIN get it (stage auth, the hint about credentials)
start_smtpd S --auth "pbx@example.org:$PW" --auth-in-clear --auth-mechs CRAM-MD5 --log "$T/log-cram-bad" || exit 1
mh_test "$(new_conf port="$S" "${CLEAR[@]}" password=not-the-password)"
ALL_OUT+=$OUT
is "$RC" 1 "CRAM-MD5, wrong password: mailhook test fails"
like "$OUT" "FAILED at stage auth" "at stage auth"
like "$ERR" "authentication failed: 535" "with the server's 535"
is "$(hint)" "$AUTH_HINT" "the hint is about the credentials"
is "$(grep -c '^auth fail CRAM-MD5 pbx@example.org' "$T/log-cram-bad")" 1 "the server saw one failed CRAM-MD5 login"
stop_peer S

# a challenge that is no base64: cancelled ("*"), named, nothing from the password sent
start_smtpd S --auth "pbx@example.org:$PW" --auth-in-clear --auth-mechs CRAM-MD5 --cram-bad-challenge \
  --log "$T/log-cram-garbled" || exit 1
mh_test "$(new_conf port="$S" "${CLEAR[@]}")"
ALL_OUT+=$OUT
is "$RC" 1 "CRAM-MD5, a challenge that is no base64: mailhook test fails"
like "$OUT" "FAILED at stage auth" "at stage auth"
like "$ERR" "CRAM-MD5 challenge is not valid base64 .*cancelled" "the error names the challenge"
like "$(cat "$T/log-cram-garbled")" "bad-challenge:<MISSING>|bad-challenge:.*MISSING" "the client answered '*' (the server saw the exchange aborted)"
stop_peer S

# only mechanisms mailhook does not speak
start_smtpd S --tls starttls --cert "$C/server.crt" --key "$C/server.key" --auth "pbx@example.org:$PW" \
  --auth-mechs DIGEST-MD5 --maildir "$T/mail-digest" --log "$T/log-digest" || exit 1
conf=$(new_conf port="$S")
mh_test "$conf"
ALL_OUT+=$OUT
is "$RC" 1 "DIGEST-MD5 only: mailhook test fails"
like "$OUT" "FAILED at stage auth" "at stage auth"
is "$(row auth)" "offered: none; also DIGEST-MD5, which mailhook does not speak" \
  "its auth row names what the server offers (not 'none' alone)"
like "$(hint)" "^the server offers no login mechanism mailhook speaks .*enable PLAIN or LOGIN on the server" \
  "the hint names the mechanism as the cause"
[ "$(hint)" != "$AUTH_HINT" ]; ok $? "not 'check username, password' (they were never sent)"
printf 'body\n' | "$MAILHOOK" -c "$conf" enqueue --to rcpt@example.net --subject digest >/dev/null
"$MAILHOOK" -c "$conf" run >"$T/run.log" 2>&1 &
svc=$!
on_exit "kill $svc 2>/dev/null; wait $svc 2>/dev/null"
wait_for 20 grep -q 'delivery: ' "$T/run.log"
kill "$svc"; wait "$svc"
ALL_OUT+=$(cat "$T/run.log")
like "$(cat "$T/run.log")" "delivery: no login possible with these settings \(the server answers\) \(auth: no usable authentication mechanism" \
  "the service says no login is possible, with the reason"
unlike "$(cat "$T/run.log")" "unreachable" "it does not call the server unreachable"
is "$(find "$MAILHOOK_SPOOL/pickup" -name '*.eml' | wc -l) $(find "$MAILHOOK_SPOOL/failed" -name '*.eml' 2>/dev/null | wc -l)" \
  "1 0" "the message waits in pickup/"
is "$(grep -c '^auth' "$T/log-digest")" 0 "no login was tried"
stop_peer S

# a port with no AUTH at all (smtp-sink -a: plain text, no AUTH line)
start_sink K -a || exit 1
mh_test "$(new_conf port="$K" tls=none tls_required=false allow_plaintext_auth=true)"
ALL_OUT+=$OUT
is "$RC" 1 "no AUTH offered: mailhook test fails"
like "$(hint)" "^the server offers no login on this port at all \(no AUTH in its EHLO reply\)" \
  "the hint says the port offers no login"
stop_peer K

# auth_mechanism names one the server does not offer
start_smtpd S --tls starttls --cert "$C/server.crt" --key "$C/server.key" --auth "pbx@example.org:$PW" \
  --auth-mechs PLAIN || exit 1
mh_test "$(new_conf port="$S" auth_mechanism=login)"
ALL_OUT+=$OUT
is "$RC" 1 "auth_mechanism = login, PLAIN offered: mailhook test fails"
like "$ERR" "the server does not offer AUTH LOGIN \(it offers: plain\)" "the error names both"
like "$(hint)" "^\`auth_mechanism\` names a mechanism the server does not offer: set \`auth_mechanism = auto\`" \
  "the hint says to change auth_mechanism"
stop_peer S

case $ALL_OUT in *"s3cr:%"*|*"$(printf '%s' "$PW" | base64)"*) ok 1 "the password is in no output" ;;
                 *) ok 0 "the password is in no output" ;; esac
done_testing
