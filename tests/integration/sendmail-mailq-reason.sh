# sendmail -bp (mailq) says why a message waits when the server cannot be
# reached, as Postfix's "(connect to host[addr]:25: Connection refused)": the
# delivery records the outage's reason in the state of the message it tried
# (its attempt count unchanged), for `sendmail -q` (a flush by itself) and for
# the running service alike; once a real server (aiosmtpd) listens, it leaves.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

export MAILHOOK_CONF=$T/mailhook.conf MAILHOOK_SPOOL=$T/spool
DEAD=$(free_port)     # nothing listens there
"$MAILHOOK" update enabled=true server=127.0.0.1 port="$DEAD" tls=none tls_required=false \
  from=pbx@example.com retry_interval=1 >/dev/null || { echo "Bail out! update failed"; exit 1; }

printf 'Subject: one\n\nx\n' | "$MAILHOOK" sendmail a@example.net
out=$("$MAILHOOK" sendmail -bp 2>&1)
unlike "$out" "\(connect" "no reason before any attempt"
"$MAILHOOK" sendmail -q >/dev/null 2>&1; rc=$?
is "$rc" 0 "sendmail -q with the server down: 0 (the message stays queued)"
out=$("$MAILHOOK" sendmail -bp 2>&1)
like "$out" "\(connect: .*127\.0\.0\.1.*$DEAD.*refused\)" "mailq: the reason line names the connection refused ($out)"
like "$out" "a@example\.net" "the recipient still listed"
out=$("$MAILHOOK" queue 2>&1)
like "$out" "connect: could not connect" "mailhook queue shows it too"
like "$out" " 0 now|   0 " "the attempts are not counted up by an outage ($out)"

# --- the running service: a second message, the reason recorded for it too
rm -f "$T/spool/pickup/"*.state
"$MAILHOOK" run >"$T/run.log" 2>&1 </dev/null &
RUN=$!
has_reason() { grep -q '^last_reply connect' "$T/spool/pickup/"*.state 2>/dev/null; }
ok "$(wait_for 20 has_reason; echo $?)" "the service records the reason"
out=$("$MAILHOOK" sendmail -bp 2>&1)
like "$out" "\(connect: .*refused\)" "mailq shows it while the service waits ($out)"
# a message queued during the outage, not tried yet: the service's outage is its reason
printf 'Subject: two\n\nx\n' | "$MAILHOOK" sendmail b@example.net
has_outage() { grep -q '"outage":{' "$T/spool/status.json"; }
ok "$(wait_for 20 has_outage; echo $?)" "the service's status.json has the outage"
out=$("$MAILHOOK" sendmail -bp 2>&1)
is "$(grep -c '(.*connect: .*refused)' <<<"$out")" 2 "mailq: both messages show why they wait ($out)"
like "$out" "\(delivery temporarily suspended: connect: .*refused\)" "the new one: the service's outage"
kill "$RUN"; wait "$RUN" 2>/dev/null

# --- the server comes: delivered, the queue empty
start_smtpd P --maildir "$T/mail" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
"$MAILHOOK" update port="$P" >/dev/null
"$MAILHOOK" sendmail -q >/dev/null 2>&1
is "$(ls "$T/mail"/*.eml 2>/dev/null | wc -l)" 2 "both delivered once a server listens"
like "$("$MAILHOOK" sendmail -bp 2>&1)" "Mail queue is empty" "mailq: empty"
done_testing
