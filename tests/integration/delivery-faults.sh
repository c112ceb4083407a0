# Delivery against servers that misbehave at each stage (scripted peers, tests/peers/fault.lua):
# a 421 after the greeting, EHLO, MAIL or RCPT; the connection dropped mid-DATA; the final dot
# answered late (within data_timeout) and never.  For each: nothing is lost or delivered twice,
# the outcome and reason are in the log and in `mailhook queue` / mailq for every waiting
# message, and retry follows docs/delivery.md (an outage is no attempt of the message; a
# stall on the dot defers that message and the rest go on).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

HELLO='send 220 fault.example ESMTP
expect ^EHLO
send 250 fault.example'
DOT='data'   # (after $TXN: the message's body and final dot)
# the end of a session that went well: the QUIT answered (else mailhook waits command_timeout for it)
BYE='expect ^QUIT
send 221 bye'
make_certs_bg "$T/certs"   # (for the STARTTLS case at the end: openssl runs while the cases before it do)

# scenario NAME: a fresh spool with N (2) messages (<N@test>), settings for the peer F started
# from the script on stdin, then one `mailhook flush` (FLUSH_RC, FLUSH_OUT) and the listings
# (QUEUE: `mailhook queue`, QJSON: its --json, MAILQ: `sendmail -bp`).  DATA_TIMEOUT: data_timeout
# (3 s; shorter where the scenario waits for it to run out).
scenario() {
  SPOOL=$T/spool-$1; export MAILHOOK_SPOOL=$SPOOL
  start_fault F "$(fault_script)" --idle 5 || { echo "Bail out! fault.lua did not start"; exit 1; }
  conf_for "$F" retry_interval=30 retry_max=60 command_timeout=2 data_timeout="${DATA_TIMEOUT:-3}" session_deadline=20
  enqueue "${N:-2}" >/dev/null
  FLUSH_OUT=$(timeout 60 "$MAILHOOK" flush 2>&1); FLUSH_RC=$?
  QUEUE=$("$MAILHOOK" queue 2>&1)
  QJSON=$("$MAILHOOK" queue --json 2>&1)
  MAILQ=$("$MAILHOOK" sendmail -bp 2>&1)
  stop_peer F
}
# tries: the TRY column of the listing, one number per message
tries() { printf '%s\n' "$QUEUE" | grep -E '^[0-9a-f]{16} ' | awk '{print $4}' | tr '\n' ' '; }

# outage_waits NAME STAGE-REGEX: after a 421 or a broken session, both messages wait, unpenalised,
# each showing why (the untried one by the recorded outage) in `mailhook queue` and mailq.
outage_waits() {
  is "$FLUSH_RC" 1 "$1: flush exits 1, something is left"
  like "$FLUSH_OUT" "server unreachable \($2" "$1: the outage is logged with its stage and reply"
  is "$(ls "$SPOOL/pickup" | grep -c '\.eml$')" 2 "$1: both messages stay queued"
  is "$(tries)" "0 0 " \
     "$1: no attempt counted (an outage is no attempt of the message)"
  is "$(printf '%s\n' "$QJSON" | grep -cE "\"(last_reply|outage)\":\"$2")" 2 \
     "$1: mailhook queue shows the reason for both, the untried one too"
  like "$QUEUE" "delivery suspended since .*$2" "$1: and the outage itself"
  is "$(printf '%s\n' "$MAILQ" | grep -cE "\((delivery temporarily suspended: )?$2")" 2 "$1: so does mailq"
}

scenario greeting421 <<S
send 220 fault.example ESMTP
send 421 4.3.2 shutting down
close
S
# (the 220 came: the session is at EHLO, and every listing names that stage, not "connect")
outage_waits greeting421 "ehlo: server closing the connection: 421 4.3.2"

scenario greeting-is-421 <<S
send 421 4.3.2 too busy
close
S
outage_waits "a 421 greeting" "greeting: server closing the connection: 421 4.3.2 too busy"

for at in EHLO MAIL RCPT; do
  case $at in
    EHLO) before='send 220 fault.example ESMTP' ;;
    MAIL) before=$HELLO ;;
    RCPT) before="$HELLO
expect ^MAIL FROM:
send 250 2.1.0 ok" ;;
  esac
  scenario "421-$at" <<S
$before
expect ^$at
send 421 4.3.2 going down
close
S
  stage=$(printf '%s' "$at" | tr A-Z a-z)
  outage_waits "421 to $at" "$stage: server closing the connection: 421 4.3.2 going down"
done

scenario drop-in-data <<S
$HELLO
$TXN
read
read
close
S
outage_waits "connection dropped mid-DATA" "data: connection closed by the server"
grep -q "^Subject: msg" "$F_REC"; ok $? "mid-DATA: the body had begun to leave"

