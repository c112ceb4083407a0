# tests/lib/mta.sh — real Exim 4, OpenSMTPD and Postfix servers for integration tests
# (sourced after tests/lib/tap.sh and tests/lib/peers.sh).  All come from Debian packages
# that scripts/deps unpacks into .deps/ and never installs: each server runs from a
# configuration written into the test's scratch folder, on 127.0.0.1 on a free high port,
# delivers every recipient to a maildir there, and is killed with its whole process tree at
# exit.  The machine's own mail system, /etc and port 25 are never touched; the only system
# change is the servers' system users, created with `useradd --system` when missing
# (Debian-exim; opensmtpd, opensmtpq; Postfix runs as the base system's nobody, creating
# none).
#
#   mta_scenarios FN...        run each scenario function, or, where these servers cannot run
#                              (not root), count each one as a TAP skip with the reason
#   start_exim VAR [options]   Exim 4 (exim -C CONF -bdf); sets VAR (port), VAR_PID, VAR_DIR,
#                              VAR_MAIL (the maildir), VAR_LOG (mainlog), VAR_CONF
#       --port N               this port (a restart keeps its port; default: a free one)
#       --no-sync              smtp_enforce_sync = false (default true: input sent before a
#                              reply is due is a protocol error, 554, and the session ends)
#       --no-pipelining        PIPELINING not advertised (default advertised)
#       --no-chunking          CHUNKING not advertised (default advertised, Exim's default)
#       --no-8bitmime          accept_8bitmime = false: 8BITMIME not advertised
#       --no-smtputf8          SMTPUTF8 not advertised (Exim advertises it by default)
#       --size BYTES           message_size_limit (advertised as SIZE; default 50M)
#       --max-per-conn N       smtp_accept_max_per_connection: the (N+1)th MAIL gets
#                              "421 too many messages in this connection" and the end
#       --accept-max N         smtp_accept_max: connections over N at once get "421 Too
#                              many concurrent SMTP connections" at the greeting
#       --recipients-max N     recipients_max: RCPTs after the Nth of a message get
#                              "452 4.5.3 too many recipients" (RFC 5321 §4.5.3.1.10)
#       --tls CERTDIR          STARTTLS with CERTDIR/server.crt and .key (tests/peers/mkcerts)
#       --auth USER:PASS       AUTH PLAIN and LOGIN, offered only under TLS, required before MAIL
#       --auth-cram USER:PASS  AUTH CRAM-MD5 (Exim's cram_md5 driver), offered with or without
#                              TLS, required before MAIL (PASS: no '{', '}', '$' or ':')
#       --gate N FILE          the RCPTs of a connection after its Nth wait (an ACL `delay`,
#                              output flushed first) until FILE exists: a queue that cannot
#                              drain before a kill (tests/peers/policy-gate.lua's for Postfix)
#       --connect-delay SECS   acl_smtp_connect `delay = SECS`: the greeting comes SECS late,
#                              and input before it is a synchronisation error (554, the end)
#       --reply-rcpt ADDR=REPLY    RCPT TO:<ADDR> answered REPLY ("550 5.1.1 ...", "451 ...")
#       --reply-data SENDER=REPLY  a message from SENDER answered REPLY after its final dot
#       --drop-mail SENDER=REPLY   MAIL FROM:<SENDER> answered REPLY (5xx), then the
#                              connection closed (Exim's `drop` verb), nothing pipelined after
#                              it answered
#       --drop-rcpt ADDR=REPLY     the same at RCPT TO:<ADDR>
#   start_opensmtpd VAR [options]   OpenSMTPD (smtpd -d -f CONF) in its own mount namespace;
#                              sets the same variables (VAR_LOG: its stderr log)
#       --port N, --size BYTES, --reply-rcpt ADDR=REPLY, --reply-data SENDER=REPLY (as above)
#       --gate N FILE          the RCPTs after the Nth wait until FILE exists (a proc-exec
#                              filter, tests/peers/osmtpd-gate.lua; Exim's --gate)
#       --max-mails N          smtp limit max-mails (default OpenSMTPD's own: 100; after it
#                              every MAIL gets "452 4.5.3 ... Too many messages sent")
#       --max-rcpt N           smtp limit max-rcpt (default 1000): RCPTs after the Nth of
#                              a message get "452 4.5.3 Too many recipients"
#   start_postfix VAR [options]   Postfix (its master -d, tests/lib/postfix.sh's private
#                              instance) delivering by virtual(8) to a maildir; sets the same
#                              variables (VAR_LOG: its maillog, VAR_CONF: its main.cf)
#       --port N, --size BYTES, --tls CERTDIR, --reply-rcpt ADDR=REPLY (as above; REPLY
#                              is Postfix's access(5) action, "550 5.1.1 ..." or "450 ...")
#       --no-size-keyword      SIZE not advertised (smtpd_discard_ehlo_keywords): a message
#                              over --size is refused after its data (552 5.3.4)
#       --policy PORT          every RCPT asks the policy service on 127.0.0.1 PORT first
#                              (check_policy_service; start_gate's)
#   start_gate VAR N FILE      tests/peers/policy-gate.lua: a policy service that lets the
#                              first N RCPTs through and holds the rest until FILE exists
#                              (a queue that cannot drain before a stop); VAR=port, VAR_OUT
#   mta_rule_off VAR ADDR      from now on ADDR's --reply-rcpt/--reply-data rule is off: the
#                              server accepts it (Exim reads a switch file per rule;
#                              OpenSMTPD's table is emptied and reloaded with smtpctl;
#                              Postfix's map is emptied and Postfix restarted, queue kept)
#   stop_mta VAR [SIGNAL]      kill the server and its whole process tree (TERM, or KILL to
#                              die mid-session) and wait until every process is gone
#   restart_mta VAR            start it again as it was started: same port, options, spool
#                              (messages it accepted before a kill are delivered) and maildir
#   mta_idle VAR               true when the server holds nothing left to deliver
#   mta_list VAR               maildir.py list: RCPT<TAB>MESSAGE-ID<TAB>SUBJECT<TAB>FILE a copy
#   mta_copies VAR MSGID [RCPT]   how many copies of MSGID (to RCPT) were delivered
#   snap VAR; copies MSGID [RCPT]; copy_of MSGID RCPT   the same from one listing, for many checks
: "${ROOT:?source tests/lib/tap.sh first}"
: "${PEERS:?source tests/lib/peers.sh first}"
MTA_EXIM=$ROOT/.deps/exim4/usr/sbin/exim4
MTA_OSMTPD=$ROOT/.deps/opensmtpd
MAILDIR_PY=$ROOT/tests/peers/maildir.py
. "$ROOT/tests/lib/postfix.sh"   # pf_ready, pf_conf: the private Postfix the benches run too
_mta_n=0

