# Delivery, issue 5 point 3 (c), (f), (g) with a real server (aiosmtpd): a 4xx
# then success, a 5xx, mixed recipients, expiry -> failed/ with the right
# reason; a stalled server does not hold the queue past its deadline; `queue
# retry` of a failed message delivers it.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

PORT=$(free_port)
conf_for "$PORT" retry_interval=0.25 retry_max=0.25   # (the retries after a 451 and a 450: no whole seconds)
peer_start "$PORT" "$T/peer"
touch "$T/peer/reject"          # permdata@ gets 554 while this file exists
sidecar_of() { grep -rl -- "$1" "$SPOOL/failed" 2>/dev/null | grep -v '\.eml$' | head -1; }
failed_with() { [ -n "$(sidecar_of "$1")" ]; }

# a rule that tells someone by another path when a message fails
cat > "$T/alert.lua" <<LUA
on("failed", function(ev)
  local f = assert(io.open("$T/alerts", "a"))
  f:write(ev.id, " | ", ev.subject or "-", " | ", ev.reason, " | ", ev.reply or "-", "\n")
  f:close()
end)
LUA
svc_start "$T/alert.lua"

# (c) 4xx at the final dot, then success
enqueue 1 tempdata-once@example.com >/dev/null            # <1@test>
wait_for 10 grep -q "<1@test>" "$T/peer/log"
ok $? "a message refused with 451 is delivered on a later attempt"
like "$(cat "$T/svc.log")" "deferred \(attempt 1\): 451 4.3.0" "the deferral is logged with the reply"

# (c) 5xx -> failed/ with reason, time and the server's reply; the rest go on
enqueue 1 permdata@example.com >/dev/null                 # <2@test>
enqueue 1 >/dev/null                                       # <3@test>
wait_for 10 grep -q "<3@test>" "$T/peer/log"; ok $? "the message after a 5xx goes on"
wait_for 10 failed_with "554 5.6.0"; ok $? "the 5xx one is in failed/ with a sidecar holding the reply"
sc=$(sidecar_of "554 5.6.0")
like "$(cat "$sc")" "rejected by the server" "the sidecar gives the reason"
like "$(cat "$sc")" "failed_at [0-9]{10}" "and the time"
is "$(failed_count)" 1 "one message in failed/"
unlike "$(cat "$T/peer/log")" "<2@test>" "the rejected message never reached the server's mailbox"
wait_for 5 test -s "$T/alerts"; ok $? "the rule subscribed to \`failed\` ran"
like "$(cat "$T/alerts")" "^[0-9a-f]{16} \| msg 2 \| rejected by the server.* \| 554 5.6.0 content rejected" \
     "with the id, subject, reason and reply"

# (g) queue retry of the failed message delivers it (the server accepts it now)
rm -f "$T/peer/reject"
fid=$(basename "$(ls "$SPOOL/failed/"*.eml | head -1)" .eml)
out=$("$MAILHOOK" queue retry "$fid" 2>&1); rc=$?
is "$rc" 0 "queue retry $fid: exit 0 ($out)"
wait_for 10 grep -q "<2@test>" "$T/peer/log"; ok $? "the retried message is delivered"
is "$(failed_count)" 0 "failed/ is empty again"

# SIGHUP reloads the rules: the new version of the rule handles the next failure
sed -i 's/f:write(ev.id/f:write("v2 ", ev.id/' "$T/alert.lua"
kill -HUP "$SVC"
wait_for 5 grep -q "SIGHUP: settings reloaded" "$T/svc.log"; ok $? "SIGHUP: reloaded"

# (c) mixed recipients: accepted ones are done and never sent again
enqueue 1 app@example.com ok-1@example.net temp-once@example.net perm@example.net >/dev/null   # <4@test>
wait_for 10 failed_with "perm@example.net"; ok $? "the 550 recipient fails, named in the sidecar"
is "$(grep -c "<4@test>" "$T/peer/log")" 2 "two deliveries of the message"
is "$(grep "<4@test>" "$T/peer/log" | sed -n 1p | cut -d' ' -f3)" "ok-1@example.net" "first to the accepted recipient"
is "$(grep "<4@test>" "$T/peer/log" | sed -n 2p | cut -d' ' -f3)" "temp-once@example.net" \
   "then only to the deferred one, once it is accepted (the accepted one is never sent again)"
like "$(cat "$(sidecar_of "perm@example.net")")" "550 5.1.1" "the sidecar has the 550 reply"
wait_for 5 grep -q "^v2 " "$T/alerts"; ok $? "the reloaded rule ran for it (once: $(grep -c . "$T/alerts") alert lines)"
is "$(grep -c . "$T/alerts")" 2 "each failure alerted once, by the rule version loaded at the time"
svc_stop; is $? 0 "stopped"

