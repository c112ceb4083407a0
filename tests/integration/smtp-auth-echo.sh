# A server that echoes the AUTH line in its 535 reply (issue 10 point 8): the
# base64 credentials (and the password itself) never reach `mailhook test`'s
# report, the delivery log, `mailhook queue` or failed/.  Scripted peers
# (tests/peers/fault.lua) quote exactly what a client with these credentials
# sends: PLAIN's initial response, LOGIN's two lines, and the password in clear.
# The peers have no TLS: allow_plaintext_auth=true is the explicit opt-in that lets AUTH go in clear.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

PW=s3cret-pw
B64_PLAIN=$(printf '\0alice\0%s' "$PW" | base64)     # AGFsaWNlAHMzY3JldC1wdw==
B64_PW=$(printf '%s' "$PW" | base64)                  # czNjcmV0LXB3
S=$T/spool C=$T/mailhook.conf
export MAILHOOK_SPOOL=$S MAILHOOK_CONF=$C
secret_free() {   # secret_free WHAT TEXT: none of the three forms in TEXT
  local what=$1 text=$2
  unlike "$text" "$B64_PLAIN|$B64_PW|$PW|AGFsaWNlAHMz" "$what: no credentials"
}

cat > "$T/plain.script" <<S
send 220 echo.example ESMTP
expect ^EHLO
send 250-echo.example
send 250 AUTH PLAIN
expect ^AUTH PLAIN
send 535-5.7.8 you sent: AUTH PLAIN $B64_PLAIN
send 535 5.7.8 Authentication credentials invalid (password $PW)
expect ^QUIT
send 221 bye
S
start_fault F "$T/plain.script" --idle 5 || { echo "Bail out! fault.lua"; exit 1; }
write_conf "$C" enabled=true server=127.0.0.1 port="$F" tls=none tls_required=false allow_plaintext_auth=true auth=true \
  auth_mechanism=plain username=alice password="$PW" from=app@example.com retry_interval=1
mh_test "$C"
is "$RC" 1 "mailhook test: fails at auth"
like "$OUT" "stage[: ]+auth" "stage auth"
like "$OUT" "535 5.7.8" "the server's reply is quoted"
like "$OUT" '\*\*\*\*\*\*\*\*' "with the credentials masked"
secret_free "mailhook test's report" "$OUT"
like "$(cat "$F_REC")" "AUTH PLAIN $B64_PLAIN" "(the peer did get the real credentials)"

printf 'From: app@example.com\nTo: to@example.net\nSubject: x\n\nbody\n' | "$MAILHOOK" sendmail -t
"$MAILHOOK" -v flush >"$T/flush.out" 2>&1
like "$(cat "$T/flush.out")" "auth" "flush: the queue waits on the auth failure"
secret_free "flush's log (debug level)" "$(cat "$T/flush.out")"
secret_free "mailhook queue" "$("$MAILHOOK" queue; "$MAILHOOK" queue --json)"
secret_free "the spool" "$(cat "$S"/pickup/* "$S"/failed/* 2>/dev/null)"
stop_peer F

# A server that takes the login (235) and then quotes it when it refuses MAIL or RCPT:
# masked there too (only AUTH's own replies were: the 550 showed the password and its
# base64 in the report, the log, queue and failed/)
cat > "$T/after.script" <<S
send 220 echo.example ESMTP
expect ^EHLO
send 250-echo.example
send 250 AUTH PLAIN
expect ^AUTH PLAIN
send 235 2.7.0 ok
expect ^MAIL
send 550-5.7.1 your last command was AUTH PLAIN $B64_PLAIN
send 550 5.7.1 password $PW may not send as this address
expect ^RSET|^QUIT
send 250 ok
expect ^QUIT
send 221 bye
S
start_fault F "$T/after.script" --idle 5
write_conf "$C" enabled=true server=127.0.0.1 port="$F" tls=none tls_required=false allow_plaintext_auth=true auth=true \
  auth_mechanism=plain username=alice password="$PW" from=app@example.com retry_interval=1
mh_test "$C"
like "$OUT" "550 5\.7\.1 your last command was AUTH PLAIN \*{8} 5\.7\.1 password \*{8} may not send" \
  "after 235: the MAIL refusal's echo is masked"
