# `connections = 2` against a server that takes a limited number of connections at once
# (tests/peers/fault.lua --max 2; one slot held by another client, as another host's
# connection would): the extra connection gets "421 too many connections" while ours
# delivers.  That is the server's limit, not an outage, and a limit that can lift at any
# moment: the refused worker tries again soon (docs/delivery.md: 2 s, doubling up to
# retry_interval), not only after retry_interval (30 s) while the queue drains at one
# connection.  REFUSE_AT=ehlo (delivery-extra-conn-ehlo.sh): the server greets the
# extra connection and refuses it in reply to EHLO instead (Exim, OpenSMTPD may): the same.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

# every message's final dot is answered after 0.1 s: 150 messages take 15 s on one connection
{ printf '%s\n' 'send 220 fault.example ESMTP' 'expect ^EHLO' 'send 250 fault.example'
  for i in $(seq 150); do
    printf '%s\n' 'expect ^MAIL FROM:' 'send 250 2.1.0 ok' 'expect ^RCPT TO:' 'send 250 2.1.5 ok' \
      'expect ^DATA' 'send 354 go on' 'data' 'sleep 0.1' 'send 250 2.0.0 queued'
  done; } > "$T/slow.script"
start_fault F "$T/slow.script" --max 2 ${REFUSE_AT:+--refuse-at "$REFUSE_AT"} --idle 60 || { echo "Bail out! fault.lua did not start"; exit 1; }
conf_for "$F" connections=2 retry_interval=30 retry_max=60

# another client holds one of the two slots (its own process: the service must not
# inherit the socket, or it would outlive the client)
( exec 3<>"/dev/tcp/127.0.0.1/$F"; exec sleep 120 ) &
HOLDER=$!
on_exit "kill $HOLDER"
wait_for 5 grep -q '^CONNECT 1$' "$F_OUT"; ok $? "another client holds one slot"
enqueue 150 >/dev/null
SVC_LOG_LEVEL=debug svc_start
wait_for 10 grep -q 'refuses one more connection' "$T/svc.log"
ok $? "one of our two connections is refused (421), logged as the server's limit"
w=$(sed -n 's/.*delivery\[\([0-9]\)\]: the server refuses one more connection.*/\1/p' "$T/svc.log" | head -1)
kill "$HOLDER"; wait "$HOLDER"            # the other client leaves: the slot is free
t0=$(date +%s%N)
wait_for 12 grep -q "delivery\[$w\]: connecting -> sending" "$T/svc.log"
ok $? "the refused connection tries again soon and delivers beside the other"
diag "worker $w sending $(( ($(date +%s%N) - t0) / 1000000 )) ms after the slot was freed"
sent=$(grep -c 'status=sent' "$T/svc.log")
[ "$sent" -lt 150 ]; ok $? "while the queue was still draining ($sent of 150 sent)"
wait_for 30 pickup_empty; ok $? "all 150 delivered"
unlike "$(cat "$T/svc.log")" "server unreachable|reachable again" "no outage was declared"
svc_stop; is $? 0 "stopped"
done_testing
