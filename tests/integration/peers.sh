# The test peers themselves (tests/peers/*), checked with swaks as a reference client
# and openssl: each starts, speaks SMTP, does TLS and AUTH as asked, stores what it
# accepts, and the fault peer does what its script says.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

sw() { swaks --server 127.0.0.1 --timeout 10 --from sender@example.org "$@" 2>&1; }

# --- certificates -----------------------------------------------------------------
make_certs "$T/certs"; ok $? "mkcerts makes the certificates"
C=$T/certs
is "$CERT_FP" "$(openssl x509 -in "$C/server.crt" -noout -fingerprint -sha256 | sed 's/.*=//')" \
   "mkcerts prints the good leaf's sha256 fingerprint"
openssl verify -CAfile "$C/ca.crt" -verify_hostname localhost "$C/server.crt" >/dev/null 2>&1
ok $? "server.crt: signed by our CA, valid for localhost"
openssl verify -CAfile "$C/ca.crt" -verify_ip 127.0.0.1 "$C/server.crt" >/dev/null 2>&1
ok $? "server.crt: valid for 127.0.0.1"
like "$(openssl verify -CAfile "$C/ca.crt" -verify_hostname localhost "$C/wronghost.crt" 2>&1)" \
     "[Hh]ostname mismatch" "wronghost.crt: our CA, another host name"
like "$(openssl verify -CAfile "$C/ca.crt" "$C/unknown.crt" 2>&1)" "unable to get local issuer" \
     "unknown.crt: not signed by our CA"
like "$(openssl verify -CAfile "$C/ca.crt" "$C/expired.crt" 2>&1)" "certificate has expired" \
     "expired.crt: our CA, expired"

# --- aiosmtpd, plain, storing -------------------------------------------------------
start_smtpd P --maildir "$T/m1" --log "$T/m1.log"; ok $? "smtpd.py starts and prints its port"
out=$(sw --port "$P" --to rcpt@example.net --header "Subject: peers" --body $'line one\n.dotted\nend')
like "$out" "250 2.0.0 OK queued as 000001" "a message is accepted"
is "$(count_mail "$T/m1")" 1 "and stored in the maildir"
like "$(cat "$T/m1/000001.json")" '"from": "sender@example.org"' "the sidecar holds the sender"
like "$(tr -d '\n ' < "$T/m1/000001.json")" '"to":\["rcpt@example.net"\]' "and the recipients"
grep -q $'^\\.dotted\r$' "$T/m1/000001.eml"; ok $? "the stored content is unstuffed, CRLF kept"
grep -q "^Subject: peers" "$T/m1/000001.eml"; ok $? "with the headers as sent"
like "$(cat "$T/m1.log")" "mail <sender@example.org>" "the event log records the session"
sw --port "$P" --to second@example.net >/dev/null
is "$(count_mail "$T/m1")" 2 "a second message gets the next number"
stop_peer P
start_smtpd P --maildir "$T/m1"
sw --port "$P" --to third@example.net >/dev/null
[ -e "$T/m1/000003.eml" ]; ok $? "a restarted server continues the numbering"
t0=$(date +%s%N); stop_peer P; rc=$?
ok $(( ($(date +%s%N) - t0) / 1000000 < 3000 ? 0 : 1 )) "SIGTERM stops it at once"
kill -0 "$P_PID" 2>/dev/null; is $? 1 "and it is gone"

# --- replies on demand ---------------------------------------------------------------
start_smtpd P --maildir "$T/m2" --reply-rcpt 'busy@example.net=450 4.2.0 busy' \
  --reply-rcpt 'gone@example.net=550 5.1.1 no such user' --reply-rcpt-once 'later@example.net=451 4.3.0 not yet' \
  --fail-data-once '451 4.3.0 try again' --size 2000
