# Every recipient settled by its own reply (issue 19 point 1), against a real
# server (aiosmtpd, tests/peers/smtpd.py --reply-rcpt): a 5xx recipient is
# recorded once with its reply and never sent to again (RFC 5321 §4.2.1), a 4xx
# one is retried, the message goes to failed/ only when nothing is pending,
# partial outcomes show in `queue`, `queue show`, the failed/ sidecar and the
# `failed` event, and `flush` exits non-zero while anything is queued.  The mail
# log (`ID: to=<...>, ... status=`) gives each recipient one line once its fate is
# known: a 5xx one `failed` at the attempt that refused it, also when another is
# deferred or over the server's recipient limit (a 452 round), never again later;
# `flush` says a message some recipients got is partly delivered.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

S=$T/spool C=$T/mailhook.conf MD=$T/maildir LOG=$T/smtpd.log
export MAILHOOK_SPOOL=$S MAILHOOK_CONF=$C
start_smtpd P --maildir "$MD" --log "$LOG" \
  --reply-rcpt "a550@example.net=550 5.1.1 no such user" \
  --reply-rcpt-once "b451@example.net=451 4.2.1 mailbox busy" \
  --reply-rcpt-once "c451@example.net=451 4.2.1 mailbox busy" \
  --reply-rcpt-once "d451@example.net=451 4.2.1 mailbox busy" \
  --reply-rcpt-once "over1@example.net=452 4.5.3 too many recipients" \
  || { echo "Bail out! aiosmtpd did not start"; exit 1; }
"$MAILHOOK" update enabled=true server=127.0.0.1 port="$P" tls=none tls_required=false \
  from=app@example.com retry_interval=1 >/dev/null
n_pickup() { find "$S/pickup" -maxdepth 1 -name '*.eml' | wc -l; }
n_failed() { find "$S/failed" -maxdepth 1 -name '*.eml' 2>/dev/null | wc -l; }
rcpts_to() { grep -c "^rcpt <$1>" "$LOG"; }
queue1() {   # queue1 SUBJECT RCPT...: one message through sendmail, its id printed
  local subj=$1; shift
  printf 'From: app@example.com\nTo: %s\nSubject: %s\n\nbody\n' "$(IFS=,; echo "$*")" "$subj" |
    "$MAILHOOK" sendmail "$@" && ls -t "$S/pickup" | grep -m1 '\.eml$' | sed 's/\.eml$//'
}
sidecar() { cat "$S/failed/$1.state"; }
# lines OUT RCPT: the mail log lines for RCPT in the file OUT, without time and level
lines() { grep -F "to=<$2>," "$1" | sed -E 's/^.*(to=<)/\1/'; }

# (a) A gets 550, B gets 451: B is retried, A never again; failed/ names only A
id=$(queue1 "case a" a550@example.net b451@example.net)
"$MAILHOOK" flush >"$T/f1" 2>&1; rc=$?
is "$rc" 1 "flush: exit 1 while the 451 recipient is still queued ($(tail -1 "$T/f1"))"
is "$(n_pickup)" 1 "(a) the message is still in pickup/, not in failed/"
show=$("$MAILHOOK" queue show "$id")
like "$show" "refused: +a550@example.net: 550 5.1.1 no such user" "queue show: the refused one, with its reply"
like "$show" "to: +b451@example.net" "queue show: the 451 one pending"
like "$("$MAILHOOK" queue)" "b451@example.net refused:a550@example.net" "queue: pending, then refused"
like "$("$MAILHOOK" queue --json)" '"refused":\[\{"rcpt":"a550@example.net","reply":"550 5.1.1 no such user"\}\]' \
     "queue --json: refused with its reply"
like "$(lines "$T/f1" a550@example.net)" "^to=<a550@example.net>, .*attempts=1, dsn=5\.1\.1, status=failed \(550 5\.1\.1 no such user\)$" \
     "mail log: the 550 one is failed at the attempt that refused it (the other one deferred)"
"$MAILHOOK" flush >"$T/f2" 2>&1; rc=$?
is "$rc" 0 "second flush: nothing left in pickup/, exit 0"
is "$(rcpts_to a550@example.net)" 1 "RCPT TO:<a550@> was sent once, never repeated"
is "$(rcpts_to b451@example.net)" 2 "RCPT TO:<b451@> twice (451, then accepted)"
is "$(count_mail "$MD")" 1 "the 451 recipient got the message"
is "$(n_failed)" 1 "then failed/ for the 550 one"
is "$(lines "$T/f2" a550@example.net)" "" "mail log: the 550 one is not logged again when the message moves to failed/"
like "$(tail -1 "$T/f2")" "^flush: 0 delivered, 0 deferred, 1 failed \(partly delivered: 1 of 2 recipients\), 0 left" \
     "flush: a message one of its two recipients got is said partly delivered"
sc=$(sidecar "$id")
like "$sc" "refused a550@example.net	550 5.1.1 no such user" "the sidecar names the refused recipient and its reply"
like "$sc" "done b451@example.net" "and the one that got it"
like "$sc" "attempts 2" "attempts counts the attempt that failed"
like "$sc" "reason rejected by the server: a550@example.net: 550 5.1.1 no such user \(delivered to 1 other recipient\)" \
     "the reason says who failed and that the other got it"

