# `mailhook queue rm` of a message the running service has loaded ahead of its turn.
# Small messages (<= 16 KB) are loaded with their data in memory a little before they
# are sent (two in flight: the next one's commands ride with the current one's final
# dot, and the one after is loaded while the server works).  `queue rm` said "removed"
# and the message went all the same, when the server was slow: an administrator
# removing a wrong alarm flood from a tarpitting server saw every one of them go.  Now
# a message that waited since its load is looked at again before its commands or its
# data leave: gone, it is not sent, logged as removed; the rest goes on.  And `queue rm`
# of the one whose data is with the server right now says that it cannot be recalled.
# The moment is known, not guessed: the peer holds its reply to the first final dot
# while $T/hold exists (tests/peers/smtpd.py --hold-data) and says so (in-data).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

LIMIT=30
PORT=$(free_port)
touch "$T/hold"
peer_start "$PORT" "$T/peer" --hold-data "$T/hold" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
conf_for "$PORT"
enqueue 4 > "$T/ids"   # (not in a subshell: the next Message-IDs follow on)
set -- $(cat "$T/ids")
a=$1 b=$2 c=$3 d=$4
[ -n "$d" ]; ok $? "four small messages are queued"

svc_start
wait_for "$LIMIT" test -e "$T/peer/in-data"; ok $? "the first one's final dot waits for its reply"
# by then the second one is submitted (its commands wait behind the first one's final
# dot, its data for the first one's reply) and the third one loaded: both before the
# first one's data left (runtime/client.c's gate; delivery.lua Worker:burst)
out=$("$MAILHOOK" queue rm "$b" 2>&1); rc=$?
is "$rc" 0 "queue rm of the second one (loaded ahead, its commands submitted)"
is "$out" "removed $b" "it says removed, nothing more: its data has not left"
out=$("$MAILHOOK" queue rm "$c" 2>&1); rc=$?
is "$rc" 0 "queue rm of the third one (loaded ahead)"
is "$out" "removed $c" "it says removed"
out=$("$MAILHOOK" queue rm "$a" 2>&1); rc=$?
is "$rc" 0 "queue rm of the first one, whose data is with the server"
like "$out" "^removed $a from the queue, but the service \(pid [0-9]+\) is sending it right now" \
     "it says the one in flight is being sent right now"
like "$out" "cannot be recalled" "and that it cannot be recalled"
rm -f "$T/hold"

wait_for "$LIMIT" received_at_least "$T/peer" 2; ok $? "the server gets two messages"
wait_for "$LIMIT" pickup_empty; ok $? "pickup/ is empty"
svc_stop

# Again with only the third one removed: the second goes (it waited, and is unchanged),
# the third is dropped before its commands leave (the session goes on)
rm -f "$T/peer/in-data"
touch "$T/hold"
enqueue 4 > "$T/ids"
set -- $(cat "$T/ids")
e=$1 f=$2 g=$3 h=$4
[ -n "$h" ]; ok $? "four more are queued"
svc_start
wait_for "$LIMIT" test -e "$T/peer/in-data"; ok $? "the first one's final dot waits for its reply"
out=$("$MAILHOOK" queue rm "$g" 2>&1); rc=$?
is "$rc:$out" "0:removed $g" "queue rm of the third one (loaded ahead)"
rm -f "$T/hold"
wait_for "$LIMIT" received_at_least "$T/peer" 5; ok $? "the server gets three more"
wait_for "$LIMIT" pickup_empty; ok $? "pickup/ is empty"
svc_stop

is "$(received_ids "$T/peer" | tr '\n' ' ')" "<1@test> <4@test> <5@test> <6@test> <8@test> " \
   "the server got every message but the removed ones, in order"
is "$(failed_count)" 0 "failed/ is empty"
log=$(cat "$T/svc.log")
like "$log" "$b was removed meanwhile \(mailhook queue rm\); not sent \(its transaction was abandoned before its data" \
     "the log says the second was removed, not sent (its transaction abandoned)"
like "$log" "$a was delivered; it had been removed meanwhile" "the log says the first went, removed meanwhile"
like "$log" "$g was removed meanwhile \(mailhook queue rm\); not sent"$'\n' \
     "the log says the seventh was removed, not sent (before its commands)"
unlike "$log" "($b|$c|$g)[^ ]*: .*status=sent" "no sent line for the removed ones"
is "$(grep -c 'status=sent' "$T/svc.log")" 5 "five sent lines"
unlike "$log" "unreachable|suspended|ERROR|could not|deferred \\(attempt" "no outage, error or deferral on the way"
done_testing
