# `mailhook queue retry` of a deferred message while the service runs: it goes
# now, not at the service's next idle rescan.  Only its sidecar changes (the
# pickup/ watch skips sidecars: the deliverer writes one at each deferral), so
# the retry asks the service to look again (SIGUSR2, its status request: a
# fresh status.json) and an idle worker does; it went up to 5 s later
# (SCAN_INTERVAL), 4.9 s here.  A `mailhook flush` holding the lock has no
# such handler and is never signalled (it would end).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
PORT=$(free_port)
conf_for "$PORT" retry_interval=600 retry_max=600
peer_start "$PORT" "$T/peer"
svc_start
enqueue 1 tempdata-once@example.com >/dev/null            # <1@test>: 451 at the dot once
wait_for 10 grep -q "deferred (attempt 1)" "$T/svc.log"; ok $? "the message is deferred (next attempt in 600 s)"
id=$(ls "$SPOOL/pickup" | sed -n 's/\.eml$//p' | head -1)
seq0=$(seq_of)
t0=$(date +%s%N)
out=$("$MAILHOOK" queue retry "$id" 2>&1); ok $? "queue retry $id ($out)"
wait_for 3 grep -q "<1@test>" "$T/peer/log"
ok $? "delivered within 3 s, not at the idle rescan 5 s on ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
wait_for 2 eval '[ "$(seq_of)" -gt "$seq0" ]'; ok $? "the service was asked to look again (a fresh status.json)"
svc_stop; ok $? "the service stops"
done_testing
