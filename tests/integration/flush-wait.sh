# `mailhook flush` waiting for a service never waits for ever: it ends, or says
# what it waited for and stops (exit 1), whatever the service does.  Each flush
# here runs under `timeout 40`: the old code waited for ever in (a) to (d), and
# the check "ended" failed.
#  (a) the wall clock stepped back between the request and the answer: the
#      answer's TIME is before the request (a stand-in service stamps it an hour
#      back, as a real one does after the step); its TIME was compared with the
#      flush's own clock
#  (b) the service went away and its pid lives on in another process: kill(pid,
#      0) succeeded for ever (the stand-in lets go of the lock and stays)
#  (c) the service stopped (SIGSTOP): no answer, nothing leaves pickup/
#      `sendmail -q` too, which said "stay queued for the next attempt", exit 0
#  (d) the service cannot write its answer (flush.done a folder here; a full or
#      read-only spool stops status.json too, and is (c) to the flush)
#  (g) an answer from the pass before, landing after the flush read the file
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"

PORT=$(free_port)                # nobody listens: every pass ends "server unreachable"
conf_for "$PORT" retry_interval=600 retry_max=600 connect_timeout=2
spool_make
enqueue 1 >/dev/null

# flush_bounded OUT: `mailhook flush` bounded by `timeout 40`; FRC its exit status
# (124: it did not end), its output in OUT, the seconds it took in FSECS
flush_bounded() {
  local t0=$SECONDS
  timeout -k 5 40 "$MAILHOOK" flush >"$1" 2>&1; FRC=$?
  FSECS=$((SECONDS - t0))
}

# A stand-in service: holds SPOOL/lock (flock, as a service does) and answers
# SIGUSR1 as told: "past" writes flush.done with a TIME an hour back; "unlock"
# lets go of the lock and lives on.  Its pid in FAKE.
# (its own output file, made empty before it starts: the wait for "ready" read
# the one before's file, not yet truncated by the new child's redirection, and
# (b)'s flush ran with the lock free, by itself)
fake_service() {
  local out="$T/fake-$1.out"
  : > "$out"
  "$PY" - "$SPOOL" "$1" >"$out" 2>&1 <<'EOF' &
import fcntl, os, signal, sys, time
spool, mode = sys.argv[1], sys.argv[2]
fd = os.open(spool + "/lock", os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0); os.write(fd, b"%d\n" % os.getpid())   # as the service writes its pid there
def answer(text):
    tmp = spool + "/.flush.done.tmp"
    with open(tmp, "w") as f: f.write(text)
    os.rename(tmp, spool + "/flush.done")
def usr1(*_):
    if mode == "past":
        answer("%.6f 1 \n" % (time.time() - 3600))
    elif mode == "stale":
        # the pass before ends as the signal comes: its answer says it covers
        # requests asked up to 5 s ago (CLOCK_MONOTONIC, as mh.monotonic);
        # this request's pass ends 1 s later
        answer("%.6f 1 the previous pass\nasked %.6f\n" % (time.time(), time.monotonic() - 5))
        time.sleep(1)
        answer("%.6f 1 this pass\nasked %.6f\n" % (time.time(), time.monotonic()))
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
signal.signal(signal.SIGUSR1, usr1)
print("ready", flush=True)
end = time.time() + 120
while time.time() < end: time.sleep(0.05)
EOF
  FAKE=$!
  on_exit "kill -9 $FAKE"
  wait_for 10 grep -q ready "$out"
}
fake_stop() { kill -9 "$FAKE" 2>/dev/null; wait "$FAKE" 2>/dev/null; }   # (SIGKILL: a bounded wait)

# (a)
fake_service past; ok $? "(a) the stand-in service holds the lock"
flush_bounded "$T/fa"
isnt_rc() { [ "$1" != 124 ] && [ "$1" != 137 ]; }
isnt_rc "$FRC"; ok $? "(a) clock stepped back: the flush ended (rc $FRC in $FSECS s: $(cat "$T/fa"))"
like "$(cat "$T/fa")" "asked the service \(pid $FAKE\): 0 delivered, 1 deferred, 0 failed, 1 left" \
     "(a) the answer taken: 1 left"
is "$FRC" 1 "(a) exit 1: a message left"
fake_stop

# (b)
fake_service unlock; ok $? "(b) the stand-in service holds the lock"
flush_bounded "$T/fb"
isnt_rc "$FRC"; ok $? "(b) the lock's holder gone, its pid alive: the flush ended (rc $FRC in $FSECS s)"
like "$(cat "$T/fb")" "the service \(pid $FAKE\) went away" "(b) said: the service went away ($(cat "$T/fb"))"
is "$FRC" 1 "(b) exit 1"
fake_stop

