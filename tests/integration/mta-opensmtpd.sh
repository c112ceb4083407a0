# Issue 19: mailhook against a real OpenSMTPD 6.8 (Debian's opensmtpd, unpacked by
# scripts/deps, never installed; tests/lib/mta.sh runs it in its own mount namespace with
# tmpfs folders over its compiled-in paths, on a free port).  Every check reads what
# arrived in OpenSMTPD's own maildir: one copy per accepted recipient, the bytes as queued
# after the wire rules, nothing in failed/ that should have been retried.
#
# Plain SMTP only, on purpose: Debian 12's OpenSMTPD 6.8 fails every TLS handshake under
# OpenSSL 3 (the server logs `io-error: error:0A080006:SSL routines::EVP lib` and sends
# alert 80, with RSA and EC keys alike; upstream issues #1171 and #1239).  STARTTLS and
# AUTH against a real MTA are covered by tests/integration/mta-exim.sh.
#
# Scenarios: content and exactly-once delivery (OpenSMTPD 6.8 does not advertise
# PIPELINING); RCPT refusals mixing 550 and 451 in both orders; 550 and 451 after the
# final dot; its per-session limit (452 4.5.3 to every MAIL after the Nth); a small
# SIZE; OpenSMTPD killed and restarted mid-queue.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mta.sh"

ehlo() { swaks --server "127.0.0.1:$1" --quit-after EHLO --helo mta-test 2>&1; }
md() { "$PY" "$MAILDIR_PY" "$@"; }

# 1. Content and exactly-once: the wire rules, and 40 messages to 2 recipients.
sc_content() {
  start_opensmtpd O || { ok 1 "opensmtpd starts"; return; }
  local caps; caps=$(ehlo "$O")
  like "$caps" "250-8BITMIME" "opensmtpd advertises 8BITMIME"
  unlike "$caps" "PIPELINING" "and not PIPELINING (6.8 has none): every command waits for its reply"
  mta_mh content "$O"
  mta_queue_rich
  mta_queue plain 40 a@x.example b@x.example
  mta_flush_all O opensmtpd plain 40 a@x.example b@x.example
  mta_rich_arrived O opensmtpd
  stop_mta O
}

# 2. RCPT refusals mixing 550 and 451 in both orders (OpenSMTPD's rcpt-to filters).
sc_rcpt() {
  start_opensmtpd O --reply-rcpt 'r550@x.example=550 5.1.1 no such user' \
    --reply-rcpt 'r451@x.example=451 4.2.0 mailbox busy' || { ok 1 "opensmtpd starts"; return; }
  mta_mh rcpt "$O"
  mta_queue m1 1 r550@x.example r451@x.example
  mta_queue m2 1 r451@x.example r550@x.example
  mta_queue m3 1 ok1@x.example r550@x.example r451@x.example ok2@x.example
  mta_flush
  [ "$FLUSH_RC" != 0 ]; ok $? "flush exits non-zero while r451 still waits (rc $FLUSH_RC)"
  wait_for 30 mta_idle O
  snap O
  is "$(copies '<m3-1@test>' ok1@x.example) $(copies '<m3-1@test>' ok2@x.example)" "1 1" \
    "m3's accepted recipients got it"
  is "$(pickup_n)" 3 "all three wait in pickup/ for r451 (none given up)"
  mta_rule_off O r451@x.example
  mta_flush
  is "$FLUSH_RC" 0 "once r451 accepts, a flush empties the queue (${FLUSH_OUT##*$'\n'})"
  wait_for 30 mta_idle O
  mta_once O m1 1 r451@x.example
  mta_once O m2 1 r451@x.example
  mta_once O m3 1 ok1@x.example ok2@x.example r451@x.example
  is "$(mta_list O | grep -c r550@)" 0 "r550 got nothing"
  is "$(grep -c 'failed-command command="RCPT TO:<r550@x.example>' "$O_LOG")" 3 \
    "RCPT to r550 went once per message, never again after its 550"
  unlike "$(cat "$SPOOL"/failed/*.state 2>/dev/null)" "r451@x.example: 451|reason.*r451" \
    "r451 is never recorded as failed"
  stop_mta O
}

