# A reply received before the final dot was written is a protocol violation,
# never a delivery (issue 10 point 3): a server that answers DATA with "354"
# and "250 ok" in one packet and closes must not make `flush` report the
# message delivered and delete it (the attack deleted a 3 MB message).  With
# and without PIPELINING, for a message sent from memory and for one streamed
# from its spool file.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

S=$T/spool C=$T/mailhook.conf
export MAILHOOK_SPOOL=$S MAILHOOK_CONF=$C
n_pickup() { find "$S/pickup" -maxdepth 1 -name '*.eml' | wc -l; }

cat > "$T/pipelined.script" <<'S'
send 220 early.example ESMTP
expect ^EHLO
send 250-early.example
send 250 PIPELINING
expect ^MAIL FROM
expect ^RCPT TO
expect ^DATA
raw 250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n250 2.0.0 queued as FAKE\r\n
close
S
cat > "$T/plain.script" <<'S'
send 220 early.example ESMTP
expect ^EHLO
send 250 early.example
expect ^MAIL FROM
send 250 2.1.0 ok
expect ^RCPT TO
send 250 2.1.5 ok
expect ^DATA
raw 354 go ahead\r\n250 2.0.0 queued as FAKE\r\n
close
S
/usr/bin/python3 -c '
import sys
body = b"".join(b"line %07d of a fax that is big enough to be streamed from its file\r\n" % i for i in range(45000))
open(sys.argv[1], "wb").write(b"From: app@example.com\r\nTo: to@example.net\r\nSubject: fax\r\n\r\n" + body)' "$T/big.eml"

for kind in pipelined plain; do
  start_fault F "$T/$kind.script" --idle 5 || { echo "Bail out! fault.lua"; exit 1; }
  rm -rf "$S"
  "$MAILHOOK" update enabled=true server=127.0.0.1 port="$F" tls=none tls_required=false \
    from=app@example.com retry_interval=30 command_timeout=5 >/dev/null
  printf 'From: app@example.com\nTo: to@example.net\nSubject: small\n\nbody\n' | "$MAILHOOK" sendmail -t
  "$MAILHOOK" -e '
    local f = assert(io.open(..., "rb")); local b = f:read("a"); f:close()
    assert(require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL")):enqueue(b, { from = "app@example.com", to = { "to@example.net" } }))' "$T/big.eml"
  for try in 1 2; do
    "$MAILHOOK" -v flush >"$T/flush.out" 2>&1; rc=$?
    is "$rc" 1 "$kind, flush $try: exit 1 ($(grep '^flush:' "$T/flush.out"))"
    like "$(grep '^flush:' "$T/flush.out")" "^flush: 0 delivered" "$kind, flush $try: nothing taken for delivered"
    is "$(n_pickup)" 2 "$kind, flush $try: both messages (one of $(($(stat -c %s "$T/big.eml") / 1024)) KB) still queued"
  done
  like "$(cat "$T/flush.out")" "protocol violation: a reply \(250\) arrived before the message and its final dot were sent" \
       "$kind: the log says why"
  stop_peer F
done
done_testing
