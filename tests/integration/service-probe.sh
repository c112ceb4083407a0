# Service probe (an administrator's and systemd's view of `mailhook run`): SIGHUP with a
# settings file made invalid (a syntax error, a bad port, a file that cannot be read) keeps
# the old settings, says why in one log line and keeps delivering; SIGHUP after the fix
# takes the new ones.  `mailhook status` while the server is down says since when and why.
# SIGKILL in the middle of a drain of 500 messages, then a restart: every message, at most
# one duplicate (counted at the server).  SIGTERM while the server stalls on the final dot:
# the session is cut after delivery.STOP_GRACE, exit 0, nothing lost, each message once at
# the next start; the service runs there with a grace of 3 s (the module's field, set before
# `run` starts), and the default grace plus the same slack is checked against the unit's
# TimeoutStopSec (a wait of the real 90 s made this file take two minutes).  pickup/
# removed while it runs: the next message is still delivered.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

service_delivering

# reload_bad DESC: SIGHUP with the current (broken) file; one error line naming why, delivery goes on
# logged_since N REGEX: a line after the first N of the service's log matches
logged_since() { tail -n +$(($1 + 1)) "$T/svc.log" | grep -qE "$2"; }
reload_bad() {
  local desc=$1 want=$2 n0 lines0
  lines0=$(wc -l < "$T/svc.log")
  kill -HUP "$SVC"
  wait_for 10 logged_since "$lines0" "SIGHUP: settings not reloaded"
  ok $? "SIGHUP with $desc: settings not reloaded (logged)"
  local new; new=$(tail -n +$((lines0 + 1)) "$T/svc.log")
  like "$(printf '%s\n' "$new" | grep 'not reloaded')" "$want" "the line says why ($desc)"
  is "$(printf '%s\n' "$new" | grep -c 'not reloaded')" 1 "in one line"
  n0=$(received_count "$T/peer")
  enqueue 1 >/dev/null
  wait_for 10 received_at_least "$T/peer" $((n0 + 1)); ok $? "the old settings keep delivering ($desc)"
  kill -0 "$SVC"; ok $? "the service is still running"
}
cp "$CONF" "$T/good.conf"
printf 'this is not = = a setting\n' >> "$CONF"
reload_bad "a syntax error" "mailhook.conf:[0-9]+: expected"
cp "$T/good.conf" "$CONF"; sed -i 's/^port = .*/port = 99999/' "$CONF"
reload_bad "a bad port" "port"
rm -f "$CONF"; mkdir "$CONF"
reload_bad "a folder in place of the file" "mailhook.conf"
rmdir "$CONF"
reload_bad "no file at all" "mailhook.conf"
# fixed: the new settings are taken (a second server on another port)
PORT2=$(free_port)
start_smtpd P2 --port "$PORT2" --maildir "$T/peer2" --index "$T/peer2/log"
cp "$T/good.conf" "$CONF"; sed -i "s/^port = .*/port = $PORT2/" "$CONF"
lines0=$(wc -l < "$T/svc.log")
kill -HUP "$SVC"
wait_for 10 logged_since "$lines0" "SIGHUP: settings reloaded"
ok $? "SIGHUP after the fix: settings reloaded"
enqueue 1 >/dev/null
wait_for 10 received_at_least "$T/peer2" 1; ok $? "the new settings deliver (to the second server)"
svc_stop; is $? 0 "SIGTERM: exit 0"

# --- status while the server is down: since when and why
stop_peer P2
svc_start
enqueue 2 >/dev/null
wait_for 15 grep -q "unreachable" "$T/svc.log"; ok $? "server down: the service says so"
out=$("$MAILHOOK" status 2>&1); rc=$?
isnt_zero=1; [ "$rc" != 0 ] && isnt_zero=0
ok $isnt_zero "status while the server is down: exit non-zero ($rc)"
like "$out" "since" "status says since when"
like "$out" "refused|connect" "and why"
svc_stop; is $? 0 "SIGTERM while reconnecting: exit 0"

