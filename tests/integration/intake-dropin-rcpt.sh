# A drop-in with recipients that are no address (`To: ops@x, bad@@x`, a space, a control
# byte, an unbalanced quote): before, the whole file went to corrupt/ and its good
# recipients never got it, without a word to the program that wrote it.  Now, as Postfix's
# pickup and nullmailer do, it goes to the valid ones; each bad one is named in the log
# with the drop-in's name and recorded as refused (as a recipient the server refused for
# good is: `mailhook queue`, `queue show`, --json, then failed/ with it once the others are
# done); only a drop-in with no valid recipient left goes to corrupt/, naming them.
# `sendmail -t` reading the same header leaves the same items out (named on stderr, exit
# 0; 65 when none is left): the server gets the same recipients from both.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

delivery_peer
P=$SPOOL/pickup
# rcpts_of ID: the recipients the server got for Message-ID <ID@test>, sorted
rcpts_of() { awk -v m="<$1@test>" '$4 == m { print $3 }' "$T/peer/log" | tr ',' '\n' | sort | paste -sd' '; }
flush() { timeout 60 "$MAILHOOK" flush >"$T/flush" 2>&1; }

# the listing before adoption: the bad ones shown as refused, nothing moved
HDR=$'To: ops@example.net, bad@@example.net\nCc: c d@example.net, x\001y@example.net, "broken\n'
printf '%sSubject: mixed\nMessage-ID: <mixed@test>\n\nbody\n' "$HDR" > "$T/m"; mv "$T/m" "$P/mixed.eml"
like "$("$MAILHOOK" queue)" 'mixed\.eml .*ops@example\.net,d@example\.net refused:bad@@example\.net,c,x\\x01y@example\.net,"broken' \
  "queue, before adoption: the valid recipients pending, the bad ones refused (control byte escaped)"
like "$("$MAILHOOK" sendmail -bp)" "\(refused: bad@@example\.net and 3 more \(mailhook queue show mixed\.eml\)\)" \
  "sendmail -bp names them"
ok "$(test -f "$P/mixed.eml"; echo $?)" "and the listings left it in pickup/"

# the same header through sendmail -t: the same items left out, named
printf '%sSubject: mixed\nMessage-ID: <smixed@test>\n\nbody\n' "$HDR" | "$MAILHOOK" sendmail -t -i 2>"$T/sm.err"
is $? 0 "sendmail -t: queued for the valid recipients (exit 0)"
like "$(cat "$T/sm.err")" "'bad@@example\.net': bad character in domain \(left out\)" "and it names bad@@ on stderr"

flush
is "$(rcpts_of mixed)" "d@example.net ops@example.net" "the drop-in went to its valid recipients"
is "$(rcpts_of mixed)" "$(rcpts_of smixed)" "the same recipients as sendmail -t gave"
log=$(cat "$T/flush")
like "$log" "drop-in pickup/mixed\.eml: recipient 'bad@@example\.net' left out: bad character in domain" \
  "the log names the drop-in, the address and why"
like "$log" "drop-in pickup/mixed\.eml: recipient 'x\\\\x01y@example\.net' left out" "a control byte is escaped in the log"
unlike "$log" $'\001' "no raw control byte reaches the log"
# the mail log: each one left out gets its line once the message moves to failed/ (no
# attempt named it before), failed, saying mailhook left it out
like "$(grep -F 'to=<bad@@example.net>,' "$T/flush")" \
  "status=failed \(not an address \(bad character in domain\): left out of drop-in mixed\.eml by mailhook, never sent\)$" \
  "mail log: a recipient left out of the drop-in is failed, with why"
is "$(grep -c 'to=<.*, status=failed (not an address' "$T/flush")" 4 "mail log: one line for each of the 4 left out"
is "$(ls "$SPOOL/corrupt")" "" "nothing went to corrupt/"

