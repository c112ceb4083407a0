# The console's login form as the browser submits it itself (JavaScript off,
# Enter before login.js ran): POST /login, application/x-www-form-urlencoded,
# one field, password.  It logs in (303 to /, the session cookie set exactly as
# POST /api/login sets it) or sends the browser back to the login page, which
# says why; a form from another site is refused (a cross-site page can post a
# form where it cannot post JSON); failures count in the same gate as the JS
# login (5 a minute per client, then both refuse).  Before, POST /login sent
# the browser back to the login page, logged out, whatever it held.  And an
# Update's answer names the keys it saved (`saved`; it said only ok).
# Real parts: `mailhook run` with its console, curl.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
command -v curl >/dev/null || { echo "Bail out! curl is needed"; exit 1; }

ADMIN_PW='adm+in&Form%Pw =7'                # what a form must encode: + & % = and a blank
AP=$(free_port)
conf_for "$(free_port)" admin_listen="127.0.0.1:$AP" 2>/dev/null
printf '%s\n' "$ADMIN_PW" | "$MAILHOOK" update admin_password=- >/dev/null 2>&1
ok $? "admin password set"
svc_start
B="http://127.0.0.1:$AP"
up() { curl -s -o /dev/null "$B/api/login"; }
wait_for 10 up; ok $? "the console listens"

# form PASSWORD [curl args...]: POST /login as a form; prints "STATUS LOCATION", headers in $T/h
form() {
  local pw=$1; shift
  curl -s -o "$T/body" -D "$T/h" -w '%{http_code} %{redirect_url}' --data-urlencode "password=$pw" "$@" "$B/login"
}
SAME=(-H "Origin: $B" -H 'Sec-Fetch-Site: same-origin')
cookie_of() { sed -n 's/^[Ss]et-[Cc]ookie: \(mh_session=[0-9a-f]*\);.*/\1/p' "$1" | tr -d '\r'; }
attrs_of() { sed -n 's/^[Ss]et-[Cc]ookie: mh_session=[0-9a-f]*\(;.*\)$/\1/p' "$1" | tr -d '\r'; }

# the JS path's cookie, to compare
curl -s -o /dev/null -D "$T/hjs" -H 'Content-Type: application/json' \
  -d "$("$PY" -c 'import json,sys; print(json.dumps({"password": sys.argv[1]}))' "$ADMIN_PW")" "$B/api/login"
JS_ATTRS=$(attrs_of "$T/hjs")
like "$JS_ATTRS" "HttpOnly" "POST /api/login sets the session cookie"

is "$(form "$ADMIN_PW" "${SAME[@]}")" "303 $B/" "the form, same origin, right password: 303 to /"
C=$(cookie_of "$T/h")
[ -n "$C" ]; ok $? "a session cookie is set"
is "$(attrs_of "$T/h")" "$JS_ATTRS" "with the attributes POST /api/login gives it ($JS_ATTRS)"
is "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $C" "$B/api/session")" 200 "the session works (GET /api/session)"
is "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $C" "$B/")" 200 "the console's page is served with it"
is "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "Cookie: $C" "$B/login")" "303 $B/" \
  "the login page, logged in: on to /"
# Chromium: no Origin beyond "null" from a page whose Referrer-Policy is no-referrer
is "$(form "$ADMIN_PW" -H 'Origin: null' -H 'Sec-Fetch-Site: same-origin')" "303 $B/" \
  "Sec-Fetch-Site: same-origin with Origin: null (a no-referrer page's form): logged in"
# a browser without Sec-Fetch-Site: its Origin decides
is "$(form "$ADMIN_PW" -H "Origin: $B")" "303 $B/" "Origin naming the console, no Sec-Fetch-Site: logged in"
# a session id planted before the login is ended, not promoted (as POST /api/login)
form "$ADMIN_PW" "${SAME[@]}" -H "Cookie: $C" >/dev/null
is "$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $C" "$B/api/session")" 401 "the session id sent with the login is ended"

