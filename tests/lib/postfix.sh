# tests/lib/postfix.sh — a private Postfix, unpacked by scripts/deps into .deps/postfix and
# never installed, for the benches (bench/lib.sh sources this file) and the integration
# tests (tests/lib/mta.sh's start_postfix).  Each instance lives in a folder of the caller's:
# its configuration, queue and data there, its smtpd on a free high port of 127.0.0.1, its
# log in DIR/maillog; the machine's mail system (/etc/postfix, port 25, syslog) is never
# touched.  Its master starts as root; it runs as nobody.  Postfix wants three distinct
# identities: mail_owner = nobody, and two names that only its start-up checks read
# (default_privs is for local(8)/pipe(8), setgid_group for postdrop/postqueue's setgid;
# neither is needed when root submits): the base system's `games` user and `users` group,
# which get no access to anything (the queue is nobody's, mode 700).  No account is created.
#
#   pf_ready [PROGRAM...]    0 when a private Postfix can run here (root, its daemons, the
#                            identities), with PROGRAMs of its usr/sbin too; else 1, PF_WHY
#                            saying why.  Puts its libraries on LD_LIBRARY_PATH.
#   pf_conf DIR PORT         DIR's folders, main.cf (main.cf's lines for the caller's role on
#                            stdin, after the common ones) and master.cf, smtpd on
#                            127.0.0.1:PORT.  Run again on the same DIR (a restart), it keeps
#                            the queue.  Every folder above DIR must let nobody through (711).
#   pf_start DIR CPU PORT    pf_conf, then its master in its own session (pinned to CPU
#                            unless CPU is -), returning once its smtpd accepts (20 s bound)
#   pf_stop                  every master pf_start started, with its daemons
PFROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.deps/postfix
PF=$PFROOT/usr/sbin PFD=$PFROOT/usr/lib/postfix/sbin
PF_OWNER=nobody PF_PRIVS=games PF_SGID=users
PF_MASTERS=()

pf_ready() {
  local f
  PF_WHY=""
  [ "$(id -u)" = 0 ] || { PF_WHY="Postfix's master starts as root (run as root)"; return 1; }
  for f in "$PFD"/{master,smtpd,cleanup,qmgr,trivial-rewrite,bounce,discard,smtp,scache,pickup,anvil,postlogd,virtual,tlsmgr} \
           "${@/#/$PFROOT/usr/sbin/}"; do
    [ -x "$f" ] || { PF_WHY="no ${f#"$PFROOT"/} in .deps/postfix (run scripts/deps)"; return 1; }
  done
  if ! getent passwd "$PF_OWNER" "$PF_PRIVS" >/dev/null || ! getent group "$PF_SGID" >/dev/null; then
    PF_WHY="no user $PF_OWNER or $PF_PRIVS, or no group $PF_SGID, for Postfix's identities"; return 1
  fi
  case ":${LD_LIBRARY_PATH:-}:" in
    *":$PFROOT/usr/lib/postfix:"*) ;;
    *) export LD_LIBRARY_PATH="$PFROOT/usr/lib/postfix${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
  esac
}

pf_conf() {
  local d=$1 q
  mkdir -p "$d/etc" "$d/data" "$d/queue/pid"
  for q in active bounce corrupt defer deferred flush hold incoming maildrop private public saved trace; do
    mkdir -p "$d/queue/$q"
  done
  chown -R "$PF_OWNER" "$d/data" "$d/queue"
  chown root "$d/queue" "$d/queue/pid"
  chmod 700 "$d/data" "$d/queue"/*; chmod 755 "$d/queue" "$d/queue/pid"
  : > "$d/etc/dynamicmaps.cf"
  {
    cat <<CF
# A private instance for mailhook's benches and tests (never the machine's own).
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
meta_directory = $d/etc
daemon_directory = $PFD
command_directory = $PFROOT/usr/sbin
shlib_directory = $PFROOT/usr/lib/postfix
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH
export_environment = TZ MAIL_CONFIG LANG LD_LIBRARY_PATH
mail_owner = $PF_OWNER
default_privs = $PF_PRIVS
setgid_group = $PF_SGID
maillog_file = $d/maillog
maillog_file_prefixes = $d
myhostname = pfbench.invalid
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
CF
    cat
  } > "$d/etc/main.cf"
  cat > "$d/etc/master.cf" <<CF
# service     type  private unpriv chroot wakeup maxproc command
127.0.0.1:$2 inet  n       -      n      -      -       smtpd
pickup        unix  n       -      n      60     1       pickup
cleanup       unix  n       -      n      -      0       cleanup
qmgr          unix  n       -      n      300    1       qmgr
rewrite       unix  -       -      n      -      -       trivial-rewrite
bounce        unix  -       -      n      -      0       bounce
defer         unix  -       -      n      -      0       bounce
trace         unix  -       -      n      -      0       bounce
flush         unix  n       -      n      1000?  0       flush
anvil         unix  -       -      n      -      1       anvil
scache        unix  -       -      n      -      1       scache
tlsmgr        unix  -       -      n      1000?  1       tlsmgr
smtp          unix  -       -      n      -      -       smtp
discard       unix  -       -      n      -      -       discard
virtual       unix  -       n      n      -      -       virtual
postlog       unix-dgram n  -      n      -      1       postlogd
CF
  # Postfix reads a file changed in the last second or two only once it has settled (300 ms
  # naps, 2 s at each start): these were written whole, before anything reads them.
  touch -d '-1 minute' "$d/etc/main.cf" "$d/etc/master.cf"
}

pf_start() {
  local d=$1 _ pin=()
  pf_conf "$d" "$3"
  [ "$2" = - ] || pin=(taskset -c "$2")
  "${pin[@]}" setsid "$PFD/master" -d -c "$d/etc" > "$d/master.out" 2>&1 &
  PF_MASTERS+=($!)
  for _ in $(seq 400); do
    (echo > /dev/tcp/127.0.0.1/"$3") 2>/dev/null && return 0
    kill -0 "$!" 2>/dev/null || break
    sleep 0.05
  done
  echo "${B:-postfix}  Postfix in $d did not start: $(tail -2 "$d/maillog" "$d/master.out" 2>/dev/null | tr '\n' ' ')"
  return 1
}

# pf_stop: TERM to each master's whole session (its daemons), then KILL what is left after 5 s.
pf_stop() {
  local p _
  [ ${#PF_MASTERS[@]} = 0 ] && return 0
  for p in "${PF_MASTERS[@]}"; do kill -TERM -- -"$p" 2>/dev/null; done
  for _ in $(seq 100); do
    pgrep -g "$(IFS=,; echo "${PF_MASTERS[*]}")" >/dev/null || break
    sleep 0.05
  done
  for p in "${PF_MASTERS[@]}"; do kill -KILL -- -"$p" 2>/dev/null; done
  PF_MASTERS=()
}
