# `mailhook test` read at 3 a.m. (review-admin): every missing or invalid setting
# named in one error; --json keeps its promise of one JSON document for every
# failure; each stage's state right at each failure point (dns, connect refused,
# garbage greeting, TLS, auth); a greeting that is no SMTP quoted, bounded and
# escaped, whatever shape it takes.  Real peers (aiosmtpd) for TLS and AUTH; the
# scripted peer only for the garbage greetings no real server sends.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
need_engine
make_certs "$T/certs" || exit 1
C=$T/certs
export MAILHOOK_SPOOL=$T/spool
mkdir -p "$MAILHOOK_SPOOL"
stages() { echo "$1" | J '" ".join(s["name"] + "=" + s["state"] for s in d["stages"])'; }

# --- 1. every missing or invalid setting, in one error --------------------------------------
printf 'enabled = true\nport = abc\nserver = 127.0.0.1\ntls = wrong\n' > "$T/two.conf"
mh_test "$T/two.conf"
is "$RC" 1 "two invalid values: exit 1"
like "$OUT" "two\.conf:2: port: must be a port number" "the port named"
like "$OUT" "two\.conf:4: tls: must be one of" "and the tls value too (only the first was named)"
like "$OUT" "from: not set" "and the From address the test needs, unset"
out=$("$MAILHOOK" -c "$T/two.conf" test --json 2>/dev/null); rc=$?
is "$rc:$(echo "$out" | J 'd["failed_stage"]')" "1:settings" "--json: stage settings, exit 1"
like "$(echo "$out" | J 'd["error"]')" "port: .*; .*tls: .*; from: not set" "--json: every one in its error, in the file's order"
printf 'enabled = true\nserver = 127.0.0.1\nauth = true\n' > "$T/auth.conf"
mh_test "$T/auth.conf"
like "$OUT" "username: auth is true but username is not set" "auth without username: named"
like "$OUT" "password: auth is true but neither password nor password_command is set" "nor password: named too"
like "$OUT" "from: not set" "nor from"
printf 'enabled = true\n' > "$T/none.conf"
mh_test "$T/none.conf"
like "$OUT" "server and from are not set \(mailhook update server=smtp\.example\.com from=notify@example\.com\)" \
  "neither from nor server: both named, with the command that sets them"
# unset required settings are a settings problem (as an invalid file is), not a
# server's: it said "FAILED at stage connect" for a server nobody named
like "$OUT" "result: FAILED at stage settings" "neither from nor server: stage settings"
out=$("$MAILHOOK" -c "$T/none.conf" test --json 2>/dev/null); rc=$?
is "$rc:$(echo "$out" | J 'd["failed_stage"], d["missing"], d["key"]')" '1:["settings", ["server", "from"], "server"]' \
  "--json: stage settings, the missing keys named, exit 1"
is "$(stages "$out")" "dns=not reached connect=not reached tls=not reached auth=not reached sender=not reached recipient=not reached" \
  "--json: no stage begun"
printf 'enabled = true\nserver = 127.0.0.1\n' > "$T/nofrom.conf"
mh_test "$T/nofrom.conf"
is "$RC" 1 "from alone unset: exit 1"
like "$OUT" "result: FAILED at stage settings" "from alone unset: stage settings (it was sender)"
like "$OUT" "from is not set \(mailhook update from=notify@example\.com\)" "from alone: named, with its command"

# --- 2. --json: every failure one JSON document on stdout ------------------------------------
for a in "--json=1" "--json --to" "--to --json" "--json --timeout 0"; do
  out=$("$MAILHOOK" -c "$T/none.conf" test $a 2>/dev/null); rc=$?
  is "$rc:$(echo "$out" | J '[d["ok"], "error" in d]' 2>&1)" "2:[false, true]" "test $a: one JSON document, exit 2 ($out)"
done

# --- 3. the stages at each failure point ------------------------------------------------------
BASE=(enabled=true from=mailhook@example.org helo_name=client.example.org connect_timeout=5
      command_timeout=5 session_deadline=20)
