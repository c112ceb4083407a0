# sendmail's command line (issue 12.1, 12.2): every flag Postfix's sendmail(1) accepts is
# accepted, in the forms callers write them (attached -B8BITMIME, separate -h 10, clusters
# -ti, -oem, -odb); the ones with a meaning here are honoured (-t -i -oi -f -r -F -bp -bs
# -bi -bv -q -v), what cannot be done safely is refused with EX_USAGE and a message
# (-bd), an unknown flag too.  The binary called as sendmail, mailq or newaliases behaves
# as sendmail, sendmail -bp, sendmail -bi.  Every message is checked in the spool file.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

export MAILHOOK_CONF=$T/mailhook.conf MAILHOOK_SPOOL=$T/spool
"$MAILHOOK" update enabled=true server=127.0.0.1 port=1 tls=none tls_required=false \
  from=pbx@example.com >/dev/null || { echo "Bail out! update failed"; exit 1; }
spool_make   # makes the spool
MSG=$(printf 'Subject: flags\n\nbody\n.\nafter the dot\n')
newest() { ls -t "$T/spool/pickup/"*.eml 2>/dev/null | head -1; }
count() { find "$T/spool/pickup" -name '*.eml' | wc -l; }
envl() { grep -a '^X-\(Sender\|Receiver\):' "$(newest)" | tr -d '\r' | tr '\n' ' '; }

# --- every flag a caller may pass: accepted, message queued (exit 0)
# (the value forms: attached and separate; the flag list is Postfix's GETOPT_LIST plus -n -U)
while IFS='|' read -r what args; do
  [ -n "$what" ] || continue
  before=$(count)
  # shellcheck disable=SC2086
  out=$(printf '%s\n' "$MSG" | "$MAILHOOK" sendmail $args ops@example.net 2>&1); rc=$?
  is "$rc:$(( $(count) - before ))" "0:1" "$what ($args): accepted, one message queued${out:+ ($out)}"
done <<'EOF'
cron's argv|-FCronDaemon -i -B8BITMIME -oem
-B 7BIT, separate|-B 7BIT
-oi -odb -oem -oQ/var/x|-oi -odb -oem -oQ/var/x
-o i (separate value)|-o i
-U -m -n -G -c -x|-U -m -n -G -c -x
-h 10 and -h10|-h 10 -h10
-L tag -L(attached)|-L tag -Lmytag
-O opt=val|-O DeliveryMode=b -OErrorMode=m
-X file (attached and separate)|-X /tmp/trafficlog -X/tmp/t2
-C file|-C /etc/mail/sendmail.cf
-A c and -Am|-A c -Am
-e p -p proto|-e p -psmtp:host
-N -R -V|-N success,delay -R hdrs -V envid42
-v|-v
-bm|-bm
-r sender|-r app@example.com
-f root (a local name)|-f root
-f '<>'|-f <>
-ti cluster|-ti
EOF

# --- -i / -oi and the lone dot
printf 'Subject: dot\n\nline\n.\nmore\n' | "$MAILHOOK" sendmail ops@example.net
unlike "$(cat "$(newest)")" "more" "without -i a lone dot ends the message"
printf 'Subject: dot\n\nline\n.\nmore\n' | "$MAILHOOK" sendmail -oi ops@example.net
like "$(cat "$(newest)")" "more" "-oi: the dot is text"
printf 'Subject: dot\n\nline\n.\nmore\n' | "$MAILHOOK" sendmail -ti -- ops@example.net
like "$(cat "$(newest)")" "more" "-ti (a cluster) = -t -i"

# --- -t: recipients from To, Cc, Bcc, plus the arguments; Bcc removed
printf 'To: a@example.net\nCc: "B, b" <b@example.net>\nBcc: c@example.net\nSubject: t\n\nx\n' |
  "$MAILHOOK" sendmail -t d@example.net
is "$(envl)" "X-Sender: pbx@example.com X-Receiver: d@example.net X-Receiver: a@example.net X-Receiver: b@example.net X-Receiver: c@example.net " \
  "-t: To, Cc, Bcc and the argument"
unlike "$(cat "$(newest)")" "^Bcc:" "Bcc removed from the copy that is sent"

