# The TLS version floor (`tls_min_version`, 1.2 by default) against real aiosmtpd servers
# capped at a version (tests/peers/smtpd.py --tls-max): a TLS 1.0/1.1-only server is
# refused at stage tls with implicit TLS and with STARTTLS, the report says it is a
# version problem, and the server's log shows that no EHLO after TLS, AUTH, MAIL or
# password reached it; tls_min_version = 1.3 refuses a TLS 1.2 server; the default
# works with 1.2 and 1.3 and reports the version; 1.1 works only when asked for.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
need_engine

make_certs "$T/certs" || exit 1
C=$T/certs
export MAILHOOK_SPOOL=$T/spool
mkdir -p "$MAILHOOK_SPOOL"
PW=pw-TLSver-7781
BASE=(enabled=true from=mailhook@example.org server=127.0.0.1 helo_name=client.example.org
      auth=true username=user password=$PW tls_ca_file=$C/ca.crt
      connect_timeout=5 command_timeout=5 session_deadline=20)
# peer NAME MODE MAX [options]: an aiosmtpd with AUTH, TLS MODE capped at MAX, log $T/NAME.log
peer() {
  local name=$1 mode=$2 max=$3; shift 3
  start_smtpd P --tls "$mode" --tls-max "$max" --cert "$C/server.crt" --key "$C/server.key" \
    --auth "user:$PW" --maildir "$T/$name.mail" --log "$T/$name.log" "$@"
}
# nothing_sent NAME WHAT: the server's log has no EHLO inside TLS, AUTH, MAIL or RCPT,
# and neither its log nor the report holds the password.
nothing_sent() {
  local log; log=$(cat "$T/$1.log")
  unlike "$log" "^(starttls |ehlo .*tls=TLS|auth|mail|rcpt|data)" "$2: no TLS session, AUTH, MAIL or RCPT reached the server"
  unlike "$log$OUT" "$PW" "$2: the password appears nowhere"
}
VERSION_HINT="  hint           the server's TLS is older than \`tls_min_version\` allows: update the server's TLS; lower \`tls_min_version\` only for a legacy server you trust (1.0 and 1.1 are deprecated, RFC 8996)"
V13_HINT="  hint           the server does not speak TLS 1.3: set \`tls_min_version = 1.2\` (the default), or enable TLS 1.3 on the server"

# --- a TLS 1.1 server, the default floor (1.2) -------------------------------------------
peer imp11 implicit 1.1
mh_test "$(new_conf port="$P" tls=implicit)"
is "$RC" 1 "implicit TLS, server max 1.1: exit 1"
like "$OUT" "result: FAILED at stage tls" "stage tls"
is "$ERR" "  error          127.0.0.1:$P: no TLS version in common: mailhook requires TLS 1.2 or later (tls_min_version = 1.2) and the server offers only older versions (OpenSSL: alert protocol version)" \
  "the error names the version problem"
is "$(printf '%s\n' "$OUT" | grep '^  hint')" "$VERSION_HINT" "the version hint, exactly"
like "$OUT" "security +TLS not established" "security: not established (not 'none (plain text)')"
nothing_sent imp11 "implicit"

peer st11 starttls 1.1
mh_test "$(new_conf port="$P" tls=starttls)"
is "$RC" 1 "STARTTLS, server max 1.1: exit 1"
like "$OUT" "result: FAILED at stage tls" "stage tls"
like "$ERR" "no TLS version in common: mailhook requires TLS 1\.2 or later \(tls_min_version = 1\.2\)" \
  "the error names the version problem"
is "$(printf '%s\n' "$OUT" | grep '^  hint')" "$VERSION_HINT" "the version hint, exactly"
like "$(cat "$T/st11.log")" "cmd STARTTLS" "STARTTLS was asked for (the refusal is the handshake's)"
nothing_sent st11 "STARTTLS"

# tls = auto on a non-465 port that greets in plain text: STARTTLS, the same refusal
mh_test "$(new_conf port="$P" tls=auto)"
is "$RC" 1 "tls=auto, STARTTLS server max 1.1: exit 1"
like "$ERR" "no TLS version in common" "the same error"
nothing_sent st11 "tls=auto"

peer st10 starttls 1.0
mh_test "$(new_conf port="$P" tls=starttls)"
is "$RC" 1 "STARTTLS, server max 1.0: exit 1"
like "$ERR" "no TLS version in common" "the error names the version problem"
nothing_sent st10 "TLS 1.0"

# A server that hangs up without its protocol_version alert (asyncio's own behaviour):
# the error can only say the connection closed; the hint names the likely cause.
peer quiet implicit 1.1 --tls-no-alert
mh_test "$(new_conf port="$P" tls=implicit)"
is "$RC" 1 "implicit TLS, max 1.1, no alert: exit 1"
like "$ERR" "connection closed during the TLS handshake" "the error: closed during the handshake"
is "$(printf '%s\n' "$OUT" | grep '^  hint')" \
  "  hint           the server hung up during the TLS handshake: often it supports no TLS version from \`tls_min_version\` (1.2) up or no cipher in common; also check \`tls\` (465 = implicit TLS, 587 = STARTTLS) and the server's TLS log" \
  "the hint names the version floor"