# 3. 550 and 451 after the final dot (OpenSMTPD's commit filters, by envelope sender).
sc_data() {
  start_opensmtpd O --reply-data 'd550@x.example=550 5.7.1 content refused' \
    --reply-data 'd451@x.example=451 4.3.0 try again later' || { ok 1 "opensmtpd starts"; return; }
  mta_mh data "$O"
  mta_queue plain 1 a@x.example
  printf 'From: d550@x.example\nTo: a@x.example\nSubject: refused\nMessage-ID: <d550-1@test>\n\nno\n' |
    MH sendmail -i -f d550@x.example a@x.example
  printf 'From: d451@x.example\nTo: a@x.example\nSubject: later\nMessage-ID: <d451-1@test>\n\nlater\n' |
    MH sendmail -i -f d451@x.example a@x.example
  mta_queue plain2 1 a@x.example
  mta_flush
  [ "$FLUSH_RC" != 0 ]; ok $? "flush exits non-zero: one message is deferred"
  wait_for 30 mta_idle O
  mta_once O plain 1 a@x.example; mta_once O plain2 1 a@x.example
  local f; f=$(spool_file d550-1@test failed)
  ok "$([ -n "$f" ] && echo 0 || echo 1)" "the 550 message is in failed/"
  [ -n "$f" ] && like "$(cat "${f%.eml}.state")" "550 5.7.1 content refused" "its sidecar has the server's reply"
  ok "$([ -n "$(spool_file d451-1@test)" ] && echo 0 || echo 1)" "the 451 message waits in pickup/"
  mta_rule_off O d451@x.example
  mta_flush
  is "$FLUSH_RC" 0 "the deferred message goes on the next flush"
  wait_for 30 mta_idle O
  mta_once O d451 1 a@x.example
  snap O
  is "$(copies '<d550-1@test>') $(failed_n)" "0 1" "the refused one stays refused, alone in failed/"
  stop_mta O
}

# 4. OpenSMTPD's own per-session limit (smtp limit max-mails, 100 by default, here 10: the
# same reply for a tenth of the messages): every MAIL after the 10th gets "452 4.5.3 Too
# many recipients: Too many messages sent" and the session stays open.  13 messages go in
# one flush, each once, by opening a new session at once (retry_interval is 30 s,
# retry_max 30 min: deferrals would leave them queued), and later sessions stop before the
# limit they met.
sc_session_limit() {
  start_opensmtpd O --max-mails 10 || { ok 1 "opensmtpd starts"; return; }
  mta_mh limit "$O" retry_interval=30 retry_max=30m
  mta_queue lim 13 a@x.example
  mta_flush
  is "$FLUSH_RC" 0 "one flush delivers all 13 (${FLUSH_OUT##*$'\n'})"
  wait_for 30 mta_idle O
  mta_once O lim 13 a@x.example
  is "$(grep -c 'result="452 4.5.3 .*Too many messages sent' "$O_LOG")" 1 \
    "the limit is met once: later sessions close before it"
  is "$(find "$SPOOL/pickup" -name '*.state' | wc -l)" 0 "no message was deferred for it"
  unlike "$FLUSH_OUT" "deferred \\(|unreachable|queue waits" "nor logged as deferred or as an outage"
  stop_mta O
}

# 5. A small SIZE: a message over it is refused before it is sent, saying why.
sc_size() {
  start_opensmtpd O --size 20480 || { ok 1 "opensmtpd starts"; return; }
  like "$(ehlo "$O")" "SIZE 20480" "opensmtpd advertises SIZE 20480"
  mta_mh size "$O"
  { printf 'From: app@example.org\nTo: a@x.example\nSubject: too big\nMessage-ID: <big-1@test>\n\n'
    for _ in $(seq 400); do echo "a line of seventy-odd ASCII characters, repeated until the message is big"; done
  } | MH sendmail -t -i
  mta_queue small 1 a@x.example
  mta_flush
  wait_for 30 mta_idle O
  mta_once O small 1 a@x.example
  local f; f=$(spool_file big-1@test failed)
  ok "$([ -n "$f" ] && echo 0 || echo 1)" "the big message is in failed/"
  if [ -n "$f" ]; then
    local st; st=$(cat "${f%.eml}.state")
    like "$(printf '%s\n' "$st" | grep '^reason')" "20480" "the reason gives the limit the server advertised (SIZE 20480)"
    unlike "$st" "rejected by the server" "and does not say the server rejected it"
  fi
  unlike "$(cat "$O_LOG")" "size=3[0-9]{4} " "opensmtpd never received it"
  stop_mta O
}

# 6. OpenSMTPD killed (its whole process tree, SIGKILL) and restarted mid-queue under
# `mailhook run`: nothing lost, nothing duplicated beyond the one message in flight.  The
# 22nd RCPT waits until the restart (start_opensmtpd --gate), so the kill always finds
# the queue half sent, however fast the machine (Postfix's test lost that race in CI).
sc_kill_restart() {
  # (its session limit raised: this scenario is about the kill, not the 452)
  start_opensmtpd O --max-mails 1000 --gate 21 "$T/osmtpd-gate.open" || { ok 1 "opensmtpd starts"; return; }
  mta_mh kill "$O"
  mta_kill_restart O opensmtpd 40 opensmtpd_dups KILL "touch $T/osmtpd-gate.open"
}
# messages accepted beyond the 40 queued: one "smtp message" log line per accepted message
opensmtpd_dups() { echo $(( $(grep -c ' smtp message msgid=' "$O_LOG") - 40 )); }

mta_scenarios sc_content sc_rcpt sc_data sc_session_limit sc_size sc_kill_restart
done_testing
