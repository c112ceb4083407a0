# Delivery, issue 5 point 3 (a): outage and recovery.  No server listening,
# 100 messages queued while `mailhook run` waits; the server starts: all 100
# arrive, in enqueue order, within retry_interval plus a margin, none lost,
# none twice.  The outage is logged once, not once per retry.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

PORT=$(free_port)
conf_for "$PORT" retry_interval=1
attempts() { [ "$(grep -c -- '-> connecting' "$T/svc.log")" -ge "$1" ]; }
SVC_LOG_LEVEL=debug svc_start
enqueue 100 > "$T/ids"
is "$(wc -l < "$T/ids")" 100 "100 messages queued while no server listens"
wait_for 10 grep -q "unreachable" "$T/svc.log"
ok $? "the service reports the server unreachable"
wait_for 10 attempts 3
ok $? "it keeps retrying every retry_interval"
is "$(grep -c 'unreachable' "$T/svc.log")" 1 "several retries, one log line"
is "$(pickup_count)" 100 "all 100 wait in pickup/"

# a restart while the server is still down: the outage began before it, and stays so
since0=$(sed -n 's/^since //p' "$SPOOL/outage")
[ -n "$since0" ]; ok $? "the outage is recorded in SPOOL/outage (since $since0)"
svc_stop; is $? 0 "the service stops during the outage"
# (a clock past the outage's first seconds: a start time reset by the restart would show)
wait_for 10 eval '[ "$(date +%s)" -ge $((since0 + 3)) ]'
run1=$(wc -l < "$T/svc.log")
SVC_LOG_LEVEL=debug svc_start
wait_for 10 eval 'tail -n +$((run1 + 1)) "$T/svc.log" | grep -q unreachable'
like "$(tail -n +$((run1 + 1)) "$T/svc.log")" "server unreachable .*before this start" \
     "the new run says the server is unreachable, since before it started"
is "$(sed -n 's/^since //p' "$SPOOL/outage")" "$since0" "SPOOL/outage keeps the outage's start across the restart"
like "$("$MAILHOOK" queue)" "delivery suspended since $(date -u -d "@$since0" +%Y-%m-%dT%H:%M:%S)" \
     "mailhook queue gives the first run's start"
grep -q "^server 127.0.0.1:$PORT\$" "$SPOOL/outage"; ok $? "SPOOL/outage names the server it is about"
# a message waiting on the outage is not "now" (it read as being sent now): the
# service's next retry, or "outage"
line=$("$MAILHOOK" queue | sed -n 2p)
like "$line" "^[0-9a-f]{16} +[^ ]+ +[0-9]+ +[0-9]+ +(in [0-9]+s|outage) " "NEXT: the retry or 'outage', never 'now' ($line)"


t0=$(date +%s%N)
peer_start "$PORT" "$T/peer"
wait_for 30 pickup_empty
ok $? "the queue drains once the server is up"
took_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
diag "drained in ${took_ms} ms after the server started"
[ "$took_ms" -le 11000 ]; ok $? "within retry_interval (1 s) plus a 10 s margin"
wait_for 5 received_at_least "$T/peer" 100
is "$(received_count "$T/peer")" 100 "the server got 100 messages: none lost, none twice"
expect=$(seq 1 100 | sed 's/.*/<&@test>/')
is "$(received_ids "$T/peer")" "$expect" "in enqueue order"
like "$(cat "$T/svc.log")" "reachable again" "the recovery is logged"
# counted from the outage's start in the first run, not from the restart
# (measured against the time stamp of that log line, not the clock now: the drain
# after it may take seconds on a loaded machine)
rline=$(grep "reachable again after" "$T/svc.log" | tail -1)
secs=$(printf '%s\n' "$rline" | sed -n 's/.*reachable again after \([0-9]*\) s.*/\1/p')
at=$(date -d "$(printf '%s\n' "$rline" | cut -d' ' -f1)" +%s 2>/dev/null)
[ -n "$secs" ] && [ -n "$at" ] && [ "$secs" -ge $(( at - since0 - 1 )) ]
ok $? "'reachable again after $secs s': the whole outage ($(( ${at:-0} - since0 )) s from $since0 to that line), across the restart"
[ ! -e "$SPOOL/outage" ]; ok $? "SPOOL/outage is gone once the server answered"

svc_stop; rc=$?
is "$rc" 0 "SIGTERM stops the service with status 0"

# the outage of another server is not this one's: a flush while a port is down records
# its outage; the settings then name another port (down too): the next flush says its
# own outage, not "since <the first port's start>, before this start"
peer_stop
A=$(free_port); conf_for "$A" retry_interval=1
enqueue 1 >/dev/null
"$MAILHOOK" flush >/dev/null 2>&1
sinceA=$(sed -n 's/^since //p' "$SPOOL/outage")
grep -q "^server 127.0.0.1:$A\$" "$SPOOL/outage"; ok $? "SPOOL/outage names the server it is about"
wait_for 10 eval '[ "$(date +%s)" -ge $((sinceA + 2)) ]'
B=$(free_port); conf_for "$B" retry_interval=1
"$MAILHOOK" flush >"$T/flush-b.out" 2>&1
unlike "$(cat "$T/flush-b.out")" "before this start" "a flush against another server: no 'since before this start' of the old one"
grep -q "^server 127.0.0.1:$B\$" "$SPOOL/outage"; ok $? "SPOOL/outage now about the new server"
[ "$(sed -n 's/^since //p' "$SPOOL/outage")" -gt "$sinceA" ]; ok $? "dated from its own start"
done_testing