# (c) expiry: older than max_queue_age -> failed/ "expired", even with no server
peer_stop
conf_for "$PORT" retry_interval=0.25 max_queue_age=2
enqueue 1 >/dev/null                                       # <5@test>
svc_start
wait_for 15 failed_with "expired"; ok $? "a message older than max_queue_age moves to failed/ as expired"
like "$(cat "$(sidecar_of expired)")" "max_queue_age" "the reason says why"
svc_stop
# ... and `queue retry` once the server is back gives it a new max_queue_age from the retry:
# it was failed again at once, never tried (the admin's 3 a.m. case: an outage longer than
# max_queue_age, the server fixed, the dead letters retried)
id=$(basename "$(sidecar_of expired)" .state)
peer_start "$PORT" "$T/peer-retry"
out=$("$MAILHOOK" queue retry "$id" 2>&1); ok $? "queue retry of the expired message ($out)"
grep -q "^retried_at [0-9]" "$SPOOL/pickup/$id.state"; ok $? "its sidecar records when it was retried"
"$MAILHOOK" flush >"$T/flush-retry.out" 2>&1; rc=$?
is "$rc:$(received_count "$T/peer-retry")" "0:1" "the next flush sends it ($(tail -1 "$T/flush-retry.out"))"
peer_stop

# (f) a stalled server does not hold the queue past its deadline
conf_for "$PORT" retry_interval=30 retry_max=60 command_timeout=2 data_timeout=2 session_deadline=3
rm -rf "$SPOOL/failed"/*
peer_start "$PORT" "$T/peer3"
enqueue 1 stall@example.com >/dev/null                     # <6@test> never gets its final-dot reply
enqueue 2 >/dev/null                                       # <7@test> <8@test>
t0=$(date +%s%N)
svc_start
wait_for 20 received_at_least "$T/peer3" 2; ok $? "the messages behind the stalled one are delivered"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
diag "after ${ms} ms"
[ "$ms" -lt 9000 ]; ok $? "within the deadline plus a margin"
is "$(received_ids "$T/peer3" | tr '\n' ' ')" "<7@test> <8@test> " "in order"
is "$(pickup_count)" 1 "the stalled message stays queued for a later attempt"
like "$(cat "$T/svc.log")" "deferred" "it was deferred, not lost"
svc_stop; is $? 0 "stopped"

# a 530 to MAIL ("must issue STARTTLS first") is about the session, not the
# message: nothing goes to failed/, the queue waits, said once, with the fix (retries every
# 0.25 s: three 530s and the drain after the fix do not wait whole seconds)
peer_stop
conf_for "$PORT" retry_interval=0.25 retry_max=0.25
rm -f "$SPOOL/pickup"/*
peer_start "$PORT" "$T/peer4"
touch "$T/peer4/needtls"
enqueue 2 >/dev/null                                       # <9@test> <10@test>
: > "$T/svc.log"
svc_start
refusals() { [ "$(grep -c . "$T/peer4/refused" 2>/dev/null || echo 0)" -ge "$1" ]; }
wait_for 15 refusals 3; ok $? "the service tried again (three 530s)"
is "$(failed_count)" 0 "no message moved to failed/ for it"
is "$(pickup_count)" 2 "both still queued"
is "$(grep -c "refuses mail on this session" "$T/svc.log")" 1 "said once, not at every retry"
like "$(cat "$T/svc.log")" "requires TLS.*set tls = starttls" "with what to change"
rm "$T/peer4/needtls"
wait_for 15 pickup_empty; ok $? "once the server takes mail again, the queue drains"
is "$(received_ids "$T/peer4" | tr '\n' ' ')" "<9@test> <10@test> " "in order"
svc_stop; is $? 0 "stopped"

# `queue retry` of a deferred message while the service runs: tried again now, not after
# its backoff (the service kept its next attempt in memory and was never told)
peer_stop
peer_start "$PORT" "$T/peer6"
conf_for "$PORT" retry_interval=30 retry_max=30
rm -f "$SPOOL/pickup"/* "$SPOOL/failed"/*
: > "$T/svc.log"
svc_start
id=$(enqueue 1 app@example.com ok6@example.net temp@example.net)
wait_for 15 grep -q "deferred (attempt 1)" "$T/svc.log"; ok $? "deferred once (temp@: 450), next attempt in ~30 s"
"$MAILHOOK" queue retry "$id" >/dev/null
wait_for 12 grep -q "deferred (attempt 2)" "$T/svc.log"
ok $? "queue retry: tried again within seconds ($(grep -o 'deferred (attempt [0-9]*).*' "$T/svc.log" | tail -1))"
svc_stop

# Postfix never says 530 for a missing login: its submission port and relay check refuse
# every recipient with 554 5.7.1 (Relay access denied). With auth = false and AUTH
# offered, that is the session's refusal too: the queue waits, nothing goes to failed/
# (each message went there, to be retried one by one after the fix)
peer_stop
P5=$(free_port)
start_smtpd L --port "$P5" --maildir "$T/peer5" --auth user:pw-5 --auth-optional --auth-in-clear \
  --reply-rcpt 'ops@relay.test=554 5.7.1 <ops@relay.test>: Relay access denied' \
  || { echo "Bail out! aiosmtpd did not start"; exit 1; }
conf_for "$P5"
rm -f "$SPOOL/pickup"/* "$SPOOL/failed"/*
enqueue 2 app@example.com ops@relay.test >/dev/null
out=$("$MAILHOOK" flush 2>&1)
is "$(failed_count):$(pickup_count)" "0:2" "Relay access denied to every recipient, auth = false: nothing to failed/ ($out)"
like "$out" "refuses every recipient without a login .*Relay access denied.*set auth = true" "saying what to set"
conf_for "$P5" auth=true username=user password=pw-5 allow_plaintext_auth=true
out=$("$MAILHOOK" flush 2>&1)
is "$(failed_count)" 2 "logged in and still refused: the recipient's own refusal, to failed/"
done_testing
