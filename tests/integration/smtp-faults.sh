# `mailhook test` and mh.smtp against servers that misbehave: scripted faults no real
# server produces on demand (tests/peers/fault.lua), Postfix's smtp-sink with its 421 /
# drop / 4xx / 5xx / delay options, and the bytes on the wire (dot-stuffing, CRLF only).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
need_engine

# The certificates are made (seconds of openssl on a loaded machine) while the first
# cases run; the STARTTLS injection case waits for them.
C=$T/certs
make_certs_bg "$C"
BASE=(enabled=true from=mailhook@example.org server=127.0.0.1 helo_name=client.example.org
      tls=none tls_required=false connect_timeout=5 command_timeout=5 session_deadline=20)
# The cases that wait out a timeout or a deadline (3 s, 2 s, 2 s) start first, in the
# background; each is checked in its place below.
s=$(fault_script <<'S'
trickle 1
send 220 fault.example ESMTP a greeting long enough to outlast any deadline of a test
S
)
start_fault F "$s"
mh_test_bg trickle "$(new_conf port="$F" command_timeout=3 session_deadline=3)"
s=$(fault_script <<'S'
send 220 fault.example ESMTP
stall
S
)
start_fault F "$s"
mh_test_bg stall "$(new_conf port="$F" command_timeout=2 session_deadline=20)"
start_sink S -W EHLO:30; mh_test_bg ehlo30 "$(new_conf port="$S" command_timeout=2)"

after() {   # after WORD FILE: the recorded bytes after the first line starting with WORD
  awk -v w="$1" 'f { print } index($0, w) == 1 { f = 1 }' "$2"
}

# --- STARTTLS faults ---------------------------------------------------------------------
# Required TLS, a server that does not offer STARTTLS but offers AUTH.
s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250-AUTH PLAIN LOGIN
send 250 SIZE 10000000
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F" tls=starttls tls_required=true auth=true username=u password=pw-never-sent)"
is "$RC" 1 "STARTTLS required but not offered: fails"
ilike "$OUT" "stage[: ]+tls\b" "stage tls named"
ilike "$ERR" "starttls" "the error says STARTTLS was not offered"
unlike "$(cat "$F_REC")" "AUTH|MAIL|pw-never-sent" "no AUTH, no MAIL, no password on the wire"
mh_test "$(new_conf port="$F" tls=auto tls_required= auth=true username=u password=pw-never-sent)"
is "$RC" 1 "the same with tls=auto (tls_required defaults true with auth): fails"
unlike "$(cat "$F_REC".* 2>/dev/null)" "AUTH|MAIL|pw-never-sent" "no AUTH, no MAIL, no password on the wire"

# Bytes after STARTTLS's 220, in the same segment: a response injection (CVE-2011-0411 class).
s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250-STARTTLS
send 250 AUTH PLAIN
expect ^STARTTLS
raw 220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n
S
)
certs_ready
start_fault F "$s" --cert "$C/server.crt" --key "$C/server.key"
mh_test "$(new_conf port="$F" tls=starttls tls_required=true tls_ca_file="$C/ca.crt")"
is "$RC" 1 "extra bytes after STARTTLS's 220: aborts"
ilike "$OUT" "stage[: ]+tls\b" "stage tls named"
rest=$(after STARTTLS "$F_REC" | od -An -tx1 | head -1)
unlike "$rest" "^ *16 03" "no TLS handshake started over the injected bytes"
unlike "$(cat "$F_REC")" "AUTH|MAIL" "nothing sent after the violation"

# --- malformed replies --------------------------------------------------------------------
s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
raw 250-fault.example\r\n250-PIPEL
close
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F")"
is "$RC" 1 "a reply cut mid-line, then close: fails"
ilike "$OUT" "stage[: ]+connect\b" "stage connect named"
ilike "$ERR" "clos|eof|lost|reset|unexpected" "reason: the connection ended"

s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
raw 250-
repeat 5000 x
send 
send 250 SIZE 1000
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F")"
is "$RC" 1 "a 5000-byte reply line: fails"
ilike "$ERR" "long|too|limit" "reason: the line is too long"

s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 251-PIPELINING
send 250 SIZE 1000
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F")"
is "$RC" 1 "a continuation line with another code: fails"
ilike "$ERR" "continu|code|protocol|malformed|mismatch" "reason: the mismatched code"

s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
repeat 1000 250-X-FILLER\r\n
send 250 SIZE 1000
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F")"
is "$RC" 1 "a reply of 1000 lines: fails"
ilike "$ERR" "lines|too|long|limit" "reason: too many lines"

