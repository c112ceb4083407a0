# Header and command injection (issue 10 point 4): a bare CR inside a header
# line must not give the server a header the intake parser did not see (the
# parser and the data writer agree: a bare CR, a bare LF and CRLF each end a
# line); command-line and X-Receiver addresses cannot carry CR/LF into the
# envelope.  Through sendmail -t, sendmail RCPT, a drop-in in pickup/, -f,
# enqueue --to; delivered to a real server (aiosmtpd), whose mailbox is read.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

S=$T/spool C=$T/mailhook.conf MD=$T/maildir
export MAILHOOK_SPOOL=$S MAILHOOK_CONF=$C
start_smtpd P --maildir "$MD" --log "$T/smtpd.log" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
"$MAILHOOK" update enabled=true server=127.0.0.1 port="$P" tls=none tls_required=false \
  from=app@example.com retry_interval=1 >/dev/null
n_pickup() { find "$S/pickup" -maxdepth 1 -name '*.eml' | wc -l; }
flush() { "$MAILHOOK" flush >"$T/flush.out" 2>&1; }
# The headers of received message N (CRLF -> LF), and its envelope (JSON).
head_of() { sed -n '1,/^\r\?$/p' "$MD/$(printf %06d "$1").eml" | tr -d '\r'; }
rcpts_of() { /usr/bin/python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["to"]))' \
               "$MD/$(printf %06d "$1").json"; }

# 1. sendmail -t: the bare CRs end lines, so Bcc is a Bcc (a recipient, removed)
printf 'From: app@example.com\nTo: to@example.net\nSubject: hi\rBcc: hidden@example.net\rX-Injected: 1\n\nbody one\n' |
  "$MAILHOOK" sendmail -t; is $? 0 "sendmail -t with bare CRs in the Subject line: queued"
flush; is $? 0 "delivered"
h=$(head_of 1)
unlike "$h" "^Bcc:" "the server receives no Bcc: header"
like "$(rcpts_of 1)" "hidden@example.net" "the Bcc address is a recipient, as -t says ($(rcpts_of 1))"
like "$h" "Subject: hi" "the Subject is the part before the CR"
bare=$(/usr/bin/python3 -c 'import re,sys; d=open(sys.argv[1],"rb").read(); print(len(re.findall(rb"\r(?!\n)|(?<!\r)\n", d)))' "$MD/000001.eml")
is "$bare" 0 "no bare CR or LF reaches the server"

# 2. sendmail RCPT (no -t): Bcc lines are removed, never recipients, never sent
printf 'From: app@example.com\nTo: to@example.net\nSubject: hi\rBcc: hidden2@example.net\r\n\nbody two\n' |
  "$MAILHOOK" sendmail rcpt@example.net; is $? 0 "sendmail RCPT: queued"
flush; is $? 0 "delivered"
unlike "$(head_of 2)" "Bcc:" "no Bcc: header sent"
is "$(rcpts_of 2)" "rcpt@example.net" "the envelope is the argument only"

# 3. a drop-in renamed into pickup/ (the IIS convention)
printf 'From: app@example.com\r\nTo: to@example.net\r\nSubject: hi\rBcc: hidden3@example.net\rX-Injected: 1\r\n\r\nbody three\r\n' \
  > "$T/drop.eml"
mkdir -p "$S/pickup" && mv "$T/drop.eml" "$S/pickup/app-1.eml"
flush; is $? 0 "the drop-in is delivered"
unlike "$(head_of 3)" "Bcc:" "no Bcc: header sent for the drop-in"
like "$(rcpts_of 3)" "hidden3@example.net" "its Bcc is a recipient (drop-ins take To/Cc/Bcc)"

# 4. a drop-in whose X-Receiver line hides a second line
printf 'X-Sender: app@example.com\r\nX-Receiver: to@example.net\rRCPT TO:<evil@example.org>\r\nSubject: x\r\n\r\nbody\r\n' \
  > "$T/drop2.eml"
mv "$T/drop2.eml" "$S/pickup/app-2.eml"
flush
ok "$([ "$(find "$S/corrupt" -type f 2>/dev/null | wc -l)" = 1 ] && echo 0 || echo 1)" \
   "an X- envelope followed by a line that is not a header: moved to corrupt/"
unlike "$(cat "$T/smtpd.log")" "evil@example.org" "evil@ never reached the server"

# 5. command-line addresses get enqueue's checks: no CR, LF or NUL
before=$(n_pickup)
out=$(printf 'Subject: x\n\nb\n' | "$MAILHOOK" sendmail "$(printf 'a@example.net\nRCPT TO:<evil@example.org>')" 2>&1); rc=$?
is "$rc" 65 "sendmail 'a@x<LF>RCPT TO:<evil@y>': refused, EX_DATAERR"
like "$out" "recipient" "the error names the recipient: $out"
out=$(printf 'Subject: x\n\nb\n' | "$MAILHOOK" sendmail "$(printf 'a@example.net\rRCPT TO:<evil@example.org>')" 2>&1); rc=$?
is "$rc" 65 "the same with a bare CR: refused"
out=$(printf 'Subject: x\n\nb\n' | "$MAILHOOK" sendmail -f "$(printf 'a@example.net\nRCPT TO:<evil@example.org>')" to@example.net 2>&1); rc=$?
is "$rc" 65 "sendmail -f 'a@x<LF>RCPT TO:<evil@y>': refused"
like "$out" "sender" "naming the sender: $out"
out=$(printf 'Subject: x\n\nb\n' | "$MAILHOOK" sendmail "-f$(printf 'a@example.net\rx')" to@example.net 2>&1); rc=$?
is "$rc" 65 "-fADDR with a CR: refused"
out=$(printf 'Subject: x\n\nb\n' | "$MAILHOOK" sendmail "a@example.net RCPT TO:<evil@example.org>" 2>&1); rc=$?
is "$rc" 65 "an argument holding a group of addresses in disguise: refused ($out)"
out=$(echo b | "$MAILHOOK" enqueue --to "$(printf 'a@example.net\nRCPT TO:<evil@example.org>')" 2>&1); rc=$?
is "$rc" 1 "enqueue --to with an LF: refused"
out=$(printf 'Subject: x\n\nb\n' | "$MAILHOOK" sendmail "Ann Example <ann@example.net>, bob@example.net" 2>&1); rc=$?
is "$rc" 0 "a real address list argument is still accepted ($out)"
is "$(n_pickup)" $((before + 1)) "only that one was queued"
flush
unlike "$(cat "$T/smtpd.log")" "evil@example.org" "evil@ never reached the server"
done_testing