# --- SIGKILL mid-drain of 500, restart: all delivered, at most one duplicate
cp "$T/good.conf" "$CONF"
n0=$(received_count "$T/peer")
enqueue 498 >/dev/null
is "$(pickup_count)" 500 "500 messages queued"
svc_start
wait_for 60 received_at_least "$T/peer" $((n0 + 100)); ok $? "draining"
kill -9 "$SVC"; wait "$SVC" 2>/dev/null; SVC=
diag "killed after $(( $(received_count "$T/peer") - n0 )) received, $(pickup_count) left"
svc_start
wait_for 120 pickup_empty; ok $? "a restart drains the rest"
svc_stop
got=$(( $(received_count "$T/peer") - n0 ))
uniq=$(received_ids "$T/peer" | tail -n "$got" | sort -u | wc -l)
is "$uniq" 500 "every message delivered"
dups=$((got - uniq)); [ "$dups" -le 1 ]; ok $? "at most one duplicate ($dups)"

# --- SIGTERM while the server stalls on the final dot: the unit's TimeoutStopSec=120 is the
# documented bound (systemd SIGKILLs after it); the service cuts the session after
# delivery.STOP_GRACE (90 s), exits 0, and the two messages stay queued.  The bound is
# checked as STOP_GRACE + SLACK below TimeoutStopSec, and the service's stop as taking at
# least its grace and at most grace + SLACK, with a grace of GRACE s (the same code path:
# the module's field read by delivery.new, as console-attack.sh shortens the console's).
SLACK=25 GRACE=3
STOP_GRACE=$("$MAILHOOK" -e 'print(require("mailhook.delivery").STOP_GRACE)')
STOP_SEC=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$ROOT/packaging/mailhook.service.in")
[ -n "$STOP_GRACE" ] && [ -n "$STOP_SEC" ] && [ $((STOP_GRACE + SLACK)) -lt "$STOP_SEC" ]
ok $? "delivery.STOP_GRACE ($STOP_GRACE s) + $SLACK s is below the unit's TimeoutStopSec ($STOP_SEC s)"
svc_start_grace() {
  MAILHOOK_LOG_LEVEL=${SVC_LOG_LEVEL:-info} "$MAILHOOK" -e '
    require("mailhook.delivery").STOP_GRACE = tonumber((...))
    return require("mailhook.cli").main("run")' "$1" >>"$T/svc.log" 2>&1 &
  SVC=$!
  on_exit "kill -9 $SVC"
}
PORT3=$(free_port)
cp "$T/good.conf" "$CONF"; sed -i "s/^port = .*/port = $PORT3/" "$CONF"
start_smtpd P3 --port "$PORT3" --maildir "$T/peer3" --index "$T/peer3/log" --delay-data 600
enqueue 2 >/dev/null
: > "$T/svc.log"
svc_start_grace "$GRACE"
wait_for 30 test -e "$T/peer3/in-data"; ok $? "a message is in flight and the server stalls after the final dot"
t0=$(date +%s%N)
kill -TERM "$SVC"
svc_gone() { ! kill -0 "$SVC" 2>/dev/null; }
wait_for $((GRACE + SLACK)) svc_gone; rc=$?
took=$(( ($(date +%s%N) - t0) / 1000000 ))
ok $rc "SIGTERM: the service exits within its grace + $SLACK s (took $took ms, grace $GRACE s)"
[ "$took" -ge $((GRACE * 1000)) ]; ok $? "and not before the grace (took $took ms, grace $GRACE s)"
svc_stop; is $? 0 "with exit 0"
like "$(grep 'stopping: the server has not finished' "$T/svc.log")" "after $GRACE s; .*stays queued" "one warning says the message in flight stays queued (after the grace)"
unlike "$(cat "$T/svc.log")" " error " "no error line"
is "$(pickup_count)" 2 "both messages are still queued"
stop_peer P3
start_smtpd P4 --port "$PORT3" --maildir "$T/peer4" --index "$T/peer4/log"
svc_start
wait_for 30 pickup_empty; ok $? "the next start delivers them"
svc_stop
is "$(received_ids "$T/peer4" | sort | uniq -c | awk '$1 != 1' | wc -l)" 0 "each once at the next start"

# --- pickup/ removed while the service runs: enqueue makes a new one, and the service
# follows it (runtime/spool.c, "following the folders"; tests/integration/spool-follow.sh
# for the lock file, a moved pickup/ and a moved spool), with one log line.
: > "$T/svc.log"
svc_start
wait_for 10 grep -q "delivering" "$T/svc.log"
rm -rf "$SPOOL/pickup"
enqueue 1 >/dev/null
wait_for 15 received_at_least "$T/peer4" 3
ok $? "after pickup/ was removed, a new message is still delivered"
is "$(grep -c 'pickup/ was removed or replaced' "$T/svc.log")" 1 "one log line says so"
svc_stop
done_testing
