# A server that takes fewer connections at once than mailhook opens (`connections = 2`
# against Exim's smtp_accept_max = 1: "421 Too many concurrent SMTP connections" at the
# greeting of the second).  That is the server's limit, not an outage: the open
# connection delivers everything, nothing is logged as unreachable, a flush does not end
# with the 421 as its error, and `mailhook status` never reports the server unreachable.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mta.sh"

sc_concurrency() {
  start_exim E --accept-max 1 || { ok 1 "exim starts"; return; }
  mta_mh conc "$E" connections=2 retry_interval=30
  mta_queue conc 20 a@x.example
  mta_flush
  is "$FLUSH_RC" 0 "one flush delivers all 20 over the one connection exim takes (${FLUSH_OUT##*$'\n'})"
  wait_for 30 mta_idle E
  mta_once E conc 20 a@x.example
  like "$(grep -c 'refused: too many connections' "$E_LOG")" "^[1-9]" "exim did refuse the second connection"
  unlike "$FLUSH_OUT" "unreachable|reachable again|mailhook flush: server closing" \
    "the flush took it for no outage, and does not end with the 421 as its error"
  like "$FLUSH_OUT" "refuses one more connection \(server closing the connection: 421" "it says what happened"

  # the service: the same, and its status says nothing of an outage meanwhile
  mta_mh conc-svc "$E" connections=2 retry_interval=30
  MAILHOOK_LOG_LEVEL=info MAILHOOK_SPOOL=$SPOOL "$MAILHOOK" -c "$CONF" run >"$T/svc.log" 2>&1 &
  local svc=$!
  on_exit "kill -9 $svc 2>/dev/null"
  mta_queue svc 30 a@x.example
  _drained() { [ "$(pickup_n)" = 0 ]; }
  wait_for 60 _drained; ok $? "the service delivers all 30"
  _refused_logged() { grep -q 'refuses one more connection' "$T/svc.log"; }
  wait_for 10 _refused_logged
  local st; st=$(MH status 2>&1)
  unlike "$st" "unreachable" "mailhook status does not call the server unreachable"
  kill -TERM "$svc"; wait "$svc"
  wait_for 30 mta_idle E
  mta_once E svc 30 a@x.example
  unlike "$(cat "$T/svc.log")" "server unreachable|reachable again" "the service logged no outage"
  stop_mta E
}

mta_scenarios sc_concurrency
done_testing
