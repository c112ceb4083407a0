# STARTTLS stripping and refused certificates, where the other tests stop short: a server
# that offers STARTTLS and then refuses it (454 / 502), closes the connection in the
# handshake, or answers 220 and then speaks plain text, with tls = starttls / auto,
# tls_required true and false, auth on.  No AUTH, no MAIL, no password in the clear (TLS
# not required: the credentials still wait for TLS, allow_plaintext_auth being false), a
# clear error, and a `mailhook test` hint naming the cause (STARTTLS refused, none offered,
# a downgrade, each certificate reason) and the setting to change.  Scripted peers
# (tests/peers/fault.lua) record the wire; aiosmtpd (tests/peers/smtpd.py) is the real server.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
unset MAILHOOK_CONF MAILHOOK_SPOOL
need_engine

C=$T/certs
make_certs_bg "$C"   # made while the scripted cases, which need none, run
PW='pr0be-Secret-77'
B64=$(printf '\0u\0%s' "$PW" | base64)
BASE=(enabled=true from=mailhook@example.org server=127.0.0.1 helo_name=client.example.org
      connect_timeout=5 command_timeout=5 session_deadline=20)

for code in "454 4.7.0 TLS not available" "502 5.5.1 not implemented"; do
  s=$(fault_script <<S
send 220 strip.example ESMTP
expect ^EHLO
send 250-strip.example
send 250-STARTTLS
send 250 AUTH PLAIN LOGIN
expect ^STARTTLS
send $code
read
send 250 ok
read
send 250 ok
read
send 250 ok
read
send 250 ok
S
)
  start_fault F "$s" || exit 1
  for v in "tls=starttls tls_required=true" "tls=auto tls_required=true" "tls=auto tls_required=" \
           "tls=starttls tls_required="; do
    : > "$F_REC"; rm -f "$F_REC".*
    # shellcheck disable=SC2086
    mh_test "$(new_conf port="$F" $v auth=true username=u password="$PW")"
    is "$RC" 1 "${code%% *} to STARTTLS, $v, auth: fails"
    like "$ERR" "${code%% *}|STARTTLS|TLS" "naming the refused STARTTLS ($(printf %s "$ERR" | head -1))"
    unlike "$(cat "$F_REC" "$F_REC".* 2>/dev/null)" "AUTH|MAIL|$PW|$B64" "no AUTH, MAIL or password on the wire"
    unlike "$OUT" "$PW|$B64" "the password is not in the report"
    like "$(printf '%s\n' "$OUT" | grep '^  hint')" "offers STARTTLS but refused it.*does not fall back to plain text" \
      "the hint: STARTTLS refused by the server (not a certificate)"
  done
  out=$("$MAILHOOK" -c "$(new_conf port="$F" tls=starttls)" test --json 2>/dev/null)
  is "$(printf '%s' "$out" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(s["name"]+"="+s["state"] for s in d["stages"][:3]))')" \
    "dns=ok connect=ok tls=failed" "--json: connected, then failed at tls (not 'connect: not reached')"
  # TLS not required, auth on, no opt-in: plain text after the refusal, but no credentials.
  : > "$F_REC"; rm -f "$F_REC".*
  mh_test "$(new_conf port="$F" tls=auto tls_required=false auth=true username=u password="$PW")"
  is "$RC" 1 "${code%% *} to STARTTLS, tls=auto tls_required=false, auth: fails"
  unlike "$(cat "$F_REC" "$F_REC".* 2>/dev/null)" "AUTH|$PW|$B64" "no AUTH or password on the wire"
  # tls=auto, TLS not required, no auth: still no plain-text fallback after a refused STARTTLS
  # (docs/smtp.md: an attacker can forge the refusal); the hint names the deliberate way out.
  : > "$F_REC"; rm -f "$F_REC".*
  mh_test "$(new_conf port="$F" tls=auto tls_required=false)"
  is "$RC" 1 "${code%% *} to STARTTLS, tls=auto tls_required=false, no auth: fails (no fallback)"
  unlike "$(cat "$F_REC" "$F_REC".* 2>/dev/null)" "MAIL|RCPT" "no MAIL in plain text"
  like "$(printf '%s\n' "$OUT" | grep '^  hint')" "does not fall back to plain text.*tls = none" \
    "the hint names tls = none as the deliberate choice"
  stop_peer F
