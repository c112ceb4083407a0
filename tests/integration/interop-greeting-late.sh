# tls = auto against a plain server that greets late on purpose: a real Exim whose
# connect ACL says `delay = 3s` (tests/lib/mta.sh --connect-delay), no STARTTLS, with
# tls_required = false.  After greeting_wait (1.5 s) of silence mailhook takes the port
# for implicit TLS and sends a ClientHello; Exim sees input before its banner, reads the
# ClientHello as commands, logs them as syntax errors and drops the call ("too many syntax
# or protocol errors": fail2ban's exim filter matches it, as it matches the
# synchronisation errors a server with a pregreet check logs), and mailhook connects
# again in plain text.  That probe must happen once, not in every session: the
# first session remembers "plain, greeting after N s" (SPOOL/state/greeting-late) and
# `mailhook test` says the greeting came late and that mailhook waited and remembered;
# the next sessions (a flush, another test) wait for the greeting without a probe, so
# Exim sees one probe in all, and one connection per session after it.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mta.sh"

# connections Exim accepted (after the port check's, c0), and those of them that did not
# end in QUIT: the probes (Exim logs the ClientHello as syntax errors and drops the call,
# or the connection as lost when mailhook hung up first: which one is a matter of timing)
connections() { grep -c 'SMTP connection from .*TCP/IP connection count' "$D_LOG"; }
probes() { echo $(( $(connections) - c0 - $(grep -c 'closed by QUIT' "$D_LOG") )); }
late_line() { cat "$SPOOL/state/greeting-late" 2>/dev/null; }
mhtest() { OUT=$(MH test "$@" 2>&1); RC=$?; }

sc_greeting_late() {
  start_exim D --connect-delay 3s || { ok 1 "exim starts"; return; }
  # (start_exim's own check that the port listens connected once: counted from here)
  wait_for 10 grep -q 'TCP/IP connection count' "$D_LOG"
  local c0; c0=$(connections)
  mta_mh late "$D" tls=auto tls_required=false command_timeout=30
  mhtest
  is "$RC" 0 "session 1 (mailhook test) passes${RC:+ ($(printf '%s\n' "$OUT" | grep -E 'error|result' | head -2 | tr '\n' ' '))}"
  like "$OUT" "greeting +in plain text after [3-9]\.[0-9] s, later than greeting_wait" \
    "the test report says the greeting came late"
  like "$OUT" "connected again and waited for the greeting; remembered in .*/state/greeting-late" \
    "and that mailhook waited, and remembers it"
  like "$OUT" "security +none \(plain text\)" "the session is plain text (tls_required = false)"
  is "$(( $(connections) - c0 ))" 2 "session 1: two connections, the probe and the plain session"
  is "$(probes)" 1 "one of them the probe (not ended by QUIT)"
  like "$(late_line)" "^127\.0\.0\.1:$D [3-9]\.[0-9]$" "SPOOL/state/greeting-late: host:port and the seconds"

  # sessions 2 (a flush), 3 and 4 (tests) at once: each waits out Exim's 3 s delay,
  # and none may probe (all three know the server from session 1's memory)
  mta_queue late 2 a@x.example
  local s3 s4
  ( mhtest --json; printf '%s\n' "$OUT" > "$T/s3.out" ) & s3=$!
  ( mhtest; printf '%s\n' "$OUT" > "$T/s4.out" ) & s4=$!
  mta_flush
  is "$FLUSH_RC" 0 "session 2 (flush) delivers (${FLUSH_OUT##*$'\n'})"
  wait "$s3" "$s4"
  wait_for 30 mta_idle D
  mta_once D late 2 a@x.example
  is "$(sed -n '/^{/,$p' "$T/s3.out" | J 'd["connection"].get("greeting_late")')" "remembered" \
    "session 3 (test --json): the server was known to greet late"
  is "$(( $(connections) - c0 ))" 5 "sessions 2, 3 and 4: one connection each (five in all)"
  is "$(probes)" 1 "and no other probe: sessions 2, 3 and 4 sent nothing before the greeting"
  like "$(cat "$T/s4.out")" "greeting +in plain text after [3-9]\.[0-9] s: a server known to greet late" \
    "session 4: the text report says so too"

  # What is remembered never weakens tls_required: with it true, the same plain server
  # (known to greet late) gets neither mail nor a login in the clear.
  mta_mh late "$D" tls=auto tls_required=true auth=true username=u password=secret-pw command_timeout=30
  # the test and a flush at once (each waits out the 3 s delay)
  mta_queue req 1 a@x.example
  ( mhtest; printf '%s\n' "$RC" "$OUT" > "$T/req.out" ) & s3=$!
  mta_flush
  wait "$s3"
  OUT=$(sed 1d "$T/req.out"); RC=$(head -1 "$T/req.out")
  ok "$([ "$RC" != 0 ]; echo $?)" "tls_required = true: the test fails against the plain server (exit $RC)"
  like "$OUT" "stage +tls|tls_required" "naming TLS as the failing stage"
  printf "%s\n" "$OUT" | grep -iE "tls|result" | head -4 | sed "s/^/#   /"
  is "$(queued_n)" 1 "tls_required = true: the message stays queued (${FLUSH_OUT##*$'\n'})"
  is "$(mta_copies D '<req-1@test>')" 0 "and the server never got it"
  # (an AUTH to this Exim, which offers none, is logged as a protocol error naming the
  # command: the password would have gone with it, base64'd, never as typed)
  is "$(grep -c 'AUTH' "$D_LOG")" 0 "nor a login (no AUTH command in Exim's log)"
  stop_mta D
}

mta_scenarios sc_greeting_late
done_testing