# (b) B (451) first, then A (550): the 550 is recorded, the next attempt has no RCPT to A
id=$(queue1 "case b" c451@example.net a550@example.net)
"$MAILHOOK" flush >/dev/null 2>&1; rc=$?
is "$rc" 1 "(b) first flush: exit 1 (one recipient deferred)"
like "$("$MAILHOOK" queue show "$id")" "refused: +a550@example.net: 550" "the 550 recorded at once"
"$MAILHOOK" flush >/dev/null 2>&1
is "$(rcpts_to a550@example.net)" 2 "RCPT TO:<a550@> once for this message too (2 in all)"
is "$(rcpts_to c451@example.net)" 2 "the 451 one retried"

# (c) 2 accepted, 1 refused, 1 deferred: right on both attempts, under the service, with the event
cat > "$T/rule.lua" <<LUA
on("failed", function(ev)
  local f = assert(io.open("$T/event", "a"))
  local r = {}
  for _, x in ipairs(ev.refused or {}) do r[#r + 1] = x.rcpt .. "=" .. x.reply end
  f:write("to=", table.concat(ev.to, ","), " delivered=", table.concat(ev.delivered or {}, ","),
          " refused=", table.concat(r, ","), " attempts=", tostring(ev.attempts), "\n")
  f:close()
end)
LUA
id=$(queue1 "case c" ok1@example.net ok2@example.net a550@example.net d451@example.net)
MAILHOOK_LOG_LEVEL=info "$MAILHOOK" run "$T/rule.lua" >"$T/svc.log" 2>&1 &
SVC=$!
on_exit "kill -9 $SVC"
wait_for 20 test -s "$T/event"; ok $? "(c) the failed event fired once the deferred one got it"
term_wait "$SVC"
is "$(cat "$T/event")" \
   "to=a550@example.net delivered=ok1@example.net,ok2@example.net,d451@example.net refused=a550@example.net=550 5.1.1 no such user attempts=2" \
   "event: to = the failed recipient, delivered = the others, refused with its reply"
is "$(rcpts_to ok1@example.net)" 1 "the accepted ones: one RCPT each"
is "$(rcpts_to d451@example.net)" 2 "the deferred one: two"
is "$(rcpts_to a550@example.net)" 3 "the 550 one: once for this message"
like "$(cat "$T/svc.log")" "a550@example.net: 550 5.1.1 no such user \(refused for good: not sent to again\); 1 recipient still pending" \
     "the refusal is logged at once, with what is pending"
is "$(lines "$T/svc.log" a550@example.net | sed -E 's/^.*(attempts=)/\1/')" \
   "attempts=1, dsn=5.1.1, status=failed (550 5.1.1 no such user)" \
   "mail log: one line for the 550 one, failed at the first attempt (also in the journal's MAILHOOK_STATUS)"
is "$(lines "$T/svc.log" d451@example.net | sed -E 's/^.*(attempts=[0-9]+).*(status=[a-z]+).*$/\1 \2/' | tr '\n' ' ')" \
   "attempts=1 status=deferred attempts=2 status=sent " "mail log: the 451 one deferred, then sent"
is "$(lines "$T/svc.log" ok1@example.net | sed -E 's/^.*(status=[a-z]+).*$/\1/')" "status=sent" \
   "mail log: an accepted one sent, once"
last=$(ls "$MD"/*.json | tail -2)
like "$(cat $last | tr -d ' \n')" '"to":\["ok1@example.net","ok2@example.net"\].*"to":\["d451@example.net"\]' \
     "the server got it for ok1, ok2, then (second attempt) d451 alone"
is "$(n_pickup)" 0 "nothing left in pickup/"

# (d) a 452 round (too many recipients; the rest in a new transaction at once) with a 550
id=$(queue1 "case d" ok5@example.net a550@example.net over1@example.net)
MAILHOOK_LOG_LEVEL=info "$MAILHOOK" flush >"$T/f4" 2>&1; rc=$?
is "$rc" 0 "(d) one flush: over1@ in a second transaction, the message to failed/ for a550@ ($(tail -1 "$T/f4"))"
like "$(cat "$T/f4")" "refused 1 more as over its limit" "the server's limit was met"
is "$(lines "$T/f4" a550@example.net | sed -E 's/^.*(dsn=)/\1/')" "dsn=5.1.1, status=failed (550 5.1.1 no such user)" \
   "mail log: the 550 one of the 452 round failed, not deferred, and once"
is "$(lines "$T/f4" over1@example.net | sed -E 's/^.*(status=[a-z]+).*$/\1/' | tr '\n' ' ')" "status=deferred status=sent " \
   "mail log: the one over the limit deferred, then sent in the next transaction"
like "$(tail -1 "$T/f4")" "^flush: 0 delivered, 0 deferred, 1 failed \(partly delivered: 2 of 3 recipients\), 0 left" \
     "flush: partly delivered, 2 of 3"
like "$(sidecar "$id")" "reason rejected by the server: a550@example.net: 550 5.1.1 no such user \(delivered to 2 other recipients\)" \
     "the sidecar's reason"
done_testing
