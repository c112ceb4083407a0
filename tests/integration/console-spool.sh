# The console of a service started on a spool of its own (`mailhook -s DIR run`,
# $MAILHOOK_SPOOL naming another, empty one): the Queue page (/api/queue), its
# outage banner, Retry and Remove, /api/status and /metrics all act on the spool
# the service delivers, with curl as the client.  (The console read the queue,
# the outage and Retry/Remove through mh.queue's default spool, core.paths.spool;
# in `mailhook run` -s sets that too, so this test guards the CLI path and
# tests/lua/test-console.lua the case where they differ, which failed.)
# Real parts: `mailhook run` with its console, a server that refuses
# connections (a closed port), curl.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
command -v curl >/dev/null || { echo "Bail out! curl is needed"; exit 1; }

ADMIN_PW='admin-Spool-Pw-7741'
SVC_SPOOL=$T/service-spool                  # the spool the service delivers (-s)
AP=$(free_port)
conf_for "$(free_port)" admin_listen="127.0.0.1:$AP" retry_interval=30 2>/dev/null
echo "$ADMIN_PW" | "$MAILHOOK" update admin_password=- >/dev/null 2>&1
ok $? "admin password set"
spool_make                         # the default spool ($MAILHOOK_SPOOL): empty
W=$(echo body | "$MAILHOOK" -s "$SVC_SPOOL" enqueue --to x@example.net --subject waiting 2>/dev/null)
D=$(echo body | "$MAILHOOK" -s "$SVC_SPOOL" enqueue --to y@example.net --subject dead 2>/dev/null)
"$MAILHOOK" -s "$SVC_SPOOL" -e 'assert(require("mailhook.queue").spool():fail(..., { reason = "550 5.1.1 no such user" }))' "$D"
ok $? "two messages queued on the service's spool, one moved to failed/"
is "$(ls "$SPOOL/pickup" "$SPOOL/failed" | grep -c eml)" 0 "none in the default spool"

svc_start_on() { MAILHOOK_LOG_LEVEL=info "$MAILHOOK" -s "$SVC_SPOOL" run >>"$T/svc.log" 2>&1 & SVC=$!; on_exit "kill -9 $SVC"; }
svc_start_on
B="http://127.0.0.1:$AP"
up() { curl -s -o /dev/null "$B/api/login"; }
wait_for 10 up; ok $? "the console listens"
# the outage: the service met the closed port (SVC_SPOOL/outage)
wait_for 10 test -f "$SVC_SPOOL/outage"; ok $? "the service met the outage on its spool"

curl -s -c "$T/jar" -H 'Content-Type: application/json' -d "{\"password\":\"$ADMIN_PW\"}" "$B/api/login" > "$T/login.json"
CSRF=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("csrf",""))' "$T/login.json")
[ -n "$CSRF" ]; ok $? "logged in"
j() { "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

Q=$(curl -s -b "$T/jar" "$B/api/queue")
is "$(echo "$Q" | j 'd["total"]')" 1 "/api/queue: the service's pickup/"
is "$(echo "$Q" | j 'd["entries"][0]["id"]')" "$W" "its waiting message"
is "$(echo "$Q" | j 'd["counts"]["failed"]')" 1 "its failed/ counted"
like "$(echo "$Q" | j 'd.get("outage", {}).get("error")')" "^connect: " "the outage banner: the service's outage"
Q=$(curl -s -b "$T/jar" "$B/api/queue?folder=failed")
is "$(echo "$Q" | j 'd["entries"][0]["id"]')" "$D" "its failed/ listed"
S=$(curl -s -b "$T/jar" "$B/api/status")
is "$(echo "$S" | j 'd["queue"]["pickup"]')" 1 "/api/status: the same spool"
like "$(curl -s -b "$T/jar" "$B/metrics")" "mailhook_failed_messages 1" "/metrics: the same spool"

post() { curl -s -o "$T/post.json" -w '%{http_code}' -b "$T/jar" -H 'Content-Type: application/json' \
           -H "X-CSRF-Token: $CSRF" -d "$2" "$B$1"; }
is "$(post /api/queue/retry "{\"id\":\"$D\"}")" 200 "Retry of the failed message: 200"
[ -f "$SVC_SPOOL/pickup/$D.eml" ]; ok $? "it is back in the service's pickup/"
is "$(post /api/queue/remove "{\"id\":\"$W\"}")" 200 "Remove of the waiting message: 200"
[ ! -e "$SVC_SPOOL/pickup/$W.eml" ]; ok $? "it is gone from the service's pickup/"
is "$(ls "$SPOOL/pickup" "$SPOOL/failed" | grep -c eml)" 0 "the default spool untouched"
unlike "$(cat "$T"/*.json)" "$SVC_SPOOL" "no answer names the service's spool folder"

kill -0 "$SVC"; ok $? "the service is still running"
svc_stop; is $? 0 "SIGTERM: exit 0"
done_testing
