# Pipelining across messages (c:submit / c:result, two sends in flight) against real
# peers on 127.0.0.1: aiosmtpd (50 messages arrive once each, in order), Postfix's
# smtp-sink (2,000 messages, all accepted), and scripted peers (tests/peers/fault.lua)
# for what no real server does on demand: a 421 right after the first message's 250,
# replies cut across the two messages, a stall after the first 250, a 550 to the
# second message's RCPT.  Each fault script also checks the wire order: message 2's
# MAIL/RCPT/DATA must arrive BEFORE the peer answers message 1's dot.  The scenarios
# are in smtp-pipeline.lua (run by the runtime); this file starts the peers.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

start_smtpd SMTPD --maildir "$T/mail" || { echo "Bail out! aiosmtpd peer did not start"; exit 1; }
start_sink SINK -c || { echo "Bail out! smtp-sink did not start"; exit 1; }
SINK_OUT=$T/sink-$_peer_n.out

# script NAME: the fault script on stdin, saved as $T/NAME.script
script() { cat > "$T/$1.script"; }

# The common opening and message 1 (sender s1, recipient r1), its replies, its data,
# then message 2's group, which must already be there (pipelined behind the dot).
HEAD='send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250-PIPELINING
send 250 8BITMIME
expect ^MAIL FROM:<s1@example.test>
expect ^RCPT TO:<r1@example.test>
expect ^DATA$
send 250 2.1.0 ok
send 250 2.1.5 ok
send 354 go ahead
data
expect ^MAIL FROM:<s2@example.test>
expect ^RCPT TO:<r2@example.test>
expect ^DATA$'

script f421 <<S
$HEAD
send 250 2.0.0 queued as Q1
send 421 4.3.2 shutting down
S

script fcut <<S
$HEAD
raw 250 2.0.0 queued
sleep 0.15
raw  as Q1\r\n250 2.1.0 o
sleep 0.15
raw k\r\n25
sleep 0.15
raw 0 2.1.5 ok\r\n354 go ahead\r
sleep 0.15
raw \n
data
send 250 2.0.0 queued as Q2
expect ^QUIT
send 221 bye
S

script fstall <<S
$HEAD
send 250 2.0.0 queued as Q1
stall
S

script f550 <<S
$HEAD
send 250 2.0.0 queued as Q1
send 250 2.1.0 ok
send 550 5.1.1 <r2@example.test>: no such user
send 554 5.5.1 no valid recipients
expect ^RSET$
expect ^MAIL FROM:<s3@example.test>
expect ^RCPT TO:<r3@example.test>
expect ^DATA$
send 250 2.0.0 reset
send 250 2.1.0 ok
send 250 2.1.5 ok
send 354 go ahead
data
send 250 2.0.0 queued as Q3
expect ^QUIT
send 221 bye
S

for f in f421 fcut fstall f550; do
  start_fault "$f" "$T/$f.script" --idle 15 || { echo "Bail out! fault peer $f did not start"; exit 1; }
  o=${f}_OUT r=${f}_REC
  export "PORT_$f=${!f}" "OUT_$f=${!o}" "REC_$f=${!r}"
done
export PORT_smtpd=$SMTPD PORT_sink=$SINK MAILDIR=$T/mail SINK_OUT MAILHOOK_SPOOL=$T/spool
mkdir -p "$T/spool"
"$MAILHOOK" "$ROOT/tests/integration/smtp-pipeline.lua"
