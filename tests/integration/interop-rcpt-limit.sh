# A server's limit on recipients per message, met by a message with more (RFC 5321
# §4.5.3.1.10: the server answers 452 "too many recipients" to each RCPT over it and the
# client sends the rest in a new transaction).  Real servers: Exim's recipients_max and
# OpenSMTPD's `smtp limit max-rcpt`.  The accepted recipients are done and never sent
# again; the rest go at once in a new transaction, unpenalised (no backoff: one flush
# delivers everything, the attempt is not counted); a recipient refused for another
# reason (a greylisting 451, a 550) is still settled by its own reply.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mta.sh"

RCPTS="a@x.example b@x.example c@x.example d@x.example e@x.example"

# limit_scenario VAR NAME: on the started server VAR, 3 messages to 5 recipients each
# (the limit is 2) in one flush, then a message mixing the limit with a greylisting 451
# (grey@, turned off later) and a 550 (r550@).
limit_scenario() {
  local var=$1 name=$2
  mta_mh "$name" "${!var}" retry_interval=30 retry_max=600
  # shellcheck disable=SC2086
  mta_queue lim 3 $RCPTS
  mta_flush
  is "$FLUSH_RC" 0 "$name: one flush delivers all 3 messages to their 5 recipients (${FLUSH_OUT##*$'\n'})"
  like "$FLUSH_OUT" "refused 3 more as over its limit .*45[12].*sending them in a new transaction now" \
    "$name: the log says the server's limit was met and the rest go in a new transaction"
  wait_for 30 mta_idle "$var"; ok $? "$name delivered all it accepted"
  # shellcheck disable=SC2086
  mta_once "$var" lim 3 $RCPTS
  is "$(pickup_n) $(failed_n)" "0 0" "$name: pickup/ and failed/ are empty"
  # mixed: ok1 accepted, grey 451, r550 550, ok2 accepted, ok3 and ok4 over the limit
  mta_queue mix 1 ok1@x.example grey@x.example r550@x.example ok2@x.example ok3@x.example ok4@x.example
  mta_flush
  [ "$FLUSH_RC" != 0 ]; ok $? "$name: the flush ends with grey@ still waiting (rc $FLUSH_RC)"
  local f; f=$(spool_file mix-1@test)
  ok "$([ -n "$f" ] && echo 0 || echo 1)" "$name: the mixed message waits in pickup/ for grey@"
  [ -n "$f" ] && is "$(sed -n 's/^attempts //p' "${f%.eml}.state")" 1 \
    "$name: one attempt counted (the rounds the limit asked for are not)"
  # the mail log: r550@ failed in the round whose 550 refused it (not deferred with
  # that round's overflow), once (a round before may have deferred it as over the limit)
  is "$(printf '%s\n' "$FLUSH_OUT" | grep -F 'to=<r550@x.example>,' | grep -c 'status=failed (550 5\.1\.1 ')" 1 \
    "$name: mail log: r550@ failed, once, in the 452 round that refused it"
  unlike "$FLUSH_OUT" "to=<r550@x.example>,.*status=deferred \(550" "$name: mail log: r550@ never deferred with its 550"
  like "$(printf '%s\n' "$FLUSH_OUT" | grep -F 'to=<grey@x.example>,')" "status=deferred \(451 " \
    "$name: mail log: grey@ deferred"
  wait_for 30 mta_idle "$var"
  local r
  for r in ok1 ok2 ok3 ok4; do
    is "$(mta_copies "$var" '<mix-1@test>' "$r@x.example")" 1 "$name: $r@ got the mixed message once"
  done
  mta_rule_off "$var" grey@x.example
  mta_flush
  is "$FLUSH_RC" 0 "$name: once grey@ accepts, the next flush settles the message"
  like "$(printf '%s\n' "$FLUSH_OUT" | grep -F 'to=<grey@x.example>,')" "attempts=2, .*status=sent" \
    "$name: mail log: grey@ sent at the second attempt"
  unlike "$FLUSH_OUT" "to=<r550@x.example>," "$name: mail log: r550@ not logged again when the message moves to failed/"
  like "${FLUSH_OUT##*$'\n'}" "^flush: 0 delivered, 0 deferred, 1 failed \(partly delivered: 5 of 6 recipients\)" \
    "$name: flush: the message 5 of its 6 recipients got is said partly delivered"
  wait_for 30 mta_idle "$var"
  mta_once "$var" mix 1 ok1@x.example ok2@x.example ok3@x.example ok4@x.example grey@x.example
  is "$(mta_copies "$var" '<mix-1@test>' r550@x.example)" 0 "$name: r550@ got nothing"
  f=$(spool_file mix-1@test failed)
  ok "$([ -n "$f" ] && echo 0 || echo 1)" "$name: the message is in failed/ for r550@ alone"
  [ -n "$f" ] && like "$(cat "${f%.eml}.state")" "r550@x.example" "$name: its sidecar names r550@"
  [ -n "$f" ] && unlike "$(cat "${f%.eml}.state")" "(ok[1-4]|grey)@x.example: " "$name: and no other recipient as refused"
}

sc_exim() {
  start_exim E --recipients-max 2 --reply-rcpt 'grey@x.example=451 4.7.1 greylisted, try again later' \
    --reply-rcpt 'r550@x.example=550 5.1.1 no such user' || { ok 1 "exim starts"; return; }
  limit_scenario E exim
  is "$(grep -c 'rejected RCPT <r550@x.example>' "$E_LOG")" 1 "exim: RCPT to r550@ went once, never again after its 550"
  stop_mta E
}

sc_opensmtpd() {
  start_opensmtpd O --max-rcpt 2 --reply-rcpt 'grey@x.example=451 4.7.1 greylisted, try again later' \
    --reply-rcpt 'r550@x.example=550 5.1.1 no such user' || { ok 1 "opensmtpd starts"; return; }
  limit_scenario O opensmtpd
  stop_mta O
}

mta_scenarios sc_exim sc_opensmtpd
done_testing
