# AUTH against servers that offer other mechanisms, in other orders (aiosmtpd with
# --auth-mechs: AUTH only under STARTTLS, as Postfix's smtpd_tls_auth_only and Exim's
# server_advertise_condition do): PLAIN only, LOGIN only, LOGIN before PLAIN (PLAIN is
# still chosen), CRAM-MD5 before LOGIN (LOGIN), and a password with ':', '%', '"', '\',
# non-ASCII and a trailing blank through each.  A server offering only mechanisms
# mailhook does not speak (CRAM-MD5) is said to be that, not a wrong password: the
# test's auth row names CRAM-MD5, its hint is about the mechanism; the service logs
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
for case in "PLAIN:plain" "LOGIN:login" "LOGIN,PLAIN:plain" "CRAM-MD5,LOGIN:login"; do
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

# only mechanisms mailhook does not speak
start_smtpd S --tls starttls --cert "$C/server.crt" --key "$C/server.key" --auth "pbx@example.org:$PW" \
  --auth-mechs CRAM-MD5 --maildir "$T/mail-cram" --log "$T/log-cram" || exit 1
conf=$(new_conf port="$S")
mh_test "$conf"
ALL_OUT+=$OUT
is "$RC" 1 "CRAM-MD5 only: mailhook test fails"
like "$OUT" "FAILED at stage auth" "at stage auth"
is "$(row auth)" "offered: none; also CRAM-MD5, which mailhook does not speak" \
  "its auth row names what the server offers (not 'none' alone)"
like "$(hint)" "^the server offers no login mechanism mailhook speaks .*enable PLAIN or LOGIN on the server" \
  "the hint names the mechanism as the cause"
[ "$(hint)" != "$AUTH_HINT" ]; ok $? "not 'check username, password' (they were never sent)"
printf 'body\n' | "$MAILHOOK" -c "$conf" enqueue --to rcpt@example.net --subject cram >/dev/null
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
is "$(grep -c '^auth' "$T/log-cram")" 0 "no login was tried"
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