jt() { OUT=$("$MAILHOOK" -c "$1" test --timeout 5 --json 2>/dev/null); RC=$?; }
jt "$(new_conf server=no-such-host.invalid tls=none tls_required=false)"
is "$RC:$(stages "$OUT")" "1:dns=failed connect=not reached tls=not reached auth=not reached sender=not reached recipient=not reached" \
  "dns fails: dns failed, the rest not reached"
jt "$(new_conf server=localhost port="$(free_port)" tls=none tls_required=false)"
is "$RC:$(stages "$OUT")" "1:dns=ok connect=failed tls=not reached auth=not reached sender=not reached recipient=not reached" \
  "connect refused: dns ok (it resolved), connect failed"
s=$(fault_script <<'S'
send hello
sleep 2
S
)
start_fault G "$s"
jt "$(new_conf server=127.0.0.1 port="$G" tls=none tls_required=false)"
is "$RC:$(stages "$OUT")" "1:dns=ok connect=failed tls=not reached auth=not reached sender=not reached recipient=not reached" \
  "garbage greeting: dns ok, connect failed"
start_smtpd I --tls implicit --cert "$C/server.crt" --key "$C/server.key" --log "$T/implicit.log"
jt "$(new_conf server=localhost port="$I" tls=implicit)"       # no tls_ca_file: the certificate is refused
is "$RC:$(stages "$OUT")" "1:dns=ok connect=ok tls=failed auth=not reached sender=not reached recipient=not reached" \
  "TLS fails: dns and connect ok, tls failed"
start_smtpd A --tls starttls --require-starttls --cert "$C/server.crt" --key "$C/server.key" \
  --auth user:right-pw --log "$T/auth.log"
jt "$(new_conf server=localhost port="$A" tls=starttls)"       # STARTTLS, the certificate refused
is "$RC:$(stages "$OUT")" "1:dns=ok connect=ok tls=failed auth=not reached sender=not reached recipient=not reached" \
  "STARTTLS fails: dns and connect ok, tls failed"
jt "$(new_conf server=localhost port="$A" tls=starttls tls_ca_file="$C/ca.crt" auth=true username=user password=wrong-pw)"
is "$RC:$(stages "$OUT")" "1:dns=ok connect=ok tls=ok auth=failed sender=not reached recipient=not reached" \
  "auth fails: dns, connect, tls ok, auth failed"

# --- 4. a greeting that is no SMTP, quoted (bounded, control bytes escaped) ------------------
PROTO="the server answered, but not in SMTP"
greet() {   # greet SCRIPT-LINE: mh_test against a peer sending it, then closing
  local p s; s=$(printf '%s\nclose\n' "$1" | fault_script)
  start_fault P "$s"; p=$P
  mh_test "$(new_conf server=127.0.0.1 port="$p" tls=none tls_required=false)" --timeout 5
}
greet 'send hello'
like "$ERR" "'hello'" "a 'hello' greeting: quoted"
greet 'repeat 3000 AB'
like "$ERR" "no SMTP reply \(a line longer than 2000 bytes\): '(AB){30}\.\.\.'" \
  "a 6000-byte line: its start quoted, cut (was 'reply line longer than 2000 bytes' alone)"
like "$OUT" "$PROTO" "with the not-SMTP hint (was 'nothing answers there')"
greet 'raw \x00\x01\xffbin\x1b[31m'
like "$ERR" "after '\\\\x00\\\\x01\\\\xffbin\\\\x1b\[31m'" \
  "binary, then a hang-up: quoted with its control bytes escaped (was 'connection closed' alone)"
like "$OUT" "$PROTO" "with the not-SMTP hint"
unlike "$OUT" $'\x1b' "no raw escape byte reaches the terminal"
like "$OUT" "security +not negotiated" "nothing negotiated (it said 'none (plain text)')"
out=$("$MAILHOOK" -c "$(new_conf server=127.0.0.1 port="$P" tls=none tls_required=false)" test --timeout 5 --json 2>/dev/null)
like "$(echo "$out" | J 'd["error"]')" "after '\\\\x00\\\\x01\\\\xffbin" "--json: the same quote"
done_testing