# mta_scenarios FN...: where the servers can run, call each FN (its own TAP tests);
# elsewhere each FN is one skipped test, counted in the plan with the reason.  Root is
# needed for the servers' system users, Exim's -C (Debian's Exim honours an alternate
# configuration with its privileges only for root) and OpenSMTPD's mount namespace.
mta_scenarios() {
  local why="" fn
  [ "$(id -u)" = 0 ] || why="needs root (the servers' system users, Exim's -C, OpenSMTPD's mount namespace)"
  for fn in "$@"; do
    if [ -n "$why" ]; then
      _tap_n=$((_tap_n + 1)); echo "ok $_tap_n # skip $fn: $why"
    else
      local t0; t0=$(date +%s%N)
      "$fn"
      diag "$fn: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    fi
  done
}

# _mta_require: what the servers need besides root; missing pieces are a failure (the
# suite's own set-up, scripts/deps, must provide them), never a skip.
_mta_require() {
  local f
  for f in "$MTA_EXIM" "$MTA_OSMTPD/usr/sbin/smtpd" "$MTA_OSMTPD/usr/libexec/opensmtpd/mail.maildir"; do
    [ -x "$f" ] || { echo "Bail out! $f missing: run scripts/deps"; exit 1; }
  done
  # The servers' users (Exim's receiving side, OpenSMTPD's delivery user) must reach the
  # folders under $T, which mktemp made 0700: let others traverse it (list nothing).
  chmod 711 "$T"
}

# _mta_user NAME HOME: the system user NAME (with its group), created when missing.  Tests
# running in parallel may create users at the same moment: useradd then fails on the lock
# of /etc/passwd, and is tried again until the user exists.
_mta_user() {
  wait_for 20 _mta_useradd "$1" "$2" || { echo "# cannot create the system user $1" >&2; return 1; }
}
_mta_useradd() {
  getent passwd "$1" >/dev/null && return 0
  useradd --system --user-group --no-create-home --home-dir "$2" --shell /usr/sbin/nologin "$1" >/dev/null 2>&1
  getent passwd "$1" >/dev/null
}

# _mta_tree PID: PID's process group and every descendant (a server's forks may start their
# own session: they are found by parentage).
_mta_tree() {
  local pids=" $(pgrep -g "$1" 2>/dev/null | tr '\n' ' ')" frontier=$1 p c
  while [ -n "$frontier" ]; do
    local next=""
    for p in $frontier; do
      for c in $(pgrep -P "$p" 2>/dev/null); do
        case "$pids" in *" $c "*) ;; *) pids="$pids$c "; next="$next $c" ;; esac
      done
    done
    frontier=$next
  done
  case "$pids" in *" $1 "*) ;; *) kill -0 "$1" 2>/dev/null && pids="$pids$1 " ;; esac
  echo $pids
}

# stop_mta VAR [SIGNAL]: SIGNAL (TERM) to the server's whole tree, KILL to whatever is left
# after 5 s, and wait until no process of it remains.
stop_mta() {
  local pid_var=${1}_PID sig=${2:-TERM}
  local pid=${!pid_var} left
  [ -n "$pid" ] || return 0
  # shellcheck disable=SC2046
  kill -"$sig" $(_mta_tree "$pid") 2>/dev/null
  if ! wait_for 5 _mta_gone "$pid"; then
    # shellcheck disable=SC2046
    kill -KILL $(_mta_tree "$pid") 2>/dev/null
    wait_for 5 _mta_gone "$pid"
  fi
  left=$(_mta_live "$pid")
  # shellcheck disable=SC2086
  [ -z "$left" ] || { echo "# $1: processes left after stop:" >&2; ps -o pid,ppid,stat,wchan:24,comm -p "${left// /,}" 2>&1 | sed 's/^/#   /' >&2; }
  printf -v "$pid_var" '%s' ""
  return 0
}
_mta_gone() { [ -z "$(_mta_live "$1")" ]; }
# _mta_live PID: _mta_tree's processes but the zombies.  A zombie holds no socket, file or
# lock, and one whose parent died first (a daemon's forks when the daemon is killed with
# them) waits for pid 1 to reap it, which took 1.5 to 2 s here for every such stop.
_mta_live() {
  local pids; pids=$(_mta_tree "$1")
  [ -n "$pids" ] || return 0
  ps -o pid=,stat= -p "${pids// /,}" 2>/dev/null | awk '$2 !~ /^Z/ { printf "%s ", $1 }'
}

# restart_mta VAR: start_exim/start_opensmtpd again with the arguments it was first given,
# on the same port and in the same folder (spool and maildir kept).
restart_mta() {
  local kind_var=${1}_KIND args_var=${1}_ARGS
  local -a args
  eval "args=(${!args_var})"
  "_start_${!kind_var}" "$1" --reuse "${!1}" "${args[@]}"
}

