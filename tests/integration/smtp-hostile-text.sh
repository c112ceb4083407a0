# What a hostile or broken SMTP server (or a man in the middle before TLS, or its
# certificate) says reaches the administrator only as text (runtime/text.h): its greeting,
# EHLO lines, replies and certificate subject/issuer holding ESC sequences, the C1 CSI and
# OSC (U+009B, U+009D: xterm and VTE obey them as ESC [ and ESC ]), a right-to-left
# override, a line separator, bytes that are no UTF-8, NUL, BS and CR.  Every display is
# read back: `mailhook test` (text and --json: quotes and backslashes too), the log of a flush (debug: every reply
# line), the failed/ sidecar, `queue`, `queue --json`, `queue show`, mailq, and `status`
# with the running service in an outage whose 421 says it.  Markup stays as text in them
# (the console shows it with textContent: console-hostile.sh).  And an AUTH echo of a
# password that is not plain ASCII (Latin-1, a bidi character) is still masked once the
# reply is made safe to show.  Scripted peers (tests/peers/fault.lua).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
mkdir -p "$SPOOL"

# shown_ok FILE DESC: FILE is UTF-8 and holds nothing that drives a terminal or turns or
# breaks a line: no control byte but LF and TAB, no DEL, no C1, no direction mark or
# override, no U+2028/9.
shown_ok() {
  "$PY" - "$1" <<'PY'
import re, sys
b = open(sys.argv[1], 'rb').read()
try:
    t = b.decode('utf-8')
except UnicodeDecodeError as e:
    print('#   not UTF-8 at byte %d: %r' % (e.start, b[max(0, e.start - 30):e.start + 30]))
    sys.exit(1)
m = re.search('[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]', t)
if m:
    print('#   %r at %d: %r' % (m.group(), m.start(), t[max(0, m.start() - 40):m.start() + 40]))
    sys.exit(1)
PY
  ok $? "$2"
}
keep() { printf '%s\n' "$2" > "$T/$1"; echo "$T/$1"; }   # keep NAME TEXT: TEXT in a file, its path

# the payload, in fault.lua's escapes (\xNN)
P='<script>x</script> esc:\x1b[2J\x1b]0;TITLE\x07 c1:\xc2\x9b2J\xc2\x9d52;c;ZXZpbA==\xc2\x9c raw:\x9b rlo:\xe2\x80\xaegpj.exe ls:\xe2\x80\xa8x bad:\xff\xfe bs:\x08\x08 cr:\rOVER nul:\x00 q:"\\ f\xc3\xbcr end'

# --- mailhook test: text and --json
cat > "$T/test.script" <<S
send 220 evil.example ESMTP $P
expect ^EHLO
send 250-evil.example $P
send 250-X-EVIL $P
send 250 SIZE 100000
expect ^MAIL
send 550 5.7.1 refused $P
expect ^RSET|^QUIT
send 250 ok
expect ^QUIT
send 221 bye
S
start_fault F "$T/test.script" --idle 5 || { echo "Bail out! fault.lua"; exit 1; }
write_conf "$CONF" enabled=true server=127.0.0.1 port="$F" tls=none tls_required=false from=a@example.com \
  retry_interval=1 connect_timeout=5 command_timeout=5
mh_test "$CONF"
is "$RC" 1 "test: fails at the sender"
shown_ok "$(keep test.out "$OUT")" "test: the report holds no terminal control, bidi or broken UTF-8"
like "$OUT" "server reply +550 5\.7\.1 refused <script>x</script> esc:\?\[2J\?\]0;TITLE\? c1:\?2J\?52;c;ZXZpbA==\? raw:\? rlo:\?gpj\.exe ls:\?x bad:\?\? bs:\?\? cr:\?OVER nul:\? q:\"\\\\ für end" \
  "test: the reply shown as text, each unsafe character a '?', UTF-8 kept"
