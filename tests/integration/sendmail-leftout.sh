# A recipient item `mailhook sendmail` leaves out of the envelope (`To: ops@x, Some Name`
# with -t, `bad@@x`, an argument holding a newline) is recorded in the queue as refused,
# as a drop-in's is (intake-dropin-rcpt.sh): `mailhook queue` and `queue show` name it,
# the message goes to failed/ "partly delivered" once the others got it, and the mail log
# gives the item its failed line.  Before, it was named on stderr alone (and in the log
# only with log = syslog or journal): cron, PHP's mail() and mdadm drop sendmail's stderr,
# so nobody learnt a recipient was lost.  Both paths: the caller that writes the spool
# (root), and an unprivileged one through the setgid drop program (its record carries the
# items, bounded and escaped; never a recipient), adopted by root's flush.  The exit status
# is unchanged: 0 while a recipient is left, 65 when none is.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
. "$ROOT/tests/lib/mailer.sh"
delivery_require

delivery_peer
# rcpts_of ID: the recipients the server got for Message-ID <ID@test>, sorted
rcpts_of() { awk -v m="<$1@test>" '$4 == m { print $3 }' "$T/peer/log" | tr ',' '\n' | sort | paste -sd' '; }
# mlog FILE ITEM: the mail log line of ITEM in FILE, from to=< on
mlog() { grep -F "to=<$2>," "$1" | sed -E 's/^.*(to=<)/\1/'; }
newest() { ls -t "$SPOOL/pickup" | grep -m1 '\.eml$' | sed 's/\.eml$//'; }

# --- the caller writes the spool: -t with items that are no address
printf 'To: ops@example.net, Some Name\nCc: bad@@example.net\nSubject: t\nMessage-ID: <lt@test>\n\nbody\n' |
  "$MAILHOOK" sendmail -t -i 2>"$T/err"; rc=$?
is "$rc" 0 "sendmail -t with two items left out: exit 0 (a recipient is left)"
like "$(cat "$T/err")" "^mailhook sendmail: To header: 'Some Name' is not an address \(left out\)" "stderr keeps its line"
id=$(newest)
like "$("$MAILHOOK" queue)" "$id .*ops@example\.net refused:Some Name,bad@@example\.net" \
  "mailhook queue: the items left out are refused"
show=$("$MAILHOOK" queue show "$id")
like "$show" "refused: +Some Name: To header: 'Some Name' is not an address: left out at intake \(mailhook sendmail\) by mailhook, never sent" \
  "queue show: the item as written, with why"
like "$show" "refused: +bad@@example\.net: Cc header: 'bad@@example\.net': bad character in domain" "and the other"
like "$("$MAILHOOK" sendmail -bp)" "\(refused: Some Name and 1 more" "sendmail -bp names them"
is "$(grep -c '^X-Receiver:' "$SPOOL/pickup/$id.eml")" 1 "the envelope holds the one recipient"

# an argument holding a newline: left out, shown escaped
printf 'Subject: a\nMessage-ID: <la@test>\n\nbody\n' | "$MAILHOOK" sendmail -i ops@example.net $'x@example.net\nRCPT TO:<evil@example.net>' 2>"$T/err"; rc=$?
is "$rc" 0 "an argument holding a newline: exit 0"
ida=$(newest)
like "$("$MAILHOOK" queue show "$ida")" 'refused: +x@example\.net\\x0ARCPT TO:<evil@example\.net>: recipient: ' \
  "queue show: the argument, escaped"

# no recipient left: 65, nothing queued (unchanged)
before=$(ls "$SPOOL/pickup" | wc -l)
printf 'To: Some Name\n\nbody\n' | "$MAILHOOK" sendmail -t 2>/dev/null; rc=$?
is "$rc:$(ls "$SPOOL/pickup" | wc -l)" "65:$before" "no recipient left: 65, nothing queued"

timeout 60 "$MAILHOOK" flush >"$T/flush" 2>&1
is "$(rcpts_of lt)" "ops@example.net" "the server got it for the recipient left"
is "$(rcpts_of la)" "ops@example.net" "and the newline argument never reached it"
ok "$(test -f "$SPOOL/failed/$id.eml" && test -f "$SPOOL/failed/$ida.eml"; echo $?)" "both in failed/ once the others got them"
like "$(cat "$T/flush")" "partly delivered: 2 of 5 recipients" "flush: partly delivered"
like "$(mlog "$T/flush" 'Some\x20Name')" \
  "status=failed \(To header: 'Some Name' is not an address: left out at intake \(mailhook sendmail\) by mailhook, never sent\)$" \
  "mail log: the item left out gets its failed line"
like "$(mlog "$T/flush" "bad@@example.net")" "status=failed \(Cc header: " "and the other one"
is "$(grep -c 'to=<.*status=failed (.*left out at intake (mailhook sendmail)' "$T/flush")" 3 \
   "mail log: one failed line for each of the 3 items left out, once"