# recorded as refused: the message is in failed/ with them, as after a server's 5xx
f=$(grep -l '^Message-ID: <mixed@test>' "$SPOOL/failed"/*.eml 2>/dev/null)
ok "$(test -n "$f" && [ "$(echo "$f" | wc -l)" = 1 ]; echo $?)" "the message is in failed/ once the valid ones got it"
# sendmail -t's copy too: it records the items it left out the same way (sendmail-leftout.sh)
ok "$(grep -q '^Message-ID: <smixed@test>' "$SPOOL/failed"/*.eml; echo $?)" "and sendmail -t's, as the drop-in"
id=$(basename "$f" .eml)
like "$(grep -c '^X-Receiver:' "$f")" "^2$" "its envelope holds the two valid recipients only"
unlike "$(cat "$f")" "X-Receiver: .*(bad@@|x.y@)" "no bad address in its envelope"
show=$("$MAILHOOK" queue show "$id")
like "$show" "refused: +bad@@example\.net: not an address \(bad character in domain\): left out of drop-in mixed\.eml by mailhook" \
  "queue show: each bad one refused, with why"
like "$show" 'refused: +x\\x01y@example\.net' "the control byte shown escaped"
like "$("$MAILHOOK" queue --json)" '"refused":\[\{"rcpt":"bad@@example.net","reply":"not an address' "queue --json: refused"
like "$("$MAILHOOK" queue)" "$id .*failed .*refused:bad@@example\.net" "queue: failed, with the refused ones"
like "$(cat "$SPOOL/failed/$id.state")" "reason not sent: bad@@example\.net: not an address" \
  "the failure reason names them (no server refused them)"
ok "$(LC_ALL=C grep -q $'[\001-\010\016-\037]' "$SPOOL/failed/$id.state"; test $? = 1; echo $?)" \
  "no control byte in the state file"
like "$("$MAILHOOK" sendmail -bp)" "$id! .*" "sendmail -bp lists it (held, as failed/ is)"

# no valid recipient left: corrupt/, naming them; sendmail -t refuses it (65)
printf 'To: bad@@example.net, <>\nSubject: none\n\nb\n' > "$T/n"; mv "$T/n" "$P/none.eml"
printf 'To: bad@@example.net, <>\nSubject: none\n\nb\n' | "$MAILHOOK" sendmail -t -i 2>"$T/sm.err"
is $? 65 "sendmail -t with no usable recipient: 65"
like "$(cat "$T/sm.err")" "no usable recipient, nothing queued: .*bad@@example\.net" "naming them"
flush
ok "$(test -f "$SPOOL/corrupt/none.eml"; echo $?)" "the drop-in with no valid recipient: corrupt/"
like "$(cat "$T/flush")" "pickup/none\.eml moved to corrupt/none\.eml: no usable recipient: 'bad@@example\.net': bad character in domain; '<>': empty address" \
  "with a reason naming each bad address"

# the spool's form: X-Sender/X-Receiver are the declared envelope, checked by the same
# rule as To (docs/spool.md: a bad one sends the file to corrupt/, naming it).  Before,
# the spool's own check took an '@' in the local part: RCPT TO:<bad@@example.net> and
# MAIL FROM:<a@@example.com> went to the server
before=$(wc -l < "$T/peer/log")
printf 'X-Sender: ok@example.com
X-Receiver: bad@@example.net
Subject: x
Message-ID: <xr@test>

b
' > "$T/x"
mv "$T/x" "$P/xr.eml"
printf 'X-Sender: a@@example.com
X-Receiver: ops@example.net
Subject: x
Message-ID: <xs@test>

b
' > "$T/x"
mv "$T/x" "$P/xs.eml"
like "$("$MAILHOOK" queue show xr.eml 2>&1)" "pickup/xr\.eml is no message that can be sent: bad X-Receiver 'bad@@example\.net'" \
  "queue show, before adoption: the bad X-Receiver named"
flush
ok "$(test -f "$SPOOL/corrupt/xr.eml" && test -f "$SPOOL/corrupt/xs.eml"; echo $?)" "both in corrupt/"
like "$(cat "$T/flush")" "xr\.eml: bad X-Receiver 'bad@@example\.net': bad character in domain" "the X-Receiver named, with why"
like "$(cat "$T/flush")" "xs\.eml: bad X-Sender 'a@@example\.com': bad character in domain" "the X-Sender too"
is "$(wc -l < "$T/peer/log")" "$before" "neither reached the server"
done_testing
