# tests/peers/delivery-lib.sh — helpers for tests/integration/delivery-*.sh (sourced
# after tests/lib/tap.sh): settings, spool, a real SMTP peer, the service.
#
#   delivery_require                 bail out (a failure, never a skip) unless spool, smtp, settings load
#   free_port                        a free TCP port on 127.0.0.1
#   conf_for PORT [KEY=VALUE ...]    a fresh $T/mailhook.conf by `mailhook update` (plain, no auth)
#   peer_start PORT DIR [ARGS]       start tests/peers/delivery-smtpd.py; waits until it listens
#   peer_stop                        stop it
#   enqueue N [FROM [RCPT...]]       queue N messages (Message-ID <i@test>, Subject "msg i")
#   svc_start [ARGS]                 `mailhook run` in the background, pid in $SVC (log $T/svc.log,
#                                    level $SVC_LOG_LEVEL, default info)
#   pickup_count, received_count     files in pickup/, messages the peer accepted
: "${SPOOL:=$T/spool}"
: "${CONF:=$T/mailhook.conf}"
export MAILHOOK_SPOOL="$SPOOL" MAILHOOK_CONF="$CONF"
PY=/usr/bin/python3

delivery_require() {
  local why
  why=$("$MAILHOOK" -e 'for _, m in ipairs{"mailhook.spool", "mailhook.smtp", "mailhook.settings"} do
          local ok = pcall(require, m) if not ok then io.write(m, " ") end end' 2>&1)
  if [ -n "$why" ]; then
    echo "Bail out! cannot load $why"   # a broken module must fail the suite, not skip it
    exit 1
  fi
}

free_port() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
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

PEER=
peer_start() {
  local port=$1 dir=$2; shift 2
  rm -f "$dir/ready"
  $PY "$ROOT/tests/peers/delivery-smtpd.py" --port "$port" --out "$dir" "$@" >"$T/peer.log" 2>&1 &
  PEER=$!
  on_exit "kill $PEER"
  wait_for 10 test -e "$dir/ready"
}
peer_stop() { [ -n "$PEER" ] && kill "$PEER" 2>/dev/null; wait "$PEER" 2>/dev/null; PEER=; }

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

SVC=
svc_start() {
  MAILHOOK_LOG_LEVEL=${SVC_LOG_LEVEL:-info} "$MAILHOOK" run "$@" >>"$T/svc.log" 2>&1 &
  SVC=$!
  on_exit "kill -9 $SVC"
}
svc_stop() { [ -n "$SVC" ] && kill -TERM "$SVC" 2>/dev/null; wait "$SVC" 2>/dev/null; local rc=$?; SVC=; return $rc; }

pickup_count() { find "$SPOOL/pickup" -maxdepth 1 -type f -name '*.eml' 2>/dev/null | wc -l; }
failed_count() { find "$SPOOL/failed" -maxdepth 1 -type f -name '*.eml' 2>/dev/null | wc -l; }
received_count() { [ -f "$1/log" ] && wc -l < "$1/log" || echo 0; }
pickup_empty() { [ "$(pickup_count)" = 0 ]; }
received_at_least() { [ "$(received_count "$1")" -ge "$2" ]; }
# The Message-IDs the peer accepted, in arrival order, one a line.
received_ids() { [ -f "$1/log" ] && awk '{print $4}' "$1/log"; }