# (Update names the keys it saved, in its answer: `saved`, the password by name only)
form "$ADMIN_PW" "${SAME[@]}" >/dev/null; C=$(cookie_of "$T/h")
CSRF=$(curl -s -H "Cookie: $C" "$B/api/session" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["csrf"])')
SMTP_PW='Smtp-Saved-Pw-4410'
curl -s -o "$T/saved.json" -H "Cookie: $C" -H "X-CSRF-Token: $CSRF" -H 'Content-Type: application/json' \
  -d "{\"changes\":{\"from\":\"ops@example.com\",\"username\":\"u\",\"password\":\"$SMTP_PW\"}}" "$B/api/settings"
is "$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("ok"), d.get("saved"))' "$T/saved.json")" \
  "True ['from', 'password', 'username']" "Update's answer names the keys it saved (saved)"
unlike "$(cat "$T/saved.json")" "$SMTP_PW" "never the password's value"

# cross-site: refused before the password is looked at, no cookie
for h in "Origin: http://evil.example" "Sec-Fetch-Site: cross-site" "Sec-Fetch-Site: same-site|Origin: http://127.0.0.1:1" \
         "Origin: null" "Sec-Fetch-Site: none" ""; do
  args=(); IFS='|' read -ra hs <<< "$h"; for x in "${hs[@]}"; do args+=(-H "$x"); done
  r=$(form "$ADMIN_PW" "${args[@]}")
  is "${r%% *}" 403 "the right password from a form ${h:-with neither Origin nor Sec-Fetch-Site}: 403"
  [ -z "$(cookie_of "$T/h")" ]; ok $? "  and no session cookie"
done

# what reaches the form but is no login: back to the page with an error
is "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "${SAME[@]}" -H 'Content-Type: application/json' \
      -d '{"password":"x"}' "$B/login")" "303 $B/login?error=form" "JSON to /login: back to the page (error=form)"
is "$(form "$ADMIN_PW" "${SAME[@]}" --data-urlencode 'user=admin')" "303 $B/login?error=form" "a field besides password: error=form"
is "$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "${SAME[@]}" -F "password=$ADMIN_PW" "$B/login")" \
  "303 $B/login?error=form" "multipart/form-data: error=form"
like "$(curl -s "$B/login?error=form")" 'id="login-error"[^>]*>the login form was not sent as expected' \
  "the login page says so, in its error line, without a script"

# a wrong password: back to the page, which says so; counted (5 a minute, then locked out)
is "$(form 'not-the-password' "${SAME[@]}")" "303 $B/login?error=wrong" "wrong password: 303 to /login?error=wrong"
[ -z "$(cookie_of "$T/h")" ]; ok $? "no session cookie"
like "$(curl -s "$B/login?error=wrong")" 'role="alert">wrong password</p>' "the login page says: wrong password"
unlike "$(curl -s "$B/login?error=%3Cscript%3E")" "script%3E|<script>alert" "an unknown error code is not shown"
# (the four more at once: each is answered after the failed login's 1 s delay, which they
# wait out together; checks in flight count as failures, so the gate is the same)
pids=(); for i in 2 3 4 5; do form "wrong-$i" "${SAME[@]}" >/dev/null & pids+=($!); done; wait "${pids[@]}"
is "$(form "$ADMIN_PW" "${SAME[@]}")" "303 $B/login?error=limited" \
  "after 5 failures, the right password too: error=limited"
like "$(tr -d '\r' < "$T/h")" "Retry-After: [0-9]+" "with Retry-After"
[ -z "$(cookie_of "$T/h")" ]; ok $? "no session cookie"
like "$(curl -s "$B/login?error=limited")" "too many failed logins" "the login page says to wait"
is "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
      -d "$("$PY" -c 'import json,sys; print(json.dumps({"password": sys.argv[1]}))' "$ADMIN_PW")" "$B/api/login")" 429 \
  "the same gate: POST /api/login is refused too (429)"

unlike "$(cat "$T/svc.log")" "Form%Pw|adm\\+in" "no password in the service's log"
like "$(cat "$T/svc.log")" "login from 127.0.0.1 \\(the login form" "form logins are logged"
kill -0 "$SVC"; ok $? "the service is still running"
svc_stop; is $? 0 "SIGTERM: exit 0"
done_testing
