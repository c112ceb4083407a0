# tests/lib/peers.sh — start the real SMTP peers an integration test talks to (sourced
# after tests/lib/tap.sh).  Every peer listens on 127.0.0.1 on a free high port, writes
# under $T, and is killed at exit (on_exit); nothing touches the machine's own MTA.
#
#   start_smtpd VAR [smtpd.py options]   aiosmtpd (tests/peers/smtpd.py); VAR=port,
#                                        VAR_PID, VAR_OUT (its stdout), VAR_ERR
#   start_sink VAR [smtp-sink options]   Postfix's smtp-sink; VAR=port, VAR_PID
#   start_fault VAR SCRIPT [fault.lua options]  scripted peer (tests/peers/fault.lua);
#                                        VAR=port, VAR_PID, VAR_OUT, VAR_REC (bytes received)
#   stop_peer VAR                        SIGTERM the peer and wait for it
#   make_certs DIR                       tests/peers/mkcerts; sets CERT_FP (good leaf sha256)
#   make_certs_bg DIR; certs_ready       the same in the background; certs_ready waits for it
#   write_conf FILE key=value ...        a mailhook settings file, `key = value` lines
#   free_port                            print a free TCP port on 127.0.0.1
#   count_mail DIR                       how many messages a --maildir holds
#   mh_test CONF [ARGS]                  run `mailhook -c CONF test ARGS`: OUT, RC, ERR, ELAPSED_MS
#   mh_test_bg KEY CONF [ARGS]; mh_test_wait KEY   the same in the background, then its results
#   todo_ok STATUS DESC REASON           a TAP TODO test (a known gap, reported, not failing)
#   need_engine                          bail out (a failure) when `mailhook test` does not exist
#   ilike GOT REGEX DESC                 like, ignoring case
: "${ROOT:?source tests/lib/tap.sh first}"
PEERS=$ROOT/tests/peers
PY=/usr/bin/python3                    # Debian's interpreter: its aiosmtpd, not PATH's python3
# J 'EXPR on d' < JSON: a jq-like check with Debian's python (the JSON as d; a string printed bare)
J() { "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); v=eval(sys.argv[1]); print(json.dumps(v) if not isinstance(v, str) else v)' "$1"; }
SMTP_SINK=$ROOT/.deps/postfix/usr/sbin/smtp-sink
_peer_n=0

# free_port and _port_open run in LuaSocket (fault.lua's): a Lua start costs a few ms,
# Python's 20-40 ms (hundreds of calls across the suite, on a loaded 2-core machine).
free_port() {
  lua5.4 -e 'local s = assert(require("socket").tcp()); assert(s:bind("127.0.0.1", 0))
    local _, port = s:getsockname(); print(port)'
}

# _await_port VAR PID OUT NAME: wait (10 s) for "PORT n" from a peer that may die first.
_await_port() {
  local var=$1 pid=$2 out=$3 name=$4 i
  for i in $(seq 200); do
    if grep -q '^PORT ' "$out" 2>/dev/null; then
      printf -v "$var" '%s' "$(sed -n 's/^PORT //p' "$out" | head -1)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    _tap_pause 0.05   # tests/lib/tap.sh: no process per poll
  done
  echo "# $name did not start:" >&2
  sed 's/^/#   /' "${out%.out}.err" >&2 2>/dev/null
  return 1
}

start_smtpd() {
  local var=$1; shift
  _peer_n=$((_peer_n + 1))
  local out=$T/smtpd-$_peer_n.out
  "$PY" "$PEERS/smtpd.py" --port 0 "$@" >"$out" 2>"${out%.out}.err" &
  local pid=$!
  on_exit "kill $pid; wait $pid"
  printf -v "${var}_PID" '%s' "$pid"
  printf -v "${var}_OUT" '%s' "$out"
  printf -v "${var}_ERR" '%s' "${out%.out}.err"
  _await_port "$var" "$pid" "$out" "smtpd.py $*"
}

start_fault() {
  local var=$1 script=$2; shift 2
  _peer_n=$((_peer_n + 1))
  local out=$T/fault-$_peer_n.out rec=$T/fault-$_peer_n.rec
  : > "$rec"
  lua5.4 "$PEERS/fault.lua" --port 0 --script "$script" --record "$rec" "$@" >"$out" 2>"${out%.out}.err" &
  local pid=$!
  on_exit "kill $pid; wait $pid"
  printf -v "${var}_PID" '%s' "$pid"
  printf -v "${var}_OUT" '%s' "$out"
  printf -v "${var}_REC" '%s' "$rec"
  _await_port "$var" "$pid" "$out" "fault.lua $script"
}

# smtp-sink takes its port on the command line: pick one, start, and wait until it
# accepts; a port taken in between makes it exit, and the next one is tried.
start_sink() {
  local var=$1; shift
  local try port pid user=()
  [ "$(id -u)" = 0 ] && user=(-u nobody)       # smtp-sink refuses to run as root
  [ -x "$SMTP_SINK" ] || { echo "# $SMTP_SINK missing: run scripts/deps" >&2; return 1; }
  for try in 1 2 3; do
    _peer_n=$((_peer_n + 1))
    port=$(free_port)
    "$SMTP_SINK" "${user[@]}" "$@" "127.0.0.1:$port" 64 >"$T/sink-$_peer_n.out" 2>&1 &
    pid=$!
    if wait_for 5 _port_open "$port" && _port_listener_is "$port" "$pid"; then
      on_exit "kill $pid; wait $pid"
      printf -v "$var" '%s' "$port"
      printf -v "${var}_PID" '%s' "$pid"
      return 0
    fi
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  done
  echo "# smtp-sink did not start: $(cat "$T/sink-$_peer_n.out")" >&2
  return 1
}

# _port_listener_is PORT PID: PID holds the socket that listens on 127.0.0.1:PORT (from
# /proc/net/tcp's inode and PID's descriptors).  That something accepts there is not enough:
# another program may have taken the port between free_port and the sink's bind, and the
# sink, still alive for an instant before it gives up, would pass for a started one.
_port_listener_is() {
  local hex inode
  hex=$(printf '%04X' "$1")
  inode=$(awk -v a="0100007F:$hex" '$2 == a && $4 == "0A" { print $10; exit }' /proc/net/tcp)
  [ -n "$inode" ] && ls -l "/proc/$2/fd" 2>/dev/null | grep -q "socket:\[$inode\]"
}

_port_open() {   # _port_open PORT: whether something accepts on 127.0.0.1 PORT (1 s bound)
  case $1 in ''|*[!0-9]*) return 2 ;; esac
  lua5.4 -e "local s = require('socket').tcp(); s:settimeout(1)
    os.exit(s:connect('127.0.0.1', $1) and 0 or 1)"
}

