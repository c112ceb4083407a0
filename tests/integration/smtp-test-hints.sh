# `mailhook test`'s hint fits the cause: a server that answers but not in SMTP (a
# protocol violation: garbage greeting, a malformed reply, bytes injected after
# STARTTLS's 220) is not "nothing answers there"; a server that wants TLS before MAIL
# (530 ... STARTTLS) with tls = none says so and suggests tls = starttls / auto; a
# 530 about authentication is not mistaken for it.  Real aiosmtpd where it can play
# the part (--require-starttls), the scripted peer for the rest.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
need_engine

make_certs "$T/certs" || exit 1
C=$T/certs
export MAILHOOK_SPOOL=$T/spool
mkdir -p "$MAILHOOK_SPOOL"
BASE=(enabled=true from=mailhook@example.org server=127.0.0.1 helo_name=client.example.org
      tls=none tls_required=false tls_ca_file=$C/ca.crt connect_timeout=5 command_timeout=5 session_deadline=20)
hint() { printf '%s\n' "$OUT" | grep '^  hint'; }

PROTO_HINT="  hint           the server answered, but not in SMTP: check that \`port\` is an SMTP port (25, 465 = implicit TLS, 587 = submission) and that nothing in between (a proxy, an antivirus, a firewall) rewrites the traffic"
TLS_HINT="  hint           set \`tls = starttls\` (or \`tls = auto\`: STARTTLS when the server offers it)"
CONNECT_HINT="  hint           nothing answers there: check \`server\`, \`port\` and firewalls (465 = implicit TLS, 587 = submission)"
SENDER_HINT="  hint           the server refuses the From address: use an address this account may send as"

