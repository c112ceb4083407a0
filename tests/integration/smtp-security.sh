# `mailhook test` against real TLS peers: certificates (own CA, wrong host, unknown CA,
# expired, fingerprint pin), STARTTLS/implicit/auto, AUTH, and the password kept secret.
# Peers: tests/peers/smtpd.py (aiosmtpd) with certificates made by tests/peers/mkcerts.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
need_engine

make_certs "$T/certs" || exit 1
C=$T/certs
PASS=p4ss-S3cret-42
B64=$(printf '\0user\0%s' "$PASS" | base64)        # what AUTH PLAIN would carry
BASE=(enabled=true from=mailhook@example.org server=127.0.0.1 helo_name=client.example.org
      connect_timeout=5 command_timeout=5 session_deadline=20)
tls_server() {   # tls_server VAR CERTNAME [more smtpd.py options]
  local var=$1 cert=$2; shift 2
  start_smtpd "$var" --tls starttls --cert "$C/$cert.crt" --key "$C/$cert.key" "$@"
}

# --- certificates ------------------------------------------------------------------
tls_server P server --log "$T/good.log"
mh_test "$(new_conf port="$P" tls=starttls tls_ca_file="$C/ca.crt")"
is "$RC" 0 "own CA: verified with tls_ca_file, test passes"
ilike "$OUT" "TLSv?1\.[23]" "the report gives the TLS version"
ilike "$OUT" "starttls" "and the security mode found"
ilike "$OUT" "localhost" "and the certificate subject"
ilike "$OUT" "mailhook test CA" "and its issuer"
ilike "$OUT" "2029|expir|not.?after" "and its expiry"
grep -q "^starttls TLSv1" "$T/good.log"; ok $? "the server saw the STARTTLS handshake"
grep -q "^mail <mailhook@example.org>" "$T/good.log"; ok $? "the From address was checked with MAIL FROM"
grep -q "^rset" "$T/good.log"; ok $? "followed by RSET"

mh_test "$(new_conf port="$P" tls=starttls)"
is "$RC" 1 "own CA without tls_ca_file: the system store does not trust it"
ilike "$OUT" "stage[: ]+tls\b" "stage tls named"
ilike "$ERR" "verif|issuer|unknown|untrusted|self.signed" "reason: verification"

tls_server W wronghost --log "$T/wrong.log"
mh_test "$(new_conf server=localhost port="$W" tls=starttls tls_ca_file="$C/ca.crt")"
is "$RC" 1 "wrong host name: fails"
ilike "$OUT" "stage[: ]+tls\b" "stage tls named"
ilike "$ERR" "host.*(name|mismatch)|mismatch.*host|name.*mismatch" "reason: the host name"
mh_test "$(new_conf server=localhost port="$P" tls=starttls tls_ca_file="$C/ca.crt")"
is "$RC" 0 "the good certificate passes by name (server = localhost) as by address"
unlike "$(cat "$T/wrong.log")" "^mail|^auth" "no MAIL after a failed verification"

tls_server U unknown
mh_test "$(new_conf port="$U" tls=starttls tls_ca_file="$C/ca.crt")"
is "$RC" 1 "unknown CA: fails"
ilike "$OUT" "stage[: ]+tls\b" "stage tls named"
ilike "$ERR" "verif|issuer|unknown|untrusted" "reason: the chain"

tls_server E expired
mh_test "$(new_conf port="$E" tls=starttls tls_ca_file="$C/ca.crt")"
is "$RC" 1 "expired certificate: fails"
ilike "$OUT" "stage[: ]+tls\b" "stage tls named"
ilike "$ERR" "expired" "reason: expired"

mh_test "$(new_conf port="$P" tls=starttls tls_ca_file="$C/ca.crt" tls_fingerprint="$CERT_FP")"
is "$RC" 0 "fingerprint pin of the server's certificate: passes"
mh_test "$(new_conf port="$P" tls=starttls tls_ca_file="$C/ca.crt" tls_fingerprint="$(cat "$C/wronghost.sha256")")"
is "$RC" 1 "another certificate's fingerprint: fails"
ilike "$OUT" "stage[: ]+tls\b" "stage tls named"
ilike "$ERR" "fingerprint|pin" "reason: the fingerprint"

# --- security modes -------------------------------------------------------------------
start_smtpd I --tls implicit --cert "$C/server.crt" --key "$C/server.key" --log "$T/implicit.log"
mh_test "$(new_conf port="$I" tls=implicit tls_ca_file="$C/ca.crt")"
is "$RC" 0 "tls=implicit on an implicit-TLS server passes"
ilike "$OUT" "implicit" "and reports implicit TLS"
grep -q "^connect TLSv1" "$T/implicit.log"; ok $? "the server saw TLS from the first byte"
# DESIGN: auto tries "implicit TLS, else STARTTLS, else plain" — on any port.  A server
# never seen before (a new port: what `test` remembers is per host:port).
start_smtpd I2 --tls implicit --cert "$C/server.crt" --key "$C/server.key"
mh_test "$(new_conf port="$I2" tls=auto tls_ca_file="$C/ca.crt" connect_timeout=3 command_timeout=3)"
is "$RC" 0 "tls=auto on an implicit-TLS server (not on port 465) passes"
ilike "$OUT" "implicit" "and reports implicit TLS"