# a fresh server after the outage: the outage record goes, each message arrives once
SPOOL=$T/spool-drop-in-data; export MAILHOOK_SPOOL=$SPOOL
peer_start "$(free_port)" "$T/peer"
conf_for "$PEER"
"$MAILHOOK" flush >/dev/null 2>&1; is $? 0 "after the outage a flush delivers both"
is "$(received_ids "$T/peer" | sed 's/@.*//' | tr '\n' ' ')" "<$((ENQ_SEQ - 1)) <$ENQ_SEQ " "each once, in order"
[ ! -e "$SPOOL/outage" ]; ok $? "the outage record is gone once a session works"
peer_stop

scenario late-dot <<S
$HELLO
$TXN
$DOT
sleep 2
send 250 2.0.0 queued late
$TXN
$DOT
send 250 2.0.0 queued
$BYE
S
is "$FLUSH_RC" 0 "a final dot answered after 2 s (data_timeout 3 s): delivered"
is "$QUEUE" "queue is empty" "nothing left"
is "$(grep -c '^Subject: msg' "$F_REC")" 2 "the server got each message once ($(grep '^Subject' "$F_REC" | tr '\r\n' '  '))"

DATA_TIMEOUT=1 scenario no-dot-reply <<S
$HELLO
$TXN
$DOT
stall
S
is "$FLUSH_RC" 1 "a final dot never answered: flush exits 1"
is "$(ls "$SPOOL/pickup" | grep -c '\.eml$')" 2 "the messages stay queued (no 250: not delivered)"
is "$(tries)" "1 1 " \
   "each stalled message is deferred with an attempt counted, and the next one was still tried"
is "$(printf '%s\n' "$QUEUE" | grep -cE '^[0-9a-f]{16} .* in [0-9]+s .*timed out in state BODY')" 2 \
   "mailhook queue shows the timeout and a later next attempt for each"
like "$MAILQ" "\(timed out in state BODY" "mailq shows it"
[ ! -e "$SPOOL/outage" ]; ok $? "a stall on one message is no outage"

# --- replies that are odd but valid, and ones that are not -----------------------------------
scenario cut-replies <<S
raw 22
sleep 0.2
raw 0 fault.example ESMTP\r
sleep 0.2
raw \n
expect ^EHLO
raw 250-fault.exa
sleep 0.2
raw mple\r\n250 PIPELINING\r
sleep 0.1
raw \n
$TXN
$DOT
raw 2
sleep 0.3
raw 50 2.0.0 o
sleep 0.3
raw k\r\n
$TXN
$DOT
send 250 2.0.0 ok \x01\xff garbage\tafter
$BYE
S
is "$FLUSH_RC" 0 "replies cut at odd places (in the code, before the LF), a 250 with control bytes after: delivered"
is "$(grep -c '^Subject: msg' "$F_REC")" 2 "each once"