nothing_sent quiet "no alert"

# --- the bytes on the wire: a scripted peer that refuses the handshake, then goes on
# recording the raw connection until the client closes (tests/peers/fault.lua).
s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250-STARTTLS
send 250 AUTH PLAIN LOGIN
expect ^STARTTLS
send 220 2.0.0 go ahead
starttls 1.1
expect ^EHLO
send 250-fault.example
send 250 AUTH PLAIN LOGIN
S
)
start_fault F "$s" --cert "$C/server.crt" --key "$C/server.key"
mh_test "$(new_conf port="$F" tls=starttls)"
is "$RC" 1 "wire: STARTTLS to a TLS 1.1 peer: exit 1"
like "$ERR" "no TLS version in common" "wire: the version error"
wait_for 5 grep -q "^END 1" "$F_OUT"; ok $? "wire: the client closed the connection"
like "$(cat "$F_OUT")" "TLS-FAIL 1 " "wire: the peer refused the handshake"
is "$(tr -d '\r' < "$F_REC")" "$(printf 'EHLO client.example.org\nSTARTTLS')" \
  "wire: EHLO and STARTTLS in plain text, then nothing (no AUTH, no MAIL, no password)"

s=$(fault_script <<'S'
starttls 1.1
send 220 fault.example ESMTP
expect ^EHLO
S
)
start_fault F "$s" --cert "$C/server.crt" --key "$C/server.key"
mh_test "$(new_conf port="$F" tls=implicit)"
is "$RC" 1 "wire: implicit TLS to a TLS 1.1 peer: exit 1"
like "$ERR" "no TLS version in common" "wire: the version error"
wait_for 5 grep -q "^END 1" "$F_OUT"; ok $? "wire: the client closed the connection"
is "$(wc -c < "$F_REC")" 0 "wire: not one byte after the refused handshake"

# --- tls_min_version = 1.3 against a TLS 1.2 server ----------------------------------------
peer imp12 implicit 1.2
mh_test "$(new_conf port="$P" tls=implicit tls_min_version=1.3)"
is "$RC" 1 "tls_min_version=1.3, implicit TLS, server max 1.2: exit 1"
like "$OUT" "result: FAILED at stage tls" "stage tls"
like "$ERR" "no TLS version in common: mailhook requires TLS 1\.3 \(tls_min_version = 1\.3\)" "the error names 1.3"
is "$(printf '%s\n' "$OUT" | grep '^  hint')" "$V13_HINT" "the 1.3 hint, exactly"
nothing_sent imp12 "1.3 floor, implicit"
# the default floor takes the same server: TLS 1.2 negotiated
mh_test "$(new_conf port="$P" tls=implicit)"
is "$RC" 0 "default floor, implicit TLS, server max 1.2: passes"
like "$OUT" "security +implicit TLS \(TLSv1\.2, " "TLSv1.2 reported"
like "$(cat "$T/imp12.log")" "auth ok PLAIN user" "AUTH went through, inside TLS"

peer st12 starttls 1.2
mh_test "$(new_conf port="$P" tls=starttls tls_min_version=1.3)"
is "$RC" 1 "tls_min_version=1.3, STARTTLS, server max 1.2: exit 1"
like "$ERR" "no TLS version in common: mailhook requires TLS 1\.3" "the error names 1.3"
nothing_sent st12 "1.3 floor, STARTTLS"
mh_test "$(new_conf port="$P" tls=starttls)" --to rcpt@example.org
is "$RC" 0 "default floor, STARTTLS, server max 1.2, --to: passes"
like "$OUT" "security +STARTTLS \(TLSv1\.2, " "TLSv1.2 reported"
wait_for 5 mail_count_is "$T/st12.mail" 1; ok $? "the test message arrived"
like "$(cat "$T"/st12.mail/*.json 2>/dev/null)" '"tls": "TLSv1.2"' "the server received it over TLS 1.2"

# --- TLS 1.3 servers: the default and 1.3 floors both work --------------------------------
peer imp13 implicit 1.3
mh_test "$(new_conf port="$P" tls=implicit)"
is "$RC" 0 "default floor, implicit TLS 1.3: passes"
like "$OUT" "security +implicit TLS \(TLSv1\.3, TLS_" "TLSv1.3 and its cipher reported"
mh_test "$(new_conf port="$P" tls=implicit tls_min_version=1.3)"
is "$RC" 0 "tls_min_version=1.3, implicit TLS 1.3: passes"
peer st13 starttls 1.3
mh_test "$(new_conf port="$P" tls=starttls tls_min_version=1.3)"
is "$RC" 0 "tls_min_version=1.3, STARTTLS 1.3: passes"
like "$OUT" "security +STARTTLS \(TLSv1\.3, " "TLSv1.3 reported"

# --- the floor lowered on purpose reaches the legacy server --------------------------------
peer leg starttls 1.1
mh_test "$(new_conf port="$P" tls=starttls tls_min_version=1.1)"
is "$RC" 0 "tls_min_version=1.1 set explicitly, STARTTLS 1.1: passes"
like "$OUT" "security +STARTTLS \(TLSv1\.1, " "TLSv1.1 reported"
done_testing
