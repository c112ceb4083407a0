# The SMTP engine against real peers on 127.0.0.1: Postfix's smtp-sink, aiosmtpd
# (tests/peers/smtpd.py) with required STARTTLS + AUTH (PLAIN, LOGIN, and XOAUTH2 /
# OAUTHBEARER with --token, the error challenge included, which token refresh needs),
# aiosmtpd with implicit TLS, and a trickling scripted peer (tests/peers/fault.lua)
# for the session deadline.  The scenarios themselves are in smtp-engine.lua (run by
# the runtime).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

# certificates: our own CA and a leaf for localhost + 127.0.0.1 (tests/peers/mkcerts)
make_certs "$T/certs" || { echo "Bail out! cannot make certificates"; exit 1; }
FP=$CERT_FP
TLS=(--cert "$T/certs/server.crt" --key "$T/certs/server.key")

# peer NAME ARGS...: the real server, its messages in $T/mail-NAME; its port in $PORT_NAME
peer() {
  local name=$1; shift
  start_smtpd "PORT_$name" --maildir "$T/mail-$name" --hostname peer.test "$@" \
    || { echo "Bail out! peer $name did not start"; exit 1; }
}
peer starttls --tls starttls --require-starttls "${TLS[@]}" --auth user:secret --auth-optional --token good-token
peer implicit --tls implicit "${TLS[@]}" --auth user:secret --auth-optional
peer plain --size 100000
start_sink PORT_sink -4 || { echo "Bail out! smtp-sink did not start"; exit 1; }

# a peer that trickles its greeting one byte every 0.2 s, for as long as the client stays
printf 'trickle 0.2\nrepeat 100000 220-slow\\r\\n\n' > "$T/trickle.script"
start_fault PORT_trickle "$T/trickle.script" || { echo "Bail out! fault peer did not start"; exit 1; }

export PORT_starttls PORT_implicit PORT_plain PORT_sink PORT_trickle FP
export CERTS=$T/certs MAIL=$T MAILHOOK_SPOOL=$T/spool TMPD=$T
mkdir -p "$T/spool"
"$MAILHOOK" "$ROOT/tests/integration/smtp-engine.lua"
