# mailhook against a real Postfix smtpd (Debian's postfix, unpacked by scripts/deps, never
# installed; tests/lib/postfix.sh's private instance, the one the benches run, here
# delivering every recipient by virtual(8) to a maildir of the test's: tests/lib/mta.sh
# start_postfix).  Until now Postfix was in the tests only as smtp-sink, its test sink.
# Every check reads what Postfix delivered: one copy per accepted recipient, the bytes as
# queued after the wire rules (dot-stuffing undone, X-Sender/X-Receiver and Bcc not sent),
# nothing in failed/ that should have been retried.  Scenarios: PIPELINING and CHUNKING as
# Postfix advertises them (BDAT checked in Postfix's own command counts), dot lines, a long
# line, an 8-bit body; STARTTLS with a private CA, verified, with tls = starttls and
# tls = auto; recipient restrictions mixing 550 and 450 in one message; message_size_limit
# with and without SIZE advertised; Postfix killed or stopped, and started again, mid-queue.
# Skipped (a plan of 0, with the reason) when not root or when .deps/postfix lacks a daemon.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mta.sh"
pf_ready || { echo "1..0 # SKIP $PF_WHY"; exit 0; }

ehlo() { swaks --server "127.0.0.1:$1" --quit-after EHLO --helo mta-test 2>&1; }
md() { "$PY" "$MAILDIR_PY" "$@"; }
# the text a reader sees, without the parts' labels (an encoded part gains a charset)
text_of() { md decoded "$1" | grep -v '^-- part '; }
longest() { awk '{ sub(/\r$/, ""); if (length($0) > m) m = length($0) } END { print m + 0 }' "$1"; }
# disconnects: Postfix's command counts per session ("disconnect from ... ehlo=1 mail=3 ...")
disconnects() { grep -o 'disconnect from [^ ]* .*' "$P_LOG"; }

# 1. PIPELINING and CHUNKING as Postfix advertises them: content exercising the wire rules
# (dot lines, a line over 998 octets, an 8-bit body, Bcc, a drop-in's X-Sender/X-Receiver),
# and 20 messages to 2 recipients, each copy exactly once; every message went as BDAT.
sc_plain() {
  start_postfix P || { ok 1 "postfix starts"; return; }
  local caps; caps=$(ehlo "$P")
  like "$caps" "250-PIPELINING" "postfix advertises PIPELINING"
  like "$caps" "250[- ]CHUNKING" "and CHUNKING"
  like "$caps" "250-8BITMIME" "and 8BITMIME"
  mta_mh plain "$P"
  mta_queue_rich
  { printf 'From: app@example.org\nTo: a@x.example\nSubject: long\nMessage-ID: <long-1@test>\n\n'
    printf 'a line of 3000 octets:'; printf 'x%.0s' $(seq 2978); printf '\n.and a dot line after it\n'
  } | MH sendmail -t -i
  mta_queue plain 20 a@x.example b@x.example
  md wire "$(spool_file long-1@test)" > "$T/long.want"
  mta_flush_all P postfix plain 20 a@x.example b@x.example
  mta_rich_arrived P postfix
  snap P
  local f; f=$(copy_of long-1@test a@x.example)
  md strip "$f" > "$T/long.got"
  ok "$([ "$(longest "$T/long.got")" -le 998 ] && echo 0 || echo 1)" "the 3000-octet line arrived in lines of 998 at most ($(longest "$T/long.got"))"
  is "$(text_of "$T/long.got")" "$(text_of "$T/long.want")" "and decodes to the line queued"
  local d; d=$(disconnects)
  like "$d" " bdat=2[0-9]" "postfix counted the messages as BDAT ($(tail -1 <<<"$d"))"
  unlike "$d" " data=" "and no DATA"
  unlike "$(grep -v 'after CONNECT from' "$P_LOG")" "improper command pipelining|lost connection|warning|error" \
    "no pipelining error, lost session or warning in postfix's log"
  stop_mta P
}