tls_server S server --log "$T/auto.log"
mh_test "$(new_conf port="$S" tls=auto tls_ca_file="$C/ca.crt")"
is "$RC" 0 "tls=auto on a STARTTLS server passes"
ilike "$OUT" "starttls" "and reports STARTTLS"
grep -q "^starttls TLSv1" "$T/auto.log"; ok $? "the server saw STARTTLS"

start_smtpd N --log "$T/plain.log"
mh_test "$(new_conf port="$N" tls=auto tls_required=true)"
is "$RC" 1 "tls=auto, tls_required, plain-only server: fails"
ilike "$OUT" "stage[: ]+tls\b" "stage tls named"
unlike "$(cat "$T/plain.log")" "^mail" "no MAIL FROM in the clear"
mh_test "$(new_conf port="$N" tls=auto tls_required=false)"
is "$RC" 0 "tls=auto with tls_required=false: plain is allowed"
ilike "$OUT" "none|plain|unencrypted|no tls" "and the report says it is not encrypted"

tls_server R server --require-starttls --log "$T/req.log"
mh_test "$(new_conf port="$R" tls=none tls_required=false)"
is "$RC" 1 "tls=none against a server requiring STARTTLS: the sender check fails"
ilike "$OUT" "stage[: ]+sender\b" "stage sender named"
like "$OUT" "530" "with the server's reply"

# Never a silent downgrade: a server seen with TLS that later offers none is refused,
# even with tls = auto and tls_required = false.
port=$(free_port)
tls_server D server --port "$port"
mh_test "$(new_conf port="$port" tls=auto tls_ca_file="$C/ca.crt")"
is "$RC" 0 "a STARTTLS server is seen with TLS"
stop_peer D
start_smtpd D2 --port "$port" --log "$T/down.log"
mh_test "$(new_conf port="$port" tls=auto tls_required=false tls_ca_file="$C/ca.crt")"
is "$RC" 1 "the same host:port without STARTTLS later: refused"
ilike "$OUT" "stage[: ]+tls\b" "stage tls named"
ilike "$ERR" "seen with TLS|downgrade|not offer STARTTLS" "reason: TLS was expected there"
unlike "$(cat "$T/down.log")" "^mail" "no MAIL FROM in the clear"

# --- AUTH -------------------------------------------------------------------------------
tls_server A server --auth "user:$PASS" --log "$T/auth.log"
mh_test "$(new_conf port="$A" tls=starttls tls_ca_file="$C/ca.crt" auth=true username=user password="$PASS")"
is "$RC" 0 "AUTH with the right password passes"
ilike "$OUT" "PLAIN|LOGIN" "the report names the mechanism"
grep -q "^auth ok" "$T/auth.log"; ok $? "the server saw a successful AUTH"
unlike "$OUT" "$PASS|$B64" "the password is not in the report"
mh_test "$(new_conf port="$A" tls=starttls tls_ca_file="$C/ca.crt" auth=true username=user password="$PASS" auth_mechanism=login)"
is "$RC" 0 "auth_mechanism=login is used"
grep -q "^auth ok LOGIN" "$T/auth.log"; ok $? "the server saw AUTH LOGIN"

c=$(new_conf port="$A" tls=starttls tls_ca_file="$C/ca.crt" auth=true username=user password="wrong-$PASS")
mh_test "$c"
is "$RC" 1 "a wrong password fails"
ilike "$OUT" "stage[: ]+auth\b" "stage auth named"
like "$OUT" "535" "with the server's reply"
unlike "$OUT" "$PASS" "the password is not in the report"
OUT=$(MAILHOOK_SPOOL=$T/spool timeout 60 "$MAILHOOK" -v -c "$c" test 2>&1)
unlike "$OUT" "$PASS|$(printf '\0user\0wrong-%s' "$PASS" | base64)" "nor in the debug log (-v)"

start_smtpd AC --auth "user:$PASS" --auth-in-clear --log "$T/clear.log"
mh_test "$(new_conf port="$AC" tls=auto auth=true username=user password="$PASS")"
is "$RC" 1 "AUTH offered only in the clear, tls_required by default with auth: fails"
unlike "$(cat "$T/clear.log")" "^auth|^mail" "no credentials and no MAIL sent in the clear"

mh_test "$(new_conf port="$A" tls=starttls tls_ca_file="$C/ca.crt" auth=true username=user password=)"
is "$RC" 1 "auth=true with an empty password fails"
ilike "$OUT" "password" "and says the password is missing"

done_testing
