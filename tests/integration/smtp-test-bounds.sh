# `mailhook test` answers within a short bound and names what never came (issue 11,
# point 6): a port that accepts TCP but never greets, and a server that stalls at each
# later step (EHLO, STARTTLS, the TLS handshake, AUTH, MAIL FROM, RCPT TO, DATA, the
# final dot).  Scripted peers (tests/peers/fault.lua) that accept and stall: no real
# server stalls on demand.  Every wait is bounded by --timeout (30 s by default).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
unset MAILHOOK_CONF MAILHOOK_SPOOL
need_engine

printf 'stall\n' > "$T/silent.script"
start_fault SILENT "$T/silent.script" || exit 1
BASE=(enabled=true from=pbx@example.org server=127.0.0.1)

# The default bound, in the background while the rest runs: about 30 s, never the
# RFC's 300 s (the upper limit below leaves the loaded machine plenty of room).
write_conf "$T/default.conf" "${BASE[@]}" port="$SILENT"
( t0=$(date +%s%N)
  MAILHOOK_SPOOL=$T/spool0 timeout 200 "$MAILHOOK" -c "$T/default.conf" test >"$T/default.out" 2>&1
  echo "$? $(( ($(date +%s%N) - t0) / 1000000 ))" > "$T/default.rc" ) &
BG=$!

for tls in auto none starttls; do
  write_conf "$T/s.conf" "${BASE[@]}" port="$SILENT" tls="$tls" tls_required=false
  mh_test "$T/s.conf" --timeout 2
  is "$RC" 1 "tls = $tls, a server that never greets: fails"
  like "$ERR" "127.0.0.1 port $SILENT: connected, but the server sent no greeting \(timed out after [0-9]+ s\)" \
    "tls = $tls: 'connected, but the server sent no greeting'"
  unlike "$OUT" "TLS handshake timed out" "tls = $tls: not a TLS handshake timeout"
  ilike "$OUT" "FAILED at stage connect" "tls = $tls: at stage connect"
  like "$OUT" "hint +something accepts connections on this port but does not speak SMTP" "tls = $tls: the hint says what it means"
  ok "$([ "$ELAPSED_MS" -lt 30000 ]; echo $?)" "tls = $tls: within the --timeout bound, not the RFC's minutes ($ELAPSED_MS ms)"
done
like "$OUT" "security +not negotiated: the server sent nothing" "the report does not claim a plain-text session"
write_conf "$T/s.conf" "${BASE[@]}" port="$SILENT" tls=auto
mh_test "$T/s.conf" --timeout 2
like "$ERR" "nor did it answer a TLS handshake" "tls = auto also says the ClientHello got no answer"
write_conf "$T/s.conf" "${BASE[@]}" port="$SILENT" tls=implicit
mh_test "$T/s.conf" --timeout 2
is "$RC" 1 "tls = implicit, a server that never answers: fails"
like "$ERR" "connected, but the TLS handshake got no answer \(timed out after [0-9]+ s\)" "naming the TLS handshake"
ilike "$OUT" "FAILED at stage tls" "at stage tls"

# A stall at each later step.  steps: the script after the greeting; waited: the words.
stall_at() {   # stall_at WHAT STAGE SCRIPT-LINES... (then: conf extras after --)
  local what=$1 stage=$2; shift 2
  local lines=() extra=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do lines+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift
  extra=("$@")
  printf '%s\n' 'send 220 stall.example ESMTP' "${lines[@]}" stall > "$T/step.script"
  start_fault P "$T/step.script" --cert "$C/server.crt" --key "$C/server.key" || return 1
  write_conf "$T/p.conf" "${BASE[@]}" port="$P" tls=none tls_required=false "${extra[@]}"
  mh_test "$T/p.conf" --timeout 2 ${TO:+--to "$TO"}
  is "$RC" 1 "stalled at $what: fails"
  like "$ERR" "the server did not answer $what \(timed out after [0-9]+ s\)" "names what never came: $what"
  ilike "$OUT" "FAILED at stage $stage" "at stage $stage"
  ok "$([ "$ELAPSED_MS" -lt 30000 ]; echo $?)" "$what: within the bound ($ELAPSED_MS ms)"
  stop_peer P
}
make_certs "$T/certs" || exit 1
C=$T/certs
EHLO=('expect ^EHLO' 'send 250-stall.example' 'send 250 SIZE 1000000')
stall_at EHLO connect 'expect ^EHLO'
stall_at STARTTLS tls 'expect ^EHLO' 'send 250-stall.example' 'send 250 STARTTLS' 'expect ^STARTTLS' -- tls=starttls
stall_at AUTH auth 'expect ^EHLO' 'send 250-stall.example' 'send 250 AUTH PLAIN' 'expect ^AUTH' -- \
  auth=true username=u password=p allow_plaintext_auth=true
stall_at "MAIL FROM" sender "${EHLO[@]}" 'expect ^MAIL'
TO=ops@example.org stall_at "RCPT TO" recipient "${EHLO[@]}" 'expect ^MAIL' 'send 250 ok' 'expect ^RSET' \
  'send 250 ok' 'expect ^MAIL' 'send 250 ok' 'expect ^RCPT'
TO=ops@example.org stall_at DATA recipient "${EHLO[@]}" 'expect ^MAIL' 'send 250 ok' 'expect ^RSET' \
  'send 250 ok' 'expect ^MAIL' 'send 250 ok' 'expect ^RCPT' 'send 250 ok' 'expect ^DATA'
TO=ops@example.org stall_at "the final dot" recipient "${EHLO[@]}" 'expect ^MAIL' 'send 250 ok' 'expect ^RSET' \
  'send 250 ok' 'expect ^MAIL' 'send 250 ok' 'expect ^RCPT' 'send 250 ok' 'expect ^DATA' \
  'send 354 go' 'data'

# A TLS handshake that stalls after STARTTLS's 220
printf '%s\n' 'send 220 stall.example ESMTP' 'expect ^EHLO' 'send 250-stall.example' 'send 250 STARTTLS' \
  'expect ^STARTTLS' 'send 220 go ahead' stall > "$T/hs.script"
start_fault H "$T/hs.script" || exit 1
write_conf "$T/h.conf" "${BASE[@]}" port="$H" tls=starttls
mh_test "$T/h.conf" --timeout 2
is "$RC" 1 "a handshake that stalls after STARTTLS: fails"
like "$ERR" "the server did not answer the TLS handshake after STARTTLS \(timed out after [0-9]+ s\)" "naming the handshake after STARTTLS"
ilike "$OUT" "FAILED at stage tls" "at stage tls"
ok "$([ "$ELAPSED_MS" -lt 30000 ]; echo $?)" "within the bound ($ELAPSED_MS ms)"

# --timeout's value is checked
for bad in 0 -1 abc ""; do
  out=$(MAILHOOK_SPOOL=$T/spool "$MAILHOOK" -c "$T/h.conf" test --timeout "$bad" 2>&1); rc=$?
  is "$rc" 2 "--timeout '$bad': a usage error"
  like "$out" "--timeout needs a number of seconds" "naming the option"
done

wait "$BG"
read -r rc ms < "$T/default.rc"
is "$rc" 1 "the default bound: fails"
like "$(cat "$T/default.out")" "connected, but the server sent no greeting \(timed out after [3-5][0-9] s\)" \
  "after about 30 s, and says so"
ok "$([ "$ms" -lt 120000 ]; echo $?)" "far below the RFC's 300 s ($ms ms)"
done_testing
