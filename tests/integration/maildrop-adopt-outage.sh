# The service adopts maildrop/ (a local user's `sendmail`, through mailhook-drop) into
# pickup/ whatever the server does: during an outage, and with mail disabled (enabled =
# false, or settings not ready), as it does when the server answers.  Before, adoption
# ran only in a worker's scan for mail to send, and a worker in an outage waits out its
# retry interval (a new file does not reconnect at once), a disabled one scans nothing:
# a user's drop stayed in maildrop/ for the whole outage (retry_max, minutes), listed
# as "waits for the service", while root's mail of the same minute was queued; once the
# server came back, the user's mail went after every message queued meanwhile.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool"
DOWN=$(free_port)   # nothing listens there: an outage from the first attempt
spool_make
mkdir -m 1730 "$T/spool/maildrop"
drop() {   # NAME: a drop of root's, as mailhook-drop writes it
  printf 'MAILHOOK-DROP 1\nuid 0\ngid 0\npid 1\ntime 1\nto ops@example.net\n\nSubject: %s\n\nbody\n' "$1" \
    > "$T/drop.tmp"
  mv "$T/drop.tmp" "$T/spool/maildrop/$1"   # (whole at once: the service watches maildrop/)
}
# adopted NAME N: NAME left maildrop/, and the log says N drops were queued (an adoption
# renames the file to its new id first: the log names that)
adopted() { [ ! -e "$T/spool/maildrop/$1" ] && [ "$(grep -c "from uid 0 (root) queued as" "$T/run.out")" -ge "$2" ]; }

case_() {   # case_ NAME SETTINGS...: a service with these settings; drops before and after its start
  local name=$1; shift
  write_conf "$MAILHOOK_CONF" "$@"
  : > "$T/run.out"
  drop 00000000000000$name.00000001
  MAILHOOK_LOG_LEVEL=info "$MAILHOOK" run >"$T/run.out" 2>&1 &
  local svc=$!
  wait_for 20 adopted 00000000000000$name.00000001 1
  ok $? "$name: a drop there at the start is adopted ($(tail -3 "$T/run.out" | tr '\n' ' '))"
  drop 00000000000000$name.00000002
  wait_for 20 adopted 00000000000000$name.00000002 2
  ok $? "$name: a drop made while the service runs is adopted"
  is "$(ls -A "$T/spool/maildrop")" "" "$name: maildrop/ is empty"
  kill "$svc"; wait "$svc"
}
case_ 11 enabled=true server=127.0.0.1 port="$DOWN" tls=none tls_required=false from=pbx@example.com \
  retry_interval=60 connect_timeout=2
like "$(cat "$T/run.out")" "unreachable|refused" "(the server was down all along)"
case_ 22 enabled=false server=127.0.0.1 port="$DOWN" tls=none tls_required=false from=pbx@example.com

# The settings unreadable (a folder where the file was: EISDIR even for root): nothing
# is adopted (the sender and names come from them), the log says so once, and the
# service's status lists no stuck file: it listed one named "(settings)", the log
# line's key (no file is at fault; `status` says the settings' error on its own).
write_conf "$MAILHOOK_CONF" enabled=false server=127.0.0.1 port="$DOWN" tls=none tls_required=false from=pbx@example.com
: > "$T/run.out"
MAILHOOK_LOG_LEVEL=info "$MAILHOOK" run >"$T/run.out" 2>&1 &
svc=$!
wait_for 20 grep -q "delivery paused" "$T/run.out"
mv "$MAILHOOK_CONF" "$T/conf.real" && mkdir "$MAILHOOK_CONF"
drop 0000000000000033.00000001
wait_for 20 grep -q "the settings cannot be read" "$T/run.out"
ok $? "unreadable settings: the service says the drop waits for them"
stuck() { /usr/bin/python3 -c 'import json,sys
s=json.load(open(sys.argv[1])); print(" ".join(w["name"] for w in s.get("maildrop_stuck") or []))' "$T/spool/status.json"; }
# (the status file is written at each change of the list: a "(settings)" entry was there
# by the time the log line was)
wait_for 5 eval '[ -n "$(stuck)" ]'
is "$(stuck)" "" "status.json lists no stuck file (no '(settings)')"
rmdir "$MAILHOOK_CONF" && mv "$T/conf.real" "$MAILHOOK_CONF"
kill -HUP "$svc"
wait_for 20 eval '[ ! -e "$T/spool/maildrop/0000000000000033.00000001" ]'
ok $? "the settings back: the file is adopted"
kill "$svc"; wait "$svc"
done_testing
