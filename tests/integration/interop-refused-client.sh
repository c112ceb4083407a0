# A server that answers and refuses this client (Postfix's smtp-sink, -f: a 5xx
# greeting as a blocklist or an access rule gives it, or 5xx to both EHLO and HELO)
# is said to be that: `mailhook test`'s hint is not "nothing answers there: check
# server, port and firewalls", and the service logs "server refuses this client",
# not "server unreachable", with the stage named once ("greeting: greeting: 554" was
# shown); the message waits in pickup/ (Postfix defers on a 5xx greeting too:
# smtp_skip_5xx_greeting), and goes once the server takes mail again.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
need_engine

export MAILHOOK_SPOOL=$T/spool
mkdir -p "$MAILHOOK_SPOOL"
BASE=(enabled=true from=mailhook@example.org server=127.0.0.1 tls=none tls_required=false
      helo_name=client.example.org connect_timeout=5 command_timeout=5 session_deadline=20 retry_interval=1)
hint() { printf '%s\n' "$OUT" | sed -n 's/^  hint  *//p'; }
NOTHING="nothing answers there"
pickup_failed() {
  echo "$(find "$MAILHOOK_SPOOL/pickup" -name '*.eml' | wc -l) $(find "$MAILHOOK_SPOOL/failed" -name '*.eml' 2>/dev/null | wc -l)"
}

# refused at the greeting
start_sink K -f CONNECT -B "554 5.7.1 mx.example: 192.0.2.7 is listed at zen.spamhaus.org" || exit 1
conf=$(new_conf port="$K")
mh_test "$conf"
is "$RC" 1 "a 554 greeting: mailhook test fails"
like "$ERR" "554 5\.7\.1 mx\.example: 192\.0\.2\.7 is listed" "quoting the server"
like "$(hint)" "^the server answered, and refuses this client at once" "the hint: the server refuses this client"
unlike "$(hint)" "$NOTHING" "not 'nothing answers there'"
printf 'body\n' | "$MAILHOOK" -c "$conf" enqueue --to rcpt@example.net --subject blocked >/dev/null
out=$("$MAILHOOK" -c "$conf" flush 2>&1)
like "$out" "delivery: server refuses this client \(greeting: 554 5\.7\.1 mx\.example" \
  "the service says the server refuses this client, quoting it"
unlike "$out" "unreachable|greeting: greeting" "not 'unreachable', the stage named once"
is "$(pickup_failed)" "1 0" "the message waits in pickup/"
q=$("$MAILHOOK" -c "$conf" queue)
like "$q" " greeting: 554 5\.7\.1" "mailhook queue shows the reply"
unlike "$q" "greeting: greeting" "with the stage once"
stop_peer K

# EHLO and HELO refused
start_sink K -f EHLO,HELO -B "550 5.7.1 client.example.org: Helo name not in DNS" || exit 1
conf=$(new_conf port="$K")
mh_test "$conf"
is "$RC" 1 "EHLO and HELO refused (550): mailhook test fails"
like "$(hint)" "^the server answered, and refuses the greeting \(EHLO and HELO\).*helo_name" \
  "the hint: the greeting is refused, helo_name named"
out=$("$MAILHOOK" -c "$conf" flush 2>&1)
like "$out" "delivery: server refuses this client \(helo: HELO refused: 550 5\.7\.1" "the service says so"
unlike "$out" "unreachable" "not 'unreachable'"
is "$(pickup_failed)" "1 0" "the message still waits"
stop_peer K

# the server takes mail again: the message goes
start_sink K || exit 1
out=$("$MAILHOOK" -c "$(new_conf port="$K")" flush 2>&1)
like "$out" "1 delivered" "once the server takes mail, the message goes ($out)"
done_testing