# mta_kill_restart VAR NAME N DUPS [SIGNAL [OPEN]]: the kill scenario every server shares
# (SIGNAL: KILL by default; TERM is a server's own orderly stop; OPEN: a command run just
# before the restart, to lift what held the queue back, such as start_gate's).  N messages
# are queued, `mailhook run` starts, and once 20 have been sent the server's whole process
# tree gets SIGNAL; the service sees it gone (logs it unreachable) before it is
# restarted, then drains the queue and logs the outage's end.  Nothing may be lost and
# nothing sent twice but the one message in flight; DUPS prints how many messages the
# server accepted more than once (read from its own log: a copy the server itself
# delivers twice after a kill mid-delivery is its doing, not mailhook's).
mta_kill_restart() {
  local var=$1 name=$2 n=$3 dups=$4 sig=${5:-KILL} open=${6:-} svc left list miss dup
  mta_queue kill "$n" a@x.example
  MAILHOOK_LOG_LEVEL=info MAILHOOK_SPOOL=$SPOOL "$MAILHOOK" -c "$CONF" run >"$T/kill.svc.log" 2>&1 &
  svc=$!
  on_exit "kill -9 $svc"
  # The service is stopped (SIGSTOP) while each count is taken, so it cannot run
  # ahead and send the whole queue between a count and the kill on a loaded machine;
  # it stays stopped from the count that sees 20 sent until the server is dead.  Sent,
  # not arrived: the server's own delivery to its maildir lags behind its 250s, and under
  # load the service had sent all 40 by the time 20 had arrived (CI: it then never
  # connected again, so never saw the server gone).  The count reads the delivered
  # journal: a sent message's file stays in pickup/ until the deliverer's next purge.
  _mta_enough() {
    kill -STOP "$svc"
    [ "$(queued_n)" -le $((n - 20)) ] && return 0
    kill -CONT "$svc"; return 1
  }
  wait_for 60 _mta_enough; ok $? "20 messages sent"
  stop_mta "$var" "$sig"
  # dead means its sockets gone too: nothing listening on the port and no session of
  # the service's still held open by the server's side (said, with who holds them, if not)
  wait_for 20 _mta_port_quiet "${!var}" || { diag "$name's port ${!var} still has sockets after the kill:"; _mta_port_sockets "${!var}" | sed 's/^/#   /'; }
  kill -CONT "$svc"
  left=$(queued_n)
  ok "$([ "$left" -gt 0 ] && echo 0 || echo 1)" "$name was stopped (SIG$sig) mid-queue ($left still queued)"
  # waited for, not assumed: a service slow to wake (ASan, a loaded machine) could
  # otherwise reconnect only once the server is back and never see the outage
  if ! wait_for 60 grep -q "server unreachable" "$T/kill.svc.log"; then
    ok 1 "the service logged the server unreachable"
    diag "its log's tail, and the sockets on $name's port ${!var}:"
    tail -5 "$T/kill.svc.log" | sed 's/^/#   /'; _mta_port_sockets "${!var}" | sed 's/^/#   /'
    ps -o pid,stat,wchan:24,comm -p "$svc" 2>&1 | sed 's/^/#   /'
  else
    ok 0 "the service logged the server unreachable"
  fi
  [ -z "$open" ] || eval "$open"
  restart_mta "$var" || { ok 1 "$name restarts"; kill "$svc"; return; }
  # drained: nothing left to send (queued_n; the sent files leave pickup/ only at the
  # deliverer's next purge, up to 30 s later, which this wait used to include)
  _mta_drained() { [ "$(queued_n)" = 0 ]; }
  wait_for 60 _mta_drained; ok $? "the service drained the queue after the restart"
  wait_for 30 mta_idle "$var"
  term_wait "$svc"
  like "$(cat "$T/kill.svc.log")" "server reachable again" "the service logged the outage's end"
  list=$(mta_list "$var")
  miss=$(for i in $(seq "$n"); do printf '%s\n' "$list" | grep -qF "<kill-$i@test>" || echo "$i"; done | tr '\n' ' ')
  is "${miss:-none}" none "no message lost: each is in $name's maildir"
  dup=$("$dups")
  ok "$([ "$dup" -le 1 ] && echo 0 || echo 1)" "$name accepted at most the one message in flight twice ($dup)"
  is "$(failed_n)" 0 "nothing in failed/"
}

# _mta_port_sockets PORT: the TCP sockets on 127.0.0.1 PORT (either end), "STATE LOCAL REMOTE",
# from /proc/net/tcp (no ss: the fresh roots have no iproute2)
_mta_port_sockets() {
  awk -v p="$(printf '%04X' "$1")" 'NR > 1 { split($2, l, ":"); split($3, r, ":")
    if (l[2] == p || r[2] == p) print $4, $2, $3 }' /proc/net/tcp |
    sed 's/^0A /LISTEN /; s/^01 /ESTABLISHED /; s/^06 /TIME_WAIT /; s/^08 /CLOSE_WAIT /'
}
# _mta_port_quiet PORT: no socket a live process holds on PORT's server side: none
# listening, none established or half-closed (a closed one lingers in FIN_WAIT or
# TIME_WAIT, the kernel's alone, while the service is stopped)
_mta_port_quiet() {
  ! _mta_port_sockets "$1" | awk -v p=":$(printf '%04X' "$1")" '
    ($1 == "LISTEN" || $1 == "ESTABLISHED" || $1 == "CLOSE_WAIT") && substr($2, length($2) - 4) == p' | grep -q .
}

mta_list() { local mail=${1}_MAIL; "$PY" "$MAILDIR_PY" list "${!mail}"; }
# snap VAR: VAR's maildir as it is now, listed once (a Python start each: they were most
# of the mta files' time on a loaded machine) for the checks after it: copies, copy_of
snap() { SNAP=$(mta_list "$1"); }
# copies MSGID [RCPT]: how many copies of MSGID (to RCPT) the last snap holds
copies() { printf '%s\n' "$SNAP" | awk -F'\t' -v id="$1" -v r="${2:-}" '$2 == id && (r == "" || $1 == r) { n++ } END { print n + 0 }'; }
# copy_of MSGID RCPT: the maildir file of the last snap holding MSGID's copy for RCPT
copy_of() { printf '%s\n' "$SNAP" | awk -F'\t' -v id="<$1>" -v r="$2" '$2 == id && $1 == r { print $4; exit }'; }
mta_copies() {   # mta_copies VAR MSGID [RCPT]: a snap of its own, the caller's kept
  local SNAP
  snap "$1"; copies "$2" "${3:-}"
}

mta_idle() {
  local kind=${1}_KIND dir=${1}_DIR
  case ${!kind} in
    exim) [ -z "$(find "${!dir}/spool/input" -name '*-H' 2>/dev/null | head -1)" ] ;;
    opensmtpd) [ -z "$(find "${!dir}/spool/queue" "${!dir}/spool/incoming" -type f 2>/dev/null | head -1)" ] ;;
    # (Postfix's queue files, but the unfinished ones a kill left in incoming/: a file is
    # complete, for its queue manager too, once cleanup gave it its owner-execute bit)
    postfix) [ -z "$(find "${!dir}"/queue/{maildrop,incoming,active,deferred} -type f -perm -u+x 2>/dev/null | head -1)" ] ;;
  esac
}