like "$(sw --port "$P" --to busy@example.net)" "<[~*]\* +450 4.2.0 busy" "--reply-rcpt gives a 4xx to one address"
like "$(sw --port "$P" --to gone@example.net)" "<[~*]\* +550 5.1.1 no such user" "and a 5xx to another"
like "$(sw --port "$P" --to later@example.net)" "<[~*]\* +451 4.3.0 not yet" "--reply-rcpt-once refuses the first time"
out=$(sw --port "$P" --to later@example.net)
like "$out" "<[~*]\* +451 4.3.0 try again" "--fail-data-once fails the first DATA"
is "$(count_mail "$T/m2")" 0 "and stores nothing"
like "$(sw --port "$P" --to later@example.net)" "250 2.0.0 OK queued" "then the address and DATA are accepted"
like "$(sw --port "$P" --to ok@example.net --body "$(seq 1000 2000)")" "<[~*]\* +552" \
     "--size refuses a message over the limit"
like "$(sw --port "$P" --to ok@example.net --quit-after EHLO)" "250-SIZE 2000" "and announces it"
is "$(count_mail "$T/m2")" 1 "only the accepted message is stored"

# --- STARTTLS, required, with AUTH ------------------------------------------------------
start_smtpd P --tls starttls --require-starttls --cert "$C/server.crt" --key "$C/server.key" \
  --auth user:s3cret --maildir "$T/m3" --log "$T/m3.log"
out=$(sw --port "$P" --to a@example.net)
like "$out" "<[~*]\* +530" "without STARTTLS, MAIL is refused"
unlike "$out" "250-AUTH" "and AUTH is not offered in the clear"
out=$(sw --port "$P" --to a@example.net --tls --tls-verify --tls-ca-path "$C/ca.crt" -a PLAIN -au user -ap s3cret)
like "$out" "235 2.7.0" "STARTTLS with our CA verifies, then AUTH PLAIN succeeds"
like "$out" "250 2.0.0 OK queued" "and the message is accepted"
like "$(cat "$T/m3/000001.json")" '"tls": "TLSv1.[23]"' "the sidecar records TLS"
like "$(cat "$T/m3/000001.json")" '"auth": "user"' "and the authenticated user"
like "$(sw --port "$P" --to a@example.net --tls --tls-verify --tls-ca-path "$C/ca.crt" -a LOGIN -au user -ap s3cret)" \
     "235 2.7.0" "AUTH LOGIN succeeds"
like "$(sw --port "$P" --to a@example.net --tls --tls-verify --tls-ca-path "$C/ca.crt" -a PLAIN -au user -ap wrong)" \
     "535 5.7.8" "a wrong password gets 535"
like "$(sw --port "$P" --to a@example.net --tls --tls-verify --tls-ca-path "$C/ca.crt")" "<[~*]\* +530" \
     "mail without AUTH is refused"
like "$(cat "$T/m3.log")" "auth fail PLAIN user" "the log records the failed attempt"
unlike "$(cat "$T/m3.log" "$T"/m3/*.json)" "s3cret|wrong" "and never a password"
is "$(count_mail "$T/m3")" 2 "two messages stored"

start_smtpd U --tls starttls --cert "$C/unknown.crt" --key "$C/unknown.key"
like "$(sw --port "$U" --to a@example.net --tls --tls-verify --tls-ca-path "$C/ca.crt")" "certificate verify failed|TLS startup failed" \
     "a certificate from an unknown CA fails verification in swaks too"

# --- implicit TLS ---------------------------------------------------------------------
start_smtpd P --tls implicit --cert "$C/server.crt" --key "$C/server.key" --auth user:s3cret --maildir "$T/m4"
out=$(sw --port "$P" --to a@example.net --tlsc --tls-verify --tls-ca-path "$C/ca.crt" -a PLAIN -au user -ap s3cret)
like "$out" "250 2.0.0 OK queued" "implicit TLS: verified, authenticated, accepted"
unlike "$out" "STARTTLS" "no STARTTLS offered inside implicit TLS"

# --- Postfix smtp-sink ------------------------------------------------------------------
start_sink S; ok $? "smtp-sink starts"
like "$(sw --port "$S" --to a@example.net)" "<- +250 2.0.0 Ok" "and accepts a message"
start_sink S2 -r rcpt; like "$(sw --port "$S2" --to a@example.net)" "<[~*]\* +450" "-r rcpt gives 4xx to RCPT"