s=$(fault_script <<'S'
raw 220-fault.example\r\n220-second\r\n220 third\r\n
expect ^EHLO
send 250-fault.example
send 250-PIPELINING
send 250 8BITMIME
expect ^MAIL FROM:<mailhook@example.org>
send 250 ok
expect ^RCPT TO:<postmaster@example.org>
send 250 ok
expect ^RSET
send 250 ok
expect ^QUIT
send 221 bye
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F")"
is "$RC" 0 "a well-formed multi-line greeting and EHLO reply: passes"
wait_for 5 grep -q "^END" "$F_OUT"
unlike "$(cat "$F_OUT")" "EXPECT-FAIL" "the client said EHLO, MAIL FROM, RCPT TO (postmaster@), RSET, QUIT in order"

# --- slow and silent servers ----------------------------------------------------------------
mh_test_wait trickle
is "$RC" 1 "one byte per second: fails"
ok $(( ELAPSED_MS < 9000 ? 0 : 1 )) "within the deadline (took ${ELAPSED_MS} ms; 3 s deadline)"
ilike "$ERR" "deadline|time" "reason: the deadline"

mh_test_wait stall
is "$RC" 1 "a server that stalls after the greeting: fails"
ok $(( ELAPSED_MS < 8000 ? 0 : 1 )) "at its command timeout (took ${ELAPSED_MS} ms; 2 s timeout)"
ilike "$ERR" "time" "reason: timeout"

# 421 while the message is being sent.
s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250 fault.example
expect ^MAIL FROM:
send 250 ok
expect ^RSET
send 250 ok
expect ^MAIL FROM:
send 250 ok
expect ^RCPT TO:<rcpt@example.net>
send 250 ok
expect ^DATA
send 354 go
read
send 421 4.3.2 shutting down
close
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F")" --to rcpt@example.net
is "$RC" 1 "421 in the middle of DATA: fails"
like "$OUT" "421" "the server's reply is shown"

# --- connect and DNS ---------------------------------------------------------------------
mh_test "$(new_conf port="$(free_port)")"
is "$RC" 1 "nothing listening: fails"
ilike "$OUT" "stage[: ]+connect\b" "stage connect named"
ilike "$ERR" "refused" "reason: connection refused"
mh_test "$(new_conf server=no-such-host.invalid port=25)"
is "$RC" 1 "a name that does not resolve: fails"
ilike "$OUT" "stage[: ]+dns\b" "stage dns named"

# --- Postfix smtp-sink: 421, drops, 4xx/5xx, delays ------------------------------------------
start_sink S; mh_test "$(new_conf port="$S")"
is "$RC" 0 "smtp-sink: test passes"
mh_test "$(new_conf port="$S")" --to rcpt@example.net
is "$RC" 0 "smtp-sink: test --to passes"
start_sink S -Q CONNECT; mh_test "$(new_conf port="$S")"
is "$RC" 1 "421 greeting: fails"; like "$OUT" "421" "reply shown"
start_sink S -q EHLO; mh_test "$(new_conf port="$S")"
is "$RC" 1 "dropped after EHLO: fails"
start_sink S -Q MAIL; mh_test "$(new_conf port="$S")"
is "$RC" 1 "421 to MAIL: fails"; ilike "$OUT" "stage[: ]+sender\b" "stage sender"; like "$OUT" "421" "reply shown"
start_sink S -f MAIL; mh_test "$(new_conf port="$S")"
is "$RC" 1 "5xx to MAIL: fails"; ilike "$OUT" "stage[: ]+sender\b" "stage sender"; like "$OUT" "5[0-9][0-9]" "reply shown"
start_sink S -r MAIL; mh_test "$(new_conf port="$S")"
is "$RC" 1 "4xx to MAIL: fails"; like "$OUT" "4[0-9][0-9]" "reply shown"
start_sink S -f RCPT; mh_test "$(new_conf port="$S")" --to rcpt@example.net
is "$RC" 1 "5xx to RCPT: fails"; ilike "$OUT" "stage[: ]+recipient\b" "stage recipient"; like "$OUT" "5[0-9][0-9]" "reply shown"
start_sink S -Q RCPT; mh_test "$(new_conf port="$S")" --to rcpt@example.net
is "$RC" 1 "421 to RCPT: fails"; like "$OUT" "421" "reply shown"
start_sink S -Q .; mh_test "$(new_conf port="$S")" --to rcpt@example.net
is "$RC" 1 "421 to the final dot: fails"; like "$OUT" "421" "reply shown"
start_sink S -q .; mh_test "$(new_conf port="$S")" --to rcpt@example.net
is "$RC" 1 "dropped after the final dot: fails"
mh_test_wait ehlo30
is "$RC" 1 "EHLO answered after 30 s, 2 s timeout: fails"
ok $(( ELAPSED_MS < 8000 ? 0 : 1 )) "at the timeout (took ${ELAPSED_MS} ms)"

# --- the bytes on the wire -----------------------------------------------------------------
# A recording peer takes one message; the same message goes to aiosmtpd, which must
# store it whole: "\n.\n", "\r.\r" and lone CRs are data, never an end of message.
wire=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250 8BITMIME
expect ^MAIL FROM:
send 250 ok
expect ^RCPT TO:
send 250 ok
expect ^DATA
send 354 go
data
send 250 stored
expect ^QUIT
send 221 bye
S
)
cat > "$T/send.lua" <<'LUA'
-- send.lua CONF: one message through mh.smtp, with every awkward line end in its body
local settings = require "mailhook.settings"
local smtp = require "mailhook.smtp"
local cfg = assert(settings.load(arg[1]))
local s, err = smtp.connect(cfg)
if not s then io.stderr:write("connect: ", tostring(err), "\n") return 1 end
local body = "Subject: wire\r\n\r\nstart\r\n.leading dot\r\n..two dots\r\n.\r\nbare-lf\n.\nafter-lf\r.\rafter-cr\rlone-cr\r\n"
  .. string.rep("y", 1500) .. "\r\nend"
