# The console's JSON API as a script uses it (tests/console/api_shapes.py): every
# list is [] when empty (never {}), a Save's version check is one step with the
# write (under the settings folder's lock: a concurrent writer or a second Save
# of the same version gets 409), a Save without version says the version it
# wrote, and malformed bodies get a 4xx naming the field with nothing written; a server
# outage is in /api/queue and /api/status (since, age, reason) and on each waiting message.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

PORT=$(free_port)
AP=$(free_port)
DEAD=$(free_port)
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
( umask 077; echo "$TOKEN" > "$T/token" )
conf_for "$PORT" admin_listen="127.0.0.1:$AP" admin_token_file="$T/token" helo_name=here.example
peer_start "$PORT" "$T/peer"
svc_start
up() { curl -s -o /dev/null "http://127.0.0.1:$AP/login"; }
wait_for 10 up; ok $? "the console listens"

"$PY" "$ROOT/tests/console/api_shapes.py" "http://127.0.0.1:$AP" "$TOKEN" "$CONF" "$SVC" "$PORT" "$DEAD" "$MAILHOOK" \
  > "$T/checks.tap" 2> "$T/checks.err"
rc=$?
[ "$rc" = 0 ] || sed 's/^/# /' "$T/checks.err" | tail -20
tap_merge "$T/checks.tap" "$rc" api_shapes.py

unlike "$(cat "$T/svc.log")" "traceback|internal error|raised" "no handler raised (no 500, no traceback)"
kill -0 "$SVC"; ok $? "the service is still running"
svc_stop
done_testing
