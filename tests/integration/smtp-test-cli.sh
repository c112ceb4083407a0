# `mailhook test [--to ADDR]`, the happy path of every security mode, with the
# report an administrator reads: plain (tls_required=false), STARTTLS + AUTH,
# implicit TLS found by tls=auto on an odd port, and --to delivering a message.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
make_certs "$T/certs" || exit 1
C=$T/certs
export MAILHOOK_SPOOL=$T/spool
mkdir -p "$MAILHOOK_SPOOL"
BASE=(enabled=true from=mailhook@example.org server=127.0.0.1 helo_name=client.example.org
      connect_timeout=5 command_timeout=5 session_deadline=20)

start_smtpd N --maildir "$T/plain" --log "$T/plain.log"
mh_test "$(new_conf port="$N" tls=auto tls_required=false)"
is "$RC" 0 "plain server, tls_required=false: passes"
unlike "$OUT" "enabled = false" "mail on: no word about it"
mh_test "$(new_conf port="$N" tls=auto tls_required=false enabled=false)"
is "$RC" 0 "with enabled = false: the server still passes"
like "$OUT" "warning: enabled = false: this test talks to the server, but no mail is sent until \`mailhook update enabled=true\`" \
  "but it says no mail is sent (it said OK and nothing more)"
like "$OUT" "security +none \(plain text\)" "security mode reported"
like "$OUT" "from +mailhook@example.org accepted" "From accepted"
like "$OUT" "capabilities +.*8BITMIME" "capabilities listed"
like "$OUT" "capabilities +.*SIZE [0-9]+(,|$)" "a keyword with its parameter as the server sent it (SIZE n, not SIZE,n)"
like "$OUT" "result: OK" "result line"
grep -q "^mail <mailhook@example.org>" "$T/plain.log"; ok $? "MAIL FROM reached the server"
is "$(count_mail "$T/plain")" 0 "no message without --to"

start_smtpd S --tls starttls --require-starttls --cert "$C/server.crt" --key "$C/server.key" \
  --auth user:pw-XYZ-123 --maildir "$T/tls" --log "$T/tls.log"
mh_test "$(new_conf port="$S" auth=true username=user password=pw-XYZ-123 tls_ca_file="$C/ca.crt")" --to rcpt@example.org
is "$RC" 0 "STARTTLS + AUTH + --to: passes"
like "$OUT" "security +STARTTLS \(TLSv1\.[23], " "STARTTLS with version and cipher"
like "$OUT" "subject CN=localhost" "certificate subject"
like "$OUT" "verified yes" "verification result"
like "$OUT" "auth +PLAIN as user" "mechanism and user"
like "$OUT" "test message +sent to rcpt@example.org: 250" "test message sent with the server's reply"
unlike "$OUT" "pw-XYZ-123" "the password is never printed"
wait_for 5 mail_count_is "$T/tls" 1; ok $? "the test message arrived"
like "$(cat "$T"/tls/*.eml 2>/dev/null)" "Subject: mailhook test message" "with its subject"

start_smtpd I --tls implicit --cert "$C/server.crt" --key "$C/server.key" --log "$T/implicit.log"
mh_test "$(new_conf port="$I" tls=auto tls_ca_file="$C/ca.crt")"
is "$RC" 0 "tls=auto finds implicit TLS on a non-465 port"
like "$OUT" "security +implicit TLS" "reported as implicit"
like "$(cat "$MAILHOOK_SPOOL/state/tls-seen")" "127.0.0.1:$I implicit" "mode remembered for the server"
mh_test "$(new_conf port="$I" tls=auto tls_ca_file="$C/ca.crt")"
is "$RC" 0 "second run (straight to implicit: tests/lua/test-smtp.lua checks the policy)"

# a script that forgets s:quit(): an idle session does not keep the process alive
cat > "$T/noquit.lua" <<'LUA'
local smtp = require "mailhook.smtp"
local s = assert(smtp.connect { server = { "127.0.0.1" }, port = tonumber(arg[1]), tls = "none", tls_required = false })
assert(s:send { from = "a@example.org", to = { "b@example.org" }, data = "Subject: x\r\n\r\ny\r\n" })
LUA
t0=$(date +%s%N)
timeout 20 "$MAILHOOK" "$T/noquit.lua" "$N"; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
is "$rc" 0 "a script leaving its session open exits 0"
ok $([ "$ms" -lt 5000 ] && echo 0 || echo 1) "at once (${ms} ms), not at the session deadline"

mh_test "$(new_conf port="$N" tls=auto tls_required=false server=no-such-host.invalid)"
is "$RC" 1 "unknown host fails"
like "$OUT" "FAILED at stage dns" "stage dns"
P=$(free_port)
mh_test "$(new_conf port="$P" tls=auto tls_required=false)"
is "$RC" 1 "closed port fails"
like "$OUT" "FAILED at stage connect" "stage connect"
like "$OUT" "127\.0\.0\.1: connection refused" "the address and the reason"
# a 3 KB OAuth token (a JWT): RFC 4954 4 keeps it off the AUTH line (aiosmtpd answered
# "500 Command line too long", Postfix cuts lines past 2048): sent after the empty 334
TOK=$(head -c 2400 /dev/zero | tr '\0' 'J')
printf '%s\n' "$TOK" > "$T/token"
start_smtpd O --tls starttls --require-starttls --cert "$C/server.crt" --key "$C/server.key" \
  --auth user:pw-XYZ-123 --token "$TOK" --maildir "$T/oauth" --log "$T/oauth.log"
for mech in xoauth2 oauthbearer; do
  mh_test "$(new_conf port="$O" auth=true username=user auth_mechanism=$mech oauth_token_command="cat $T/token" \
             tls_ca_file="$C/ca.crt")"
  is "$RC" 0 "$mech with a 2.4 KB token: passes ($(printf '%s' "$OUT" | grep -E 'error|result'))"
done
grep -q "auth ok XOAUTH2 token" "$T/oauth.log"; ok $? "the server took the long token (XOAUTH2)"

# no helo_name: the EHLO name is the host's, fully qualified (RFC 5321 4.1.1.1; Postfix's
# reject_non_fqdn_helo_hostname refused every message of a short one)
printf 'enabled = true\nfrom = a@example.org\nserver = 127.0.0.1\nport = %s\ntls = none\ntls_required = false\n' \
  "$N" > "$T/nohelo.conf"
"$MAILHOOK" -c "$T/nohelo.conf" test >/dev/null 2>&1
like "$(grep '^ehlo ' "$T/plain.log" | tail -1)" "^ehlo [A-Za-z0-9-]+\.[A-Za-z0-9.-]+ " \
  "the default EHLO name has a domain ($(grep '^ehlo ' "$T/plain.log" | tail -1), host $(hostname))"

# settings missing: each one named at once (the next test revealed the server's), no
# server asked, so no stage is begun: it fails at stage settings (it said connect)
printf 'enabled = true\n' > "$T/none.conf"
out=$("$MAILHOOK" -c "$T/none.conf" test 2>&1); rc=$?
is "$rc" 1 "neither from nor server set: fails"
like "$out" "server and from are not set \(mailhook update server=.* from=.*\)" "both named ($out)"
like "$out" "FAILED at stage settings" "at stage settings"
out=$("$MAILHOOK" -c "$T/none.conf" test --json 2>/dev/null)
is "$(printf '%s' "$out" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["failed_stage"], " ".join(s["name"]+"="+s["state"] for s in d["stages"][:2]))')" \
  "settings dns=not reached connect=not reached" "--json: stage settings, nothing resolved"

done_testing
