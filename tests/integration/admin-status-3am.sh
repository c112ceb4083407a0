# `mailhook status` and `mailhook queue` read at 3 a.m. (review-admin): a service
# that has not tried its server since it started is said to be idle and untried,
# also while deferred messages wait (not "nothing to send", not "idle since" as if
# it worked); during an outage `queue show` gives the real next attempt (the
# running service's retry, as the listing's NEXT does), or says none is
# scheduled when no service runs (and --json leaves next_attempt out rather than
# 0, "due now"); a `mailhook flush` holding the spool, started with global options,
# is named as the flush it is, not as the service.  Real aiosmtpd peers.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
st() { OUT=$("$MAILHOOK" status "$@" 2>&1); RC=$?; }
answered() { "$MAILHOOK" status >/dev/null 2>&1; [ -s "$SPOOL/status.json" ] && grep -q "\"pid\":$SVC" "$SPOOL/status.json"; }

# --- 5. a service that has not tried its server -------------------------------------------
delivery_peer retry_max=10m retry_interval=60
svc_start
wait_for 10 answered; ok $? "the service answers"
st
is "$RC" 0 "idle, nothing waiting: exit 0 (nothing waits)"
like "$OUT" "connection +idle: nothing sent since start, the server not tried yet \(127\.0\.0\.1 port $PORT\)" \
  "the connection row: not tried yet (it said 'idle (...) since', as a session that works)"
# a message deferred (451) before a restart: it waits, the new service has not tried
id=$(enqueue 1 app@example.com temp@example.net)
wait_for 10 grep -q '"deferred":1' "$SPOOL/status.json"; ok $? "a message deferred by a 451"
svc_stop
svc_start
wait_for 10 answered; ok $? "the service restarted"
st
like "$OUT" "^idle: nothing sent since start, the server not tried yet; 1 message waits for its next attempt" \
  "a deferred message waiting: said (it said 'nothing to send')"
unlike "$OUT" "nothing to send" "not 'nothing to send'"
st --json
is "$(echo "$OUT" | J 'd["untried"]')" true "--json: untried"
svc_stop
peer_stop
"$MAILHOOK" queue rm "$id" >/dev/null

# --- 6. queue during an outage: the real next attempt ------------------------------------------
conf_for "$(free_port)" retry_interval=60
svc_start
id=$(enqueue 1)
wait_for 10 grep -q '"state":"waiting-retry"' "$SPOOL/status.json"; ok $? "the server unreachable: waiting to retry"
next=$(J 'int(-(-d["connection"]["next_attempt"] // 1))' < "$SPOOL/status.json")
out=$("$MAILHOOK" queue show "$id")
like "$out" "next attempt: $(date -u -d "@$next" +%Y-%m-%dT%H:%M:%S)\+00:00 \(in [0-9]+s, the connection's retry during the outage\)" \
  "queue show: the service's retry (it showed no next attempt, or one past)"
like "$("$MAILHOOK" queue)" "$id .* in [0-9]+s " "queue: NEXT in the service's retry, not 'now'"
is "$("$MAILHOOK" queue --json | J 'd[0]["next_attempt"]')" "$next" "--json: the same time"
svc_stop
out=$("$MAILHOOK" queue show "$id")
like "$out" "next attempt: none scheduled: it waits on the outage since .*no running service has a retry due" \
  "no service: queue show says none is scheduled"
like "$("$MAILHOOK" queue)" "$id .* outage " "queue: NEXT outage"
is "$("$MAILHOOK" queue --json | J '"next_attempt" in d[0]')" false \
  "--json: no next_attempt (it was 0, which reads as due now)"
"$MAILHOOK" queue rm "$id" >/dev/null

# --- 7. a flush holding the spool, started with global options ------------------------------
mkdir -p "$T/held"
start_smtpd H --maildir "$T/held" --hold-data "$T/hold"
conf_for "$H" command_timeout=20 data_timeout=20
: > "$T/hold"
on_exit "rm -f $T/hold"
enqueue 1 >/dev/null
"$MAILHOOK" -c "$CONF" -s "$SPOOL" flush --timeout 30 >/dev/null 2>&1 &
FL=$!
on_exit "kill $FL"
wait_for 10 test -e "$T/held/in-data"; ok $? "the flush is at the final dot, the spool locked"
st
like "$OUT" "a \`mailhook flush\` \(pid $FL\) holds the spool" \
  "status names the flush (it said 'a \`mailhook -c $CONF\`')"
unlike "$OUT" "service +running" "not listed as the service"
st --json
is "$(echo "$OUT" | J '[d["service"]["running"], d["service"]["flush_pid"], d["service"]["holder"]]')" \
  "[false, $FL, \"mailhook flush\"]" "--json: not running; the flush's pid and what it is"
out=$("$MAILHOOK" run 2>&1)
like "$out" "a \`mailhook flush\` \(pid $FL\) holds the spool" "run names the flush"
rm -f "$T/hold"
wait "$FL"; ok $? "the flush ends once the server answers"
done_testing