secret_free "after 235: mailhook test's report" "$OUT"
mh_test "$C" --json
secret_free "after 235: mailhook test --json" "$OUT"
rm -f "$S"/pickup/* "$S"/failed/*
printf 'From: app@example.com\nTo: to@example.net\nSubject: x\n\nbody\n' | "$MAILHOOK" sendmail -t
"$MAILHOOK" -v flush >"$T/flush.out" 2>&1
like "$(cat "$T/flush.out")" "password \*{8} may not send" "after 235: flush's log shows the refusal, masked"
secret_free "after 235: flush's log (debug level)" "$(cat "$T/flush.out")"
secret_free "after 235: mailhook queue" "$("$MAILHOOK" queue; "$MAILHOOK" queue --json)"
secret_free "after 235: the spool" "$(cat "$S"/pickup/* "$S"/failed/* 2>/dev/null)"
stop_peer F

# login_script FILE LINE...: a server offering AUTH LOGIN that takes the user name and
# the password, then answers with the LINEs (its 535), and QUIT
login_script() {
  local f=$1; shift
  { printf '%s\n' "send 220 echo.example ESMTP" "expect ^EHLO" "send 250-echo.example" "send 250 AUTH LOGIN" \
      "expect ^AUTH LOGIN" "send 334 VXNlcm5hbWU6" "read" "send 334 UGFzc3dvcmQ6" "read"
    printf 'send %s\n' "$@"
    printf '%s\n' "expect ^QUIT" "send 221 bye"; } > "$f"
}
login_script "$T/login.script" "535 5.7.8 bad password $B64_PW for $(printf alice | base64)"
start_fault F "$T/login.script" --idle 5
write_conf "$C" enabled=true server=127.0.0.1 port="$F" tls=none tls_required=false allow_plaintext_auth=true auth=true \
  auth_mechanism=login username=alice password="$PW" from=app@example.com retry_interval=1
mh_test "$C"
is "$RC" 1 "LOGIN: mailhook test fails at auth"
like "$OUT" '535 5.7.8 bad password \*\*\*\*\*\*\*\*' "the echoed password line is masked"
secret_free "LOGIN: mailhook test's report" "$OUT"
"$MAILHOOK" -v flush >"$T/flush.out" 2>&1
secret_free "LOGIN: flush's log" "$(cat "$T/flush.out")"

# A password under 4 characters echoed decoded: masked too (it was left as is), where it stands
# alone; the same letters inside a word ("quota") are not it.  The report, --json and the log.
for SPW in k9Z q; do
  login_script "$T/short.script" "535-5.7.8 user alice pass=$SPW rejected (quota)" "535 5.7.8 password '$SPW' wrong"
  start_fault F "$T/short.script" --idle 5
  write_conf "$C" enabled=true server=127.0.0.1 port="$F" tls=none tls_required=false allow_plaintext_auth=true auth=true \
    auth_mechanism=login username=alice password="$SPW" from=app@example.com retry_interval=1
  mh_test "$C"
  is "$RC" 1 "a $((${#SPW})) character password: mailhook test fails at auth"
  like "$OUT" "pass=\*{8} rejected \(quota\)" "the echo is masked, 'quota' left whole"
  like "$OUT" "password '\*{8}' wrong" "and its second line"
  unlike "$OUT" "pass=$SPW|'$SPW'" "the short password never shows"
  mh_test "$C" --json
  unlike "$OUT" "pass=$SPW|'$SPW'" "nor in --json"
  "$MAILHOOK" -v flush >"$T/flush.out" 2>&1
  unlike "$(cat "$T/flush.out")" "pass=$SPW|'$SPW'" "nor in flush's log"
  stop_peer F
done
# A server that got the credentials in an earlier session (a wrong server in the settings, a
# relay that logs them) greets the next one with them, before any AUTH: masked from the
# greeting on (only replies after AUTH were: the report and the log showed the password).
# The greeting, EHLO's lines, a refusal of EHLO, and a greeting that is no SMTP at all.
cat > "$T/greet.script" <<S
send 220 echo.example ESMTP last time you sent $B64_PLAIN, i.e. $PW
expect ^EHLO
send 554 5.7.1 no service for $PW ($B64_PW)
expect ^QUIT|^HELO
send 554 5.7.1 still not for $PW
S
start_fault F "$T/greet.script" --idle 5
write_conf "$C" enabled=true server=127.0.0.1 port="$F" tls=none tls_required=false allow_plaintext_auth=true auth=true \
  auth_mechanism=plain username=alice password="$PW" from=app@example.com retry_interval=1
mh_test "$C"
is "$RC" 1 "a greeting that quotes the credentials: mailhook test fails"
like "$OUT" "554 5\.7\.1 still not for \*{8}" "the refusal is quoted, masked"
secret_free "the next session's greeting: mailhook test's report" "$OUT"
mh_test "$C" --json
secret_free "the next session's greeting: mailhook test --json" "$OUT"
rm -f "$S"/pickup/* "$S"/failed/*
printf 'From: app@example.com\nTo: to@example.net\nSubject: x\n\nbody\n' | "$MAILHOOK" sendmail -t
"$MAILHOOK" -v flush >"$T/flush.out" 2>&1
secret_free "the next session's greeting: flush's log (debug level)" "$(cat "$T/flush.out")"
secret_free "the next session's greeting: mailhook queue" "$("$MAILHOOK" queue; "$MAILHOOK" queue --json)"
secret_free "the next session's greeting: the spool" "$(cat "$S"/pickup/* "$S"/failed/* 2>/dev/null)"
stop_peer F
printf 'send SSH-2.0-OpenSSH_9.2 %s\nexpect ^NEVER\n' "$PW" > "$T/nosmtp.script"
start_fault F "$T/nosmtp.script" --idle 5
write_conf "$C" enabled=true server=127.0.0.1 port="$F" tls=none tls_required=false allow_plaintext_auth=true auth=true \
  auth_mechanism=plain username=alice password="$PW" from=app@example.com retry_interval=1 connect_timeout=2 command_timeout=2
mh_test "$C"
like "$OUT" "SSH-2\.0-OpenSSH_9\.2 \*{8}" "a greeting that is no SMTP is quoted, masked"
secret_free "a greeting that is no SMTP: mailhook test's report" "$OUT"
stop_peer F
done_testing
