# The settings lock (a flock on the settings file's folder, taken by every update)
# held by another process -- a `mailhook update` stuck on a slow disk, a script's
# flock(1), an editor wrapper -- while the console saves.  The Save took it blocking
# on the service's own loop: the whole service froze (no delivery, no console, no
# signal) until the holder let go.  Now it is tried without waiting and again every
# 0.2 s: mail is delivered and other requests answered meanwhile; the Save is made
# once the holder goes, or, after 10 s (console.SETTINGS_LOCK_WAIT), answered 503
# naming the lock, nothing written (docs/console.md).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
command -v flock >/dev/null || { echo "Bail out! flock(1) is needed"; exit 1; }

PORT=$(free_port)
AP=$(free_port)
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
( umask 077; echo "$TOKEN" > "$T/token" )
conf_for "$PORT" admin_listen="127.0.0.1:$AP" admin_token_file="$T/token"
peer_start "$PORT" "$T/peer"
svc_start
up() { curl -s -o /dev/null "http://127.0.0.1:$AP/login"; }
wait_for 10 up; ok $? "the console listens"
api() { curl -s -m 3 -H "Authorization: Bearer $TOKEN" "$@"; }
CONF_DIR=$(dirname "$CONF")

# hold_lock NAME: another process holds the settings folder's lock until killed
hold_lock() {
  # one process (the subshell becomes sleep): killed, the lock goes with it
  ( exec 9<"$CONF_DIR"; flock -x 9; touch "$T/$1.held"; exec sleep 120 ) &
  HOLDER=$!
  on_exit "kill $HOLDER"
  wait_for 5 test -e "$T/$1.held"
}
# save VALUE NAME: a Save of retry_interval=VALUE in the background; answer in $T/NAME.out
save() {
  api -m 30 -o "$T/$2.out" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"changes\": {\"retry_interval\": $1}}" "http://127.0.0.1:$AP/api/settings" > "$T/$2.code" &
  SAVER=$!
}
waits() { [ "$(grep -c 'waits for the settings lock' "$T/svc.log")" -ge "$1" ]; }

hold_lock one; ok $? "another process holds the settings lock"
save 17 one
wait_for 10 waits 1; ok $? "the Save waits for the lock (logged)"
enqueue 1 >/dev/null
wait_for 10 received_at_least "$T/peer" 1; ok $? "a message is delivered while the Save waits"
is "$(api -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AP/api/status")" 200 \
  "another console request is answered while the Save waits"
kill -0 "$SAVER" 2>/dev/null; ok $? "the Save is still waiting"
kill "$HOLDER"; wait "$HOLDER" 2>/dev/null
wait "$SAVER"
is "$(cat "$T/one.code")" 200 "once the holder goes, the Save is made"
grep -Eq '^retry_interval *= *17$' "$CONF"; ok $? "and written"

# The 503 comes after console.SETTINGS_LOCK_WAIT (10 s): the service is started again with
# it at LOCK_WAIT s (the module's field, set before `run` starts, as console-attack.sh
# shortens the console's session times) so the file does not wait the 10 s out.
is "$("$MAILHOOK" -e 'print(require("mailhook.console").SETTINGS_LOCK_WAIT)')" 10 \
  "a Save waits for the settings lock 10 s by default (console.SETTINGS_LOCK_WAIT)"
svc_stop; is $? 0 "stopped, to start again with a shorter lock wait"
LOCK_WAIT=2
MAILHOOK_LOG_LEVEL=info "$MAILHOOK" -e '
  require("mailhook.console").SETTINGS_LOCK_WAIT = tonumber((...))
  return require("mailhook.cli").main("run")' "$LOCK_WAIT" >>"$T/svc.log" 2>&1 &
SVC=$!
on_exit "kill -9 $SVC"
wait_for 10 up; ok $? "the console listens again"
hold_lock two; ok $? "another process holds the lock again, and keeps it"
t0=${EPOCHREALTIME//[!0-9]/}
save 23 two
wait "$SAVER"
ms=$(( (${EPOCHREALTIME//[!0-9]/} - t0) / 1000 ))
is "$(cat "$T/two.code")" 503 "after the lock wait, the Save is answered 503"
[ "$ms" -ge $((LOCK_WAIT * 1000)) ]; ok $? "not before the lock wait ($ms ms, wait $LOCK_WAIT s)"
like "$(cat "$T/two.out")" "settings lock.*$CONF_DIR.*another process" "naming the lock and who may hold it"
grep -Eq '^retry_interval *= *17$' "$CONF"; ok $? "nothing written"
enqueue 1 >/dev/null
wait_for 10 received_at_least "$T/peer" 2; ok $? "delivery went on"
kill "$HOLDER"; wait "$HOLDER" 2>/dev/null

kill -0 "$SVC"; ok $? "the service is still running"
svc_stop; is $? 0 "stopped"
done_testing
