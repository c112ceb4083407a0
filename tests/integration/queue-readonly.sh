# Reading the queue changes nothing (docs/spool.md, `mailhook queue`): an unparsable
# drop-in and a torn spool file are listed with why by `mailhook queue`, `--json`,
# `queue show`, `sendmail -bp` and `mailq`, and stay where they are; only the deliverer
# (the lock holder: here `mailhook flush`) moves them to corrupt/.  Before, `queue show`
# moved them: a look at the queue changed the spool.  A drop-in still being written in
# place (a program has it open) is listed as that, not as a file the service will set
# aside nor as the message it will be (before: "is no message that can be sent: line 2
# is not a header ('Subj') (the service moves it to corrupt/)", while the service waits).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

delivery_peer
P=$SPOOL/pickup
mkdir -p "$T/bin"; ln -s "$MAILHOOK" "$T/bin/mailq"
printf 'garbage line\n\nbody\n' > "$T/j"; mv "$T/j" "$P/junk.eml"
printf 'X-Sender: a@example.com\r\n' > "$P/00000000000000aa.eml"   # torn: no X-Receiver
printf 'To: ok@example.net\nSubject: fine\n\nb\n' > "$T/f"; mv "$T/f" "$P/fine.eml"
# written in place, still open: a header cut in the middle, and one whole so far
exec 7>"$P/open.eml" 8>"$P/open2.eml"
printf 'To: ok@example.net\nSubj' >&7
printf 'To: ok@example.net\nSubject: two\n' >&8
snapshot() { (cd "$SPOOL" && find pickup failed corrupt tmp -printf '%p %s %T@\n' | sort); }
before=$(snapshot)

like "$("$MAILHOOK" queue)" "junk\.eml .*line 1 is not a header" "mailhook queue: the drop-in listed with why"
like "$("$MAILHOOK" queue --json)" '"id":"00000000000000aa".*"reason":"X-Sender without X-Receiver"' \
  "queue --json: the torn file listed with why"
out=$("$MAILHOOK" queue show junk.eml 2>&1); rc=$?
ok "$(test $rc != 0; echo $?)" "queue show of the unparsable drop-in: not 0"
like "$out" "pickup/junk\.eml is no message that can be sent: line 1 is not a header .*\(the service moves it to corrupt/\)" \
  "and it names the file, why and who moves it"
like "$("$MAILHOOK" queue show 00000000000000aa 2>&1)" "00000000000000aa .*X-Sender without X-Receiver" \
  "queue show of the torn file: why"
bp=$("$MAILHOOK" sendmail -bp)
like "$bp" "junk\.eml " "sendmail -bp lists the drop-in"
like "$bp" "\(line 1 is not a header \('garbage line'\)\)" "with why"
like "$("$T/bin/mailq")" "\(X-Sender without X-Receiver\)" "mailq lists the torn file with why"
q=$("$MAILHOOK" queue)
like "$q" "open\.eml .* still being written" "mailhook queue: the drop-in being written, as that"
like "$q" "open2\.eml .*still being written" "the one whole so far too (not yet the message it will be)"
out=$("$MAILHOOK" queue show open.eml 2>&1)
like "$out" "pickup/open\.eml is still being written \(a program has it open for writing\): adopted once complete and closed$" \
  "queue show: it is being written and adopted once closed"
unlike "$out" "corrupt" "not said to go to corrupt/"
like "$("$T/bin/mailq")" "open\.eml .*"$'\n'"\(still being written \(a program" "mailq says so too"
is "$(snapshot)" "$before" "after all of these the spool is as it was (nothing moved, nothing adopted)"
is "$(ls "$SPOOL/corrupt")" "" "corrupt/ is empty"

# the writers finish
printf 'ect: one\n\nb\n' >&7; printf '\nb\n' >&8; exec 7>&- 8>&-
# the deliverer moves them, and sends what is mail
timeout 60 "$MAILHOOK" flush >"$T/flush" 2>&1
ok "$(test -f "$SPOOL/corrupt/junk.eml" && test -f "$SPOOL/corrupt/00000000000000aa.eml"; echo $?)" \
  "flush (the lock holder): both moved to corrupt/"
like "$(cat "$T/flush")" "pickup/junk\.eml moved to corrupt/junk\.eml: line 1 is not a header" "and it says so"
is "$(received_count "$T/peer")" 3 "the drop-ins that are mail were sent, the two written in place whole"
done_testing
