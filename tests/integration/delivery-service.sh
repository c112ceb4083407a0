# Delivery, issue 5: the service and flush with a real server (aiosmtpd).
# The lock (one service per spool), a new message moving within a second,
# drop-in .eml files (X-Sender/X-Receiver honoured and stripped) (e), SIGTERM
# in the middle of a queue (d), SIGHUP, `mailhook flush` alone and through a
# running service, disabled settings.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

PORT=$(free_port)
conf_for "$PORT"
peer_start "$PORT" "$T/peer"

# --- a new message moves at once; one service per spool
svc_start
# (its pid in the lock file: the lock is held, so the second service below meets it)
svc_up() { [ -d "$SPOOL/pickup" ] && [ "$(cat "$SPOOL/lock" 2>/dev/null)" = "$SVC" ]; }
wait_for 10 svc_up
ok $? "the service created the spool"
out=$("$MAILHOOK" run 2>&1); rc=$?
is "$rc" 1 "a second service on the same spool is refused"
like "$out" "locked by pid $SVC" "naming the pid holding the lock"
t0=$(date +%s%N)
enqueue 1 >/dev/null
wait_for 5 received_at_least "$T/peer" 1
ok $? "a new message is delivered"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# The watch on pickup/ moves it; the fallback rescan runs every 5 s (delivery.SCAN_INTERVAL): a bound
# below that, not a bet on how fast a loaded machine starts a process.
[ "$ms" -lt 4500 ]; ok $? "before the 5 s rescan could have found it (${ms} ms, including the enqueue process)"
wait_for 5 pickup_empty; ok $? "and removed from pickup/"

# --- (e) a drop-in .eml: envelope from X-Sender/X-Receiver, both stripped
printf 'X-Sender: bounce@example.com\r\nX-Receiver: ok-a@example.net\r\nX-Receiver: ok-b@example.net\r\nFrom: App <app@example.com>\r\nTo: someone-else@example.org\r\nSubject: drop-in\r\nMessage-ID: <dropin@test>\r\n\r\ndropped in\r\n' > "$T/drop.tmp"
mv "$T/drop.tmp" "$SPOOL/pickup/zz-dropin.eml"
wait_for 5 grep -q "<dropin@test>" "$T/peer/log"
ok $? "a drop-in .eml renamed into pickup/ is delivered"
line=$(grep "<dropin@test>" "$T/peer/log")
like "$line" " bounce@example.com ok-a@example.net,ok-b@example.net " "envelope from X-Sender / X-Receiver, not from To"
f="$T/peer/$(echo "$line" | cut -d' ' -f1).eml"
unlike "$(cat "$f")" "^X-(Sender|Receiver):" "X-Sender / X-Receiver are stripped before sending"
like "$(cat "$f")" "Subject: drop-in" "the rest of the message is sent"

# drop-in without X- lines: From/To/Cc/Bcc, Bcc stripped
printf 'From: app@example.com\r\nTo: ok-to@example.net\r\nBcc: ok-bcc@example.net\r\nSubject: plain drop-in\r\nMessage-ID: <dropin2@test>\r\n\r\nhi\r\n' > "$T/drop.tmp"
mv "$T/drop.tmp" "$SPOOL/pickup/zz-dropin2.eml"
wait_for 5 grep -q "<dropin2@test>" "$T/peer/log"
ok $? "a drop-in without X- lines is delivered"
line=$(grep "<dropin2@test>" "$T/peer/log")
like "$line" "ok-to@example.net" "to the To recipient"
like "$line" "ok-bcc@example.net" "and the Bcc recipient"
f="$T/peer/$(echo "$line" | cut -d' ' -f1).eml"
unlike "$(cat "$f")" "^Bcc:" "Bcc stripped"

# --- SIGHUP reloads the settings: disabled -> nothing is attempted
"$MAILHOOK" update enabled=false >/dev/null
kill -HUP "$SVC"
wait_for 5 grep -q "paused" "$T/svc.log"; ok $? "SIGHUP with enabled=false: delivery paused (logged)"
n0=$(received_count "$T/peer")
enqueue 2 >/dev/null
wait_for 2 received_at_least "$T/peer" $((n0 + 1)); rc=$?
[ $rc != 0 ]; ok $? "while disabled nothing is sent"
is "$(pickup_count)" 2 "the messages wait in pickup/"
"$MAILHOOK" update enabled=true >/dev/null
kill -HUP "$SVC"
wait_for 5 pickup_empty; ok $? "SIGHUP with enabled=true: they go"

