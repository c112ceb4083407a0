# `connections = 2` against a server (or a firewall before it: iptables' connlimit with
# --reject-with tcp-reset) that limits connections per client by refusing the extra ones
# at TCP: a plain "connection refused" on the extra connection while our other one is
# open and delivering.  Before, that was an outage: "server unreachable" logged and the
# queue made to wait retry_interval (30 s).  Now it is the connection limit the docs
# describe for a 4xx greeting (docs/delivery.md, retry table): the open connection goes on,
# the refused one tries again after 2 s, doubling.  With no session of ours open, a refused
# connection stays an outage.  The peer (tests/peers/fault.lua --once) closes its listening
# socket after its first accept: every later connection to the port is refused by the kernel.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

N=60
# every final dot answered after 0.1 s: the first message, then N more, on one connection
{ printf '%s\n' 'send 220 fault.example ESMTP' 'expect ^EHLO' 'send 250 fault.example'
  for i in $(seq $((N + 1))); do
    printf '%s\n' 'expect ^MAIL FROM:' 'send 250 2.1.0 ok' 'expect ^RCPT TO:' 'send 250 2.1.5 ok' \
      'expect ^DATA' 'send 354 go on' 'data' 'sleep 0.1' 'send 250 2.0.0 queued'
  done
  printf '%s\n' 'expect ^QUIT' 'send 221 bye' 'close'; } > "$T/slow.script"
start_fault F "$T/slow.script" --once --idle 60 || { echo "Bail out! fault.lua did not start"; exit 1; }
conf_for "$F" connections=2 retry_interval=30 retry_max=60

# one message first: our first connection is the peer's one accept (the second worker has
# nothing to take yet, so it cannot race it into the listen backlog)
enqueue 1 >/dev/null
SVC_LOG_LEVEL=debug svc_start
wait_for 10 grep -q 'status=sent' "$T/svc.log"; ok $? "the first connection delivers"
grep -q '^CONNECT 1$' "$F_OUT"; ok $? "it is the peer's one accepted connection"
enqueue $N >/dev/null   # while that session is open (it closes after 5 s idle)
wait_for 10 grep -q 'refuses one more connection.*connection refused' "$T/svc.log"
ok $? "the second connection is refused at TCP, logged as the server's limit"
wait_for 30 pickup_empty; ok $? "all $((N + 1)) delivered by the open connection"
is "$(grep -c 'status=sent' "$T/svc.log")" $((N + 1)) "each one sent"
unlike "$(cat "$T/svc.log")" "server unreachable|reachable again" "no outage was declared"
diag "$(grep -c 'waiting-retry' "$T/svc.log") waits of the refused connection"

# none of our sessions open (the peer is gone after its one connection ended): an outage
wait_for 15 grep -q '^END 1 ' "$F_OUT"; ok $? "our session ended (idle), the peer with it"
enqueue 1 >/dev/null
wait_for 10 grep -q 'server unreachable (connect: .*connection refused' "$T/svc.log"
ok $? "a refused connection with no session of ours open is an outage"
svc_stop; is $? 0 "stopped"
done_testing