# (g) an answer that lands after the flush read flush.done but says it covers
# only requests asked before this one (the pass before ended as the signal
# came): not taken; the old code ended with it (exit 1, messages left, the
# pass that was asked for still to come)
fake_service stale; ok $? "(g) the stand-in service holds the lock"
flush_bounded "$T/fg"
like "$(cat "$T/fg")" "this pass" "(g) the answer to this request taken ($(cat "$T/fg"))"
unlike "$(cat "$T/fg")" "previous pass" "(g) not the one before it"
fake_stop

# (c) a real service, stopped
svc_start
wait_for 10 grep -q "delivering" "$T/svc.log"; ok $? "(c) the service started"
wait_for 10 grep -q '"pid": *'"$SVC" "$SPOOL/status.json"; ok $? "(c) it wrote status.json"
kill -STOP "$SVC"
# (the two at once: each waits its 10 s + 2 s; one after the other was 24 s of the suite)
( t0=$SECONDS; timeout -k 5 40 "$MAILHOOK" sendmail -q >"$T/fq" 2>&1; echo "$? $((SECONDS - t0))" > "$T/fq.rc" ) &
qpid=$!
flush_bounded "$T/fc"
wait "$qpid"                     # (bounded: timeout 40 inside)
read -r QRC QSECS < "$T/fq.rc"
kill -CONT "$SVC"
isnt_rc "$FRC"; ok $? "(c) service stopped: the flush ended (rc $FRC in $FSECS s)"
like "$(cat "$T/fc")" "nothing left the queue for [0-9]+ s and the service \(pid $SVC\) did not answer within 2 s: stopped waiting \(1 message\(s\) still queued" \
     "(c) said what it waited for ($(cat "$T/fc"))"
is "$FRC" 1 "(c) exit 1"
ok $([ "$FSECS" -ge 10 ] && [ "$FSECS" -le 30 ]; echo $?) "(c) after the documented bound, 10 s + 2 s ($FSECS s)"
is "$QRC" 75 "(c) sendmail -q: exit 75, not 'stay queued for the next attempt' and 0 ($QSECS s: $(cat "$T/fq"))"

# (d) the same service, its answer unwritable
rm -f "$SPOOL/flush.done"; mkdir "$SPOOL/flush.done"
flush_bounded "$T/fd"
isnt_rc "$FRC"; ok $? "(d) answer unwritable: the flush ended (rc $FRC in $FSECS s)"
like "$(cat "$T/fd")" "the service \(pid $SVC\) ended its pass but cannot write $SPOOL/flush.done" \
     "(d) said why ($(cat "$T/fd"))"
is "$FRC" 1 "(d) exit 1"
grep -q "cannot write flush.done" "$T/svc.log"; ok $? "(d) the service's log says it too"
rmdir "$SPOOL/flush.done"

# the ordinary case still ends with the service's answer, at once
flush_bounded "$T/fe"
is "$FRC" 1 "(e) a live service that answers: exit 1 (1 left: server unreachable)"
ok $([ "$FSECS" -lt 8 ]; echo $?) "(e) at once, on its answer ($FSECS s: $(cat "$T/fe"))"
svc_stop; ok $? "the service stops"

# (f) a flush asked while another one's pass runs (coalesced), on a message the
# server holds longer than the 10 s without progress: the service answers the
# status request (alive, busy), both flushes wait on and end with the pass
touch "$T/hold"
peer_start "$PORT" "$T/peer" --hold-data "$T/hold" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
: > "$T/svc.log"
svc_start
wait_for 20 test -e "$T/peer/in-data"; ok $? "(f) the server holds the first message's final dot"
timeout -k 5 60 "$MAILHOOK" flush >"$T/ff1" 2>&1 & fl1=$!
wait_for 10 grep -q "flush requested" "$T/svc.log"; ok $? "(f) the first flush asked"
timeout -k 5 60 "$MAILHOOK" flush >"$T/ff2" 2>&1 & fl2=$!
wait_for 10 eval '[ "$(grep -c "flush requested" "$T/svc.log")" = 2 ]'; ok $? "(f) the second asked during the pass"
seq0=$(seq_of)
wait_for 30 eval '[ "$(seq_of)" -gt "$seq0" ]'; ok $? "(f) nothing moved: the service was asked a status, and answered"
rm -f "$T/hold"
wait "$fl1"; r1=$?; wait "$fl2"; r2=$?        # (each under timeout 60)
is "$r1:$r2" "0:0" "(f) both flushes end with the pass, exit 0 ($(tail -1 "$T/ff1"); $(tail -1 "$T/ff2"))" ||
  { sed 's/^/#   ff1: /' "$T/ff1"; sed 's/^/#   ff2: /' "$T/ff2"; grep -E "flush|pass|USR|status" "$T/svc.log" | tail -20 | sed 's/^/#   svc: /'; } >&2
unlike "$(cat "$T/ff1" "$T/ff2")" "stopped waiting" "(f) neither gave up on a live service"
svc_stop; ok $? "the service stops"

done_testing
