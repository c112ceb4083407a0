# tests/lib/delivery.sh — helpers for the delivery tests (sourced after tests/lib/tap.sh;
# it sources tests/lib/peers.sh): settings, spool, the real SMTP server, the service.
#
#   delivery_require                 bail out (a failure, never a skip) unless spool, smtp, settings load
#   conf_for PORT [KEY=VALUE ...]    a fresh $T/mailhook.conf by `mailhook update` (plain, no auth)
#   peer_start PORT DIR [ARGS]       tests/peers/smtpd.py on PORT (start_smtpd PEER) with the
#                                    --by-local-part replies, messages in DIR, their index in
#                                    DIR/log ("NNNNNN FROM RCPTS MESSAGE-ID CLIENT_PORT"), more
#                                    smtpd.py options in ARGS; waits until it listens
#   peer_stop                        stop it
#   delivery_peer [KEY=VALUE ...]    peer_start on a free $PORT, conf_for it, the spool made
#   enqueue N [FROM [RCPT...]]       queue N messages (Message-ID <i@test>, Subject "msg i")
#   enqueue_file FILE... [-- FROM [RCPT...]]  the message in each FILE queued as it is (from
#                                    a@example.com to ok@example.net), the ids printed
#   svc_start [ARGS]                 `mailhook run` in the background, pid in $SVC (log $T/svc.log,
#                                    level $SVC_LOG_LEVEL, default info)
#   pickup_count, received_count     files in pickup/, messages the peer accepted
#   TXN                              a fault.lua script's MAIL, RCPT and DATA, each accepted
command -v start_smtpd >/dev/null || . "$ROOT/tests/lib/peers.sh"
: "${SPOOL:=$T/spool}"
: "${CONF:=$T/mailhook.conf}"
export MAILHOOK_SPOOL="$SPOOL" MAILHOOK_CONF="$CONF"

delivery_require() {
  local why
  why=$("$MAILHOOK" -e 'for _, m in ipairs{"mailhook.spool", "mailhook.smtp", "mailhook.settings"} do
          local ok = pcall(require, m) if not ok then io.write(m, " ") end end' 2>&1)
  if [ -n "$why" ]; then
    echo "Bail out! cannot load $why"   # a broken module must fail the suite, not skip it
    exit 1
  fi
}

conf_for() {   # defaults first; a KEY=VALUE given replaces the default of KEY
  local port=$1; shift
  local -A kv=([enabled]=true [server]=127.0.0.1 [port]=$port [tls]=none [tls_required]=false
               [from]=app@example.com [retry_interval]=1 [retry_max]=2 [connect_timeout]=2)
  local a k
  for a in "$@"; do kv[${a%%=*}]=${a#*=}; done
  local args=()
  for k in "${!kv[@]}"; do args+=("$k=${kv[$k]}"); done
  rm -f "$CONF"
  "$MAILHOOK" update "${args[@]}" >/dev/null
}

peer_start() {
  local port=$1 dir=$2; shift 2
  mkdir -p "$dir"
  start_smtpd PEER --port "$port" --maildir "$dir" --index "$dir/log" --by-local-part "$@"
}
# delivery_peer [KEY=VALUE ...]: peer_start on a free port ($PORT, messages in $T/peer; a
# bail-out when it does not start), conf_for it (the KEY=VALUE given), the spool folders made
delivery_peer() {
  PORT=$(free_port)
  peer_start "$PORT" "$T/peer" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
  conf_for "$PORT" "$@"
  spool_make
}
peer_stop() { [ -n "${PEER_PID:-}" ] && stop_peer PEER; PEER_PID=; }

# enqueue N [FROM [RCPT...]]: one runtime process queues N messages through sp:enqueue.
ENQ_SEQ=0
enqueue() {
  local n=$1 from=${2:-app@example.com}; shift; [ $# -gt 0 ] && shift
  local rcpts="$*"; [ -z "$rcpts" ] && rcpts="ok@example.net"
  "$MAILHOOK" -e '
    local n, first, from, rcpts = ...
    n, first = tonumber(n), tonumber(first)
    local to = {} for r in rcpts:gmatch("%S+") do to[#to + 1] = r end
    local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL"))
    for i = first, first + n - 1 do
      local bytes = "From: " .. from .. "\r\nTo: " .. table.concat(to, ", ") .. "\r\nSubject: msg " .. i ..
        "\r\nMessage-ID: <" .. i .. "@test>\r\nDate: Fri, 27 Nov 2026 06:00:00 +0000\r\n\r\nbody " .. i .. "\r\n"
      local id, err = sp:enqueue(bytes, {from = from, to = to})
      if not id then io.stderr:write("enqueue: ", tostring(err), "\n") os.exit(1) end
      print(id)
    end' "$n" $((ENQ_SEQ + 1)) "$from" "$rcpts"
  ENQ_SEQ=$((ENQ_SEQ + n))
}

enqueue_file() {
  local files=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do files+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  local from=${1:-a@example.com}; [ $# -gt 0 ] && shift
  local rcpts="$*"; [ -z "$rcpts" ] && rcpts="ok@example.net"
  "$MAILHOOK" -e '
    local from, rcpts = ...
    local to = {} for r in rcpts:gmatch("%S+") do to[#to + 1] = r end
    local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL"))
    for i = 3, select("#", ...) do
      local f = assert(io.open((select(i, ...)), "rb")); local bytes = f:read("a"); f:close()
      print(assert(sp:enqueue(bytes, { from = from, to = to })))
    end' "$from" "$rcpts" "${files[@]}"
}

TXN='expect ^MAIL FROM:
send 250 2.1.0 ok
expect ^RCPT TO:
send 250 2.1.5 ok
expect ^DATA
send 354 go on'

SVC=
svc_start() {
  MAILHOOK_LOG_LEVEL=${SVC_LOG_LEVEL:-info} "$MAILHOOK" run "$@" >>"$T/svc.log" 2>&1 &
  SVC=$!
  on_exit "kill -9 $SVC"
}
# svc_stop: SIGTERM, the service's exit status (124: it did not end within 30 s, killed)
svc_stop() { [ -n "$SVC" ] || return 0; term_wait "$SVC"; local rc=$?; SVC=; return $rc; }

pickup_count() { find "$SPOOL/pickup" -maxdepth 1 -type f -name '*.eml' 2>/dev/null | wc -l; }
failed_count() { find "$SPOOL/failed" -maxdepth 1 -type f -name '*.eml' 2>/dev/null | wc -l; }
received_count() { [ -f "$1/log" ] && wc -l < "$1/log" || echo 0; }
pickup_empty() { [ "$(pickup_count)" = 0 ]; }
# seq_of: the running service's status.json write count (it grows when the service answers a look)
seq_of() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("seq", 0))' "$SPOOL/status.json"; }
received_at_least() { [ "$(received_count "$1")" -ge "$2" ]; }
# The Message-IDs the peer accepted, in arrival order, one a line.
received_ids() { [ -f "$1/log" ] && awk '{print $4}' "$1/log"; }

# service_delivering: a peer on a free PORT ($T/peer), the settings for it, and the
# service started (svc_start) with one message delivered: two checks, "the service
# started" and "it delivers".
service_delivering() {
  PORT=$(free_port)
  conf_for "$PORT"
  peer_start "$PORT" "$T/peer"
  svc_start
  wait_for 10 grep -q "delivering" "$T/svc.log"; ok $? "the service started"
  enqueue 1 >/dev/null
  wait_for 10 received_at_least "$T/peer" 1; ok $? "it delivers"
}