mta_rule_off() {
  local kind=${1}_KIND dir=${1}_DIR pid=${1}_PID f name
  for f in "${!dir}"/rules/*; do
    [ "$(head -1 "$f")" = "$2" ] || continue
    case ${!kind} in
      exim) rm -f "$f" ;;
      opensmtpd)
        : > "$f"; name=$(basename "$f")
        # smtpctl reaches the control socket inside the server's namespace (-r -w: and keeps
        # the server's root, a chroot's included), and insists on running with the queue
        # user's group (the package makes it setgid opensmtpq)
        nsenter -t "${!pid}" -m -r -w setpriv --regid=opensmtpq --clear-groups \
          "$MTA_OSMTPD/usr/sbin/smtpctl" update table "$name" >/dev/null ||
          echo "# smtpctl update table $name failed" >&2 ;;
      # Postfix reads its map when an smtpd starts: emptied, then a restart (queue kept)
      postfix) : > "$f"; stop_mta "$1"; restart_mta "$1" || echo "# postfix did not restart" >&2 ;;
    esac
  done
}

# _mta_launch VAR KIND DIR PORT CMD...: start CMD in its own session (its process group is
# the server's tree) and wait until PORT accepts connections; 1 when it died first (a port
# taken in between: the caller tries another unless the port was fixed).
_mta_launch() {
  local var=$1 kind=$2 dir=$3 port=$4; shift 4
  setsid "$@" >>"$dir/daemon.out" 2>&1 &
  local pid=$!
  disown "$pid"   # no "Killed" notice from bash when a test kills it; bash still reaps it
  on_exit "stop_mta $var KILL"
  printf -v "${var}_PID" '%s' "$pid"
  if wait_for 15 _mta_listening "$pid" "$port" && kill -0 "$pid" 2>/dev/null; then
    printf -v "$var" '%s' "$port"
    return 0
  fi
  stop_mta "$var" KILL
  return 1
}
_mta_listening() { kill -0 "$1" 2>/dev/null || return 0; _port_open "$2"; }

# _mta_start VAR KIND CONF_FN CONF LOG CMD...: CONF_FN DIR PORT OPTIONS... writes the
# configuration (CONF; the server logs to LOG), then CMD is launched; on a port taken in
# between, another is tried (twice) unless the port was fixed.  1 when it did not start.
_mta_start() {
  local var=$1 kind=$2 conf_fn=$3 conf=$4 log=$5 try; shift 5
  for try in 1 2 3; do
    "$conf_fn" "$MTA_DIR" "$MTA_PORT" "${MTA_OPTS[@]}" || return 1
    printf -v "${var}_CONF" '%s' "$conf"
    printf -v "${var}_LOG" '%s' "$log"
    _mta_launch "$var" "$kind" "$MTA_DIR" "$MTA_PORT" "$@" && return 0
    [ -n "$MTA_FIXED" ] && return 1
    MTA_PORT=$(free_port)
  done
  return 1
}

# _mta_common VAR KIND "$@": parse --reuse PORT and --port N; set the folder, the port and
# the variables; leaves the remaining options in MTA_OPTS.
_mta_common() {
  local var=$1 kind=$2; shift 2
  local reuse="" port="" a
  MTA_OPTS=()
  while [ $# -gt 0 ]; do
    case $1 in
      --reuse) reuse=$2; shift 2 ;;
      --port) port=$2; shift 2 ;;
      *) MTA_OPTS+=("$1"); shift ;;
    esac
  done
  MTA_FIRST=""
  if [ -n "$reuse" ]; then
    MTA_DIR=$(eval echo "\$${var}_DIR"); MTA_PORT=$reuse; MTA_FIXED=1
  else
    MTA_FIRST=1
    _mta_n=$((_mta_n + 1))
    MTA_DIR=$T/$kind-$_mta_n; mkdir -p "$MTA_DIR/rules"
    MTA_PORT=${port:-$(free_port)}; MTA_FIXED=$port
    local q=""; for a in "${MTA_OPTS[@]}"; do q="$q $(printf '%q' "$a")"; done
    printf -v "${var}_ARGS" '%s' "$q"
    printf -v "${var}_KIND" '%s' "$kind"
    printf -v "${var}_DIR" '%s' "$MTA_DIR"
    printf -v "${var}_MAIL" '%s' "$MTA_DIR/mail"
  fi
}

start_exim() { _start_exim "$@"; }
_start_exim() {
  local var=$1; shift
  _mta_require
  _mta_user Debian-exim /nonexistent || return 1
  _mta_common "$var" exim "$@"
  local dir=$MTA_DIR
  # Exim may re-execute itself (exim_path) after it dropped to Debian-exim, who may not
  # reach the checkout (a clone in root's 0700 home): it runs from a copy under $T.
  if [ ! -x "$T/exim-bin/exim4" ]; then
    mkdir -p "$T/exim-bin" && cp "$MTA_EXIM" "$T/exim-bin/exim4" && chmod 755 "$T/exim-bin" "$T/exim-bin/exim4"
  fi
  # -bdf: the daemon stays in the foreground (its pid is the tree's root); -q5s: a queue
  # run at start and every 5 s, so messages accepted before a kill are delivered.
  _mta_start "$var" exim _exim_conf "$dir/exim.conf" "$dir/log/mainlog" \
    "$T/exim-bin/exim4" -C "$dir/exim.conf" -bdf -q5s && return 0
  echo "# exim did not start:" >&2
  cat "$dir/daemon.out" "$dir/log/paniclog" 2>/dev/null | tail -20 | sed 's/^/#   /' >&2
  return 1
}

# _exim_conf DIR PORT [options]: DIR/exim.conf for start_exim (owned by root, 0644: Exim
# accepts -C from root only for such a file) and the folders Exim's user writes.
_exim_conf() {
  local dir=$1 port=$2; shift 2
  local sync=true pipe='*' chunk='*' eightbit=true utf8='*' size=50M maxconn=1000 tls="" auth="" rcptmax=0 acceptmax=100
  local cram="" cdelay=""
  local rcpt_acl="" data_acl="" drop_mail="" gate="" n=0 kv addr reply verb
  while [ $# -gt 0 ]; do
    case $1 in
      --no-sync) sync=false ;;
      --no-pipelining) pipe='' ;;
      --no-chunking) chunk='' ;;
      --no-8bitmime) eightbit=false ;;
      --no-smtputf8) utf8='' ;;
      --size) size=$2; shift ;;
      --max-per-conn) maxconn=$2; shift ;;
      --recipients-max) rcptmax=$2; shift ;;
      --accept-max) acceptmax=$2; shift ;;
      --tls) tls=$2; shift ;;
      --auth) auth=$2; shift ;;
      --auth-cram) cram=$2; shift ;;
      --connect-delay) cdelay=$2; shift ;;
      --gate)
        # (a restart keeps the gate: its file exists by then)
        gate="  warn set acl_c0 = \${eval10:0\$acl_c0+1}
  warn condition = \${if and{{>{\$acl_c0}{$2}}{!exists{$3}}}}
       delay = 60s
"
        shift 2 ;;
      --reply-rcpt|--reply-data|--drop-mail|--drop-rcpt)
        kv=$2; addr=${kv%%=*}; reply=${kv#*=}; n=$((n + 1))
        case $reply in 4*) verb=defer ;; *) verb=deny ;; esac
        case $1 in --drop-*) verb=drop ;; esac
        [ -z "$MTA_FIRST" ] || printf '%s\n' "$addr" > "$dir/rules/$n"   # a restart keeps it as it is
        if [ "$1" = --drop-mail ]; then
          drop_mail+="  drop senders = $addr
       condition = \${if exists{$dir/rules/$n}}
       message = $reply
"
        elif [ "$1" = --reply-rcpt ] || [ "$1" = --drop-rcpt ]; then
          rcpt_acl+="  $verb recipients = $addr
         condition = \${if exists{$dir/rules/$n}}
         message = $reply
"
        else
          data_acl+="  $verb senders = $addr
         condition = \${if exists{$dir/rules/$n}}
         message = $reply
"
        fi
        shift ;;
      *) echo "# start_exim: unknown option $1" >&2; return 1 ;;
    esac
    shift
  done
  mkdir -p "$dir/spool" "$dir/log" "$dir/mail"
  chown Debian-exim: "$dir/spool" "$dir/log" "$dir/mail"
  # Exim loads its TLS credentials at start even when it offers no STARTTLS, and without a
  # certificate it generates a self-signed RSA one first (half a second): it gets a small
  # EC one, made once per test file, unless --tls names the test CA's.
  local advertise=""
  if [ -n "$tls" ]; then
    advertise='*'
  else
    tls=$T/exim-selfsigned
    [ -s "$tls/server.crt" ] || { mkdir -p "$tls" && openssl req -x509 -newkey ec \
      -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=exim.test -days 30 \
      -keyout "$tls/server.key" -out "$tls/server.crt" >/dev/null 2>&1; }
  fi
  mkdir -p "$dir/tls"
  cp "$tls/server.crt" "$tls/server.key" "$dir/tls/"
  chown -R Debian-exim: "$dir/tls"; chmod 600 "$dir/tls/server.key"
  local tls_conf="tls_advertise_hosts = $advertise
tls_certificate = $dir/tls/server.crt
tls_privatekey = $dir/tls/server.key"
  local mail_acl="  accept" auths=""
  if [ -n "$auth" ]; then
    local user=${auth%%:*} pass=${auth#*:}
    mail_acl="  deny !authenticated = *
       message = 530 5.7.0 authentication required
  accept"
    auths="plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = \${if and{{eq{\$auth2}{$user}}{eq{\$auth3}{$pass}}}}
  server_set_id = \$auth2
  server_advertise_condition = \${if def:tls_in_cipher}
login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = \${if and{{eq{\$auth1}{$user}}{eq{\$auth2}{$pass}}}}
  server_set_id = \$auth1
  server_advertise_condition = \${if def:tls_in_cipher}"
  fi
  if [ -n "$cram" ]; then
    local cuser=${cram%%:*} cpass=${cram#*:}
    mail_acl="  deny !authenticated = *
       message = 530 5.7.0 authentication required
  accept"
    auths+="
cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = \${if eq{\$auth1}{$cuser}{$cpass}fail}
  server_set_id = \$auth1"
  fi
  local connect_acl=""
  [ -z "$cdelay" ] || connect_acl="acl_smtp_connect = acl_connect"
  ( umask 022
    cat > "$dir/exim.conf" <<EOF
# written by tests/lib/mta.sh for one test: nothing here is the machine's Exim.
exim_path = $T/exim-bin/exim4
primary_hostname = exim.test
spool_directory = $dir/spool
log_file_path = $dir/log/%slog
pid_file_path = $dir/exim.pid
daemon_smtp_ports = $port
local_interfaces = 127.0.0.1
# no DNS or ident look-ups of the client; no environment passed on
host_lookup =
rfc1413_hosts =
keep_environment =
# deliveries run as Exim's user, who owns the maildir (the re-executed delivery process
# has no root anyway: Exim drops it for a -C configuration)
deliver_drop_privilege = true
# every message delivered at once, however many came on the connection (Exim's default
# queues those after the 10th until a queue run)
smtp_accept_queue_per_connection = 0
smtp_accept_max = $acceptmax
smtp_accept_max_per_connection = $maxconn
recipients_max = $rcptmax
smtp_enforce_sync = $sync
pipelining_advertise_hosts = $pipe
chunking_advertise_hosts = $chunk
accept_8bitmime = $eightbit
smtputf8_advertise_hosts = $utf8
message_size_limit = $size
$tls_conf
log_selector = +smtp_protocol_error +smtp_syntax_error +smtp_connection +received_recipients +pipelining
$connect_acl
acl_smtp_mail = acl_mail
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = acl_data

begin acl
acl_connect:
  accept delay = ${cdelay:-0s}
acl_mail:
$drop_mail$mail_acl
acl_rcpt:
$gate$rcpt_acl  accept
acl_data:
$data_acl  accept

begin routers
everyone:
  driver = accept
  transport = maildir

begin transports
# one maildir for every recipient; Envelope-to: names the recipient of each copy
maildir:
  driver = appendfile
  directory = $dir/mail
  maildir_format
  create_directory
  user = Debian-exim
  envelope_to_add
  return_path_add

begin retry
*  *  F,1h,10s

begin authenticators
$auths
EOF
  )
}

start_opensmtpd() { _start_opensmtpd "$@"; }
_start_opensmtpd() {
  local var=$1; shift
  _mta_require
  _mta_user opensmtpd /var/lib/opensmtpd/empty || return 1
  _mta_user opensmtpq /var/lib/opensmtpd/empty || return 1
  _mta_common "$var" opensmtpd "$@"
  local dir=$MTA_DIR
  _mta_start "$var" opensmtpd _osmtpd_conf "$dir/smtpd.conf" "$dir/daemon.out" \
    unshare --mount --propagation unchanged /bin/sh "$dir/ns.sh" && return 0
  echo "# opensmtpd did not start:" >&2
  tail -20 "$dir/daemon.out" 2>/dev/null | sed 's/^/#   /' >&2
  return 1
}

# _osmtpd_conf DIR PORT [options]: DIR/smtpd.conf and DIR/ns.sh, the script that runs
# smtpd in its new mount namespace.  OpenSMTPD's paths are compiled in: its queue
# (/var/spool/smtpd, here DIR/spool bound over it, so a restart finds what it had
# accepted), its chroot (/var/lib/opensmtpd/empty), its control socket (/var/run/smtpd.sock)
# and its delivery agents (/usr/libexec/opensmtpd, here the unpacked package's).  Empty
# tmpfs folders stand over /var/spool, /var/lib and /run inside the namespace only, so
# nothing of the machine's is read or written and two tests never share a socket.
_osmtpd_conf() {
  local dir=$1 port=$2; shift 2
  local size=35M maxmails="" maxrcpt="" filters="" chain="" n=0 kv addr reply phase cond
  while [ $# -gt 0 ]; do
    case $1 in
      --size) size=$2; shift ;;
      --max-mails) maxmails="smtp limit max-mails $2"; shift ;;
      --max-rcpt) maxrcpt="smtp limit max-rcpt $2"; shift ;;
      --gate)
        # run as OpenSMTPD's user: a copy it can read (the checkout may be root's, 0700)
        cp "$ROOT/tests/peers/osmtpd-gate.lua" "$dir/gate.lua"; chmod 644 "$dir/gate.lua"
        filters+="filter \"gate\" proc-exec \"/usr/bin/lua5.4 $dir/gate.lua $2 $3\"
"
        chain+="${chain:+, }\"gate\""
        shift 2 ;;
      --reply-rcpt|--reply-data)
        kv=$2; addr=${kv%%=*}; reply=${kv#*=}; n=$((n + 1))
        if [ "$1" = --reply-rcpt ]; then phase=rcpt-to cond=rcpt-to; else phase=commit cond=mail-from; fi
        [ -z "$MTA_FIRST" ] || printf '%s\n' "$addr" > "$dir/rules/r$n"
        filters+="table r$n file:$dir/rules/r$n
filter \"f$n\" phase $phase match $cond <r$n> reject \"$reply\"
"
        chain+="${chain:+, }\"f$n\""
        shift ;;
      *) echo "# start_opensmtpd: unknown option $1" >&2; return 1 ;;
    esac
    shift
  done
  local nobody; nobody=$(id -u nobody):$(id -g nobody)
  mkdir -p "$dir/spool" "$dir/mail"
  chmod 711 "$dir/spool"; chown nobody "$dir/mail"
  local listen="listen on 127.0.0.1 port $port hostname smtpd.test"
  if [ -n "$chain" ]; then
    filters+="filter \"rules\" chain { $chain }
"
    listen="$listen filter \"rules\""
  fi
  ( umask 022
    cat > "$dir/smtpd.conf" <<EOF
# written by tests/lib/mta.sh for one test: nothing here is the machine's OpenSMTPD.
# Plain SMTP only: Debian 12's OpenSMTPD 6.8 fails every TLS handshake under OpenSSL 3
# ("SSL routines::EVP lib", upstream issues #1171 and #1239).
smtp max-message-size $size
$maxmails
$maxrcpt
$filters
# every recipient is delivered, as one virtual user (the uid of nobody), to one maildir;
# OpenSMTPD's Delivered-To: names the recipient of each copy
table vusers { "@" = "vmail" }
table vuserbase { "vmail" = "$nobody:$dir/mail" }
$listen
action "maildir" maildir "$dir/mail" virtual <vusers> userbase <vuserbase>
match from any for any action "maildir"
EOF
    cat > "$dir/ns.sh" <<EOF
# run by tests/lib/mta.sh as \`unshare --mount sh ns.sh\`: the mounts below exist in this
# namespace only and vanish with its last process.
set -e
# Nothing mounted here may propagate to the machine: every mount becomes private first.
# In a chroot (scripts/fresh-root) / is no mount point and cannot be made private; the
# mounts then stay here only if what we can see is not shared, so we go on only then.
if ! mount --make-rprivate / 2>/dev/null; then
  if grep -q ' shared:' /proc/self/mountinfo; then
    echo "ns.sh: / is not a mount point and shared mounts are visible: nothing mounted" >&2; exit 1
  fi
fi
for d in /var/spool /var/lib /run; do mount -t tmpfs -o mode=0755,size=16m mta-test "\$d"; done
mkdir -p /var/spool/smtpd /var/lib/opensmtpd/empty
mount --bind "$dir/spool" /var/spool/smtpd
mount --bind "$MTA_OSMTPD/usr/libexec" /usr/libexec
exec "$MTA_OSMTPD/usr/sbin/smtpd" -d -f "$dir/smtpd.conf"
EOF
  )
}

start_postfix() { _start_postfix "$@"; }
_start_postfix() {
  local var=$1; shift
  pf_ready || { echo "# postfix cannot run: $PF_WHY" >&2; return 1; }
  chmod 711 "$T"   # Postfix's daemons (nobody) reach their queue and maildir below it
  _mta_common "$var" postfix "$@"
  local dir=$MTA_DIR
  _mta_start "$var" postfix _postfix_conf "$dir/etc/main.cf" "$dir/maillog" \
    "$PFD/master" -d -c "$dir/etc" && return 0
  echo "# postfix did not start:" >&2
  tail -20 "$dir/daemon.out" "$dir/maillog" 2>/dev/null | sed 's/^/#   /' >&2
  return 1
}

# _postfix_conf DIR PORT [options]: tests/lib/postfix.sh's pf_conf with this role: every
# recipient of the x.example domain delivered by virtual(8), as nobody, to the maildir
# DIR/mail (its Delivered-To: names the recipient of each copy; no X-Original-To:); headers
# never rewritten nor completed (local_header_rewrite_clients empty), so what arrived is
# what was sent, under Postfix's Delivered-To: and Received: (maildir.py strip cuts them).
_postfix_conf() {
  local dir=$1 port=$2; shift 2
  local size=52428800 sizekw="" tls="" policy="" n=0 kv addr reply
  while [ $# -gt 0 ]; do
    case $1 in
      --size) size=$2; shift ;;
      --no-size-keyword) sizekw=size ;;
      --tls) tls=$2; shift ;;
      --policy) policy="check_policy_service inet:127.0.0.1:$2, "; shift ;;
      --reply-rcpt)
        kv=$2; addr=${kv%%=*}; reply=${kv#*=}; n=$((n + 1))
        [ -z "$MTA_FIRST" ] || printf '%s\n' "$addr" > "$dir/rules/$n"
        [ "$(head -1 "$dir/rules/$n")" = "$addr" ] && printf '%s %s\n' "$addr" "$reply" >> "$dir/rcpt.map.new"
        shift ;;
      *) echo "# start_postfix: unknown option $1" >&2; return 1 ;;
    esac
    shift
  done
  mkdir -p "$dir/mail"; chown nobody "$dir/mail"
  touch "$dir/rcpt.map.new"; mv "$dir/rcpt.map.new" "$dir/rcpt.map"
  touch -d '-1 minute' "$dir/rcpt.map"   # written whole: no settling wait (pf_conf)
  local tls_conf=""
  if [ -n "$tls" ]; then
    mkdir -p "$dir/tls"; cp "$tls/server.crt" "$tls/server.key" "$dir/tls/"; chmod 600 "$dir/tls/server.key"
    tls_conf="smtpd_tls_security_level = may
smtpd_tls_cert_file = $dir/tls/server.crt
smtpd_tls_key_file = $dir/tls/server.key
smtpd_tls_loglevel = 1
smtpd_tls_received_header = yes"
  fi
  pf_conf "$dir" "$port" <<CF
enable_original_recipient = no
message_size_limit = $size
smtpd_discard_ehlo_keywords = $sizekw
local_header_rewrite_clients =
smtpd_recipient_restrictions = ${policy}check_recipient_access texthash:$dir/rcpt.map, permit_mynetworks, reject
virtual_mailbox_domains = x.example
virtual_mailbox_base = $dir
virtual_mailbox_maps = static:mail/
virtual_mailbox_limit = 0
virtual_uid_maps = static:$(id -u nobody)
virtual_gid_maps = static:$(id -g nobody)
$tls_conf
CF
}

start_gate() {
  local var=$1 n=$2 file=$3
  _peer_n=$((_peer_n + 1))
  local out=$T/gate-$_peer_n.out
  lua5.4 "$PEERS/policy-gate.lua" --port 0 --pass "$n" --open "$file" >"$out" 2>"${out%.out}.err" &
  local pid=$!
  on_exit "kill $pid; wait $pid"
  printf -v "${var}_PID" '%s' "$pid"
  printf -v "${var}_OUT" '%s' "$out"
  _await_port "$var" "$pid" "$out" "policy-gate.lua"
}

# ---- driving mailhook against these servers (tests/integration/mta-*.sh) ----
#   mta_mh NAME PORT [key=value ...]   a fresh spool $T/NAME.spool and settings $T/NAME.conf
#                                      (plain SMTP, retry_interval 1 s unless given); sets
#                                      SPOOL and CONF for the helpers below
#   MH ARGS...                         build/mailhook on that spool with those settings
#   mta_queue TAG N RCPT...            N messages through `mailhook sendmail` (Message-ID
#                                      <TAG-i@test>, Subject "TAG i", a dot-led body line)
#   mta_flush                          `mailhook flush`, bounded: FLUSH_OUT, FLUSH_RC (also
#                                      appended to $T/flush.log)
#   pickup_n / failed_n                messages in pickup/ / failed/
#   spool_file MSGID [pickup|failed]   the spool file holding MSGID
#   mta_once VAR TAG N RCPT...         one TAP test: each of TAG-1..N reached each RCPT
#                                      exactly once (what is missing or doubled is shown)
#   mta_queue_rich; mta_rich_arrived VAR NAME   a message exercising every wire rule and a
#                                      drop-in, queued; then the checks of their arrival
#   mta_flush_all VAR NAME TAG N RCPT... a flush that must deliver everything, and its checks
#   mta_same WANT GOT DESC             one TAP test: the files are equal (and not empty)
#   failed_550_named RCPT REPLY TAG... one TAP test: each TAG-1's failed/ sidecar names
#                                      RCPT and the server's REPLY
mta_mh() {
  local name=$1 port=$2; shift 2
  SPOOL=$T/$name.spool CONF=$T/$name.conf
  # from_rewrite=never: the scenarios key the server's replies on the envelope sender a
  # message was queued with (sendmail -f); the default would send every one as `from`
  write_conf "$CONF" enabled=true server=127.0.0.1 port="$port" tls=none tls_required=false \
    from=app@example.org from_rewrite=never retry_interval=1 retry_max=2 connect_timeout=5 "$@"
}
MH() { MAILHOOK_SPOOL=$SPOOL "$MAILHOOK" -c "$CONF" "$@"; }

mta_queue() {
  local tag=$1 n=$2 i; shift 2
  local to; to=$(printf '%s, ' "$@"); to=${to%, }
  for i in $(seq "$n"); do
    printf 'From: app@example.org\nTo: %s\nSubject: %s %d\nMessage-ID: <%s-%d@test>\n\nbody %s %d\n.leading dot\n' \
      "$to" "$tag" "$i" "$tag" "$i" "$tag" "$i" | MH sendmail -i -f app@example.org "$@" ||
      { echo "# sendmail failed for $tag-$i" >&2; return 1; }
  done
}

mta_flush() {
  FLUSH_OUT=$(MAILHOOK_LOG_LEVEL=info timeout 120 "$MAILHOOK" -c "$CONF" -s "$SPOOL" flush --timeout 90 2>&1)
  FLUSH_RC=$?
  printf '%s\n' "$FLUSH_OUT" >> "$T/flush.log"   # every flush's output, for checks across them
}

pickup_n() { find "$SPOOL/pickup" -maxdepth 1 -name '*.eml' 2>/dev/null | wc -l; }
# queued_n: the messages still to send: pickup/'s files but those the delivered journal
# records (sent, their files removed at the deliverer's next purge: docs/spool.md)
queued_n() {
  find "$SPOOL/pickup" -maxdepth 1 -name '*.eml' -printf '%f\n' 2>/dev/null |
    awk -v j="$SPOOL/delivered" -v o="$SPOOL/delivered.old" '
      BEGIN { while ((getline l < j) > 0) d[l]; while ((getline l < o) > 0) d[l] }
      { sub(/\.eml$/, ""); if (!($0 in d)) n++ } END { print n + 0 }'
}
failed_n() { find "$SPOOL/failed" -maxdepth 1 -name '*.eml' 2>/dev/null | wc -l; }
spool_file() { grep -l -i -m1 "^Message-ID: <$1>" "$SPOOL/${2:-pickup}"/*.eml 2>/dev/null | head -1; }

# mta_queue_rich: a message with everything the wire rules touch (rich-1: folded header,
# Bcc, dot lines, a lone dot, trailing spaces, 8-bit text, an X-Sender line in the body)
# through sendmail -t, and a drop-in (drop-1) whose envelope is its X-Sender/X-Receiver
# lines; rich-1's bytes as they must arrive in $T/rich.want.  mta_rich_arrived VAR NAME:
# the checks of what VAR delivered of them (one TAP test each).
mta_queue_rich() {
  printf '%s\n' 'From: Voicemail <app@example.org>' 'To: a@x.example' 'Cc: b@x.example' \
    'Bcc: hidden@x.example' 'Subject: rich message with a folded' ' header line' \
    'Message-ID: <rich-1@test>' '' 'first line' '.one dot leads' '..two dots lead' '.' \
    'a lone dot above, kept (-i)' 'trailing spaces   ' 'Grüße, 8-bit as queued' \
    'X-Sender: not an envelope line in the body' 'last line' | MH sendmail -t -i
  printf '%s\r\n' 'X-Sender: app@example.org' 'X-Receiver: c@x.example' 'From: app@example.org' \
    'To: not-the-envelope@x.example' 'Subject: drop-in' 'Message-ID: <drop-1@test>' \
    'Date: Fri, 27 Nov 2026 06:00:00 +0000' '' 'dropped in by rename' > "$T/drop.tmp"
  mkdir -p "$SPOOL/pickup" && mv "$T/drop.tmp" "$SPOOL/pickup/app-drop.eml"
  "$PY" "$MAILDIR_PY" wire "$(spool_file rich-1@test)" > "$T/rich.want"
}
mta_rich_arrived() {
  local var=$1 name=$2 r SNAP
  snap "$var"
  for r in a@x.example b@x.example hidden@x.example; do
    is "$(copies '<rich-1@test>' "$r")" 1 "the rich message reached $r once"
  done
  "$PY" "$MAILDIR_PY" strip "$(copy_of rich-1@test hidden@x.example)" > "$T/rich.got"
  mta_same "$T/rich.want" "$T/rich.got" "it arrived as queued (dots unstuffed, 8-bit kept under $name's 8BITMIME)"
  unlike "$(sed -n '1,/^$/p' "$T/rich.got")" "^Bcc:" "no Bcc header reached $name"
  is "$(copies '<drop-1@test>' c@x.example) $(copies '<drop-1@test>' not-the-envelope@x.example)" "1 0" \
    "the drop-in went to its X-Receiver only"
  is "$("$PY" "$MAILDIR_PY" strip "$(copy_of drop-1@test c@x.example)")" "$(printf 'From: app@example.org\nTo: not-the-envelope@x.example\nSubject: drop-in\nMessage-ID: <drop-1@test>\nDate: Fri, 27 Nov 2026 06:00:00 +0000\n\ndropped in by rename')" \
    "the drop-in arrived without its X-Sender/X-Receiver lines"
}
# mta_flush_all VAR NAME TAG N RCPT...: one flush delivers everything queued, the server
# delivers all it accepted, each of TAG-1..N reached each RCPT once, pickup/ and failed/
# are empty (four TAP tests and mta_once's)
mta_flush_all() {
  local var=$1 name=$2; shift 2
  mta_flush
  is "$FLUSH_RC" 0 "one flush delivers everything (${FLUSH_OUT##*$'\n'})"
  wait_for 30 mta_idle "$var"; ok $? "$name delivered all it accepted"
  mta_once "$var" "$@"
  is "$(pickup_n) $(failed_n)" "0 0" "pickup/ and failed/ are empty"
}
# mta_same WANT GOT DESC: one test, the two files are equal and not empty (the diff shown if not)
mta_same() {
  if [ -s "$1" ] && cmp -s "$1" "$2"; then ok 0 "$3"; else ok 1 "$3"; diff "$1" "$2" 2>&1 | head -10 | sed 's/^/#   /'; fi
}

# failed_550_named RCPT REPLY TAG...: one test, each TAG-1's failed/ sidecar names RCPT and REPLY
failed_550_named() {
  local rcpt=$1 reply=$2 m f missing=""; shift 2
  for m in "$@"; do
    f=$(spool_file "$m-1@test" failed)
    { [ -n "$f" ] && grep -q "$rcpt" "${f%.eml}.state" && grep -q "$reply" "${f%.eml}.state"; } || missing="$missing $m"
  done
  is "${missing:-none}" none "each message's refused recipient is named, with its reply, in failed/ ($*)"
}
mta_once() {
  local var=$1 tag=$2 n=$3; shift 3
  local list bad
  list=$(mta_list "$var")
  bad=$(printf '%s\n' "$list" | awk -F'\t' -v tag="$tag" -v n="$n" -v rcpts="$*" '
    BEGIN { split(rcpts, r, " ") }
    { c[$1 " " $2]++ }
    END {
      for (i = 1; i <= n; i++) for (j in r) {
        k = r[j] " <" tag "-" i "@test>"
        if (c[k] != 1) printf "%s: %d copies\n", k, c[k]
      }
    }')
  ok "$([ -z "$bad" ] && echo 0 || echo 1)" "each of $tag-1..$n reached $* exactly once"
  [ -z "$bad" ] || printf '%s\n' "$bad" | head -10 | sed 's/^/#   /'
}
