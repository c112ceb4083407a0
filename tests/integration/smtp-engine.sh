# The SMTP engine against real peers on 127.0.0.1: Postfix's smtp-sink, aiosmtpd
# with required STARTTLS + AUTH (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER), aiosmtpd
# with implicit TLS, and a trickling peer for the session deadline.  The aiosmtpd
# peer is tests/peers/smtp-aiosmtpd.py rather than smtpd.py because it also speaks
# the OAuth mechanisms (with the XOAUTH2 error challenge) that token refresh needs.  The
# scenarios themselves are in smtp-engine.lua (run by the runtime).
. "$ROOT/tests/lib/tap.sh"
SINK=$ROOT/.deps/postfix/usr/sbin/smtp-sink
PY=/usr/bin/python3

# certificates: our own CA and a leaf for localhost + 127.0.0.1 (tests/peers/mkcerts)
FP=$("$ROOT/tests/peers/mkcerts" "$T/certs") || { cat "$T/certs/mkcerts.log"; echo "Bail out! cannot make certificates"; exit 1; }

# start_peer NAME ARGS...: an aiosmtpd peer; its port in $PORT_NAME
start_peer() {
  local name=$1; shift
  "$PY" "$ROOT/tests/peers/smtp-aiosmtpd.py" --maildir "$T/mail-$name" "$@" >"$T/$name.out" 2>"$T/$name.err" &
  on_exit "kill $!"
  wait_for 10 grep -q '^PORT ' "$T/$name.out" || { cat "$T/$name.err"; echo "Bail out! peer $name did not start"; exit 1; }
  eval "PORT_$name=$(sed -n 's/^PORT //p' "$T/$name.out")"
}
start_peer starttls --mode starttls --require-starttls --cert "$T/certs/server.crt" --key "$T/certs/server.key"
start_peer implicit --mode implicit --cert "$T/certs/server.crt" --key "$T/certs/server.key"
start_peer plain --mode plain --size 100000

# smtp-sink: a free port (bind 0 is not offered), tried until it listens
for try in 1 2 3 4 5; do
  PORT_sink=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$SINK" -u nobody -4 127.0.0.1:"$PORT_sink" 64 >"$T/sink.out" 2>&1 &
  pid=$!
  if wait_for 5 "$PY" -c "import socket; socket.create_connection(('127.0.0.1',$PORT_sink)).close()"; then
    on_exit "kill $pid"; break
  fi
  kill $pid 2>/dev/null
done

# a peer that trickles its greeting one byte every 0.2 s, forever
cat > "$T/trickle.py" <<'PY'
import socket, sys, time, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(8)
print("PORT", s.getsockname()[1], flush=True)
def serve(c):
    try:
        while True:
            for b in b"220-slow\r\n":
                c.send(bytes([b])); time.sleep(0.2)
    except OSError:
        pass
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
"$PY" "$T/trickle.py" >"$T/trickle.out" 2>&1 &
on_exit "kill $!"
wait_for 5 grep -q '^PORT ' "$T/trickle.out"
PORT_trickle=$(sed -n 's/^PORT //p' "$T/trickle.out")

export PORT_starttls PORT_implicit PORT_plain PORT_sink PORT_trickle FP
export CERTS=$T/certs MAIL=$T MAILHOOK_SPOOL=$T/spool TMPD=$T
mkdir -p "$T/spool"
"$MAILHOOK" "$ROOT/tests/integration/smtp-engine.lua"