done

# after_starttls LINE...: a server offering STARTTLS and AUTH PLAIN that answers 220
# to STARTTLS, then does the LINEs (no handshake of its own): a script's path
after_starttls() {
  printf '%s\n' "send 220 strip.example ESMTP" "expect ^EHLO" "send 250-strip.example" "send 250-STARTTLS" \
    "send 250 AUTH PLAIN" "expect ^STARTTLS" "send 220 go ahead" "$@" | fault_script
}

# The connection closed in the TLS handshake after STARTTLS's 220.
s=$(after_starttls close)
start_fault F "$s" || exit 1
for v in "tls=starttls tls_required=true" "tls=auto tls_required=true" "tls=auto tls_required=false"; do
  : > "$F_REC"; rm -f "$F_REC".*
  # shellcheck disable=SC2086
  mh_test "$(new_conf port="$F" $v auth=true username=u password="$PW")"
  is "$RC" 1 "closed in the handshake, $v: fails"
  ilike "$OUT" "stage[: ]+tls\b" "stage tls ($v)"
  unlike "$(cat "$F_REC" "$F_REC".* 2>/dev/null)" "AUTH|MAIL|$PW|$B64" "no AUTH, MAIL or password on any connection ($v)"
done

# 220 to STARTTLS, then plain-text SMTP instead of a handshake.
s=$(after_starttls read "send 250 ok" read "send 250 ok")
start_fault F "$s" || exit 1
: > "$F_REC"; rm -f "$F_REC".*
mh_test "$(new_conf port="$F" tls=starttls tls_required=true auth=true username=u password="$PW")"
is "$RC" 1 "plain text instead of a handshake: fails"
unlike "$(tr -d '\0' < "$F_REC")" "AUTH|MAIL|$PW|$B64" "no AUTH, MAIL or password in the clear"
like "$ERR" "protocol violation: after its 220 to STARTTLS, 127.0.0.1:$F answered the TLS handshake in plain text \(\"250 \.\.\.\"\)" \
  "the error says the handshake was answered in plain text (not OpenSSL's 'wrong version number')"
like "$(printf '%s\n' "$OUT" | grep '^  hint')" "nothing in between .* rewrites the traffic" "the hint: something in between"
mh_test "$(new_conf port="$F" tls=auto tls_required=false)"
is "$RC" 1 "the same with tls = auto, tls_required = false: fails (no fall back to plain text)"
like "$ERR" "answered the TLS handshake in plain text" "with the same error"
# Delivery: the message stays queued for a retry, never taken for delivered.
export MAILHOOK_SPOOL=$T/ptspool
c=$(new_conf port="$F" tls=starttls tls_required=true)
printf 'hello\n' | "$MAILHOOK" -c "$c" enqueue --to rcpt@example.org --subject probe >/dev/null 2>&1
"$MAILHOOK" -c "$c" flush > "$T/pt.flush" 2>&1
like "$(grep '^flush:' "$T/pt.flush")" "^flush: 0 delivered" "flush: nothing taken for delivered"
is "$(ls "$T/ptspool/pickup" | grep -c '\.eml$')" 1 "the message is still queued"
unset MAILHOOK_SPOOL