like "$("$MAILHOOK" queue show "$id")" "reason: +not sent: Some Name: To header" "the failure reason names them"
unlike "$(cat "$T/peer/log")" "evil@|Some|bad@@" "no item left out reached the server"

# --- an unprivileged caller: through the setgid drop program, adopted by root
if [ "$(id -u)" != 0 ]; then
  ok 0 "# SKIP the unprivileged path needs root (a user, a group, a setgid program)"
  done_testing; exit 0
fi
MY_PORT=$PORT
stage_install || { echo "Bail out! the staged install failed"; exit 1; }
SM=$P/sbin/sendmail
root_mh update enabled=true server=127.0.0.1 port="$MY_PORT" tls=none tls_required=false from=pbx@example.com \
  >/dev/null 2>&1 || { echo "Bail out! update failed"; exit 1; }
deliver() { MAILHOOK_LOG_LEVEL=info root_mh flush >"$T/uflush" 2>&1; }
rec() { f=$(find "$SPOOL/maildrop" -type f | head -1); sed '/^$/q' "$f"; }

printf 'To: ops@example.net, Some Name\nCc: bad@@example.net\nSubject: u\nMessage-ID: <lu@test>\n\nbody\n' |
  as nobody "$SM" -t -i 2>"$T/err"; rc=$?
is "$rc" 0 "nobody's sendmail -t with two items left out: exit 0"
like "$(cat "$T/err")" "To header: 'Some Name' is not an address \(left out\)" "stderr keeps its line"
like "$(rec)" $'\nleftout Some Name\tTo header: \'Some Name\' is not an address\n' "the drop's record carries the item and why"
like "$(rec)" $'\nto ops@example.net\n' "the recipient as before"
deliver
uid=$(grep -m1 'queued as' "$T/uflush" | sed -E 's/.*queued as ([0-9a-f]{16}).*/\1/')
is "$(rcpts_of lu)" "ops@example.net" "adopted and sent to the recipient left"
ok "$(test -f "$SPOOL/failed/$uid.eml"; echo $?)" "then in failed/ ($uid)"
like "$(cat "$T/uflush")" "partly delivered: 1 of 3 recipients" "flush: partly delivered"
like "$(mlog "$T/uflush" 'Some\x20Name')" "status=failed \(To header: 'Some Name' is not an address: left out at intake \(mailhook sendmail\) by mailhook, never sent\)$" \
  "mail log: the item's failed line"
show=$(root_mh queue show "$uid")
like "$show" "refused: +Some Name: To header" "queue show: refused"
like "$show" "refused: +bad@@example\.net: Cc header" "both"
like "$show" "submitter: +uid 65534" "nobody's message"

# the drop program run directly with hostile -l values: never a recipient, escaped, bounded
printf 'Subject: h\nMessage-ID: <lh@test>\n\nbody\n' |
  as nobody "$P/sbin/mailhook-drop" -s "$SPOOL" -l $'x\nto evil@example.org' $'why\tand\nmore' \
    -l "$(head -c 5000 /dev/zero | tr '\0' a)" long -l ops@example.net "the recipient itself" -- ops@example.net; rc=$?
is "$rc" 0 "mailhook-drop -l with a newline, a tab, 5000 bytes, a recipient's spelling: stored"
r=$(rec)
like "$r" $'\nleftout x\\\\x0Ato evil@example.org\twhy\\\\x09and\\\\x0Amore\n' "control characters escaped: no line added, one tab"
is "$(printf '%s\n' "$r" | grep -c '^to ')" 1 "one recipient line"
is "$(printf '%s\n' "$r" | grep '^leftout a' | cut -f1 | wc -c)" $((8 + 600 + 1)) "a long item cut at 600 bytes"
deliver
is "$(rcpts_of lh)" "ops@example.net" "sent to the recipient alone"
unlike "$(cat "$T/peer/log")" "evil@" "evil@ never reached the server"
hid=$(grep -m1 'queued as' "$T/uflush" | sed -E 's/.*queued as ([0-9a-f]{16}).*/\1/')
is "$(root_mh queue show "$hid" | grep -c '^refused:')" 2 "recorded refused: the two items that are no recipient"
ok "$(test -f "$SPOOL/failed/$hid.eml"; echo $?)" "in failed/ (partly delivered)"
args=(); for i in $(seq 101); do args+=(-l "i$i" w); done
printf 'Subject: m\n\nbody\n' | as nobody "$P/sbin/mailhook-drop" -s "$SPOOL" "${args[@]}" -- ops@example.net 2>"$T/err"; rc=$?
is "$rc" 64 "101 items left out: refused (64)"
like "$(cat "$T/err")" "more than 100 items left out" "saying why"
is "$(find "$SPOOL/maildrop" -type f | wc -l)" 0 "nothing stored"
done_testing
