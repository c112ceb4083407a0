# The console at the HTTP level (issue 15): bound address, no session -> 401 or
# a redirect to /login, cookie flags, CSRF (403), Origin, Host (DNS rebinding),
# oversized request (413), too many requests and connections (429), the token
# file, /metrics in Prometheus' format, server-sent events, queue paging over
# 120 messages, delivery going on while clients send requests a byte at a time,
# and no secret in any response.  The checks are tests/console/http_checks.py;
# this file starts the real parts: aiosmtpd-less delivery peer, `mailhook run`.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

PORT=$(free_port)
AP=$(free_port)
SMTP_PW='smtp-Pw-4471-never-shown'
ADMIN_PW='admin-Console-Pw-9031'
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
( umask 077; echo "$TOKEN" > "$T/token" )
conf_for "$PORT" admin_listen="127.0.0.1:$AP" admin_token_file="$T/token" retry_interval=1
# a password in the settings (the plain peer does not ask for it): it must never be shown
printf 'password = %s\n' "$SMTP_PW" >> "$CONF"
echo "$ADMIN_PW" | "$MAILHOOK" update admin_password=- >/dev/null
ok $? "admin password set"

peer_start "$PORT" "$T/peer"
# the request deadline 5 s, not 10 (a test hook: the console module's limits, set
# before `run` reads them): the clients trickling requests below wait for it
MAILHOOK_LOG_LEVEL=info "$MAILHOOK" -e '
  require("mailhook.console").LIMITS.req_timeout = 5
  return require("mailhook.cli").main("run")' >>"$T/svc.log" 2>&1 &
SVC=$!
on_exit "kill -9 $SVC"
up() { "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$AP"; }
wait_for 10 up; ok $? "the console listens (admin_listen)"
like "$(cat "$T/svc.log")" "console: http://127.0.0.1:$AP \(this machine only\)" "the service logs its address"

"$PY" "$ROOT/tests/console/http_checks.py" "http://127.0.0.1:$AP" "$ADMIN_PW" "$TOKEN" "$SMTP_PW" \
  "$SPOOL" "$CONF" "$MAILHOOK" "$T/peer" > "$T/checks.tap" 2> "$T/checks.err"
rc=$?
[ "$rc" = 0 ] || sed 's/^/# /' "$T/checks.err" | tail -20
tap_merge "$T/checks.tap" "$rc" http_checks.py

kill -0 "$SVC"; ok $? "the service is still running"
unlike "$(cat "$T/svc.log")" "$ADMIN_PW|$SMTP_PW|$TOKEN" "no secret in the service's log"
like "$(cat "$T/svc.log")" "console: failed login from 127.0.0.1" "failed logins are logged"
svc_stop; rc=$?
is "$rc" 0 "SIGTERM with the console on: exit 0"
up 2>/dev/null; [ $? != 0 ]; ok $? "the console is closed"

# --- a token file others may read is refused
chmod 644 "$T/token"
svc_start
wait_for 10 up
wait_for 5 grep -q "admin_token_file .* is readable by others" "$T/svc.log"
ok $? "a token file readable by others: refused, said in the log"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$AP/api/status")
is "$code" 401 "and its token does not log in"
svc_stop

# --- a token file that is a FIFO: never opened blocking (the service would hang at start)
# (the log made empty first: the last service's "readable by others ... token login
# disabled until" matched the wait below before this service said a word)
rm -f "$T/token"; mkfifo -m 600 "$T/token"
: > "$T/svc.log"
svc_start
wait_for 10 up; ok $? "a token file that is a FIFO: the service starts, the console listens"
wait_for 5 grep -q "admin_token_file.*token login disabled" "$T/svc.log"
ok $? "the FIFO is refused, said in the log"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AP/login")
is "$code" 200 "and the console answers"
svc_stop
rm -f "$T/token"; ( umask 077; echo "$TOKEN" > "$T/token" )

# --- a relative admin_token_file is from the settings file's folder, as aliases,
# rules and tls_ca_file are: the service runs elsewhere (systemd: /), and it was
# looked for there ("cannot be read; token login disabled")
"$MAILHOOK" update admin_token_file=token >/dev/null 2>&1
here=$PWD; cd / && svc_start; cd "$here"
wait_for 10 up
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$AP/api/status")
is "$code" 200 "a relative admin_token_file, the service run from /: its token logs in"
unlike "$(cat "$T/svc.log")" "admin_token_file token cannot be read" "and the log says nothing against it"
svc_stop
"$MAILHOOK" update admin_token_file="$T/token" >/dev/null 2>&1

# --- admin_listen taken: the console does not start, delivery does
"$PY" -c 'import socket,time,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); print("up", flush=True); time.sleep(60)' "$AP" > "$T/squat.out" &
SQ=$!
on_exit "kill $SQ"
wait_for 5 grep -q up "$T/squat.out"
svc_start
enqueue 1 >/dev/null
wait_for 10 pickup_empty; ok $? "port taken: delivery goes on"
like "$(cat "$T/svc.log")" "console not started: cannot listen on 127.0.0.1 port $AP: address already in use \(delivery goes on; SIGHUP tries again\)" "the console's failure is logged, saying what to do"
kill "$SQ"; wait "$SQ" 2>/dev/null
kill -HUP "$SVC"
wait_for 10 up; ok $? "the port free again: SIGHUP starts the console"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AP/login")
is "$code" 200 "and it serves the login page"
svc_stop

done_testing