# 2. STARTTLS with a private CA: tls = starttls and tls = auto (which must choose STARTTLS
# here), the certificate verified against the CA; with a CA that did not sign it, nothing
# goes and the message waits.
sc_tls() {
  make_certs "$T/certs" || { ok 1 "certificates"; return; }
  start_postfix P --tls "$T/certs" || { ok 1 "postfix starts"; return; }
  like "$(ehlo "$P")" "250-STARTTLS" "postfix advertises STARTTLS"
  local mode f
  for mode in starttls auto; do
    mta_mh "tls-$mode" "$P" tls=$mode tls_required=true tls_ca_file="$T/certs/ca.crt"
    mta_queue "tls-$mode" 2 a@x.example
    mta_flush
    is "$FLUSH_RC" 0 "tls = $mode: flush delivers (${FLUSH_OUT##*$'\n'})"
    wait_for 30 mta_idle P
    mta_once P "tls-$mode" 2 a@x.example
    snap P; f=$(copy_of "tls-$mode-1@test" a@x.example)
    like "$(sed -n '1,/^$/p' "$f" 2>/dev/null)" "using TLSv1\.[23] with cipher" \
      "tls = $mode: postfix received it under STARTTLS (its Received: line)"
  done
  is "$(grep -c 'TLS connection established from' "$P_LOG")" 2 "postfix logged both TLS sessions, no other"
  mta_mh tls-wrongca "$P" tls=starttls tls_required=true tls_ca_file="$T/certs/unknown-ca.crt"
  mta_queue tls-wrongca 1 a@x.example
  mta_flush
  [ "$FLUSH_RC" != 0 ]; ok $? "with a CA that did not sign postfix's certificate the flush fails"
  is "$(pickup_n) $(failed_n)" "1 0" "and the message waits in pickup/"
  like "$FLUSH_OUT" "certificate|verif" "saying why ($(grep -iE -m1 'certificate|verif' <<<"$FLUSH_OUT" | cut -c1-120))"
  snap P
  is "$(copies '<tls-wrongca-1@test>')" 0 "postfix received nothing of it"
  stop_mta P
}

# 3. Recipient restrictions mixing 550 and 450 in one message (check_recipient_access):
# the accepted recipients get it once; the 550 one is tried once and named in failed/ with
# Postfix's reply; the 450 one is retried, never failed, and delivered once it is accepted.
sc_rcpt() {
  start_postfix P --reply-rcpt 'r550@x.example=550 5.1.1 no such user' \
    --reply-rcpt 'r450@x.example=450 4.2.0 mailbox busy' || { ok 1 "postfix starts"; return; }
  mta_mh rcpt "$P"
  mta_queue mix 1 ok1@x.example r550@x.example r450@x.example ok2@x.example
  mta_flush
  [ "$FLUSH_RC" != 0 ]; ok $? "flush exits non-zero while r450 waits (rc $FLUSH_RC)"
  wait_for 30 mta_idle P
  snap P
  is "$(copies '<mix-1@test>' ok1@x.example) $(copies '<mix-1@test>' ok2@x.example) $(copies '<mix-1@test>')" \
    "1 1 2" "the accepted recipients got it, no one else"
  mta_flush
  is "$(pickup_n)" 1 "a second flush: the message still waits in pickup/ for r450"
  is "$(grep -c 'RCPT from [^ ]*: 450 4.2.0 <r450@x.example>' "$P_LOG")" 2 "r450 was tried again"
  mta_rule_off P r450@x.example
  mta_flush
  wait_for 30 mta_idle P
  is "$(pickup_n)" 0 "once r450 accepts, a flush settles the message (${FLUSH_OUT##*$'\n'})"
  mta_once P mix 1 ok1@x.example ok2@x.example r450@x.example
  is "$(mta_list P | grep -c r550@)" 0 "r550 got nothing"
  is "$(grep -c 'RCPT from [^ ]*: 550 5.1.1 <r550@x.example>' "$P_LOG")" 1 \
    "RCPT to r550 went once, never again after its 550"
  failed_550_named r550@x.example "550 5.1.1" mix
  unlike "$(cat "$SPOOL"/failed/*.state 2>/dev/null)" "r450@x.example: 450|reason.*r450" \
    "r450 is never recorded as failed"
  stop_mta P
}