# STARTTLS required but not offered (aiosmtpd without TLS): the hint names the ports that
# have TLS; then the same host:port seen with TLS first: the hint names the downgrade.
start_smtpd P --log "$T/plain.log" || exit 1
mh_test "$(new_conf port="$P" tls=starttls)"
is "$RC" 1 "tls = starttls, no STARTTLS offered: fails"
is "$(printf '%s\n' "$OUT" | grep '^  hint')" \
  "  hint           the server offers no STARTTLS on this port: use its implicit-TLS port (465, \`tls = implicit\`) or its submission port (587)" \
  "the hint: no STARTTLS on this port, use 465 or 587"
stop_peer P
export MAILHOOK_SPOOL=$T/spool
port=$(free_port)
certs_ready
start_smtpd D --port "$port" --tls starttls --cert "$C/server.crt" --key "$C/server.key" || exit 1
mh_test "$(new_conf port="$port" tls=auto tls_ca_file="$C/ca.crt")"
is "$RC" 0 "a STARTTLS server is seen with TLS"
stop_peer D
start_smtpd D2 --port "$port" --log "$T/down.log" || exit 1
mh_test "$(new_conf port="$port" tls=auto tls_required=false tls_ca_file="$C/ca.crt")"
is "$RC" 1 "the same host:port without STARTTLS later: refused"
like "$(printf '%s\n' "$OUT" | grep '^  hint')" "reached with TLS before and now offers none.*delete its line in SPOOL/state/tls-seen" \
  "the hint: a downgrade, and how to accept a known change"
unlike "$(cat "$T/down.log")" "^mail" "no MAIL FROM in the clear"
# tls = none set by hand towards it: the setting, not an attack, is what to change
mh_test "$(new_conf port="$port" tls=none tls_required=false tls_ca_file="$C/ca.crt")"
is "$RC" 1 "tls = none towards a server seen with TLS: refused"
like "$(printf '%s\n' "$OUT" | grep '^  hint')" "\`tls = none\` would send to it in plain text: set \`tls = auto\`" \
  "the hint names the setting (it said 'something in between may strip STARTTLS (an attack)')"
stop_peer D2
# a 4xx to the test recipient (greylisting): for now, not for good
start_smtpd G --by-local-part --maildir "$T/grey" || exit 1
mh_test "$(new_conf port="$G" tls=none tls_required=false)" --to temp@example.net
is "$RC" 1 "test --to a recipient the server defers (450): fails"
like "$(printf '%s\n' "$OUT" | grep '^  hint')" "refused the test recipient for now \(a 4xx: greylisting" \
  "the hint says it is temporary (it was the 5xx one)"
mh_test "$(new_conf port="$G" tls=none tls_required=false)" --to perm@example.net
like "$(printf '%s\n' "$OUT" | grep '^  hint')" "the server refused the test recipient or the message" "a 550 keeps the other hint"
stop_peer G
unset MAILHOOK_SPOOL

# --- refused certificates: the reason named, and a hint saying which setting to change -------
# aiosmtpd with STARTTLS and each bad certificate (tests/peers/mkcerts, plus a self-signed leaf
# made here with the openssl CLI); mailhook connects by name (server = localhost) with our CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/self.key" \
  -out "$C/self.crt" -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  2>/dev/null || exit 1