# --- -f / -r and the sender (from_rewrite = envelope, the default)
printf '%s\n' "$MSG" | "$MAILHOOK" sendmail -f '<>' ops@example.net
like "$(envl)" "^X-Sender: <> " "-f '<>': the null sender"
printf '%s\n' "$MSG" | "$MAILHOOK" sendmail -f "" ops@example.net
like "$(envl)" "^X-Sender: <> " "-f '': the null sender"
printf '%s\n' "$MSG" | "$MAILHOOK" sendmail -f alerts@example.com ops@example.net
like "$(envl)" "^X-Sender: alerts@example.com " "-f of the account's domain is kept"
printf '%s\n' "$MSG" | "$MAILHOOK" sendmail -r someone@elsewhere.org ops@example.net
like "$(envl)" "^X-Sender: pbx@example.com " "-r of another domain: the settings' from (a server would refuse it)"
printf '%s\n' "$MSG" | "$MAILHOOK" sendmail -froot ops@example.net
like "$(envl)" "^X-Sender: root@example.com " "-froot: qualified with default_domain (the account's domain)"

# --- -F: the full name of an added From
printf 'Subject: no from\n\nx\n' | "$MAILHOOK" sendmail -F 'Cron Daemon' ops@example.net
like "$(grep -a '^From:' "$(newest)")" '^From: Cron Daemon <pbx@example.com>' "-F names the From that intake adds"
printf 'Subject: no from\n\nx\n' | "$MAILHOOK" sendmail -F 'Doe, John' ops@example.net
like "$(grep -a '^From:' "$(newest)")" '^From: "Doe, John" <pbx@example.com>' "a name that needs quotes is quoted"

# --- -v says where the message went
out=$(printf '%s\n' "$MSG" | "$MAILHOOK" sendmail -v ops@example.net 2>&1)
like "$out" "queued as [0-9a-f]{16}, from <pbx@example.com> to ops@example.net" "-v: the id and envelope on stderr"

# --- modes
out=$("$MAILHOOK" sendmail -bp 2>&1); rc=$?
is "$rc" 0 "-bp exits 0"
like "$out" "^----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------" "-bp: Postfix's mailq heading"
like "$out" "-- [0-9]+ Kbytes in $(count) Requests\.$" "and its summary line, one request per message"
like "$out" "[0-9a-f]{16} +[0-9]+ [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} MAILER-DAEMON" "the null sender is MAILER-DAEMON"
out=$("$MAILHOOK" sendmail -bi 2>&1); rc=$?
is "$rc:$out" "0:" "-bi (newaliases): nothing to build, exit 0"
out=$("$MAILHOOK" sendmail -bh 2>&1); rc=$?
is "$rc" 0 "-bh (host status): nothing kept, exit 0"
for m in -bd -bD -bl; do
  out=$(echo x | "$MAILHOOK" sendmail $m 2>&1); rc=$?
  is "$rc" 64 "$m refused with EX_USAGE"
  like "$out" "not something mailhook does: it only sends" "$m: says why ($out)"
done
out=$(echo x | "$MAILHOOK" sendmail -bt 2>&1); rc=$?
is "$rc" 64 "-bt (address test mode): EX_USAGE"
like "$out" "-bt is not supported" "naming it"
out=$(echo x | "$MAILHOOK" sendmail -Q ops@example.net 2>&1); rc=$?
is "$rc" 64 "an unknown flag: EX_USAGE"
like "$out" "unknown option '-Q'" "naming it"
out=$(echo x | "$MAILHOOK" sendmail -t -bp 2>&1); rc=$?
is "$rc" 64 "-t with -bp: EX_USAGE (Postfix: -t only when sending)"
out=$("$MAILHOOK" sendmail -f 2>&1); rc=$?
is "$rc" 64 "-f without its value: EX_USAGE"
out=$("$MAILHOOK" sendmail -bv root ops@example.net 2>&1); rc=$?
is "$rc" 0 "-bv checks addresses"
like "$out" "root\.\.\. deliverable: root@example.com" "-bv: a local name and where it goes"

# --- -q with the server down (port 1): the flush ran, the messages stay queued: exit 0,
# as Postfix's -q (a cron `sendmail -q` mails no error each time), the reason on stderr
n=$(count)
out=$("$MAILHOOK" sendmail -q 2>&1); rc=$?
is "$rc:$(count)" "0:$n" "-q with the server down: exit 0, every message still queued"
like "$out" "stay queued for the next attempt: .*(connect|refused)" "and says why ($out)"

# --- -q: deliver now (to a real server)
start_smtpd P --maildir "$T/mail"
"$MAILHOOK" update port="$P" >/dev/null
n=$(count)
out=$("$MAILHOOK" sendmail -q 2>&1); rc=$?
is "$rc" 0 "-q delivers the queue ($out)"
is "$(count)" 0 "pickup/ is empty"
is "$(count_mail "$T/mail")" "$n" "every message reached the server"
printf '%s\n' "$MSG" | "$MAILHOOK" sendmail ops@example.net
out=$("$MAILHOOK" sendmail -q30m 2>&1); rc=$?
is "$rc:$(count)" "0:0" "-q30m (an interval for a daemon) delivers now too"