# --- flush through a running service (SIGUSR1) — never two deliverers
svc_stop; rc=$?
is "$rc" 0 "SIGTERM: exit 0"
peer_stop
conf_for "$PORT"
svc_start
wait_for 5 svc_up   # (its pid in the lock: pickup/ was there since the first service)
enqueue 3 >/dev/null
wait_for 10 grep -q "unreachable" "$T/svc.log"; ok $? "server down: the service waits"
out=$("$MAILHOOK" flush --timeout 20 2>&1); rc=$?
is "$rc" 1 "flush while the server is down: exit 1"
like "$out" "asked the service \(pid $SVC\).*3 left" "it asked the running service and reports what is left"
peer_start "$PORT" "$T/peer"
out=$("$MAILHOOK" flush --timeout 60 2>&1); rc=$?   # a bound for a loaded machine; the delivery takes a second
is "$rc" 0 "flush through the service once the server is up: exit 0"
# (the flush ends when the messages are recorded delivered, the journal: the
# service removes their files just after, off the delivery's path)
wait_for 10 pickup_empty; ok $? "pickup/ is empty ($(pickup_count) left)"
svc_stop

# --- flush with no service: it delivers itself
enqueue 5 >/dev/null
n0=$(received_count "$T/peer")
out=$("$MAILHOOK" flush 2>&1); rc=$?
is "$rc" 0 "flush alone: exit 0"
like "$out" "5 delivered, 0 deferred, 0 failed, 0 left" "summary"
is "$(received_count "$T/peer")" $((n0 + 5)) "the server got the 5"
is "$(pickup_count)" 0 "when flush returns, their files are gone from pickup/ too (the delivered journal purged)"
[ ! -e "$SPOOL/delivered" ] && [ ! -e "$SPOOL/delivered.old" ]; ok $? "and no journal is left"
enqueue 3 >/dev/null
out=$(script -qc "$MAILHOOK flush" /dev/null 2>&1 </dev/null) || true
like "$out" "flush: 3/3 +[0-9.]+ msg/s +ETA" "on a terminal: a progress line (done/total, rate, ETA)"
like "$out" "flush: 3 delivered" "and the summary"
enqueue 2 >/dev/null
out=$("$MAILHOOK" -e 'local s = require("mailhook").queue.flush(); print(s.delivered, s.left, s.via)' 2>&1)
is "$out" "2	0	self" "mh.queue.flush() from Lua delivers and reports"

# --- (d) SIGTERM in the middle of a queue: the message in flight is finished
peer_stop
peer_start "$PORT" "$T/peer2" --delay-data 0.2
enqueue 10 > "$T/ids"
svc_start
wait_for 10 received_at_least "$T/peer2" 2; ok $? "delivering slowly"
kill -TERM "$SVC"; wait "$SVC"; rc=$?; SVC=
is "$rc" 0 "SIGTERM mid-queue: exit 0"
got=$(received_count "$T/peer2"); left=$(pickup_count)
diag "received $got, left $left"
[ "$got" -lt 10 ]; ok $? "it stopped before the end of the queue"
is "$((got + left))" 10 "every message is either delivered (and removed) or still queued: the one in flight was finished"
svc_start
wait_for 15 pickup_empty; ok $? "a restart delivers the rest"
wait_for 5 received_at_least "$T/peer2" 10
is "$(received_ids "$T/peer2" | sort -u | wc -l)" 10 "each once"
svc_stop

# --- connections = 2: two sessions in parallel, every message once
enqueue 10 >/dev/null
svc_start --connections 2
wait_for 15 pickup_empty; ok $? "--connections 2 drains the queue"
wait_for 5 received_at_least "$T/peer2" 20
is "$(received_ids "$T/peer2" | sort | uniq -d | wc -l)" 0 "none twice"
is "$(tail -10 "$T/peer2/log" | awk '{print $5}' | sort -u | wc -l)" 2 "over two sessions (client ports)"
svc_stop
out=$("$MAILHOOK" run --connections 0 2>&1); rc=$?
is "$rc" 2 "--connections 0 is refused"
like "$out" "connections must be a whole number from 1 to 64" "with a clear message"
# a named rule file that is not there (a typo): refused at start, as hook's --rules, instead
# of a service running without those rules (bounded: the old code ran on)
echo 'mh.on("x", function() end)' > "$T/here.lua"
out=$(timeout 10 "$MAILHOOK" run "$T/here.lua" "$T/no-such-rules.lua" 2>&1); rc=$?
is "$rc" 2 "run with a named rule file that is not there exits 2"
like "$out" "no-such-rules.lua: no such rule file" "naming the file"
done_testing