like "$OUT" "capabilities +X-EVIL <script>x</script> esc:\?\[2J" "test: the EHLO line likewise"
mh_test "$CONF" --json
shown_ok "$(keep test.json "$OUT")" "test --json: no control, C1 or bidi character, even escaped as text"
is "$(printf '%s' "$OUT" | J 'd["reply"]["text"]')" \
  "5.7.1 refused <script>x</script> esc:?[2J?]0;TITLE? c1:?2J?52;c;ZXZpbA==? raw:? rlo:?gpj.exe ls:?x bad:?? bs:?? cr:?OVER nul:? q:\"\\ für end" \
  "test --json: the reply as the report shows it"
stop_peer F

# --- delivery: the log, the sidecar, queue, queue --json, queue show, mailq
cat > "$T/rcpt.script" <<S
send 220 evil.example ESMTP $P
expect ^EHLO
send 250-evil.example $P
send 250 SIZE 100000
expect ^MAIL
send 250 ok
expect ^RCPT
send 550-5.1.1 first $P
send 550 5.1.1 last $P
expect ^RSET|^QUIT
send 250 ok
expect ^QUIT
send 221 bye
S
start_fault F "$T/rcpt.script" --idle 5
write_conf "$CONF" enabled=true server=127.0.0.1 port="$F" tls=none tls_required=false from=a@example.com \
  retry_interval=1 connect_timeout=5 command_timeout=5
printf 'From: a@example.com\nTo: to@example.net\nSubject: x\n\nbody\n' | "$MAILHOOK" sendmail -t
"$MAILHOOK" -v flush > "$T/flush.log" 2>&1
like "$(cat "$T/flush.log")" "smtp < 550 5\.1\.1 last <script>x</script> esc:\?\[2J" "flush -v logs the reply lines"
shown_ok "$T/flush.log" "the log (debug: every reply line) holds none"
is "$(failed_count)" 1 "the message failed"
shown_ok "$(ls "$SPOOL"/failed/*.state)" "the failed/ sidecar holds none"
shown_ok "$(keep queue.out "$("$MAILHOOK" queue 2>&1)")" "mailhook queue holds none"
OUT=$("$MAILHOOK" queue --json 2>&1)
shown_ok "$(keep queue.json "$OUT")" "mailhook queue --json holds none"
ID=$(printf '%s' "$OUT" | J 'd[0]["id"]')
OUT=$("$MAILHOOK" queue show "$ID" 2>&1)
like "$OUT" "last reply: +to@example\.net: 550 5\.1\.1 first <script>x</script> esc:\?\[2J" "queue show: the reply"
shown_ok "$(keep show.out "$OUT")" "mailhook queue show holds none"
ln -sf "$MAILHOOK" "$T/mailq"
shown_ok "$(keep mailq.out "$("$T/mailq" 2>&1)")" "mailq holds none"
stop_peer F

# a deferral whose reply has a character of two bytes across the LAST REPLY column's
# 30th byte: cut before it, never inside (a stray byte reached the terminal)
cat > "$T/451.script" <<S
send 220 evil.example ESMTP
expect ^EHLO
send 250 evil.example
expect ^MAIL
send 451 4.7.1 greylisted_try_late\xc3\xbcber morgen
expect ^RSET|^QUIT
send 250 ok
expect ^QUIT
send 221 bye
S
start_fault F "$T/451.script" --idle 5
write_conf "$CONF" enabled=true server=127.0.0.1 port="$F" tls=none tls_required=false from=a@example.com \
  retry_interval=1 connect_timeout=5 command_timeout=5