# --- -bs: SMTP on stdin and stdout
out=$(printf 'EHLO client\r\nMAIL FROM:<app@example.com> RET=HDRS ENVID=abc+2Bd\r\nRCPT TO:<x@example.net> NOTIFY=SUCCESS,FAILURE\r\nRCPT TO:<root>\r\nDATA\r\nSubject: bs\r\n\r\nline\r\n..dotted\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<y@example.net>\r\nDATA\r\nno header at all\r\n.\r\nRSET\r\nNOOP\r\nVRFY x\r\nSTARTTLS\r\nbogus\r\nQUIT\r\n' |
      "$MAILHOOK" sendmail -bs 2>&1); rc=$?
is "$rc" 0 "-bs: exit 0 after QUIT"
codes=$(printf '%s\n' "$out" | grep -oE '^[0-9]{3}[ ]' | tr -d ' ' | tr '\n' ' ')
is "$codes" "220 250 250 250 250 354 250 250 250 354 250 250 250 252 502 500 221 " "the replies, in order"
like "$out" "250-DSN" "EHLO announces DSN"
ids=$(printf '%s\n' "$out" | sed -n 's/^250 2.0.0 Ok: queued as \([0-9a-f]*\).*/\1/p' | tr -d '\r')
is "$(echo "$ids" | wc -l)" 2 "two messages queued, their ids said"
f1=$T/spool/pickup/$(echo "$ids" | head -1).eml
f2=$T/spool/pickup/$(echo "$ids" | tail -1).eml
is "$(grep -a '^X-' "$f1" | grep -av '^X-Spool-Size: ' | tr -d '\r' | tr '\n' '|')" \
   "X-Sender: app@example.com RET=HDRS ENVID=abc+2Bd|X-Receiver: x@example.net NOTIFY=SUCCESS,FAILURE|X-Receiver: root@example.com|X-Submitter-Uid: $(id -u)|" \
   "-bs: the envelope of MAIL (the account's domain: kept) and RCPT, DSN parameters kept (ENVID in xtext), root qualified"
like "$(cat "$f1")" $'\r\n\\.dotted\r$' "dot-stuffing undone"
like "$(grep -a '^X-Sender' "$f2")" "^X-Sender: <>" "MAIL FROM:<> is the null sender"
like "$(cat "$f2")" $'\r\n\r\nno header at all\r$' "a message without a header block is all body, headers added before it"
grep -aq '^Message-ID: ' "$f2"; ok $? "and it got a Message-ID"
out=$(printf 'MAIL FROM:<a@example.com>\r\nDATA\r\nRCPT TO:<bad address>\r\n' | "$MAILHOOK" sendmail -bs 2>&1); rc=$?
codes=$(printf '%s\n' "$out" | grep -oE '^[0-9]{3}' | tr '\n' ' ')
is "$codes" "220 250 554 553 " "-bs: DATA without a recipient 554, a bad address 553; EOF without QUIT is fine"
is "$rc" 0 "and exits 0"

# --- the names of an MTA (argv[0]): sendmail, mailq, newaliases
ln -s "$MAILHOOK" "$T/sendmail"; ln -s "$MAILHOOK" "$T/mailq"; ln -s "$MAILHOOK" "$T/newaliases"
"$MAILHOOK" update port=1 >/dev/null
printf 'To: ops@example.net\nSubject: via the link\n\nx\n' | "$T/sendmail" -t -v 2>"$T/v.err"; rc=$?
is "$rc" 0 "a link named sendmail is mailhook sendmail (-t -v: sendmail's, not mailhook's -v)"
like "$(cat "$T/v.err")" "queued as" "and its -v is sendmail's"
like "$(grep -a '^Subject' "$(newest)")" "via the link" "the message is queued"
out=$("$T/mailq" 2>&1); rc=$?
is "$rc" 0 "mailq exits 0"
like "$out" "-- [0-9]+ Kbytes in $(count) Requests?\." "mailq is sendmail -bp"
out=$("$T/newaliases" 2>&1); rc=$?
is "$rc:$out" "0:" "newaliases: exit 0, nothing said"
n=$(count)
printf 'Subject: c\n\nx\n' | "$T/sendmail" -c ops@example.net; rc=$?
is "$rc:$(( $(count) - n ))" "0:1" "under the name sendmail, -c is sendmail's (ignored), not mailhook's settings file"
done_testing
