# sendmail's recipients item by item, and its line ends, as real callers write them.
#  - One bad item in To/Cc/Bcc (`To: a@x, Some Name`, an unbalanced quote) or
#    among the arguments (an address holding a newline) costs only itself: the
#    good recipients get the message, exit 0, the bad item is named on stderr
#    (escaped) and is never made a recipient; only when no recipient is left
#    is the message refused, naming the items (Postfix accepts such a message
#    and bounces the bad item; DESIGN.md: intake refuses only a message with
#    no recipient at all).
#  - CR CR LF line ends (Windows/PHP callers) are one line end each: the
#    headers after the first stay in the header block, for `sendmail -t` and
#    for `sendmail -bs`; a bare CR inside a -bs line still ends that line (a
#    "Subject: hi<CR>Bcc: x" never sends a Bcc field intake did not see).
#  - Every error that quotes the caller's value escapes control characters and
#    is bounded.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/service.sh"

C=$T/mailhook.conf; S=$T/spool
mh() { "$MAILHOOK" -c "$C" -s "$S" "$@"; }
mh update enabled=true from=noreply@ex.org server=127.0.0.1 default_domain=ex.org >/dev/null
newest() { ls -t "$S"/pickup/*.eml | head -1; }
envelope() { grep -a '^X-Receiver:' "$(newest)" | tr -d '\r' | sed 's/^X-Receiver: //' | tr '\n' ' '; }
n_pickup() { find "$S/pickup" -type f -name '*.eml' | wc -l; }

# --- one bad item among good ones
out=$(printf 'To: a@ex.org, Some Name\nCc: c@ex.org\nSubject: x\n\nbody\n' | mh sendmail -t 2>&1); rc=$?
is "$rc" 0 "-t with 'To: a@ex.org, Some Name': queued (exit 0)"
is "$(envelope)" "a@ex.org c@ex.org " "the good recipients, and only them ('Some Name' is no recipient)"
like "$out" "To header: 'Some Name' is not an address" "the bad item named on stderr: $out"
like "$(grep -a '^To:' "$(newest)")" "Some Name" "the header itself is carried as written"

out=$(printf 'To: "Unbalanced <x@ex.org>, b@ex.org\nBcc: (open, d@ex.org\nSubject: x\n\nbody\n' | mh sendmail -t 2>&1); rc=$?
is "$rc" 0 "an unbalanced quote and '(' in To/Bcc: queued"
is "$(envelope)" "b@ex.org d@ex.org " "the items after them still recipients"
like "$out" "To header: '\"Unbalanced <x@ex.org>' is not an address" "the unparsable item named"

out=$(printf 'To: "Doe, J" <j@ex.org>, k@ex.org, "broken\n\nbody\n' | mh sendmail -t 2>&1); rc=$?
is "$rc:$(envelope)" "0:j@ex.org k@ex.org " "an unbalanced quote last: the quoted comma before it still quoted ($out)"

out=$(printf 'To: a@ex.org, bad@@ex.org\n\nbody\n' | mh sendmail -t 2>&1); rc=$?
is "$rc" 0 "an address the envelope cannot carry (bad@@ex.org): queued for the others"
is "$(envelope)" "a@ex.org " "only the good one"
like "$out" "bad@@ex.org" "the bad one named"

# the bad item in the log too, when the log is the journal (or syslog): cron drops stderr
start_unixgram J journal "$T/journal.sock" || { echo "Bail out! unixgram.py did not start"; exit 1; }
cp "$C" "$T/journal.conf"
"$MAILHOOK" -c "$T/journal.conf" update log=journal >/dev/null
out=$(printf 'To: j1@ex.org, Nobody Here\n\nbody\n' |
      MAILHOOK_JOURNAL_SOCKET=$T/journal.sock "$MAILHOOK" -c "$T/journal.conf" -s "$S" sendmail -t 2>&1); rc=$?
is "$rc" 0 "log = journal: queued"
like "$out" "'Nobody Here' is not an address" "stderr names the bad item"
MSGS='[r["fields"].get("MESSAGE", "") for r in recs]'
wait_for 10 has "$J_OUT" "any('Nobody Here' in m for m in $MSGS)"
ok $? "the journal got it too: $(q "$J_OUT" "$MSGS")"

# addresses with the comma missing (a script's "To: $ADMINS"): each one a recipient, as
# Postfix's parser adds the commas; words without an '@' are left out, named
out=$(printf 'To: a1@ex.org a2@ex.org\nCc: John Doe j@ex.org\n\nbody\n' | mh sendmail -t 2>&1); rc=$?
is "$rc" 0 "'To: a1@ex.org a2@ex.org' (no comma): queued"
is "$(envelope)" "a1@ex.org a2@ex.org j@ex.org " "each address a recipient, 'John Doe' none"
like "$out" "Cc header: 'John Doe' is not an address" "the words without an address named"
out=$(printf 'Subject: x\n\nbody\n' | mh sendmail -i "s1@ex.org s2@ex.org" 2>&1); rc=$?
is "$rc:$(envelope)" "0:s1@ex.org s2@ex.org " "the same for an argument ($out)"

# folded inside an address: before the '@' (valid, RFC 5322's CFWS) it is the
# address; inside a domain it is none (never the cut-short c@exa)
out=$(printf 'To: <b\r\n @ex.org>, c@exa\r\n mple.org, d@ex.org\r\nSubject: fold\r\n\r\nb\r\n' | mh sendmail -t 2>&1); rc=$?
is "$rc:$(envelope)" "0:b@ex.org d@ex.org " "folded before the '@': b@ex.org; inside a domain: left out ($out)"
like "$out" "'c@exa mple.org' is not an address" "the cut domain named whole"

# a domain written with the root's dot (a@ex.org.): the address without it, as Postfix
out=$(printf 'To: dot@ex.org., bad@ex..org.\n\nbody\n' | mh sendmail -t 2>&1); rc=$?
is "$rc:$(envelope)" "0:dot@ex.org " "'dot@ex.org.' is dot@ex.org ($out)"

nl=$(printf 'evil@ex.org\nRCPT TO:<inject@ex.org>')
out=$(printf 'Subject: x\n\nbody\n' | mh sendmail -i -- ok@ex.org "$nl" 2>&1); rc=$?
is "$rc" 0 "a recipient argument holding a newline beside a good one: queued"
is "$(envelope)" "ok@ex.org " "for the good one only (no evil@, no inject@)"
like "$out" 'evil@ex.org\\x0ARCPT TO:<inject@ex.org>' "named escaped: $out"
is "$(printf '%s\n' "$out" | grep -c 'RCPT TO')" 1 "on one line: the newline is not repeated raw"

before=$(n_pickup)
out=$(printf 'To: Some Name, "Other\n\nbody\n' | mh sendmail -t 2>&1); rc=$?
is "$rc" 65 "no usable recipient left: refused (EX_DATAERR)"
like "$out" "no usable recipient.*'Some Name'.*'\"Other'" "naming every bad item: $out"
out=$(printf 'Subject: x\n\nbody\n' | mh sendmail -i "$nl" 2>&1); rc=$?
is "$rc" 65 "the only argument holds a newline: refused"
is "$(printf '%s\n' "$out" | wc -l)" 1 "one line of error, the newline escaped: $out"
is "$(n_pickup)" "$before" "nothing queued by the refusals"

# --- a sender that is no address costs only itself too
for f in 'Some Name' 'a@ex.org, b@ex.org' '"unbalanced@ex.org'; do
  out=$(printf 'To: to@ex.org\n\nbody\n' | mh sendmail -t -f "$f" 2>&1); rc=$?
  is "$rc" 0 "-f '$f': queued all the same"
  is "$(grep -a '^X-Sender:' "$(newest)" | tr -d '\r')" "X-Sender: noreply@ex.org" "with the sender it has without -f"
  like "$out" "bad sender address .*not one address \(-f ignored\)" "and a warning: $out"
done

# --- every echo of a caller's value escaped and bounded
out=$(mh sendmail -f "$nl" ok@ex.org </dev/null 2>&1); rc=$?
is "$rc" 65 "-f holding a newline: refused"
is "$(printf '%s\n' "$out" | wc -l)" 1 "its error on one line: $out"
out=$(mh sendmail -bv "$nl" 2>&1); rc=$?
is "$rc" 65 "-bv of an address holding a newline: not deliverable"
unlike "$out" "inject@ex.org... deliverable" "no part of it reported deliverable"
is "$(printf '%s\n' "$out" | wc -l)" 1 "one line: $out"
out=$(mh sendmail -N "$(printf 'x\nforged line')" -bv a@ex.org 2>&1)
is "$(printf '%s\n' "$out" | grep -c '^forged line')" 0 "-N's warning escapes its value: $out"
long=$(printf 'x%.0s' $(seq 1 5000))
out=$(printf 'Subject: x\n\nbody\n' | mh sendmail -i "$nl$long" 2>&1)
ok $([ ${#out} -lt 600 ] && echo 0 || echo 1) "a 5000-byte bad value is quoted bounded (${#out} bytes of error)"

out=$(: | "$BUILD/mailhook-drop" -s "$T/none" -- "$nl" 2>&1); rc=$?
is "$rc" 65 "mailhook-drop run by hand with a newline in a recipient: refused"
is "$out" 'mailhook-drop: a recipient: a control character in '"'"'evil@ex.org\x0ARCPT TO:<inject@ex.org>'"'" \
   "its error escapes the value, one line"
out=$(: | "$BUILD/mailhook-drop" -s "$(printf '/no\nforged: line')" -- a@ex.org 2>&1); rc=$?
is "$rc:$out" "65:mailhook-drop: the spool: a control character in '/no\x0Aforged: line'" \
   "a spool path with a newline: refused, quoted escaped"

many=$(for k in $(seq 1 500); do printf 'Name %d, ' "$k"; done)
out=$(printf 'To: %sgood@ex.org\n\nbody\n' "$many" | mh sendmail -t 2>&1); rc=$?
is "$rc:$(envelope)" "0:good@ex.org " "500 bad items and a good one: queued for the good one"
is "$(printf '%s\n' "$out" | wc -l)" 21 "20 named on stderr, then a count"
like "$out" "and 480 more" "the count"
out=$(printf 'To: %sx y\n\nbody\n' "$many" | mh sendmail -t 2>&1); rc=$?
is "$rc" 65 "500 bad items alone: refused"
ok $([ ${#out} -lt 1500 ] && echo 0 || echo 1) "its error bounded (${#out} bytes)"

# --- CR CR LF line ends (PHP mail() on Windows-made templates)
printf 'To: crcr@ex.org\r\r\nSubject: crcr\r\r\nBcc: hidden@ex.org\r\r\nX-Mailer: PHP\r\r\n\r\r\nbody line\r\r\n' \
  | mh sendmail -t -i -f php@ex.org; rc=$?
is "$rc" 0 "CR CR LF message: queued"
f=$(newest)
is "$(envelope)" "crcr@ex.org hidden@ex.org " "-t found To and Bcc (after the first CR CR LF)"
head=$(tr -d '\r' < "$f" | sed '/^$/q')
like "$head" "Subject: crcr" "Subject in the header block"
like "$head" "X-Mailer: PHP" "X-Mailer in the header block"
unlike "$(grep -av '^X-' "$f")" "hidden@ex.org" "Bcc removed from what is sent"
is "$(tr -d '\r' < "$f" | sed '1,/^$/d')" "body line" "the body is the body, one line"
is "$(LC_ALL=C grep -ac $'\r.' "$f")" 0 "no CR CR (no bare CR) left in the stored message"

# --- -bs: the same line ends
printf 'EHLO x\r\nMAIL FROM:<a@ex.org>\r\nRCPT TO:<b@ex.org>\r\nDATA\r\nSubject: hi\rBcc: secret@ex.org\r\nTo: b@ex.org\r\r\nX-After: 1\r\n\r\nbody\r\n.\r\nQUIT\r\n' \
  | mh sendmail -bs > "$T/bs.out"; rc=$?
is "$rc" 0 "-bs session"
like "$(cat "$T/bs.out")" "250 2.0.0 Ok: queued" "queued"
f=$(newest)
head=$(tr -d '\r' < "$f" | sed '/^$/q')
unlike "$(cat "$f")" "secret@ex.org" "-bs: a Bcc after a bare CR is a field, removed: never sent"
like "$head" "X-After: 1" "-bs: the field after CR CR LF stays in the header block"
is "$(LC_ALL=C grep -ac $'\r.' "$f")" 0 "no bare CR stored"

# -bs: a reply quoting a 3000-byte address is still one line of at most 512 octets
long=$(printf 'x%.0s' $(seq 1 3000))
printf 'EHLO x\r\nMAIL FROM:<a@ex.org>\r\nRCPT TO:<%s@ex.org>\r\nRCPT TO:<%s>\r\nQUIT\r\n' "$long" "$long" \
  | mh sendmail -bs > "$T/bs2.out"
is "$(grep -c '^553 ' "$T/bs2.out")" 2 "-bs: both long recipients refused (553)"
is "$(awk 'length($0) > 511' "$T/bs2.out" | wc -l)" 0 "every reply line within 512 octets"

done_testing