rm -f "$SPOOL"/failed/*
printf 'From: a@example.com\nTo: to@example.net\nSubject: z\n\nbody\n' | "$MAILHOOK" sendmail -t
"$MAILHOOK" flush > /dev/null 2>&1
OUT=$("$MAILHOOK" queue 2>&1)
like "$OUT" " 451 4\.7\.1 greylisted_try_late " "queue: the 451 in LAST REPLY, cut before the ü"
shown_ok "$(keep queue451.out "$OUT")" "queue: the cut column is UTF-8"
"$MAILHOOK" queue rm "$("$MAILHOOK" queue --json | J 'd[0]["id"]')" > /dev/null
stop_peer F

# --- an outage whose 421 greeting says it: the running service, status, queue
cat > "$T/421.script" <<S
send 421 4.3.2 evil.example busy $P
S
start_fault F "$T/421.script" --idle 2
write_conf "$CONF" enabled=true server=127.0.0.1 port="$F" tls=none tls_required=false from=a@example.com \
  retry_interval=30 connect_timeout=5 command_timeout=5
printf 'From: a@example.com\nTo: to@example.net\nSubject: y\n\nbody\n' | "$MAILHOOK" sendmail -t
SVC_LOG_LEVEL=debug svc_start
wait_for 15 test -e "$SPOOL/outage"; ok $? "the service records the outage"
OUT=$("$MAILHOOK" status 2>&1)
like "$OUT" "busy <script>x</script> esc:\?\[2J" "status: the 421 as text"
shown_ok "$(keep status.out "$OUT")" "mailhook status holds none"
shown_ok "$(keep status.json "$("$MAILHOOK" status --json 2>&1)")" "mailhook status --json holds none"
shown_ok "$(keep queue2.out "$("$MAILHOOK" queue 2>&1)")" "mailhook queue in the outage holds none"
svc_stop
shown_ok "$T/svc.log" "the service's log holds none"
stop_peer F

# --- a certificate whose subject and issuer hold a C1 CSI, a right-to-left override and markup
SUBJ=$(printf '/O=evil\xe2\x80\xaeGRO\xc2\x9b2J\xc2\x9d0;T\xc2\x9c<b>x/CN=localhost')
openssl req -x509 -utf8 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/h.key" -out "$T/h.crt" \
  -days 30 -subj "$SUBJ" -addext 'subjectAltName=DNS:><img src=x onerror=alert(1)>,DNS:localhost,IP:127.0.0.1' \
  2>/dev/null || { echo "Bail out! openssl req"; exit 1; }
cat > "$T/tls.script" <<S
send 220 x ESMTP
expect ^EHLO
send 250-x
send 250 STARTTLS
expect ^STARTTLS
send 220 go
starttls
expect ^EHLO
send 250 x
expect ^MAIL
send 550 no
expect ^RSET|^QUIT
send 250 ok
expect ^QUIT
send 221 bye
S
start_fault F "$T/tls.script" --cert "$T/h.crt" --key "$T/h.key" --idle 5
c=$(new_conf enabled=true from=a@example.com server=localhost port="$F" tls=starttls tls_verify=false \
  connect_timeout=5 command_timeout=5)
mh_test "$c"
like "$OUT" "certificate +subject CN=localhost,O=evil\?GRO\?2J\?0\\\\;T\?\\\\<b\\\\>x" "test: the subject as text"
like "$OUT" "names +><img\?src=x\?onerror=alert\(1\)>, localhost, 127\.0\.0\.1" "test: the names as text"
shown_ok "$(keep cert.out "$OUT")" "test: the certificate's subject and issuer hold none"
mh_test "$c" --json
shown_ok "$(keep cert.json "$OUT")" "test --json: the certificate holds none"
stop_peer F

# --- an AUTH echo of a password that is not plain ASCII: masked in the text made safe
for PW in "$(printf 'p\xe4ssw\xf6rd-9')" "$(printf 'ab\xe2\x80\xaecd-pw')"; do
  { printf '%s\n' "send 220 echo.example ESMTP" "expect ^EHLO" "send 250-echo.example" "send 250 AUTH LOGIN" \
      "expect ^AUTH LOGIN" "send 334 VXNlcm5hbWU6" "read" "send 334 UGFzc3dvcmQ6" "read"
    printf 'send 535 5.7.8 bad password %s for alice\n' "$PW"
    printf '%s\n' "expect ^QUIT" "send 221 bye"; } > "$T/login.script"
  start_fault F "$T/login.script" --idle 5
  c=$(new_conf enabled=true server=127.0.0.1 port="$F" tls=none tls_required=false allow_plaintext_auth=true \
    auth=true auth_mechanism=login username=alice password="$PW" from=a@example.com)
  mh_test "$c"
  like "$OUT" "535 5\.7\.8 bad password \*{8} for alice" "$(printf '%q' "$PW"): the echoed password is masked"
  unlike "$OUT" "ssw.rd-9|cd-pw" "$(printf '%q' "$PW"): no piece of it shown"
  stop_peer F
done
done_testing
