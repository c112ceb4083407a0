# A spool file cut short while it streams (review 2, F8): `truncate` of pickup/ID.eml while
# its data goes out.  The engine stops before the final dot (good), and that was taken for an
# outage of the server ("server unreachable ...; the queue waits"); the next attempt then sent
# the cut file with a final dot, the server taking it as complete.  Now the read failure is
# that message's problem: it waits (not sent), the session is replaced at once and the
# message behind it goes; its next load finds the file no longer of the size it was queued
# with (X-Spool-Size) and sets it aside to corrupt/, saying why.  Never a final dot after
# part of it.  The moment is known, not guessed: the scripted peer answers DATA and then
# reads nothing for 1.5 s (the socket buffers fill, the engine waits for them), and the test
# cuts the file once the peer recorded the DATA command (a poll and a `truncate`: ~0.1 s;
# the engine then still has ~11 MB to send before it gets to the cut).  The same script
# serves the small message's session: 1.5 s there too (3 s was 3 s of every run waiting).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

start_fault F "$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250 fault.example
expect ^MAIL FROM:
send 250 2.1.0 ok
expect ^RCPT TO:
send 250 2.1.5 ok
expect ^DATA
send 354 go on
sleep 1.5
data
send 250 2.0.0 queued
expect ^QUIT|^RSET|^MAIL
send 221 bye
close
S
)" --idle 30 || { echo "Bail out! fault.lua did not start"; exit 1; }
# (command_timeout: the peer reads the cut message line by line before it greets the next session)
conf_for "$F" retry_interval=1 retry_max=2 command_timeout=30 data_timeout=30 session_deadline=120

# 20 MB in 900-byte lines (fewer lines for the peer to read): far more than the loopback's
# socket buffers take while the peer reads nothing (a few MB: no window grows without reads)
{ printf 'From: a@example.com\r\nTo: ok@example.net\r\nSubject: big\r\nMessage-ID: <big@test>\r\n'
  printf 'Date: Fri, 27 Nov 2026 06:00:00 +0000\r\n\r\n'
  head -c 15000000 /dev/zero | base64 -w 900 | sed 's/$/\r/'; } > "$T/big.eml"
big=$(enqueue_file "$T/big.eml")
small=$(enqueue 1)
[ -n "$big" ] && [ -n "$small" ]; ok $? "a 20 MB message and a small one behind it are queued"
grep -aq '^X-Spool-Size: [0-9]*'$'\r''$' "$SPOOL/pickup/$big.eml"; ok $? "its envelope records its size"

svc_start
wait_for 30 grep -aq '^DATA' "$F_REC"; ok $? "the peer got DATA and holds the data back"
truncate -s 12000000 "$SPOOL/pickup/$big.eml"; ok $? "the spool file is cut to 12 MB while it streams"

wait_for 60 test -f "$SPOOL/corrupt/$big.eml"; ok $? "its next load sets it aside to corrupt/"
wait_for 30 test ! -f "$SPOOL/pickup/$small.eml"; ok $? "the message behind it is delivered"
grep -alq 'Subject: msg 1' "$F_REC"*; ok $? "the peer has it"
svc_stop

log=$(cat "$T/svc.log")
like "$log" "$big: reading the message failed: the file got shorter .*not sent.*the rest of the queue goes on" \
     "the read failure is logged as that message's, not sent"
unlike "$log" "server unreachable|delivery suspended" "no outage of the server is logged"
like "$log" "pickup/$big.eml moved to corrupt/$big.eml: the message is [0-9]+ bytes, it was [0-9]+ when it was queued" \
     "the move names why"
# no final dot after part of the big one, on any connection
cut=0
for r in "$F_REC"*; do
  grep -aq 'Subject: big' "$r" || continue
  python3 -c 'import sys; sys.exit(0 if b"\r\n.\r\n" in open(sys.argv[1], "rb").read() else 1)' "$r" && cut=1
done
is "$cut" 0 "the cut message never got a final dot"
is "$(grep -c 'status=sent' "$T/svc.log")" 1 "one message sent, the small one"
stop_peer F

# Review 2 F9: a small message edited in place (sed -i: a new file renamed over its name)
# while its final dot waits for the reply.  The original goes (it was read whole at its
# load); the purge used to remove the edited file by name, without a word.  Now it is kept
# in corrupt/, said so.  The moment is known: the peer holds its 250 for 1.5 s after the dot,
# and the test edits once the peer recorded the dot (a poll and a `sed -i`: ~0.1 s).
SPOOL=$T/spool-f9; export MAILHOOK_SPOOL=$SPOOL
start_fault G "$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250 fault.example
expect ^MAIL FROM:
send 250 2.1.0 ok
expect ^RCPT TO:
send 250 2.1.5 ok
expect ^DATA
send 354 go on
data
sleep 1.5
send 250 2.0.0 queued
expect ^QUIT|^RSET|^MAIL
send 221 bye
close
S
)" --idle 30 || { echo "Bail out! fault.lua did not start"; exit 1; }
conf_for "$G" retry_interval=1 retry_max=2 command_timeout=30 data_timeout=30
id=$(enqueue 1)
"$MAILHOOK" flush > "$T/f9.out" 2>&1 &
fl=$!
wait_for 30 grep -aq $'^\.\r$' "$G_REC"; ok $? "the peer has the final dot and holds its reply"
sed -i 's/^body \(.*\)$/edited \1/' "$SPOOL/pickup/$id.eml"; ok $? "the message is edited in place (sed -i)"
wait "$fl"; is "$?" 0 "flush delivers it"
grep -aq '^body [0-9]' "$G_REC" && ! grep -aq '^edited' "$G_REC"; ok $? "the server got the message as it was loaded"
test ! -f "$SPOOL/pickup/$id.eml"; ok $? "pickup/ no longer holds it"
grep -aq '^edited [0-9]' "$SPOOL/corrupt/$id.eml"; ok $? "the edited file is kept in corrupt/"
like "$(cat "$T/f9.out")" "pickup/$id.eml moved to corrupt/$id.eml: it was replaced after $id was loaded and sent" \
     "the purge says why"
done_testing