# 4. message_size_limit 20480: advertised as SIZE, a message over it is refused before it
# is sent; not advertised (smtpd_discard_ehlo_keywords), Postfix refuses it after its data
# with 552 5.3.4.  Either way: failed/, named with the reason, not retried; the message
# queued beside it is delivered.
sc_size() {
  local kw
  for kw in size no-size; do
    start_postfix P --size 20480 $([ $kw = no-size ] && echo --no-size-keyword) || { ok 1 "postfix starts"; return; }
    if [ $kw = size ]; then like "$(ehlo "$P")" "250-SIZE 20480" "postfix advertises SIZE 20480"
    else unlike "$(ehlo "$P")" "SIZE" "postfix advertises no SIZE"; fi
    mta_mh "$kw" "$P"
    { printf 'From: app@example.org\nTo: a@x.example\nSubject: too big\nMessage-ID: <big-%s@test>\n\n' "$kw"
      for _ in $(seq 400); do echo "a line of seventy-odd ASCII characters, repeated until the message is big"; done
    } | MH sendmail -t -i
    mta_queue "small-$kw" 1 a@x.example
    mta_flush
    wait_for 30 mta_idle P
    mta_once P "small-$kw" 1 a@x.example
    local f st; f=$(spool_file "big-$kw@test" failed)
    ok "$([ -n "$f" ] && echo 0 || echo 1)" "$kw: the big message is in failed/"
    st=$(cat "${f%.eml}.state" 2>/dev/null)
    if [ $kw = size ]; then
      like "$(grep '^reason' <<<"$st")" "20480" "size: the reason gives the limit postfix advertised"
      unlike "$(cat "$P_LOG")" "message-id=<big-size@test>" "size: postfix never received it"
    else
      like "$st" "552 5.3.4" "no-size: its sidecar has postfix's 552 5.3.4"
      is "$(sed -n 's/^attempts //p' <<<"$st")" 1 "no-size: after the one attempt"
    fi
    mta_flush
    is "$(failed_n) $(pickup_n)" "1 0" "$kw: a second flush leaves it alone, in failed/"
    snap P
    is "$(copies "<big-$kw@test>")" 0 "$kw: postfix delivered none of it"
    stop_mta P
  done
}

# 5. Postfix stopped mid-queue under `mailhook run`, then started again: killed (its whole
# process tree, SIGKILL), and stopped in order (SIGTERM to it all, as `postfix stop` does
# to its master): nothing lost, nothing delivered twice beyond the one message in flight.
# A policy service (start_gate) lets 21 recipients through and holds the 22nd, so the stop
# always finds the service mid-message and 20 still queued (the service pipelines the
# 22nd's MAIL and RCPT behind the 21st's data, and Postfix holds its replies, the 21st's
# 250 included, while that RCPT waits: the 21st is the one in flight).  Without it, the
# whole queue could drain before the test's first look on a loaded machine, Postfix
# taking a message in about a millisecond (CI, stop 47: SIGTERM's checks, then SIGKILL's).
sc_stop_restart() {
  local sig
  for sig in KILL TERM; do
    start_gate G 21 "$T/gate-$sig.open" || { ok 1 "the policy gate starts"; return; }
    start_postfix P --policy "$G" || { ok 1 "postfix starts"; return; }
    mta_mh "stop-$sig" "$P"
    mta_kill_restart P postfix 40 postfix_dups "$sig" "touch $T/gate-$sig.open"
    like "$(cat "$G_OUT")" "HOLD 22" "the gate held the 22nd recipient until the restart"
    stop_mta P; stop_peer G
  done
}
# messages delivered more than once (each kill-N has one recipient)
postfix_dups() { mta_list P | awk -F'\t' '$2 ~ /^<kill-/ { print $2 }' | sort | uniq -d | wc -l; }

mta_scenarios sc_plain sc_tls sc_rcpt sc_size sc_stop_restart
done_testing