SELF_FP=$(openssl x509 -in "$C/self.crt" -outform DER | sha256sum | cut -c1-64)
certcase() {   # certcase CERT REASON HINT [settings]: refused, naming REASON, hinting HINT
  local cert=$1 reason=$2 hint=$3; shift 3
  start_smtpd S --tls starttls --cert "$C/$cert.crt" --key "$C/$cert.key" --auth "u:$PW" \
    --log "$T/$cert.log" || exit 1
  mh_test "$(new_conf port="$S" server=localhost tls=starttls tls_ca_file="$C/ca.crt" auth=true \
    username=u password="$PW" "$@")"
  is "$RC" 1 "$cert: refused"
  like "$OUT" "verified NO \($reason\)" "$cert: the reason ($reason)"
  like "$ERR" "certificate verification failed: $reason|fingerprint [0-9a-f]+ does not match tls_fingerprint" "$cert: the error names it"
  like "$(printf '%s\n' "$OUT" | grep '^  hint')" "$hint" "$cert: the hint says what to change"
  unlike "$(cat "$T/$cert.log")" "^auth|^mail" "$cert: no AUTH or MAIL reached the server"
  unlike "$OUT" "$PW|$B64" "$cert: the password is not in the report"
  stop_peer S
}
certcase self "self-signed certificate" 'self-signed: set `tls_fingerprint` to its sha256'
certcase wronghost "hostname mismatch" 'not for the name in `server`: set `server` to a name the certificate holds'
# what the host name is checked against: the names the certificate holds (its subjectAltName),
# shown so that the admin can pick `server` among them; the CA's own certificate has none
like "$OUT" "names +wrong\.example\.net" "wronghost: the report lists the names the certificate holds"
like "$(printf '%s\n' "$OUT" | grep '^  hint')" "holds \(its names above\)" "wronghost: the hint points at them"
# a name of the server's that ends in "..." (its bytes, any): the names after it are shown
# too ("..." as the mark of a list cut short stopped the list at that name)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$C/dots.key" \
  -out "$C/dots.crt" -days 30 -subj /CN=localhost -addext 'subjectAltName=DNS:old...,DNS:localhost,IP:127.0.0.1' \
  2>/dev/null || exit 1
certcase dots "self-signed certificate" 'self-signed: set `tls_fingerprint` to its sha256'
like "$OUT" "names +old\.\.\., localhost, 127\.0\.0\.1" "a name ending in '...' does not hide the names after it"
certcase expired "certificate has expired" 'expired or not yet valid: renew it on the server'
certcase unknown "unable to get local issuer certificate" 'issuer is neither in `tls_ca_file` nor among the system.s CAs'
certcase server "fingerprint mismatch" 'not the one `tls_fingerprint` pins' tls_fingerprint="$SELF_FP"
# The self-signed hint's advice works: pinned by its sha256, the same server passes.
start_smtpd S --tls starttls --cert "$C/self.crt" --key "$C/self.key" || exit 1
mh_test "$(new_conf port="$S" server=localhost tls=starttls tls_fingerprint="$SELF_FP")"
is "$RC" 0 "self-signed, pinned with tls_fingerprint as the hint says: passes"
stop_peer S

# tls_verify = false: the session passes, but the report must not say "verified yes", and
# `mailhook test` and `update` warn that anyone on the path can pose as the server.
start_smtpd S --tls starttls --cert "$C/wronghost.crt" --key "$C/wronghost.key" || exit 1
c=$(new_conf port="$S" server=localhost tls=starttls tls_verify=false auth=false)
chmod 600 "$c"
mh_test "$c"
is "$RC" 0 "tls_verify = false, a certificate for another name: the test passes (verification is off)"
like "$OUT" "verified NO \(not verified \(tls_verify=false\)" "the report says NO, not 'verified yes'"
like "$OUT" "warning: tls_verify = false: the server's certificate is not checked" "and warns"
out=$("$MAILHOOK" -c "$c" test --json 2>/dev/null)
is "$(printf '%s' "$out" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["connection"]["certificate"]["verified"])')" \
  False "--json: certificate.verified is false"
out=$("$MAILHOOK" -c "$c" update helo_name=client2.example.org 2>&1 >/dev/null)
like "$out" "warning: tls_verify = false" "mailhook update warns too"
c=$(new_conf port="$S" server=localhost tls=starttls tls_verify=false tls_fingerprint="$(cat "$C/wronghost.sha256")")
mh_test "$c"
is "$RC" 0 "tls_verify = false with a matching pin: passes"
like "$OUT" "verified yes \(fingerprint pinned" "the pin is a verification: yes"
unlike "$OUT" "warning: tls_verify" "no warning: the pin checks the server"
stop_peer S

done_testing
