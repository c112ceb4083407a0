# The console's HTTP edges, as browsers and attackers' raw requests meet them
# (tests/console/edges_checks.py): a header sent twice is never read by its
# first copy alone (Origin, Content-Type, X-CSRF-Token, Sec-Fetch-Site,
# Authorization: 400; Cookie lines joined); a flood of requests without a
# session leaves the login page, its assets and the login open; no-store,
# cookie attributes, CSRF on every POST, charset and nosniff, HEAD, a form
# login with charset=UTF-8 and '+', UTF-8 in From, 100-continue, pipelining,
# bodies cut short and slow clients (408, others served), 414 and 431.
# Real parts: `mailhook run` with its console (request deadline 3 s).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

ADMIN_PW='adm in+Edge&Pw =9'               # a form must encode: blanks, + & =
AP=$(free_port)
conf_for "$(free_port)" admin_listen="127.0.0.1:$AP" 2>/dev/null
printf '%s\n' "$ADMIN_PW" | "$MAILHOOK" update admin_password=- >/dev/null 2>&1
ok $? "admin password set"
# the request deadline 3 s, not 10 (a test hook: the console module's limits, set
# before `run` reads them): the slow clients below wait for it
MAILHOOK_LOG_LEVEL=info "$MAILHOOK" -e '
  require("mailhook.console").LIMITS.req_timeout = 3
  return require("mailhook.cli").main("run")' >>"$T/svc.log" 2>&1 &
SVC=$!
on_exit "kill -9 $SVC"
up() { "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$AP"; }
wait_for 10 up; ok $? "the console listens"

"$PY" "$ROOT/tests/console/edges_checks.py" "http://127.0.0.1:$AP" "$ADMIN_PW" 3 > "$T/checks.tap" 2> "$T/checks.err"
rc=$?
[ "$rc" = 0 ] || sed 's/^/# /' "$T/checks.err" | tail -20
tap_merge "$T/checks.tap" "$rc" edges_checks.py

kill -0 "$SVC"; ok $? "the service is still running"
unlike "$(cat "$T/svc.log")" "Edge&Pw" "no password in the service's log"
svc_stop; is $? 0 "SIGTERM: exit 0"
done_testing
