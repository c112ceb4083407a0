# `mailhook status [--json]` (issue 15): the service (pid, since), the settings,
# the connection (connected / waiting to retry since T, the last error with its
# stage and the server's reply, the next attempt), the queue, the counters since
# start; exit 0 only while mail flows.  It asks the running service (SIGUSR2, a
# file written by rename) and reads the spool itself; it never signals a lock
# holder that is not a mailhook service, and says so when the service does not
# answer.  Real servers: the delivery peer and aiosmtpd with AUTH.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
st() { OUT=$("$MAILHOOK" status "$@" 2>&1); RC=$?; }

PORT=$(free_port)
conf_for "$PORT"
make_certs_bg "$T/certs"   # (for the authentication failure near the end: openssl runs meanwhile)

# --- no service
mkdir -p "$SPOOL"
spool_make
st
is "$RC" 1 "no service: exit 1"
like "$OUT" "^mail is NOT flowing: no service is running on this spool" "says so first"
like "$OUT" "settings +ready" "the settings are still checked"
st --json
is "$RC" 1 "--json: the same exit status"
is "$(echo "$OUT" | J 'd["service"]["running"]')" false "service.running false"
is "$(echo "$OUT" | J 'd["flowing"]')" false "flowing false"
# a user who may not look into the spool (a monitoring agent): said so, not "no spool"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  NB=$(mailhook_for_others "$T/others"); chmod 644 "$MAILHOOK_CONF"; chmod 700 "$SPOOL"
  out=$(cd / && env -u LD_LIBRARY_PATH setpriv --reuid=nobody --regid=nogroup --clear-groups "$NB" status 2>&1); rc=$?
  is "$rc" 1 "status as nobody, the spool 0700: exit 1"
  like "$out" "this user \(nobody\) cannot look into the spool $SPOOL \(mode 0700, root's\): run .mailhook status. as root" \
    "says why ($out)"
  out=$(cd / && env -u LD_LIBRARY_PATH setpriv --reuid=nobody --regid=nogroup --clear-groups "$NB" run 2>&1); rc=$?
  is "$rc" 1 "run as nobody on root's spool: exit 1"
  is "$(printf '%s\n' "$out" | grep -c "spool $SPOOL: spool")" 0 "the folder named once"
  like "$out" "Permission denied \(this runs as nobody, who must own the spool and its folders: chown -R nobody $SPOOL\)" \
    "naming who it runs as and the fix ($out)"
  # a message its owner cannot read (mode 000): listed with why, not taken for delivered
  mkdir -p "$T/nbspool" && chown nobody "$T/nbspool" && chmod 700 "$T/nbspool"
  nb() { (cd / && env -u LD_LIBRARY_PATH setpriv --reuid=nobody --regid=nogroup --clear-groups "$NB" -s "$T/nbspool" "$@"); }
  id=$(echo x | nb enqueue --to n@example.com --subject NB 2>/dev/null)
  chmod 000 "$T/nbspool/pickup/$id.eml"
  out=$(nb queue 2>&1)
  like "$out" "$id .* cannot be read: Permission de" "mailhook queue lists it, with why ($out)"
  like "$(nb queue --json 2>&1)" "cannot be read: Permission denied \(pickup/$id.eml\)" "the whole reason in --json"
  like "$(nb queue --json 2>&1)" "\"id\":\"$id\"" "--json too"
  like "$(nb sendmail -bp 2>&1)" "$id" "and mailq (they said the queue was empty)"
else
  ok 0 "# SKIP needs root"; ok 0 "# SKIP needs root"; ok 0 "# SKIP"; ok 0 "# SKIP"; ok 0 "# SKIP"
  ok 0 "# SKIP"; ok 0 "# SKIP"; ok 0 "# SKIP"; ok 0 "# SKIP"
fi