stop_peer() {
  local pid_var=${1}_PID
  local pid=${!pid_var}
  kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  return 0
}

make_certs() {
  CERT_FP=$("$PEERS/mkcerts" "$1") || { echo "# mkcerts failed: $(cat "$1/mkcerts.log")" >&2; return 1; }
}
# make_certs_bg DIR: make_certs in the background (seconds of openssl on a loaded machine)
# while the cases that need no certificate run; certs_ready: waits for it and sets CERT_FP,
# or bails out of the file naming why mkcerts failed.
make_certs_bg() {
  _certs_dir=$1; "$PEERS/mkcerts" "$1" > "$T/.certs-fp" & _certs_pid=$!
  on_exit "kill $_certs_pid"
}
certs_ready() {
  wait "$_certs_pid" || { echo "Bail out! mkcerts failed: $(cat "$_certs_dir/mkcerts.log")"; exit 1; }
  CERT_FP=$(cat "$T/.certs-fp")
}

# write_conf FILE key=value ...: one `key = value` line per key (the settings format:
# `#` comments, server comma-separated, booleans true/false), mode 0600.  A key given
# twice keeps its first place and its last value, so a test passes a base list and
# then its overrides.
write_conf() {
  local file=$1 kv k; shift
  local -A val=(); local order=()
  for kv in "$@"; do
    k=${kv%%=*}
    [ -n "${val[$k]+set}" ] || order+=("$k")
    val[$k]=${kv#*=}
  done
  ( umask 077
    { echo "# written by $(basename "$0")"
      for k in "${order[@]}"; do printf '%s = %s\n' "$k" "${val[$k]}"; done; } > "$file" )
}

# new_conf KEY=VALUE...: a new settings file under $T, the test's BASE array (its common
# keys, when it sets one) then the arguments (write_conf: the last value wins); prints its
# path.  fault_script: a new fault.lua script under $T from stdin; prints its path.  Both
# are called in $(...), so each name comes from mktemp (a counter would not outlive the
# subshell).  Not `conf`/`script`: script(1) runs tests under a terminal.
new_conf() { local f; f=$(mktemp "$T/c.XXXXXX") && write_conf "$f" "${BASE[@]}" "$@" && echo "$f"; }
fault_script() { local f; f=$(mktemp "$T/s.XXXXXX") && cat > "$f" && echo "$f"; }

# ilike GOT REGEX DESC: like, ignoring case (bash's own regex: no process per check;
# `^`/`$` anchor the whole text, not each line).
ilike() {
  local m=1
  shopt -s nocasematch; [[ $1 =~ $2 ]] && m=0; shopt -u nocasematch
  ok "$m" "$3"
  [ "$m" = 0 ] || printf '#   got: %s\n#   want /%s/i\n' "$1" "$2" | head -30
}

# mh_test CONF [ARGS]: `mailhook -c CONF test ARGS` bounded by 60 s; sets OUT (stdout and
# stderr), RC, ERR (the report's "error" lines: the reason, without the generic hints)
# and ELAPSED_MS (how long it took).  The spool is $T/spool, never the repository's.
mh_test() {
  local conf=$1 t0; shift
  t0=${EPOCHREALTIME//[!0-9]/}   # µs, the shell's own clock: no `date` process
  # The test's own spool: `test` remembers servers seen with TLS in SPOOL/state.
  OUT=$(MAILHOOK_SPOOL=$T/spool timeout 60 "$MAILHOOK" -c "$conf" test "$@" 2>&1); RC=$?
  ERR=$(printf '%s\n' "$OUT" | grep -iE '^[[:space:]]*error\b')
  ELAPSED_MS=$(( (${EPOCHREALTIME//[!0-9]/} - t0) / 1000 ))
  if [ -n "${PEERS_DEBUG:-}" ]; then   # PEERS_DEBUG=1 prove -v ...: show every report
    printf '%s\n' "-- mailhook test $* (exit $RC, $ELAPSED_MS ms)" "$OUT" | sed 's/^/#   /'
  fi
}

# mh_test_bg KEY CONF [ARGS]: mh_test in the background, for the cases that wait out a
# timeout: started together, they wait at once.  mh_test_wait KEY: waits for it, then
# sets OUT, RC, ERR and ELAPSED_MS as mh_test does.
declare -gA _MH_BG=()
mh_test_bg() {
  local key=$1; shift
  ( mh_test "$@"; printf '%s\n' "$OUT" > "$T/mh-bg-$key.out"; echo "$RC $ELAPSED_MS" > "$T/mh-bg-$key.rc" ) &
  _MH_BG[$key]=$!
}
mh_test_wait() {
  wait "${_MH_BG[$1]}"
  OUT=$(cat "$T/mh-bg-$1.out"); read -r RC ELAPSED_MS < "$T/mh-bg-$1.rc"
  ERR=$(printf '%s\n' "$OUT" | grep -iE '^[[:space:]]*error\b')
}

# todo_ok STATUS DESC REASON: a TAP TODO test — reported, not failing the suite; for a
# known gap between the contract and the engine (named in REASON).
todo_ok() {
  _tap_n=$((_tap_n + 1))
  if [ "$1" = 0 ]; then echo "ok $_tap_n - $2 # TODO $3"; else echo "not ok $_tap_n - $2 # TODO $3"; fi
}

# need_engine: bail out of the file (a failure, never a skip) when this build has no
# `mailhook test` command; any other outcome, a crash included, lets the tests run
# and fail one by one.
need_engine() {
  local out rc
  write_conf "$T/probe.conf" enabled=true server=127.0.0.1 port="$(free_port)" tls=none tls_required=false \
    from=probe@example.org connect_timeout=2
  out=$(MAILHOOK_SPOOL=$T/spool timeout 20 "$MAILHOOK" -c "$T/probe.conf" test 2>&1); rc=$?
  if [ "$rc" = 2 ] && printf '%s' "$out" | grep -q "unknown command 'test'"; then
    echo "Bail out! mailhook test: unknown command (the engine must be built)"
    exit 1
  fi
}

# need_browser: bail out of the file (a failure, never a skip) without headless
# chromium, its driver or python3-selenium (scripts/deps installs them); the
# console's browser tests (tests/console/*browser*.py) drive them.
need_browser() {
  local f
  for f in /usr/bin/chromium /usr/bin/chromedriver; do
    [ -x "$f" ] || { echo "Bail out! $f missing (scripts/deps installs chromium and chromium-driver)"; exit 1; }
  done
  [ "${1:-}" = --no-selenium ] && return 0
  "$PY" -c 'import selenium' 2>/dev/null || { echo "Bail out! python3-selenium missing (scripts/deps)"; exit 1; }
}

# start_console SERVER_PORT: the console's tests' service: settings for a plain server
# on SERVER_PORT and the console on a free port ($AP), the admin password $ADMIN_PW, the
# service started ($SVC, its log $T/svc.log, killed at exit) and serving the console.
start_console() {
  AP=$(free_port)
  write_conf "$MAILHOOK_CONF" enabled=true server=127.0.0.1 port="$1" tls=none tls_required=false \
    from=app@example.com admin_listen="127.0.0.1:$AP" retry_interval=1
  echo "$ADMIN_PW" | "$MAILHOOK" update admin_password=- >/dev/null; ok $? "admin password set"
  MAILHOOK_LOG_LEVEL=info "$MAILHOOK" run >"$T/svc.log" 2>&1 &
  SVC=$!
  on_exit "kill -9 $SVC"
  wait_for 10 grep -q "console: http://127.0.0.1:$AP" "$T/svc.log"; ok $? "the service serves the console"
}

count_mail() {
  local n=0 f
  for f in "$1"/*.eml; do [ -e "$f" ] && n=$((n + 1)); done
  echo "$n"
}
# mail_count_is DIR N: DIR holds N messages, counted at each call (so `wait_for 5 mail_count_is
# DIR 1` waits; `wait_for 5 test "$(count_mail DIR)" = 1` counted once, before the wait)
mail_count_is() { [ "$(count_mail "$1")" = "$2" ]; }

# plain_smtpd_env: the settings and spool of a sendmail test, in $T (MAILHOOK_CONF,
# MAILHOOK_SPOOL exported), delivering in plain SMTP to an aiosmtpd started as P,
# writing what it gets into $T/mail; from = pbx@example.com.  Bails out if either fails.
plain_smtpd_env() {
  export MAILHOOK_CONF=$T/mailhook.conf MAILHOOK_SPOOL=$T/spool
  start_smtpd P --maildir "$T/mail" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
  "$MAILHOOK" update enabled=true server=127.0.0.1 port="$P" tls=none tls_required=false \
    from=pbx@example.com >/dev/null || { echo "Bail out! update failed"; exit 1; }
}

# flush_next: `mailhook flush` (its output in $T/flush.out, shown when it fails), then the
# next mail plain_smtpd_env's server got (MAILN counts them): E its envelope ("from |
# to..."), M its header block, B its body (CRs removed).
MAILN=0
flush_next() {
  "$MAILHOOK" flush >"$T/flush.out" 2>&1 || diag "flush: $(cat "$T/flush.out")"
  MAILN=$((MAILN + 1))
  local f=$T/mail/$(printf %06d $MAILN)
  E=$("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["from"] + " | " + " ".join(j["to"]))' \
      "$f.json" 2>/dev/null)
  M=$(sed -n '1,/^\r\?$/p' "$f.eml" 2>/dev/null | tr -d '\r')
  B=$(sed '1,/^\r\?$/d' "$f.eml" 2>/dev/null | tr -d '\r')
}