# --- the scripted fault peer --------------------------------------------------------------
cat > "$T/f1.script" <<'SCRIPT'
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 251-mismatched continuation
send 250 PIPELINING
expect ^QUIT
send 221 bye
SCRIPT
start_fault F "$T/f1.script"; ok $? "fault.lua starts"
out=$(sw --port "$F" --quit-after EHLO)
like "$out" "251-mismatched continuation" "it sends the scripted lines as they are"
wait_for 5 grep -q "^END 1" "$F_OUT"; ok $? "the connection's end is reported"
unlike "$(cat "$F_OUT")" "EXPECT-FAIL" "every expect matched"
like "$(head -1 "$F_REC")" "^EHLO " "the bytes received are recorded"

cat > "$T/f2.script" <<'SCRIPT'
send 220 fault.example ESMTP
expect ^NOOP
SCRIPT
start_fault F2 "$T/f2.script"
sw --port "$F2" --quit-after CONNECT >/dev/null
wait_for 5 grep -q "^EXPECT-FAIL 1 2 got 'QUIT'" "$F2_OUT"; ok $? "an unexpected command is reported with the script line"

# The wire: a dot-stuffed body arrives stuffed, with swaks' CRLFs, in the record.
cat > "$T/f3.script" <<'SCRIPT'
send 220 fault.example ESMTP
expect ^EHLO
send 250 fault.example
expect ^MAIL FROM:<sender@example.org>
send 250 ok
expect ^RCPT TO:
send 250 ok
expect ^DATA
send 354 go
data
send 250 stored
expect ^QUIT
send 221 bye
close
SCRIPT
start_fault F3 "$T/f3.script"
like "$(sw --port "$F3" --to a@example.net --body $'.leading dot\nplain')" "250 stored" "a scripted DATA exchange completes"
wait_for 5 grep -q "^END 1 closed" "$F3_OUT"; ok $? "and the script ran to its close"
grep -q $'^\\.\\.leading dot\r$' "$F3_REC"; ok $? "the record shows the dot-stuffed line with CRLF"
# (the last 11 bytes: grep would read a regex holding a newline as several regexes)
[ "$(tail -c 11 "$F3_REC" | od -An -c | tr -d ' \n')" = '\r\n.\r\nQUIT\r\n' ]
ok $? "and the end of data followed by QUIT"

# trickle: a one-byte-per-interval greeting takes its time
printf 'trickle 0.2\nsend 220 slow\nstall\n' > "$T/f4.script"
start_fault F4 "$T/f4.script"
t0=$(date +%s%N)
"$PY" - "$F4" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
got = b""
while not got.endswith(b"\r\n"):
    got += s.recv(100)
assert got == b"220 slow\r\n", got
PY
ok $? "trickle sends the line whole"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ok $(( ms >= 1800 ? 0 : 1 )) "one byte every 0.2 s (10 bytes took ${ms} ms)"

# starttls inside a script: handshake with the given certificate, then plain script lines
cat > "$T/f5.script" <<'SCRIPT'
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250 STARTTLS
expect ^STARTTLS
send 220 go ahead
starttls
expect ^EHLO
send 250 fault.example
expect ^QUIT
send 221 bye
SCRIPT
start_fault F5 "$T/f5.script" --cert "$C/server.crt" --key "$C/server.key"
like "$(sw --port "$F5" --tls --tls-verify --tls-ca-path "$C/ca.crt" --quit-after EHLO)" "221 bye" \
     "a script can run STARTTLS with the test certificates"
wait_for 5 grep -q "^END 1" "$F5_OUT"; unlike "$(cat "$F5_OUT")" "EXPECT-FAIL" "and read the EHLO after it in the clear of TLS"
grep -q "^QUIT" "$F5_REC"; ok $? "the record holds the decrypted commands"

done_testing
