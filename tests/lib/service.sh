# tests/lib/service.sh — helpers of the service tests (tests/integration/service-*.sh),
# sourced after tests/lib/tap.sh and tests/lib/peers.sh.
#
#   start_unixgram VAR MODE SOCKET [unixgram.py options]
#        tests/peers/unixgram.py bound at SOCKET (a path, or @abstract) in MODE
#        (notify, journal, syslog); VAR_OUT is its JSON-lines record, VAR_PID its pid
#   q FILE PYEXPR     evaluate PYEXPR over `recs` (the JSON records of FILE, a list) and
#                     print the result: q "$N_OUT" 'len(recs)'
#   has FILE PYEXPR   exit 0 when PYEXPR is true (for wait_for)
: "${PEERS:?source tests/lib/peers.sh first}"

start_unixgram() {
  local var=$1 mode=$2 sock=$3; shift 3
  _peer_n=$((_peer_n + 1))
  local out=$T/unixgram-$_peer_n.jsonl log=$T/unixgram-$_peer_n.log
  : > "$out"
  "$PY" "$PEERS/unixgram.py" --mode "$mode" --socket "$sock" --out "$out" "$@" >"$log" 2>&1 &
  local pid=$!
  on_exit "kill $pid; wait $pid"
  printf -v "${var}_PID" '%s' "$pid"
  printf -v "${var}_OUT" '%s' "$out"
  wait_for 10 grep -q '^Bound' "$log" || { echo "# unixgram.py did not start: $(cat "$log")" >&2; return 1; }
}

q() {
  "$PY" -c '
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
r = eval(sys.argv[2])
print(r if not isinstance(r, (list, dict)) else json.dumps(r))' "$1" "$2"
}

has() { [ "$(q "$1" "bool($2)")" = True ]; }
