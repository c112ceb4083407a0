# Credentials never cross in the clear by accident (issue 11, point 3): without TLS,
# AUTH is sent only with allow_plaintext_auth = true, an opt-in of its own, whatever
# tls and tls_required say; `update` and `test` warn while it is true; `test` and
# delivery refuse otherwise, naming the setting.  Against aiosmtpd offering AUTH in
# the clear (--auth-in-clear, its --log shows every AUTH it gets) and a scripted peer
# that records the bytes on the wire.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
unset MAILHOOK_CONF MAILHOOK_SPOOL
need_engine
PASS='pl41n-Secret'
B64=$(printf '\0user\0%s' "$PASS" | base64)
start_smtpd A --auth "user:$PASS" --auth-in-clear --log "$T/a.log" --maildir "$T/mail" || exit 1
n=0
conf() { n=$((n + 1)); write_conf "$T/c$n.conf" enabled=true server=127.0.0.1 port="$A" \
           from=pbx@example.org connect_timeout=5 command_timeout=5 "$@"; echo "$T/c$n.conf"; }
nolog() { ! grep -q "^auth\|^mail" "$T/a.log"; }

# The issue's path: the demo's plain-text settings, then the user turns auth on.
c=$(conf tls=none tls_required=false)
out=$(printf '%s\n' "$PASS" | "$MAILHOOK" -c "$c" update auth=true username=user password=- 2>&1); rc=$?
is "$rc" 0 "update auth=true on plain-text settings is saved"
like "$out" "warning: auth = true with tls = none: mailhook will not send the credentials in plain text" \
  "and warns that the credentials will not be sent"
: > "$T/a.log"
mh_test "$c"
is "$RC" 1 "tls = none, auth = true: mailhook test fails"
ilike "$OUT" "FAILED at stage auth" "at stage auth"
like "$ERR" "refusing to send the username and password in plain text.*allow_plaintext_auth is false" \
  "the error names allow_plaintext_auth"
nolog; ok $? "no AUTH (and no MAIL) reached the server"
unlike "$OUT" "$PASS|$B64" "the password is nowhere in the report"
unlike "$OUT" "check .username" "the hint is not about the username/password"

for variant in "tls=auto tls_required=false" "tls=none tls_required=false auth_mechanism=login" \
               "tls=auto tls_required=false auth_mechanism=plain"; do
  : > "$T/a.log"
  # shellcheck disable=SC2086
  mh_test "$(conf $variant auth=true username=user password="$PASS")"
  is "$RC" 1 "$variant, no STARTTLS offered: fails"
  like "$ERR" "allow_plaintext_auth" "naming allow_plaintext_auth"
  nolog; ok $? "no AUTH on the wire ($variant)"
done

# The wire itself: a scripted server that offers AUTH PLAIN in the clear and records.
s=$T/auth.script
printf '%s\n' 'send 220 clear.example ESMTP' 'expect ^EHLO' 'send 250-clear.example' \
  'send 250 AUTH PLAIN LOGIN' 'read' 'send 250 ok' 'read' 'send 250 ok' 'read' 'send 221 bye' > "$s"
start_fault F "$s" || exit 1
write_conf "$T/f.conf" enabled=true server=127.0.0.1 port="$F" from=pbx@example.org tls=none \
  tls_required=false auth=true username=user password="$PASS" command_timeout=5
mh_test "$T/f.conf"
is "$RC" 1 "scripted peer: fails"
unlike "$(cat "$F_REC")" "AUTH|$PASS|$B64" "not one byte of AUTH or the password on the wire"

# With the opt-in: it works, and both update and test warn.
c=$(conf tls=none tls_required=false auth=true username=user password="$PASS")
out=$("$MAILHOOK" -c "$c" update allow_plaintext_auth=true 2>&1 >/dev/null); rc=$?
is "$rc" 0 "update allow_plaintext_auth=true is saved"
like "$out" "^mailhook update: warning: allow_plaintext_auth = true: the username and password cross the network in the clear" \
  "update warns"
: > "$T/a.log"
mh_test "$c"
is "$RC" 0 "with allow_plaintext_auth = true, test passes"
like "$OUT" "mailhook test: warning: allow_plaintext_auth = true" "and warns"
like "$OUT" "auth +PLAIN as user" "AUTH PLAIN was used"
grep -q "^auth ok PLAIN user" "$T/a.log"; ok $? "the server saw it"
unlike "$OUT" "$PASS|$B64" "the password is still nowhere in the report"

# allow_plaintext_auth never overrides tls_required
c=$(conf tls=auto tls_required=true allow_plaintext_auth=true auth=true username=user password="$PASS")
: > "$T/a.log"
mh_test "$c"
is "$RC" 1 "tls_required = true wins over allow_plaintext_auth"
nolog; ok $? "no AUTH sent"

# Delivery refuses the same way: the message stays queued, the log names the setting.
c=$(conf tls=none tls_required=false auth=true username=user password="$PASS")
echo body | "$MAILHOOK" -c "$c" -s "$T/dspool" enqueue --to ops@example.org --subject plain >/dev/null
: > "$T/a.log"
out=$(timeout 60 "$MAILHOOK" -c "$c" -s "$T/dspool" flush 2>&1); rc=$?
ok "$([ "$rc" -ne 0 ]; echo $?)" "flush without the opt-in does not deliver (exit $rc)"
like "$out" "allow_plaintext_auth" "and names allow_plaintext_auth"
nolog; ok $? "no AUTH and no MAIL reached the server"
is "$(ls "$T/dspool/pickup" | grep -c '\.eml$')" 1 "the message is still queued"
"$MAILHOOK" -c "$c" update allow_plaintext_auth=true >/dev/null 2>&1
out=$(timeout 60 "$MAILHOOK" -c "$c" -s "$T/dspool" flush 2>&1); rc=$?
is "$rc" 0 "with the opt-in, flush delivers"
is "$(count_mail "$T/mail")" 1 "the server stored it"

# tls = none against a server that offers STARTTLS: the hint says so.
make_certs "$T/certs" || exit 1
start_smtpd S --tls starttls --cert "$T/certs/server.crt" --key "$T/certs/server.key" \
  --auth "user:$PASS" --log "$T/s.log" || exit 1
for opt in allow_plaintext_auth=false allow_plaintext_auth=true; do
  write_conf "$T/s.conf" enabled=true server=127.0.0.1 port="$S" from=pbx@example.org tls=none \
    tls_required=false auth=true username=user password="$PASS" "$opt"
  mh_test "$T/s.conf"
  is "$RC" 1 "tls = none against a STARTTLS server with AUTH ($opt): fails"
  like "$OUT" "hint +the server offers STARTTLS: set tls = auto" "the hint: the server offers STARTTLS, set tls = auto"
  unlike "$OUT" "check .username" "not: check username/password"
done
! grep -q "^auth" "$T/s.log"; ok $? "no AUTH reached the STARTTLS server in plain text"
write_conf "$T/s.conf" enabled=true server=127.0.0.1 port="$S" from=pbx@example.org tls=auto \
  tls_ca_file="$T/certs/ca.crt" auth=true username=user password="$PASS"
mh_test "$T/s.conf"
is "$RC" 0 "with tls = auto it passes (STARTTLS, then AUTH)"
unlike "$OUT" "warning" "and nothing to warn about"
done_testing