for mixed in "250-2.0.0 queued as A|550 5.7.1 rejected after all" "550-5.7.1 rejected|250 2.0.0 ok after all" \
             "250garbage|" "2500 ok|"; do
  first=${mixed%%|*} second=${mixed#*|}
  scenario "mixed-$first" <<S
$HELLO
$TXN
$DOT
send $first
${second:+send $second}
S
  is "$(ls "$SPOOL/pickup" | grep -c '\.eml$'),$(ls "$SPOOL/failed" 2>/dev/null | grep -c '\.eml$')" "2,0" \
     "a malformed reply to the dot ('$first${second:+ / $second}'): neither delivered nor failed, both stay queued"
  like "$QUEUE" "data: malformed reply line" "the reason is shown"
done

scenario ehlo-100k <<S
send 220 fault.example ESMTP
expect ^EHLO
repeat 3000 250-XFEATURE-PADDING-0123456789\r\n
send 250 PIPELINING
S
is "$FLUSH_RC" 1 "an EHLO answer of 100 KB: refused, not parsed without bound"
like "$FLUSH_OUT" "reply longer than 100 lines" "the error names the limit"
like "$QJSON" '"ehlo: reply longer than 100 lines' "and the stage it broke at (ehlo, not connect)"
is "$(ls "$SPOOL/pickup" | grep -c '\.eml$')" 2 "the messages stay queued"

N=5 scenario 552-one-of-five <<S
$HELLO
$TXN
$DOT
send 250 2.0.0 ok
$TXN
$DOT
send 552 5.3.4 message too big for system
$TXN
$DOT
send 250 2.0.0 ok
$TXN
$DOT
send 250 2.0.0 ok
$TXN
$DOT
send 250 2.0.0 ok
$BYE
S
is "$FLUSH_RC" 0 "a 552 at the dot for one message of five: flush ends with nothing queued"
is "$(ls "$SPOOL/failed" | grep -c '\.eml$')" 1 "that one is in failed/"
grep -q "<$((ENQ_SEQ - 3))@test>" "$SPOOL"/failed/*.eml; ok $? "and it is the second one"
is "$(printf '%s\n' "$FLUSH_OUT" | grep 'moved to failed/' | grep -o '552 5.3.4 message too big' | wc -l)" 1 \
   "the log line gives the reply once"
is "$(grep -c '^Subject: msg' "$F_REC")" 5 "the server got each of the five once, on one connection"
# --- the service against a server that drops every DATA ---------------------------------------
# Each message breaks the session twice and is then deferred (the rest go on); the server
# takes connections but no mail, so the outage lasts: said once, never "reachable again"
# at each retry (nor its record removed and written again).
SPOOL=$T/spool-svc; export MAILHOOK_SPOOL=$SPOOL
start_fault F "$(fault_script <<S
$HELLO
$TXN
read
close
S
)" --idle 5 || { echo "Bail out! fault.lua did not start"; exit 1; }
conf_for "$F" retry_interval=0.25 retry_max=60
enqueue 3 >/dev/null
svc_start
deferred_all() { [ "$(grep -c 'deferred (attempt 1)' "$T/svc.log")" -ge 3 ]; }
wait_for 20 deferred_all; ok $? "service: each message breaking the session twice is deferred, the next is tried"
is "$(grep -c 'server unreachable' "$T/svc.log")" 1 "the outage is said once ($(grep -c 'delivery: server' "$T/svc.log") lines)"
unlike "$(cat "$T/svc.log")" "reachable again" "a connection that takes no mail does not end it"
[ -s "$SPOOL/outage" ]; ok $? "its record stays"
is "$(ls "$SPOOL/pickup" | grep -c '\.eml$')" 3 "all three stay queued"
svc_stop; is $? 0 "stopped"
stop_peer F

# a working server (a new service: the record left by the last one goes at its first delivery)
peer_start "$(free_port)" "$T/peer-svc"
conf_for "$PEER" retry_interval=0.25 retry_max=0.25
svc_start
wait_for 20 pickup_empty; ok $? "a working server: the queue drains"
is "$(received_count "$T/peer-svc")" 3 "each message once"
[ ! -e "$SPOOL/outage" ]; ok $? "and its record removed"
svc_stop

# --- a reply sent as the server closes, while a big message's data still goes out ------------
# The server answers mid-DATA (a 421 as it shuts down, a 552 as the message grows past its
# limit) and closes at once, with the data unread: the connection is reset, and the write of
# the next piece fails.  The reply came first and is the reason to log and record, not the
# write's "connection reset by peer", which it was about half the time (the write was tried
# before the reply was read).  Five flushes of a 10 MB message, each a new session.
big_msg() {
  { printf 'From: app@example.com\nTo: big@example.net\nSubject: big\nMessage-ID: <big@test>\n\n'
    head -c 10000000 /dev/zero | tr '\0' 'a' | fold -w 76; } | "$MAILHOOK" sendmail -i big@example.net
}
for reply in "421 4.3.2 shutting down" "552 5.3.4 message size exceeds fixed limit"; do
  code=${reply%% *}
  SPOOL=$T/spool-early-$code; export MAILHOOK_SPOOL=$SPOOL
  start_fault F "$(fault_script <<S
$HELLO
$TXN
read
send $reply
close
S
)" --idle 5 || { echo "Bail out! fault.lua did not start"; exit 1; }
  conf_for "$F" retry_interval=30 retry_max=60
  big_msg
  said=0 reset=""
  for i in 1 2 3 4 5; do
    out=$("$MAILHOOK" flush 2>&1)
    case $out in *"$code"*) said=$((said + 1)) ;; *) reset="$reset [$(printf '%s' "$out" | grep -m1 -i 'write failed\|closed\|reset')]" ;; esac
  done
  is "$said" 5 "a $code sent mid-DATA then a close: each of 5 flushes names it${reset:+:$reset}"
  like "$(cat "$SPOOL"/pickup/*.state 2>/dev/null)" "last_reply .*$code" "$code mid-DATA: the message's record has it"
  is "$(ls "$SPOOL/pickup" | grep -c '\.eml$') $(ls "$SPOOL/failed" 2>/dev/null | grep -c '\.eml$')" "1 0" \
     "$code mid-DATA: the message is kept for a retry (a reply before the final dot settles nothing)"
  stop_peer F
done
# the same through STARTTLS: the reply is in a TLS record read after the failed write
certs_ready
SPOOL=$T/spool-early-tls; export MAILHOOK_SPOOL=$SPOOL
start_fault F "$(fault_script <<S
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250 STARTTLS
expect ^STARTTLS
send 220 2.0.0 go ahead
starttls
expect ^EHLO
send 250 fault.example
$TXN
read
send 421 4.3.2 shutting down
close
S
)" --idle 5 --cert "$T/certs/server.crt" --key "$T/certs/server.key" || { echo "Bail out! fault.lua did not start"; exit 1; }
conf_for "$F" tls=starttls tls_required=true tls_ca_file="$T/certs/ca.crt" retry_interval=30 retry_max=60
big_msg
said=0
for i in 1 2 3 4 5; do
  out=$("$MAILHOOK" flush 2>&1)
  case $out in *"421 4.3.2"*) said=$((said + 1)) ;; esac
done
is "$said" 5 "through STARTTLS too: each of 5 flushes names the 421 (${out##*$'\n'})"
stop_peer F
done_testing
