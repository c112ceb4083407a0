# Address literals (RFC 5321 4.1.3): a@[192.0.2.1] and a@[IPv6:2001:db8::1]
# are taken in the envelope, as Postfix takes them (a device without DNS, a
# test box), through every way in (arguments, -t, -bs, mailhook enqueue), the
# spool and SMTP: the real server (aiosmtpd) sees them in RCPT TO.  A literal
# that is no real address ([999.1.1.1], [IPv6:zz::1], [tag:x], unterminated)
# is left out and named, as any unusable item.  The message builder (mailhook
# enqueue, mh.message, mh.enqueue, valid_address) has the same rule, one
# function (msg.h mh_msg_addr_literal): before, it took any [letters.digits:]
# ([foo], [1.2.3], [1.2.3.256], [IPv6:zz::1]) and a message built with one was
# refused later by the spool, naming no reason.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

plain_smtpd_env
n=0
# deliver: flush, then RCPT TO of the next mail the server got, space-separated
deliver() {
  "$MAILHOOK" flush >"$T/flush.out" 2>&1 || diag "flush: $(cat "$T/flush.out")"
  n=$((n + 1))
  E=$(/usr/bin/python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["to"]))' \
      "$T/mail/$(printf %06d $n).json" 2>/dev/null)
}

out=$(printf 'Subject: lit\n\nx\n' | "$MAILHOOK" sendmail 'a@[192.0.2.1]' 'b@[IPv6:2001:db8::1]' \
      'Ann <c@[ipv6:::ffff:192.0.2.7]>' 2>&1); rc=$?
is "$rc" 0 "sendmail with literal recipients: queued ($out)"
deliver
is "$E" "a@[192.0.2.1] b@[IPv6:2001:db8::1] c@[ipv6:::ffff:192.0.2.7]" "RCPT TO carries each literal as written"

printf 'To: d@[198.51.100.1], "Eve" <e@[IPv6:2001:db8::2]>\nCc: f@example.net\nSubject: t\n\nx\n' |
  "$MAILHOOK" sendmail -t; rc=$?
is "$rc" 0 "-t: literals in To (the IPv6 one's ':' no group syntax)"
deliver
is "$E" "d@[198.51.100.1] e@[IPv6:2001:db8::2] f@example.net" "all three delivered"

out=$(printf 'EHLO x\r\nMAIL FROM:<pbx@example.com>\r\nRCPT TO:<g@[IPv6:2001:db8::3]>\r\nDATA\r\nSubject: bs\r\n\r\nx\r\n.\r\nQUIT\r\n' |
      "$MAILHOOK" sendmail -bs 2>&1)
like "$out" "250[ -].*
.*250" "-bs: RCPT TO a literal accepted"
deliver
is "$E" "g@[IPv6:2001:db8::3]" "and delivered with it"

out=$(echo body | "$MAILHOOK" enqueue --to 'h@[203.0.113.9]' --subject enq 2>&1); rc=$?
is "$rc" 0 "mailhook enqueue --to a literal ($out)"
deliver
is "$E" "h@[203.0.113.9]" "delivered"

# --- literals that are no address: left out, each named; alone, nothing queued
for bad in 'x@[999.1.1.1]' 'x@[1.2.3]' 'x@[01.2.3.4]' 'x@[IPv6:zz::1]' 'x@[2001:db8::1]' 'x@[tag:content]' \
           'x@[IPv6:fe80::1%eth0]' 'x@[192.0.2.1'; do
  out=$(printf 'Subject: bad\n\nx\n' | "$MAILHOOK" sendmail "$bad" ok@example.net 2>&1); rc=$?
  is "$rc" 0 "'$bad' with a good recipient: queued"
  like "$out" "left out" "'$bad' left out and named ($out)"
  deliver
  is "$E" "ok@example.net" "only the good recipient gets it"
done
# --- the builder and intake, one rule: [foo] [1.2.3] [1.2.3.256] [IPv6:zz::1] refused with
# the reason, [IPv6:::1] taken, by every way in
for c in 'x@[foo]|neither an IPv4 address' 'x@[1.2.3]|neither an IPv4 address' \
         'x@[1.2.3.256]|neither an IPv4 address' 'x@[IPv6:zz::1]|holds no IPv6 address' \
         'x@[tag:content]|General-address-literal' 'x@[192.0.2.1].|text after the address literal' \
         'x@[IPv6:::1]|'; do
  a=${c%%|*} why=${c#*|}
  v=$("$MAILHOOK" -e 'print(require("mailhook.message").valid_address(...))' "$a" 2>&1)
  b=$("$MAILHOOK" -e 'local m, err = require("mailhook.message"){ from = "a@example.com", to = (...), text = "x" }
                      print(m and "built" or err)' "$a" 2>&1)
  e=$(echo body | "$MAILHOOK" enqueue --to "$a" --subject lit 2>&1); erc=$?
  s=$(printf 'Subject: lit\n\nx\n' | "$MAILHOOK" sendmail "$a" ok@example.net 2>&1)
  if [ -z "$why" ]; then
    is "$v" true "valid_address('$a'): true"
    is "$b" built "mh.message with to = '$a': built"
    is "$erc" 0 "mailhook enqueue --to '$a': queued"
    unlike "$s" "left out" "sendmail '$a': taken"
    deliver; is "$E" "$a" "enqueue: '$a' in RCPT TO"
    deliver; is "$E" "$a ok@example.net" "sendmail: '$a' in RCPT TO"
  else
    like "$v" "^nil.*$why" "valid_address('$a'): refused, saying why ($v)"
    like "$b" "to: 'x@.*' is not a valid address: .*$why" "mh.message with to = '$a': refused, naming the field and why"
    is "$erc" 1 "mailhook enqueue --to '$a': refused (1)"
    like "$e" "$why" "and the reason is the builder's ($e)"
    like "$s" "'x@.*': .*$why.*left out" "sendmail '$a': left out with the same reason ($s)"
    deliver; is "$E" "ok@example.net" "sendmail: only the good recipient gets it"
  fi
done

out=$(printf 'Subject: bad\n\nx\n' | "$MAILHOOK" sendmail 'x@[999.1.1.1]' 2>&1); rc=$?
is "$rc" 65 "a bad literal alone: 65, nothing queued"
is "$(find "$T/spool/pickup" -name '*.eml' | wc -l)" 0 "the queue is empty"
done_testing