# files set aside in corrupt/ are never sent: the report names them (they were nowhere in it)
printf 'garbage\n' > "$SPOOL/corrupt/000661f6ae5c87ed.eml"; printf 'x\n' > "$SPOOL/corrupt/maildrop.x.y"
st
like "$OUT" "2 files in $SPOOL/corrupt/: set aside as unusable, never sent" "corrupt/ named, with its count"
st --json
is "$(echo "$OUT" | J 'd["queue"]["corrupt"]')" 2 "--json: queue.corrupt"
like "$("$MAILHOOK" queue)" "2 files in $SPOOL/corrupt/: set aside as unusable, never sent" "mailhook queue names them too"
rm -f "$SPOOL"/corrupt/*

# --- running, server up: flowing; counters; the pid and since
peer_start "$PORT" "$T/peer"
svc_start
wait_for 10 test -e "$SPOOL/status.json"; ok $? "the service writes SPOOL/status.json"
# nothing sent yet: not "mail is flowing" (the server may be wrong), said as untried
st
is "$RC" 0 "started, nothing queued: exit 0 (nothing waits)"
like "$OUT" "^nothing to send: the server has not been tried since the service started" "said as untried: $OUT"
st --json
like "$OUT" '"untried":true' "--json: untried"
enqueue 3 >/dev/null
wait_for 10 received_at_least "$T/peer" 3; ok $? "3 delivered"
wait_for 5 pickup_empty
st
is "$RC" 0 "running and the server answers: exit 0"
like "$OUT" "^mail is flowing" "mail is flowing"
unlike "$OUT" "not been tried" "tried now: not untried"
like "$OUT" "service +running, pid $SVC, since " "the service's pid and start"
like "$OUT" "delivered 3, deferred 0, failed 0" "counters since start"
like "$OUT" "last success +[0-9-]+ [0-9:]+ \([0-9]+s ago\)" "the last success"
like "$OUT" "queue +0 messages in pickup/" "an empty queue"
st --json
is "$(echo "$OUT" | J 'd["service"]["pid"]')" "$SVC" "--json: pid"
is "$(echo "$OUT" | J 'd["service"]["answered"]')" true "the service answered the signal"
is "$(echo "$OUT" | J 'd["counters"]["delivered"]')" 3 "--json: delivered"
kill -0 "$SVC"; ok $? "the service is alive after being asked"

# --- the server goes away: waiting to retry, since when, the error and the next attempt
peer_stop
enqueue 2 >/dev/null
wait_for 15 grep -q "unreachable" "$T/svc.log"; ok $? "the service sees the outage"
wait_for 5 test -e "$SPOOL/outage"; ok $? "and records it in SPOOL/outage"
st
like "$OUT" "outage +since [0-9-]+ [0-9:]+ \([0-9]+s\): connect: .*refused" \
  "the recorded outage (SPOOL/outage, as mailhook queue shows it): since, how long, why"
is "$RC" 1 "server down: exit 1"
like "$OUT" "NOT flowing: the server cannot be reached: connect: " "why, with the stage"
like "$OUT" "connection +waiting to retry since [0-9-]+ [0-9:]+ \([0-9]+s\): connect: .*refused" \
  "waiting to retry since T with the error"
like "$OUT" "next attempt +[0-9-]+ [0-9:]+ \(in [0-9]+s\)" "the next attempt"
like "$OUT" "queue +2 messages in pickup/, oldest [0-9]+s" "the queue depth and its oldest"
st --json
is "$(echo "$OUT" | J 'd["connection"]["state"]')" waiting-retry "--json: state waiting-retry"
is "$(echo "$OUT" | J 'd["connection"]["outage"]["stage"]')" connect "outage stage"
is "$(echo "$OUT" | J 'd["queue"]["pickup"]')" 2 "queue depth"
like "$(echo "$OUT" | J 'd["outage"]["error"]')" "^connect: .*refused" "--json: outage.error, with the stage"
is "$(echo "$OUT" | J 'd["outage"]["since"]')" "$(sed -n 's/^since //p' "$SPOOL/outage")" "outage.since: the file's"
is "$(echo "$OUT" | J 'type(d["outage"]["age"]).__name__ + str(d["outage"]["age"] >= 0)')" intTrue "outage.age: seconds"
since1=$(echo "$OUT" | J 'd["connection"]["outage"]["since"]')
sleep 2.5    # two retry intervals: the outage's start must not move with each attempt
st --json
is "$(echo "$OUT" | J 'd["connection"]["outage"]["since"]')" "$since1" "the outage keeps its start across retries"
peer_start "$PORT" "$T/peer"
wait_for 15 pickup_empty; ok $? "the server is back: the queue drains"
st
is "$RC" 0 "flowing again: exit 0"
unlike "$OUT" "outage" "the outage is gone from the text"
is "$("$MAILHOOK" status --json | J '"outage" in d')" false "and from --json"
like "$OUT" "last error +.* at connect: " "the last error is kept for the record"

# --- settings disabled in the file, not reloaded yet; then reloaded
"$MAILHOOK" update enabled=false >/dev/null
st
is "$RC" 1 "settings disabled in the file: exit 1"
like "$OUT" "^mail is flowing with the settings the service loaded before, but the settings file is not ready: outgoing mail is disabled \(mailhook update enabled=true\); a restart or a reload \(SIGHUP\) would stop delivery" \
  "naming the setting, and that the service still delivers (it said NOT flowing)"
is "$("$MAILHOOK" status --json | J 'd["old_settings"]')" true "old_settings in --json"
kill -HUP "$SVC"
wait_for 5 grep -q "paused" "$T/svc.log"
st
like "$OUT" "connection +paused: outgoing mail is disabled" "after SIGHUP: delivery paused"
"$MAILHOOK" update enabled=true >/dev/null
# (counted before the signal: the reload above, to enabled=false, logged "settings
# reloaded" too, and a look for the line found that one before this reload)
reloaded_past() { [ "$(grep -c "settings reloaded" "$T/svc.log")" -gt "$1" ]; }
n=$(grep -c "settings reloaded" "$T/svc.log")
kill -HUP "$SVC"
wait_for 5 reloaded_past "$n"

# --- a settings change saved and not reloaded: named (status said only "flowing"), until SIGHUP
st
unlike "$OUT" "changed since the service loaded them" "reloaded: nothing to say"
"$MAILHOOK" update retry_interval=2 >/dev/null
st
like "$OUT" "changed since the service loaded them: it still uses the old ones until reloaded \(systemctl reload mailhook, or kill -HUP $SVC\)" \
  "an update not reloaded yet is named, with how to reload"
is "$("$MAILHOOK" status --json | J 'd["service"]["settings_changed"]')" true "and in --json"
n=$(grep -c "settings reloaded" "$T/svc.log")
kill -HUP "$SVC"
wait_for 5 reloaded_past "$n"   # (a `test "$(grep -c ...)"` was counted once, before the wait)
st
unlike "$OUT" "changed since" "after SIGHUP: no longer"

# --- a service that does not answer (stopped): said, bounded by --timeout
kill -STOP "$SVC"
t0=$(date +%s%N)
st --timeout 1
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill -CONT "$SVC"
is "$RC" 1 "a service that does not answer: exit 1"
like "$OUT" "^mail is NOT flowing: the service \(pid $SVC\) did not answer within 1 s" "said so first"
like "$OUT" "last state from " "with the time of its last known state"
[ "$ms" -lt 8000 ]; ok $? "status returned (${ms} ms; --timeout 1)"
svc_stop

# --- a crashed service: not running, its last state named
svc_start
# (its own status.json: the stopped service's file was there already)
wait_for 10 grep -q "\"pid\":$SVC[,}]" "$SPOOL/status.json"
wait_for 5 "$MAILHOOK" status
pid=$SVC
kill -9 "$SVC"; wait "$SVC" 2>/dev/null; SVC=
st
is "$RC" 1 "after a crash: exit 1"
like "$OUT" "service +not running \(pid $pid last seen at " "not running, the pid and when it was last seen"

# --- a lock holder that is not a mailhook service is never signalled
"$PY" -c 'import fcntl, sys, time
f = open(sys.argv[1], "a"); fcntl.flock(f, fcntl.LOCK_EX); print("locked", flush=True); time.sleep(60)' \
  "$SPOOL/lock" > "$T/flock.out" &
FL=$!
on_exit "kill $FL"
wait_for 5 grep -q locked "$T/flock.out"
st
is "$RC" 1 "a foreign lock holder: exit 1"
like "$OUT" "wrote no status file" "it is not asked (a signal could kill it)"
kill -0 "$FL"; ok $? "and it is still alive"
kill "$FL"; wait "$FL" 2>/dev/null

# --- an authentication failure: the stage and the server's reply
certs_ready
start_smtpd A --tls starttls --cert "$T/certs/server.crt" --key "$T/certs/server.key" --auth user:right || exit 1
conf_for "$A" tls=starttls tls_ca_file="$T/certs/ca.crt" auth=true username=user password=wrong
svc_start
enqueue 1 >/dev/null
auth_outage() { "$MAILHOOK" status --json | J 'd["connection"]["outage"]["stage"]' | grep -qx auth; }
wait_for 15 auth_outage; ok $? "the service is in an outage at auth"
st
is "$RC" 1 "wrong password: exit 1"
like "$OUT" "connection +waiting to retry since .*: auth: .*535" "waiting, at auth, with the server's 535"
st --json
is "$(echo "$OUT" | J 'd["connection"]["outage"]["reply"]["smtp"]')" 535 "--json: the reply code"
unlike "$OUT" "wrong" "the password is not in the report"
svc_stop

# --- a `mailhook flush` holding the spool (a server that never greets keeps it there):
# said as such by status and by run (they called it "an older mailhook, or another
# program" and advised "use mailhook flush", the very thing holding it)
s=$(fault_script <<'S'
stall
S
)
start_fault F "$s"
conf_for "$F" tls=none command_timeout=20
"$MAILHOOK" flush >/dev/null 2>&1 &
FL=$!
on_exit "kill $FL"
holding() { [ "$(core_lock_holder)" = "$FL" ]; }
core_lock_holder() { "$MAILHOOK" -e 'print(require("mailhook.core").admin.lock_holder(os.getenv("MAILHOOK_SPOOL")) or "")'; }
wait_for 10 holding; ok $? "the flush holds the spool"
st
like "$OUT" "a \`mailhook flush\` \(pid $FL\) holds the spool: it delivers the queue once and ends; wait for it" \
  "status names the flush"
unlike "$OUT" "service +running" "a flush is not listed as a service running"
like "$OUT" "service +not running: a \`mailhook flush\`" "the service row says what holds the spool"
out=$("$MAILHOOK" run 2>&1); rc=$?
is "$rc" 1 "run refuses the held spool"
like "$out" "a \`mailhook flush\` \(pid $FL\) holds the spool" "naming the flush, not advising one"
kill "$FL"; wait "$FL" 2>/dev/null

# the holder's words are its process's own: a control byte in them (an ESC
# sequence for the admin's terminal) is shown escaped
# (its output not the test's: its sleep, left running, held the TAP pipe open, and prove
# waited for it, 30 s; it is ended with its shell)
(exec -a /tmp/mailhook bash -c 'sleep 30; :' a0 "$(printf 'x\033]0;pwn\007evil.lua')") >/dev/null 2>&1 &
HP=$!
wait_for 5 grep -q evil "/proc/$HP/cmdline"
out=$("$MAILHOOK" -e "print((require('mailhook.status').holder($HP)))")
pkill -P "$HP" 2>/dev/null; kill "$HP" 2>/dev/null; wait "$HP" 2>/dev/null
like "$out" 'x\\x1b\]0;pwn\\x07evil\.lua' "the holder's name: control bytes escaped ($out)"
is "$(printf '%s' "$out" | tr -d '[:print:]' | wc -c)" 0 "no control byte left"

# a file where the spool belongs (a -s typo): said so, not "cannot look into
# the spool ... run as root" (root could not either)
: > "$T/notafolder"
out=$("$MAILHOOK" -s "$T/notafolder" status 2>&1); rc=$?
is "$rc" 1 "status on a spool path that is a file: exit 1"
like "$out" "the spool $T/notafolder is not a folder" "said: not a folder"
unlike "$out" "run .mailhook status. as root" "no fix that cannot work"

# a spool folder with nothing in it yet (`make install` makes it 0700 before the
# service first ran): an empty spool, not "this user (root) cannot look into
# the spool ... run as root", which root was told
mkdir -m 700 "$T/fresh"
out=$("$MAILHOOK" -s "$T/fresh" status 2>&1); rc=$?
is "$rc" 1 "status on a spool folder with no pickup/ yet: exit 1"
like "$out" "no spool at $T/fresh \(it has no pickup/ folder yet" "said: no pickup/ yet ($out)"
unlike "$out" "cannot look into" "not a look this user may not take"

done_testing
