# Issue 19: mailhook against a real Exim 4 (Debian's exim4-daemon-light, unpacked by
# scripts/deps, never installed; tests/lib/mta.sh runs it with its own configuration on a
# free port).  Every check reads what arrived in Exim's own maildir: one copy per accepted
# recipient, the bytes as queued after the wire rules (dot-stuffing undone, X-Sender and
# X-Receiver lines and Bcc not sent), nothing in failed/ that should have been retried.
# Scenarios: strict synchronisation with and without PIPELINING and with CHUNKING
# advertised; STARTTLS + AUTH PLAIN and LOGIN with a private CA; RCPT ACLs mixing 550 and
# 451 in both orders; 550 and 451 after the final dot; smtp_accept_max_per_connection's
# 421; no 8BITMIME and a small SIZE; Exim killed and restarted mid-queue; `drop` (a
# refusal, then the connection closed) at MAIL and at RCPT.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mta.sh"

ehlo() { swaks --server "127.0.0.1:$1" --quit-after EHLO --helo mta-test 2>&1; }
exim_logs() { cat "$E_DIR"/log/mainlog "$E_DIR"/log/rejectlog 2>/dev/null; }
md() { "$PY" "$MAILDIR_PY" "$@"; }

# 1. Strict synchronisation (Exim's default smtp_enforce_sync) with PIPELINING and CHUNKING
# advertised: content that exercises every wire rule, and 40 messages to 2 recipients in
# one session, each copy exactly once, no synchronisation error.
sc_sync_pipelining() {
  start_exim E || { ok 1 "exim starts"; return; }
  local caps; caps=$(ehlo "$E")
  like "$caps" "250-PIPELINING" "exim advertises PIPELINING"
  like "$caps" "250-CHUNKING" "and CHUNKING (mailhook sends BDAT, sc_chunking checks it)"
  mta_mh sync "$E"
  # a message with everything the wire rules touch, through sendmail -t
  printf '%s\n' 'From: Voicemail <app@example.org>' 'To: a@x.example' 'Cc: b@x.example' \
    'Bcc: hidden@x.example' 'Subject: rich message with a folded' ' header line' \
    'Message-ID: <rich-1@test>' 'X-Custom: kept as written' '' 'first line' \
    '.one dot leads' '..two dots lead' '.' 'a lone dot above, kept (-i)' 'trailing spaces   ' \
    'X-Sender: not an envelope line in the body' 'last line' | MH sendmail -t -i
  # a drop-in: its envelope from X-Sender/X-Receiver, which are not sent
  printf '%s\r\n' 'X-Sender: app@example.org' 'X-Receiver: c@x.example' 'From: app@example.org' \
    'To: not-the-envelope@x.example' 'Subject: drop-in' 'Message-ID: <drop-1@test>' \
    'Date: Fri, 27 Nov 2026 06:00:00 +0000' '' 'dropped in by rename' > "$T/drop.tmp"
  mkdir -p "$SPOOL/pickup" && mv "$T/drop.tmp" "$SPOOL/pickup/app-drop.eml"
  # a 1 MB binary attachment through enqueue
  head -c 1000000 /dev/urandom > "$T/blob.bin"
  echo "see attachment" | MH enqueue --to a@x.example --subject attach --attach "$T/blob.bin" >/dev/null
  mta_queue sync 40 a@x.example b@x.example
  local f; f=$(spool_file rich-1@test); md wire "$f" > "$T/rich.want"
  f=$(grep -l '^Subject: attach' "$SPOOL"/pickup/*.eml | head -1); md wire "$f" > "$T/attach.want"
  local attach_id; attach_id=$(sed -n 's/^Message-ID: <\(.*\)>\r\{0,1\}$/\1/Ip' "$T/attach.want" | head -1)

  mta_flush
  is "$FLUSH_RC" 0 "one flush delivers everything (${FLUSH_OUT##*$'\n'})"
  wait_for 30 mta_idle E; ok $? "exim delivered all it accepted"
  mta_once E sync 40 a@x.example b@x.example
  is "$(pickup_n) $(failed_n)" "0 0" "pickup/ and failed/ are empty"
  unlike "$(exim_logs)" "synchroni[sz]ation error|SMTP protocol error|SMTP syntax error" \
    "no synchronisation or protocol error in exim's log"
  local r
  snap E
  for r in a@x.example b@x.example hidden@x.example; do
    is "$(copies '<rich-1@test>' "$r")" 1 "the rich message reached $r once"
  done
  f=$(copy_of rich-1@test hidden@x.example)
  md strip "$f" > "$T/rich.got"
  mta_same "$T/rich.want" "$T/rich.got" "it arrived as queued (dots unstuffed, folding and spaces kept)"
  unlike "$(sed -n '1,/^$/p' "$T/rich.got")" "^Bcc:" "no Bcc header reached the server"
  [[ $(cat "$T/rich.got") == *$'\n..two dots lead\n.\na lone dot above'* ]]
  ok $? "the lone dot line is data, not the end"
  is "$(copies '<drop-1@test>' c@x.example) $(copies '<drop-1@test>' not-the-envelope@x.example)" "1 0" \
    "the drop-in went to its X-Receiver only"
  f=$(copy_of drop-1@test c@x.example)
  is "$(md strip "$f")" "$(printf 'From: app@example.org\nTo: not-the-envelope@x.example\nSubject: drop-in\nMessage-ID: <drop-1@test>\nDate: Fri, 27 Nov 2026 06:00:00 +0000\n\ndropped in by rename')" \
    "the drop-in arrived without its X-Sender/X-Receiver lines"
  f=$(copy_of "$attach_id" a@x.example)
  md strip "$f" > "$T/attach.got"
  mta_same "$T/attach.want" "$T/attach.got" "the 1 MB attachment arrived byte for byte"
  stop_mta E
}

# 1b. CHUNKING (RFC 3030): with CHUNKING advertised each message goes as BDAT (no DATA, no
# dot-stuffing), a 5 MB attachment streamed from its spool file as a chunk per piece; the
# server receives the bytes as queued, dot lines included.  Without CHUNKING, DATA as before.
sc_chunking() {
  local mode
  for mode in chunking no-chunking; do
    start_exim E $([ $mode = no-chunking ] && echo --no-chunking) || { ok 1 "exim starts"; return; }
    mta_mh "$mode" "$E"
    printf '%s\n' 'From: app@example.org' 'To: a@x.example' 'Subject: dots' "Message-ID: <dots-$mode@test>" '' \
      '.one dot leads' '..two dots lead' '.' 'a lone dot above' '. a dot and a space' 'last line' | MH sendmail -t -i
    head -c 5000000 /dev/urandom > "$T/blob5.bin"
    echo "see attachment" | MH enqueue --to a@x.example --subject "big $mode" --attach "$T/blob5.bin" >/dev/null
    local f; f=$(spool_file "dots-$mode@test"); md wire "$f" > "$T/dots-$mode.want"
    f=$(grep -l "^Subject: big $mode" "$SPOOL"/pickup/*.eml | head -1); md wire "$f" > "$T/big-$mode.want"
    local big_id; big_id=$(sed -n 's/^Message-ID: <\(.*\)>\r\{0,1\}$/\1/Ip' "$T/big-$mode.want" | head -1)
    mta_flush
    is "$FLUSH_RC" 0 "$mode: one flush delivers both (${FLUSH_OUT##*$'\n'})"
    wait_for 30 mta_idle E
    if [ $mode = chunking ]; then
      # Exim's reply to a BDAT LAST ("250- 5000123 byte chunk, total ... OK"), quoted per recipient
      is "$(grep -c 'status=sent (250 .*byte chunk, total' <<<"$FLUSH_OUT")" 2 "both went with BDAT (Exim's chunk replies)"
    else
      is "$(grep -c 'byte chunk' <<<"$FLUSH_OUT")" 0 "without CHUNKING, no BDAT"
    fi
    unlike "$(exim_logs)" "synchroni[sz]ation error|SMTP protocol error|SMTP syntax error" \
      "$mode: no synchronisation or protocol error in exim's log"
    snap E
    f=$(copy_of "dots-$mode@test" a@x.example)
    md strip "$f" > "$T/dots-$mode.got"
    mta_same "$T/dots-$mode.want" "$T/dots-$mode.got" "$mode: the dot lines arrived as queued"
    f=$(copy_of "$big_id" a@x.example)
    md strip "$f" > "$T/big-$mode.got"
    mta_same "$T/big-$mode.want" "$T/big-$mode.got" "$mode: the 5 MB attachment arrived byte for byte"
    stop_mta E
  done
}

# 2. Strict synchronisation without PIPELINING: every command waits for its reply.
sc_sync_no_pipelining() {
  start_exim E --no-pipelining || { ok 1 "exim starts"; return; }
  unlike "$(ehlo "$E")" "PIPELINING" "exim does not advertise PIPELINING"
  mta_mh nopipe "$E"
  mta_queue nopipe 30 a@x.example b@x.example
  mta_flush
  is "$FLUSH_RC" 0 "one flush delivers everything"
  wait_for 30 mta_idle E
  mta_once E nopipe 30 a@x.example b@x.example
  unlike "$(exim_logs)" "synchroni[sz]ation error|SMTP protocol error" "no synchronisation error in exim's log"
  stop_mta E
}

# 3. STARTTLS and AUTH PLAIN / LOGIN, required, with a private CA (verified, not skipped).
sc_tls_auth() {
  make_certs "$T/certs" || { ok 1 "certificates"; return; }
  start_exim E --tls "$T/certs" --auth "mh-user:s3cret pass" || { ok 1 "exim starts"; return; }
  local mech
  for mech in plain login; do
    mta_mh "tls-$mech" "$E" tls=starttls tls_required=true tls_ca_file="$T/certs/ca.crt" auth=true \
      username=mh-user password="s3cret pass" auth_mechanism="$mech"
    mta_queue "tls-$mech" 3 a@x.example
    mta_flush
    is "$FLUSH_RC" 0 "STARTTLS + AUTH $mech: flush delivers"
    wait_for 30 mta_idle E
    mta_once E "tls-$mech" 3 a@x.example
    like "$(grep "id=tls-$mech-1@test" "$E_LOG")" " X=TLS1\.[23][^ ]* .*A=$mech:mh-user " \
      "exim received it under TLS, authenticated with $mech"
  done
  unlike "$(cat "$T/flush.log" "$E_DIR"/log/* 2>/dev/null)" "s3cret" "the password is in no log"
  stop_mta E
}

# exim_acl: one Exim for scenarios 4 and 5, with the RCPT rules of the one and the DATA
# rules of the other (their addresses and message ids differ; each has its own spool):
# the first call starts it, the next finds it running.
exim_acl() {
  [ -n "${E_PID:-}" ] && return 0
  start_exim E --reply-rcpt 'r550@x.example=550 5.1.1 no such user' \
    --reply-rcpt 'r451@x.example=451 4.2.0 mailbox busy' \
    --reply-data 'd550@x.example=550 5.7.1 content refused' \
    --reply-data 'd451@x.example=451 4.3.0 try again later' || { ok 1 "exim starts"; return 1; }
}

# 4. RCPT ACLs mixing 550 and 451, in both orders, and with accepted recipients.
# RFC 5321 §4.2.1: a 5yz is not repeated; each recipient is settled by its own reply.
sc_rcpt_acl() {
  exim_acl || return
  mta_mh rcpt "$E"
  mta_queue m1 1 r550@x.example r451@x.example               # 550 first, then 451
  mta_queue m2 1 r451@x.example r550@x.example               # 451 first, then 550
  mta_queue m3 1 ok1@x.example r550@x.example r451@x.example ok2@x.example
  mta_flush
  isnt_zero() { [ "$1" != 0 ]; }
  isnt_zero "$FLUSH_RC"; ok $? "flush exits non-zero while r451 still waits (rc $FLUSH_RC)"
  wait_for 30 mta_idle E
  snap E
  is "$(copies '<m3-1@test>' ok1@x.example) $(copies '<m3-1@test>' ok2@x.example)" "1 1" \
    "m3's accepted recipients got it"
  is "$(pickup_n)" 3 "all three wait in pickup/ for r451 (none given up)"
  mta_rule_off E r451@x.example
  mta_flush
  is "$FLUSH_RC" 0 "once r451 accepts, a flush empties the queue (${FLUSH_OUT##*$'\n'})"
  wait_for 30 mta_idle E
  mta_once E m1 1 r451@x.example
  mta_once E m2 1 r451@x.example
  mta_once E m3 1 ok1@x.example ok2@x.example r451@x.example
  is "$(mta_list E | grep -c r550@)" 0 "r550 got nothing"
  is "$(grep -c 'F=<app@example.org> rejected RCPT <r550@x.example>' "$E_LOG")" 3 \
    "RCPT to r550 went once per message, never again after its 550"
  failed_550_named "r550@x.example" "550 5.1.1" m1 m2 m3
  unlike "$(cat "$SPOOL"/failed/*.state 2>/dev/null)" "r451@x.example: 451|reason.*r451" \
    "r451 is never recorded as failed"
}

# 5. 550 and 451 after the final dot (Exim's DATA ACL, by envelope sender).
sc_data_acl() {
  exim_acl || return
  mta_mh data "$E"
  mta_queue plain 1 a@x.example
  printf 'From: d550@x.example\nTo: a@x.example\nSubject: refused\nMessage-ID: <d550-1@test>\n\nno\n' |
    MH sendmail -i -f d550@x.example a@x.example
  mta_queue plain2 1 a@x.example
  printf 'From: d451@x.example\nTo: a@x.example\nSubject: later\nMessage-ID: <d451-1@test>\n\nlater\n' |
    MH sendmail -i -f d451@x.example a@x.example
  mta_queue plain3 1 a@x.example
  mta_flush
  [ "$FLUSH_RC" != 0 ]; ok $? "flush exits non-zero: one message is deferred"
  wait_for 30 mta_idle E
  mta_once E plain 1 a@x.example; mta_once E plain2 1 a@x.example; mta_once E plain3 1 a@x.example
  local f; f=$(spool_file d550-1@test failed)
  ok "$([ -n "$f" ] && echo 0 || echo 1)" "the 550 message is in failed/"
  [ -n "$f" ] && like "$(cat "${f%.eml}.state")" "550 5.7.1 content refused" "its sidecar has exim's reply"
  [ -n "$f" ] && is "$(sed -n 's/^attempts //p' "${f%.eml}.state")" 1 "and counts the attempt that failed"
  ok "$([ -n "$(spool_file d451-1@test)" ] && echo 0 || echo 1)" "the 451 message waits in pickup/"
  snap E
  is "$(copies '<d550-1@test>')$(copies '<d451-1@test>')" "00" "exim delivered neither"
  mta_rule_off E d451@x.example
  mta_flush
  is "$FLUSH_RC" 0 "the deferred message goes on the next flush"
  wait_for 30 mta_idle E
  mta_once E d451 1 a@x.example
  snap E
  is "$(copies '<d550-1@test>') $(failed_n)" "0 1" "the refused one stays refused, alone in failed/"
  stop_mta E
}

# 6. smtp_accept_max_per_connection = 5: the 6th MAIL gets "421 too many messages in
# this connection"; 13 messages must all go in one flush, in order, by reconnecting at
# once (retry_interval is left at 30 s: an "outage" would leave most of them queued), and
# later sessions stop before the limit they met (5, then 5 and 3).  A small limit shows
# the same as a large one (it was 20, with 50 and 60 messages) for a quarter of the
# messages.
sc_conn_limit() {
  start_exim E --max-per-conn 5 || { ok 1 "exim starts"; return; }
  mta_mh limit "$E" retry_interval=30
  mta_queue lim 13 a@x.example
  mta_flush
  is "$FLUSH_RC" 0 "one flush delivers all 13 (${FLUSH_OUT##*$'\n'})"
  wait_for 30 mta_idle E
  mta_once E lim 13 a@x.example
  is "$(grep '<= app@example.org' "$E_LOG" | sed -n 's/.* id=lim-\([0-9]*\)@test.*/\1/p' | tr '\n' ' ')" \
     "$(seq -s ' ' 13) " "exim received them in queue order"
  is "$(grep -c 'rejected MAIL command .*too many messages in one connection' "$E_LOG")" 1 \
    "the limit is met once: later sessions close before it"
  unlike "$FLUSH_OUT" "unreachable|queue waits|retrying every" "the 421 was not taken for an outage (no retry_interval wait)"
  is "$(failed_n)" 0 "nothing in failed/"
  # the same with two connections in parallel: each meets the limit and reconnects
  mta_mh limit2 "$E" retry_interval=30 connections=2
  mta_queue par 16 a@x.example
  mta_flush
  is "$FLUSH_RC" 0 "connections = 2: one flush delivers all 16 (${FLUSH_OUT##*$'\n'})"
  wait_for 30 mta_idle E
  mta_once E par 16 a@x.example
  stop_mta E
}

# 7. No 8BITMIME (and no SMTPUTF8) and SIZE 20480: 8-bit bodies and raw UTF-8 headers
# arrive converted to 7 bit and decode to the original (RFC 6152 §3, RFC 2047); a message
# over SIZE, as sent, is refused before it is sent, with a reason that says so.
sc_8bit_size() {
  start_exim E --no-8bitmime --no-smtputf8 --size 20480 || { ok 1 "exim starts"; return; }
  local caps; caps=$(ehlo "$E")
  unlike "$caps" "8BITMIME|SMTPUTF8" "exim advertises neither 8BITMIME nor SMTPUTF8"
  like "$caps" "SIZE 20480" "and SIZE 20480"
  mta_mh eightbit "$E"
  printf '%s\n' 'From: app@example.org' 'To: a@x.example' 'Subject: Répondeur : message de José' \
    'Message-ID: <utf8-1@test>' 'MIME-Version: 1.0' 'Content-Type: text/plain; charset=utf-8' \
    'Content-Transfer-Encoding: 8bit' '' 'Vous avez un nouveau message vocal de José Müller.' \
    '.Ligne qui commence par un point — et des espaces à la fin   ' 'From the start of a line' \
    "$(printf 'é%.0s' $(seq 60)) une ligne longue" 'Fin.' | MH sendmail -t -i
  printf '%s\n' 'From: app@example.org' 'To: a@x.example' 'Subject: nested' 'Message-ID: <nest-1@test>' \
    'MIME-Version: 1.0' 'Content-Type: multipart/mixed; boundary="outer"' '' '--outer' \
    'Content-Type: multipart/alternative; boundary="inner"' '' '--inner' \
    'Content-Type: text/plain; charset=utf-8' 'Content-Transfer-Encoding: 8bit' '' 'Grüße aus Köln' \
    '--inner' 'Content-Type: text/html; charset=utf-8' 'Content-Transfer-Encoding: 8bit' '' \
    '<p>Grüße aus <b>Köln</b></p>' '--inner--' '' '--outer' 'Content-Type: application/octet-stream' \
    'Content-Transfer-Encoding: base64' 'Content-Disposition: attachment; filename="a.bin"' '' \
    'AAECAwQFBgcICQ==' '--outer--' | MH sendmail -t -i
  { printf 'From: app@example.org\nTo: a@x.example\nSubject: too big\nMessage-ID: <big-1@test>\n\n'
    for _ in $(seq 400); do echo "a line of seventy-odd ASCII characters, repeated until the message is big"; done
  } | MH sendmail -t -i
  # 15,000 bytes of 8-bit text: under SIZE as queued, over it in any 7-bit form
  { printf 'From: app@example.org\nTo: a@x.example\nSubject: grows\nMessage-ID: <grow-1@test>\n'
    printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n'
    for _ in $(seq 150); do printf 'é%.0s' $(seq 50); echo; done
  } | MH sendmail -t -i
  local id
  for id in utf8-1 nest-1; do md wire "$(spool_file "$id@test")" > "$T/$id.want"; done
  mta_flush
  wait_for 30 mta_idle E
  is "$(pickup_n)" 0 "nothing is left in pickup/"
  snap E
  for id in utf8-1 nest-1; do
    local f; f=$(copy_of "$id@test" a@x.example)
    ok "$([ -n "$f" ] && echo 0 || echo 1)" "$id arrived"
    [ -n "$f" ] || continue
    local eight; eight=$(md eightbit "$f"); local rc=$?
    ok "$([ $rc = 1 ] && echo 0 || echo 1)" "$id arrived 7-bit clean${eight:+ (not: $eight)}"
    md strip "$f" > "$T/$id.got"
    is "$(md decoded "$T/$id.got")" "$(md decoded "$T/$id.want")" "$id decodes to the original text"
  done
  for id in big-1 grow-1; do
    local f; f=$(spool_file "$id@test" failed)
    ok "$([ -n "$f" ] && echo 0 || echo 1)" "$id is in failed/"
    [ -n "$f" ] || continue
    local st; st=$(cat "${f%.eml}.state")
    like "$(printf '%s\n' "$st" | grep '^reason')" "20480" "$id: the reason gives the limit the server advertised (SIZE 20480)"
    unlike "$st" "rejected by the server" "$id: and does not say the server rejected it"
  done
  unlike "$(exim_logs)" "id=(big|grow)-1@test|too big|message_size_limit" "exim never received an oversize message"
  stop_mta E
}

# 8. Exim killed (its whole process tree, SIGKILL) and restarted mid-queue under
# `mailhook run`: nothing lost, nothing duplicated beyond the one message in flight.  The
# 22nd RCPT waits (start_exim --gate) until the restart, so the kill always finds 20 or
# fewer sent and the service mid-message, however fast the machine (on a loaded one the
# queue could drain before the test's first look, as Postfix's did in CI).
sc_kill_restart() {
  start_exim E --gate 21 "$T/exim-gate.open" || { ok 1 "exim starts"; return; }
  mta_mh kill "$E"
  mta_kill_restart E exim 40 exim_dups KILL "touch $T/exim-gate.open"
}
# 9. Exim's `drop`: a refusal, then the connection closed, with what was pipelined after it
# unanswered (a sender mailhook may not use; a spam trap among the recipients).  The
# refusal decides the message, as without the hang-up: failed/ after one attempt, naming
# Exim's reply; the messages behind it go at once over a new connection, no outage.  (The
# hang-up read as an outage: "connection closed by the server (in state RCPT)" for every
# message, the refusal lost, the queue waiting 30 s at each.)
sc_drop() {
  start_exim E --drop-mail 'bad@x.example=550 5.7.1 sender not allowed here'     --drop-rcpt 'trap@x.example=550 5.7.1 spam trap' || { ok 1 "exim starts"; return; }
  mta_mh drop "$E" retry_interval=30
  printf 'From: bad@x.example\nTo: a@x.example\nSubject: bad sender\nMessage-ID: <dropm-1@test>\n\nno\n' |
    MH sendmail -i -f bad@x.example a@x.example
  mta_queue after-mail 2 a@x.example
  printf 'From: app@example.org\nTo: trap@x.example\nSubject: trap\nMessage-ID: <dropr-1@test>\n\nno\n' |
    MH sendmail -i trap@x.example
  mta_queue after-rcpt 2 a@x.example
  mta_flush
  is "$FLUSH_RC" 0 "one flush settles every message (${FLUSH_OUT##*$'\n'})"
  wait_for 30 mta_idle E
  mta_once E after-mail 2 a@x.example
  mta_once E after-rcpt 2 a@x.example
  local m f
  for m in dropm:"550 5.7.1 sender not allowed here" dropr:"550 5.7.1 spam trap"; do
    f=$(spool_file "${m%%:*}-1@test" failed)
    ok "$([ -n "$f" ] && echo 0 || echo 1)" "${m%%:*}: the refused message is in failed/"
    [ -n "$f" ] && like "$(cat "${f%.eml}.state")" "${m#*:}" "${m%%:*}: its sidecar has exim's reply"
    [ -n "$f" ] && is "$(sed -n 's/^attempts //p' "${f%.eml}.state")" 1 "${m%%:*}: after one attempt"
  done
  is "$(pickup_n) $(failed_n)" "0 2" "nothing left in pickup/"
  unlike "$(cat "$T/flush.log")" "unreachable|outage" "no outage was declared"
  is "$(grep -c 'closed by DROP in ACL' "$E_LOG")" 2 "exim hung up twice (DROP in its ACL)"
  # the trap among other recipients, after one accepted and before one: the trap is refused
  # for good, the others get the message on the next attempt (it was retried whole, and
  # broken by the same drop, until it expired: the others never got it)
  printf 'From: app@example.org\nTo: a@x.example, trap@x.example\nSubject: mixed\nMessage-ID: <mixed-1@test>\n\n1\n' |
    MH sendmail -i a@x.example trap@x.example
  printf 'From: app@example.org\nTo: trap@x.example, b@x.example\nSubject: mixed\nMessage-ID: <mixed-2@test>\n\n2\n' |
    MH sendmail -i trap@x.example b@x.example
  mta_flush
  [ "$FLUSH_RC" != 0 ]; ok $? "a trap among the recipients: the first flush leaves both messages waiting"
  is "$(grep -c 'rejected RCPT <trap@x.example>' "$E_LOG")" 3 "having asked the trap once per message naming it"
  mta_flush
  is "$FLUSH_RC" 0 "the next flush settles them (${FLUSH_OUT##*$'\n'})"
  wait_for 30 mta_idle E
  snap E
  is "$(copies '<mixed-1@test>' a@x.example) $(copies '<mixed-2@test>' b@x.example) $(copies '<mixed-1@test>' trap@x.example)$(copies '<mixed-2@test>' trap@x.example)" \
    "1 1 00" "the others got each once, the trap nothing"
  is "$(grep -c 'rejected RCPT <trap@x.example>' "$E_LOG")" 3 "and the trap was never asked again"
  f=$(spool_file mixed-1@test failed)
  ok "$([ -n "$f" ] && echo 0 || echo 1)" "the mixed message is in failed/ for its trap recipient"
  [ -n "$f" ] && like "$(cat "${f%.eml}.state")" "trap@x.example.*550 5.7.1 spam trap" "naming it with exim's reply"
  stop_mta E
}
# messages mailhook sent twice: ids exim's reception log shows more than once
exim_dups() { grep -o ' id=kill-[0-9]*@test' "$E_LOG" | sort | uniq -d | wc -l; }

mta_scenarios sc_sync_pipelining sc_chunking sc_sync_no_pipelining sc_tls_auth sc_rcpt_acl sc_data_acl \
  sc_conn_limit sc_8bit_size sc_kill_restart sc_drop
done_testing
