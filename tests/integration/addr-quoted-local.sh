# A quoted local part with a space ("e x"@example.com: RFC 5321's qtextSMTP; Postfix
# sends RCPT TO:<"e x"@example.com>) is taken by the intake and was refused by the
# engine's last check before MAIL/RCPT (smtp.c addr_ok: no space), so the whole
# message went to failed/ with "invalid recipient address", its other recipients
# never getting it.  The engine now takes a space inside the quotes.  An angle
# bracket inside them ("a>b"@x, valid too, taken by the intake as Postfix takes it)
# is never put in a path (a server not parsing quotes would end the path there): the
# deliverer refuses that recipient alone, saying why, and the others get the message.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

plain_smtpd_env
spool_make   # the spool folders
count() { find "$MAILHOOK_SPOOL/$1" -type f -name '*.eml' 2>/dev/null | wc -l; }

out=$(printf 'Subject: q\n\nx\n' | "$MAILHOOK" sendmail '"e x"@example.com' ops@example.com 2>&1); rc=$?
is "$rc" 0 "sendmail '\"e x\"@example.com' ops@example.com: queued ($out)"
flush_next
is "$E" 'pbx@example.com | "e x"@example.com ops@example.com' "both reach the server, the quoted one as written"
is "$(count failed)" 0 "nothing in failed/ ($(cat "$T/flush.out"))"

printf 'To: "Ann Lee"@example.com, ops@example.com\nSubject: t\n\nx\n' | "$MAILHOOK" sendmail -t; rc=$?
is "$rc" 0 "sendmail -t with To: \"Ann Lee\"@example.com: queued"
flush_next
is "$E" 'pbx@example.com | "Ann Lee"@example.com ops@example.com' "-t: both reach the server"

out=$(printf 'Subject: a\n\nx\n' | "$MAILHOOK" sendmail '"a>b"@example.com' ops@example.com 2>&1); rc=$?
is "$rc" 0 "an angle bracket inside the quotes: queued ($out)"
flush_next
is "$E" "pbx@example.com | ops@example.com" "the other recipient gets it"
is "$(count failed)" 1 "the message in failed/ for the one refused alone"
like "$(grep -a '"a>b"@example.com' "$MAILHOOK_SPOOL"/failed/*.state 2>/dev/null)" "angle bracket" \
  "its state names it and why"
like "$(cat "$T/flush.out")" 'a>b.*angle bracket' "and the flush says so: $(cat "$T/flush.out")"
rm -f "$MAILHOOK_SPOOL"/failed/*

out=$(printf 'Subject: u\n\nx\n' | "$MAILHOOK" sendmail '"a>b"@example.com' 2>&1); rc=$?
is "$rc" 0 "the bad one alone: queued ($out)"
"$MAILHOOK" flush >"$T/flush.out" 2>&1
is "$(count failed)" 1 "then failed, nothing sent ($(cat "$T/flush.out"))"
done_testing
