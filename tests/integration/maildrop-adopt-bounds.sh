# What one local user's drop costs the service that adopts it (docs/sendmail.md,
# "Unprivileged submission"): the record's recipients are the caller's word, so the
# work and the log lines they make at adoption must be bounded, or one user's
# drop floods the service's log (journald's rate limit then drops everyone's
# lines).  Needs root (a group, a setgid program, nobody); skipped else.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mailer.sh"
unprivileged_install
root_mh update enabled=true server=127.0.0.1 port=1 tls=none tls_required=false from=pbx@example.com \
  auth=false username=pbx password=Top-Secret-7 >/dev/null 2>&1 || { echo "Bail out! update failed"; exit 1; }
adopt() { MAILHOOK_LOG_LEVEL=info root_mh flush >"$T/flush.out" 2>&1; }

# --- 300 items that are no address in the record's "to" lines (mailhook-drop run by
# hand: sendmail would have left them out itself), one good recipient
bad=$(printf '@,%.0s' $(seq 299))@
printf 'Subject: x\n\ny\n' | as nobody "$P/sbin/mailhook-drop" -s "$SPOOL" -- ok@example.net "$bad"
is "$?" 0 "nobody's drop with 300 bad items: stored"
adopt
like "$(root_mh queue 2>&1)" "nobody +ok@example.net" "adopted, queued to the one good recipient"
n=$(grep -c "maildrop: .* from uid 65534: recipient: '@'" "$T/flush.out")
is "$n" 20 "the log names 20 items left out, not 300 (one line each flooded it)"
like "$(cat "$T/flush.out")" "from uid 65534: and 280 more recipient item\(s\) left out" "and counts the rest in one line"

# --- a record whose "to" lines are address lists holding more items than the drop
# program's 10,000 recipients: no drop of sendmail's (it passes one address per
# argument); corrupt/, never a message to 10,001 recipients (one drop of 1.4 MB of
# such lists made 90,000 recipients, and 1.4 MB of '@,@,...' 12 s of adoption,
# every delivery waiting)
/usr/bin/python3 -c '
import sys
items = ["r%d@example.net" % i for i in range(10001)]
print("\n".join(",".join(items[i:i + 50]) for i in range(0, len(items), 50)))' > "$T/args"
mapfile -t lists < "$T/args"
is "${#lists[@]}" 201 "201 arguments, 50 addresses each (the last one)"
printf 'Subject: many\n\ny\n' | as nobody "$P/sbin/mailhook-drop" -s "$SPOOL" -- "${lists[@]}"
is "$?" 0 "stored by the drop program (201 arguments)"
name=$(ls "$SPOOL/maildrop")
adopt
[ -f "$SPOOL/corrupt/maildrop.$name" ]; ok $? "the adoption moves it to corrupt/maildrop.$name"
like "$(cat "$T/flush.out")" "maildrop: $name from uid 65534: over 10000 recipient items" "saying why"
unlike "$(root_mh queue 2>&1)" "r10000@example.net" "no message to those recipients is queued"
# exactly 10,000 items in lists: adopted
unset 'lists[200]'
printf 'Subject: many\n\ny\n' | as nobody "$P/sbin/mailhook-drop" -s "$SPOOL" -- "${lists[@]}"
adopt
is "$(ls "$SPOOL/maildrop" | wc -l)" 0 "10,000 items in lists: adopted"
like "$(root_mh queue --json 2>&1)" "r9999@example.net" "queued to all of them"
done_testing