# --- protocol violations ------------------------------------------------------------------
s=$(fault_script <<'S'
send SSH-2.0-OpenSSH_9.2p1 Debian-2
sleep 2
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F")"
is "$RC" 1 "a greeting that is not SMTP: exit 1"
like "$ERR" "malformed reply line \(line 1\): 'SSH-2\.0-OpenSSH_9\.2p1 Debian-2'" \
  "the error: a malformed reply, what answered quoted (an SSH server)"
is "$(hint)" "$PROTO_HINT" "hint: not SMTP (not 'nothing answers there')"

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
is "$RC" 1 "a malformed EHLO reply: exit 1"
is "$(hint)" "$PROTO_HINT" "hint: not SMTP"

# An EHLO reply of 3000 lines (over the 100 a reply may have): the server answered, so
# the protocol hint, not "nothing answers there"
s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
repeat 3000 250-X-PAD aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n
send 250 SIZE 1000
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F")"
is "$RC" 1 "an EHLO reply of 3000 lines: exit 1"
like "$ERR" "reply longer than 100 lines" "the error says why"
is "$(hint)" "$PROTO_HINT" "hint: not SMTP (it said 'nothing answers there')"

# Bytes after STARTTLS's 220 (a response injection): stage tls, and the protocol hint,
# not the certificate one.
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
start_fault F "$s" --cert "$C/server.crt" --key "$C/server.key"
mh_test "$(new_conf port="$F" tls=starttls tls_required=true)"
is "$RC" 1 "bytes injected after STARTTLS's 220: exit 1"
like "$OUT" "result: FAILED at stage tls" "stage tls"
like "$ERR" "protocol violation: .*after the 220 reply to STARTTLS" "the error names the injection"
is "$(hint)" "$PROTO_HINT" "hint: not SMTP / something rewrites the traffic"

# Postfix's reject_non_fqdn_helo_hostname, said at RCPT: the hint names helo_name (it
# blamed the recipient)
s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250 SIZE 100000
expect ^MAIL
send 250 ok
expect ^RSET
send 250 ok
expect ^MAIL
send 250 ok
expect ^RCPT
send 504 5.5.2 <pbx01>: Helo command rejected: need fully-qualified hostname
expect ^QUIT
send 221 bye
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F" tls=none tls_required=false)" --to ops@example.org
is "$RC" 1 "Helo command rejected at RCPT: exit 1"
like "$(hint)" "set .helo_name. to this machine's fully qualified name" "hint: helo_name, not the recipient"

# without --to, the test asks a RCPT too (postmaster@ of the From's domain): the same
# HELO check, said at RCPT, failed every real message while the test said OK
s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250 SIZE 100000
expect ^MAIL
send 250 ok
expect ^RCPT TO:<postmaster@example.org>
send 504 5.5.2 <pbx01>: Helo command rejected: need fully-qualified hostname
expect ^RSET
send 250 ok
expect ^QUIT
send 221 bye
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F" tls=none tls_required=false)"
is "$RC" 1 "no --to, Helo command rejected at RCPT: the test fails (it said OK)"
like "$ERR" "takes the From address, then refuses mail after it \(504 5.5.2 .* to RCPT TO:<postmaster@example.org>\)" \
  "the error says what was asked and refused"
like "$(hint)" "set .helo_name. to this machine's fully qualified name" "hint: helo_name"

# the submission port without a login (Postfix: 554 5.7.1 Access denied at RCPT, AUTH offered)
start_smtpd R --auth user:pw --auth-optional --auth-in-clear \
  --reply-rcpt 'postmaster@example.org=554 5.7.1 <postmaster@example.org>: Recipient address rejected: Access denied'
mh_test "$(new_conf port="$R" tls=none tls_required=false)"
is "$RC" 1 "no login where every RCPT is refused 5.7.1: the test fails"
like "$(hint)" "refuses mail without a login, and offers one: set .auth = true." "hint: the login"

# a server offering only a mechanism mailhook does not speak: named (it said "offers: none")
s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250 AUTH GSSAPI
expect ^QUIT
send 221 bye
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F" tls=none tls_required=false auth=true username=u password=pw-7 allow_plaintext_auth=true)"
is "$RC" 1 "only GSSAPI offered: exit 1"
like "$ERR" "offers: none; also GSSAPI, which mailhook does not speak" "the mechanism it offers named ($ERR)"

# Nothing listening keeps its own hint.
mh_test "$(new_conf port="$(free_port)")"
is "$RC" 1 "a closed port: exit 1"
is "$(hint)" "$CONNECT_HINT" "hint: nothing answers there"

# --- tls = none against a server that requires STARTTLS ------------------------------------
start_smtpd S --tls starttls --require-starttls --cert "$C/server.crt" --key "$C/server.key" \
  --maildir "$T/req.mail" --log "$T/req.log"
mh_test "$(new_conf port="$S")"
is "$RC" 1 "aiosmtpd --require-starttls, tls=none: exit 1"
like "$OUT" "result: FAILED at stage sender" "stage sender (MAIL FROM was refused)"
is "$ERR" "  error          the server requires TLS before it accepts mail, and this session is in plain text (it answered: 530 Must issue a STARTTLS command first); it offers STARTTLS" \
  "the error says the server requires TLS"
is "$(hint)" "$TLS_HINT" "hint: tls = starttls or auto"
unlike "$OUT" "refuses the From address|RSET refused" "no incidental reason surfaces"
unlike "$(cat "$T/req.log")" "^mail " "no MAIL FROM was accepted in plain text"
# the advice works
mh_test "$(new_conf port="$S" tls=starttls)"
is "$RC" 0 "the same server with tls=starttls: passes"

# A scripted server: 530 5.7.0 to MAIL (no STARTTLS offered), 250 to RSET.
s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250 SIZE 1000
expect ^MAIL FROM:<mailhook@example.org>
send 530 5.7.0 Must issue a STARTTLS command first
expect ^RSET
send 250 2.0.0 ok
expect ^QUIT
send 221 bye
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F")"
is "$RC" 1 "530 5.7.0 STARTTLS to MAIL, tls=none: exit 1"
is "$ERR" "  error          the server requires TLS before it accepts mail, and this session is in plain text (it answered: 530 5.7.0 Must issue a STARTTLS command first)" \
  "the error says the server requires TLS (and not that it offers STARTTLS)"
is "$(hint)" "$TLS_HINT" "hint: tls = starttls or auto"
like "$OUT" "server reply   530 5.7.0 Must issue a STARTTLS command first" "the server's reply is shown"
# tls = auto already, and no STARTTLS on offer: another port is the way
mh_test "$(new_conf port="$F" tls=auto)"
is "$RC" 1 "the same with tls=auto (plain: nothing offered): exit 1"
like "$ERR" "the server requires TLS before it accepts mail" "the error says the server requires TLS"
is "$(hint)" "  hint           the server offers no STARTTLS on this port: use its implicit-TLS port (465, \`tls = implicit\`) or its submission port (587)" \
  "hint: another port"

# 530 5.7.0 about authentication (RFC 4954) is not a TLS requirement.
s=$(fault_script <<'S'
send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250 SIZE 1000
expect ^MAIL FROM:<mailhook@example.org>
send 530 5.7.0 Authentication required
expect ^RSET
send 250 2.0.0 ok
expect ^QUIT
send 221 bye
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F")"
is "$RC" 1 "530 5.7.0 Authentication required: exit 1"
unlike "$OUT" "requires TLS" "not reported as a TLS requirement"
is "$(hint)" "  hint           the server wants a login before it takes mail (530): set \`auth = true\`, \`username\` and \`password\` (or \`password_command\`)" \
  "with auth = false: the login hint (the sender hint blamed the From address)"

# --- hints that pointed the wrong way --------------------------------------------------------
# a 421 greeting: something answered (busy, maintenance, a connection limit), not "nothing answers"
s=$(fault_script <<'S'
send 421 4.3.2 mail.example.com Service not available, closing channel
close
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F")"
is "$RC" 1 "a 421 greeting: exit 1"
is "$(hint)" "  hint           the server answered but refused the session for now (421: busy, in maintenance, or too many connections): try again later; if it lasts, see the server's log" \
  "hint: busy, not 'nothing answers there'"
# tls = implicit on a port that greets in plain text: the hint agrees with the error
s=$(fault_script <<'S'
send 220 fault.example ESMTP
sleep 3
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F" tls=implicit tls_required=true)"
is "$RC" 1 "tls = implicit on a plain-text port: exit 1"
is "$(hint)" "  hint           the server greets in plain text, so this is no implicit-TLS port: set \`tls = starttls\` (or \`auto\`), or use its implicit-TLS port (465)" \
  "hint: starttls (not the certificate)"
# a web server on the port (tls = auto: no greeting, and its answer to the ClientHello is HTTP)
HP=$(free_port)
/usr/bin/python3 -m http.server "$HP" --bind 127.0.0.1 >/dev/null 2>&1 &
on_exit "kill $!"
wait_for 10 _port_open "$HP"
mh_test "$(new_conf port="$HP" tls=auto)"
is "$RC" 1 "a web server's port with tls = auto: exit 1"
is "$(hint)" "  hint           something on this port answered the TLS handshake in plain text that is not SMTP (a web server?): check \`port\` (25, 465 = implicit TLS, 587 = submission)" \
  "hint: not an SMTP port (not the certificate)"

# --- an old server that refuses EHLO (502) and takes HELO: no extensions ---------------------
# The report says so (it showed no capabilities row at all, leaving the admin to guess why
# there was no STARTTLS); with tls_required the test fails at stage tls, nothing sent.
s=$(fault_script <<'S'
send 220 old.example SMTP
expect ^EHLO
send 502 5.5.2 command not recognized
expect ^HELO
send 250 old.example
expect ^MAIL
send 250 ok
expect ^RCPT
send 250 ok
expect ^RSET
send 250 ok
expect ^QUIT
send 221 bye
S
)
start_fault F "$s"
mh_test "$(new_conf port="$F")"
is "$RC" 0 "EHLO refused, HELO taken, tls = none: the test passes"
like "$OUT" "capabilities +none: the server refused EHLO \(502 5\.5\.2 command not recognized\) and took HELO, so it offers no extensions" \
  "the report says EHLO was refused and why there are no extensions"
mh_test "$(new_conf port="$F")" --json
is "$(printf '%s' "$OUT" | sed -n '/^{/,$p' | J 'd["connection"]["ehlo_refused"]')" "502 5.5.2 command not recognized" \
  "--json: connection.ehlo_refused"
MAILS=$(cat "$F_REC"* | grep -c '^MAIL')
mh_test "$(new_conf port="$F" tls=auto tls_required=true)"
is "$RC" 1 "the same server with tls_required = true: the test fails"
like "$OUT" "FAILED at stage tls" "at stage tls"
like "$OUT" "capabilities +none: the server refused EHLO" "the report says why there was no STARTTLS"
is "$(cat "$F_REC"* | grep -c '^MAIL')" "$MAILS" "and no MAIL went in the clear (the wire: $MAILS from the two tests before)"
stop_peer F
# --- one that refuses EHLO and HELO too: the report must not say it took HELO ----------------
s=$(fault_script <<'S'
send 220 older.example SMTP
expect ^EHLO
send 502 5.5.2 command not recognized
expect ^HELO
send 550 5.7.1 go away
expect ^QUIT
send 221 bye
S
)
start_fault G "$s"
mh_test "$(new_conf port="$G")"
is "$RC" 1 "EHLO and HELO refused: the test fails"
unlike "$OUT" "took HELO" "the report does not say HELO was taken ($OUT)"
stop_peer G
done_testing