local r, err2 = s:send{from = "mailhook@example.org", to = {"rcpt@example.net"}, data = body}
if not r then io.stderr:write("send: ", tostring(err2), "\n") return 1 end
s:quit()
print("sent")
return 0
LUA
start_fault F "$wire"
out=$(MAILHOOK_SPOOL=$T/spool timeout 30 "$MAILHOOK" "$T/send.lua" "$(new_conf port="$F")" 2>&1); rc=$?
is "$rc" 0 "mh.smtp sends a message with awkward line ends"; [ "$rc" = 0 ] || diag "$out"
wait_for 5 grep -q "^END" "$F_OUT"
"$PY" - "$F_REC" > "$T/wire.check" <<'PY'
import sys
raw = open(sys.argv[1], "rb").read()
start = raw.index(b"DATA\r\n") + 6
end = raw.index(b"\r\n.\r\n", start) + 2          # the first end-of-data on the wire
data = raw[start:end]
lines = data.split(b"\r\n")[:-1]
print("bare-cr" if b"\r" in data.replace(b"\r\n", b"") else "no-bare-cr")
print("bare-lf" if b"\n" in data.replace(b"\r\n", b"") else "no-bare-lf")
print("lone-dot" if any(l == b"." for l in lines) else "no-lone-dot")
print("unstuffed" if any(l.startswith(b".") and not l.startswith(b"..") for l in lines) else "stuffed")
print("long" if any(len(l) > 998 for l in lines) else "short")
print("end-ok" if raw[end:].startswith(b".\r\nQUIT\r\n") else "end-bad")
print("whole" if b"end" in lines[-1] and b"lone-cr" in data else "cut")
PY
check=$(cat "$T/wire.check")
like "$check" "no-bare-cr" "no bare CR on the wire"
like "$check" "no-bare-lf" "no bare LF on the wire"
like "$check" "no-lone-dot" "no line of a lone dot inside the data"
like "$check" "stuffed" "every line starting with a dot is dot-stuffed"
like "$check" "short" "no line over 998 octets"
like "$check" "end-ok" "the data ends with CRLF . CRLF, then QUIT"
like "$check" "whole" "the whole body precedes the one end of data"
grep -q $'^\\.\\.leading dot\r$' "$F_REC"; ok $? "'.leading dot' went as '..leading dot'"
grep -q $'^\\.\\.\\.two dots\r$' "$F_REC"; ok $? "'..two dots' went as '...two dots'"

start_smtpd M --maildir "$T/mail"
out=$(MAILHOOK_SPOOL=$T/spool timeout 30 "$MAILHOOK" "$T/send.lua" "$(new_conf port="$M")" 2>&1); rc=$?
is "$rc" 0 "the same message to aiosmtpd"
is "$(count_mail "$T/mail")" 1 "arrives as one message"
like "$(cat "$T/mail/000001.eml" | tr -d '\r')" "after-lf" "text after a bare-LF dot line arrived as data"
like "$(cat "$T/mail/000001.eml" | tr -d '\r')" "after-cr" "text after a CR dot CR arrived as data"
like "$(tail -c 5 "$T/mail/000001.eml" | tr -d '\r\n')" "end$" "the last line arrived"

# `mailhook test --to` sends a real message: it lands, with the configured sender.
mh_test "$(new_conf port="$M")" --to someone@example.net
is "$RC" 0 "test --to sends a message"
is "$(count_mail "$T/mail")" 2 "it lands"
like "$(tr -d ' \n' < "$T/mail/000002.json")" '"from":"mailhook@example.org","to":\["someone@example.net"\]' \
     "with the configured From and the given recipient"
"$PY" -c 'import sys; d = open(sys.argv[1], "rb").read(); sys.exit(0 if b"\n" not in d.replace(b"\r\n", b"") and b"\r" not in d.replace(b"\r\n", b"") else 1)' \
  "$T/mail/000002.eml"; ok $? "its lines end in CRLF only"

done_testing
