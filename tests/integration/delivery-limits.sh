# A server's per-connection message limit costs a reconnect, not a deferral
# (issue 19 point 2).  Scripted peers (tests/peers/fault.lua) play the two real
# behaviours: Exim's smtp_accept_max_per_connection (421 to the MAIL after the
# Nth message, then close) and OpenSMTPD's (452 4.5.3 to every MAIL after the
# Nth, connection kept open).  One `flush` drains the queue in order, each
# message once, on new connections, without waiting retry_interval; after the
# first refusal the sessions close just before the limit.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

N=3 MSGS=10
S=$T/spool C=$T/mailhook.conf
export MAILHOOK_SPOOL=$S MAILHOOK_CONF=$C

msg_block() {   # one accepted message, as the server's script
  cat <<'S'
expect ^MAIL FROM
send 250 2.1.0 ok
expect ^RCPT TO
send 250 2.1.5 ok
expect ^DATA
send 354 go ahead
data
send 250 2.0.0 queued
S
}
{ printf 'send 220 limit.example ESMTP\nexpect ^EHLO\nsend 250-limit.example\nsend 250 PIPELINING\n'
  for _ in $(seq $N); do msg_block; done
  printf 'expect ^MAIL FROM\nsend 421 4.7.0 limit.example too many messages in this connection\nclose\n'
} > "$T/exim.script"
{ printf 'send 220 limit.example ESMTP\nexpect ^EHLO\nsend 250-limit.example\nsend 250 PIPELINING\n'
  for _ in $(seq $N); do msg_block; done
  printf 'expect ^MAIL FROM\nsend 452 4.5.3 Too many recipients: Too many messages sent\n'
  printf 'expect ^RCPT\nsend 503 5.5.1 Error: need MAIL command\nexpect ^DATA\nsend 503 5.5.1 Error: need RCPT command\nstall\n'
} > "$T/smtpd.script"

fill() {
  "$MAILHOOK" -e '
    local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL"))
    for i = 1, tonumber(...) do
      assert(sp:enqueue("From: app@example.com\r\nTo: to@example.net\r\nSubject: msg " .. i ..
                        "\r\n\r\nbody " .. i .. "\r\n", { from = "app@example.com", to = { "to@example.net" } }))
    end' "$1"
}
# the subjects the server took, connection by connection (fault.lua: FILE, FILE.2, ...)
taken() {
  local f k=1
  for f in "$1" $(ls "$1".* 2>/dev/null | sort -t. -k3 -n); do
    grep -a '^Subject: ' "$f" | tr -d '\r' | sed 's/Subject: //'
  done | tr '\n' ','
}
mails_per_conn() {
  local f
  for f in "$1" $(ls "$1".* 2>/dev/null | sort -t. -k3 -n); do grep -ac '^MAIL FROM' "$f"; done | tr '\n' ' '
}

for kind in exim smtpd; do
  rm -rf "$S"
  start_fault F "$T/$kind.script" --idle 5 || { echo "Bail out! fault.lua did not start"; exit 1; }
  "$MAILHOOK" update enabled=true server=127.0.0.1 port="$F" tls=none tls_required=false \
    from=app@example.com retry_interval=30 command_timeout=10 >/dev/null
  fill $MSGS
  t0=$(date +%s)
  "$MAILHOOK" flush >"$T/flush.out" 2>&1; rc=$?
  secs=$(( $(date +%s) - t0 ))
  is "$rc" 0 "$kind: one flush drains all $MSGS ($(tail -1 "$T/flush.out"))"
  like "$(cat "$T/flush.out")" "$MSGS delivered, 0 deferred, 0 failed, 0 left" "$kind: none deferred, none failed"
  ok "$([ "$secs" -lt 25 ] && echo 0 || echo 1)" "$kind: no retry_interval (30 s) waited: ${secs} s"
  want=$(seq -f 'msg %g' 1 $MSGS | tr '\n' ',')
  is "$(taken "$F_REC")" "$want" "$kind: each message once, in order, across connections"
  per=$(mails_per_conn "$F_REC")
  diag "$kind: MAIL commands per connection: $per"
  first=${per%% *}; rest=${per#* }
  ok "$([ "$first" -gt $N ] && echo 0 || echo 1)" "$kind: the first connection met the limit (MAIL #$((N + 1)) refused)"
  over=0; for m in $rest; do [ "$m" -gt $N ] && over=$((over + 1)); done
  is "$over" 0 "$kind: later connections close before the limit: no refused MAIL ($rest)"
  is "$(echo $per | wc -w)" $(( (MSGS + N - 1) / N )) "$kind: $(( (MSGS + N - 1) / N )) connections of at most $N"
  stop_peer F
done

# A 4xx to MAIL on a fresh connection is about the message: deferred, not a reconnect loop.
cat > "$T/fresh.script" <<'S'
send 220 limit.example ESMTP
expect ^EHLO
send 250 limit.example
expect ^MAIL FROM
send 451 4.3.0 try again later
expect ^RSET|^QUIT
send 250 ok
expect ^QUIT
send 221 bye
S
rm -rf "$S"
start_fault F "$T/fresh.script" --idle 5
"$MAILHOOK" update port="$F" >/dev/null
fill 1
"$MAILHOOK" flush >"$T/flush.out" 2>&1; rc=$?
is "$rc" 1 "a 451 to MAIL on a fresh connection: flush exits 1 (the message waits)"
like "$(cat "$T/flush.out")" "0 delivered, 1 deferred" "deferred, once ($(tail -1 "$T/flush.out"))"
is "$(grep -c '^CONNECT' "$F_OUT")" 1 "one connection: not taken for a limit"
done_testing
