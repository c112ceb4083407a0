# A third set of real callers of sendmail (callers-real.sh, callers-more.sh have the first
# two), each rebuilt from its source: argv exactly as the program builds it, its user,
# environment and stdin (line ends included), then the message read back from a recording
# server (aiosmtpd --maildir): envelope, headers kept or added, Bcc gone, the body.
#   nodemailer  lib/sendmail-transport (6.x): spawn(path, ['-i', '-f', FROM, ...TO]), no
#               "--", no -t, the Bcc field left in the message ("Sendmail strips this
#               header line by itself": keepBcc = true), LF or, newline: 'windows', CRLF
#   PHP mail()  ext/standard/mail.c (8.2+): popen("SENDMAIL_PATH ADDITIONAL_PARAMS"), CRLF
#               after To, Subject, X-PHP-Originating-Script and each header, the body as
#               the script gave it (LF); 8.0/8.1: LF after To/Subject, CRLF between the
#               array headers (mixed line ends)
#   PHPMailer   6.x isSendmail() (WordPress's wp_mail): popen(sprintf('%s -oi -f%s -t',
#               escapeshellcmd(Sendmail), escapeshellarg(Sender))), CRLF lines, the Bcc
#               field written for sendmail to take out, 8-bit UTF-8
#   cron        Debian cron: MAILTO="a,b" is one argument of `sendmail ... -oem MAILTO`;
#               cronie: `sendmail -FCronDaemon -i -odi -oem -oi -t -f MAILFROM`, To: MAILTO
#   git send-email  sendemail.sendmailcmd (`sh -c 'CMD "$@"' - -f FROM -i RCPT...`) with
#               --envelope-sender, --cc and --bcc (a recipient, never a field), for real
#   bsd-mailx   `mail -r FROM -a HEADER -c CC -b BCC`: `sendmail -i -t -f FROM`, for real
#   Icinga 2    scripts/mail-host-notification.sh on Debian: `/usr/bin/printf "%b" "$MSG" |
#               mail -a "From: $MAILFROM" -s "$SUBJECT" $USEREMAIL` as the nagios user
# Needs root (a group for the drop program, users); skipped otherwise.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mailer.sh"

MAILX=$ROOT/.deps/bsd-mailx/usr/bin/bsd-mailx
[ -x "$MAILX" ] || { echo "Bail out! $MAILX missing: run scripts/deps"; exit 1; }
callers_env
cp "$MAILX" "$T/bsd-mailx" && chmod 755 "$T/bsd-mailx" && MAILX=$T/bsd-mailx
new_user mhweb; USR=$NEW_USER
# crlf_only: every line of message n as the server got it ends with CRLF, no bare CR or LF
crlf_only() {
  /usr/bin/python3 -c 'import re, sys; b = open(sys.argv[1], "rb").read()
sys.exit(1 if re.search(rb"\r(?!\n)|(?<!\r)\n", b) else 0)' "$T/mail/$(printf %06d $n).eml"
  ok $? "$1"
}
# run_node FILE ARGS...: a Node script as the caller (root, the mailhook variables unset)
run_node() { env -u MAILHOOK_CONF -u MAILHOOK_SPOOL node "$@"; }

# --- nodemailer's sendmail transport: the message (mailcomposer's header order, Bcc kept),
# written by a Node child_process.spawn with nodemailer's argv, LF (the default) and CRLF
# (newline: 'windows'); exit code other than 0 is an error to nodemailer
# (nodejs is no dependency: where node is missing, its 17 checks are skipped)
if command -v node >/dev/null; then
cat > "$T/nm.js" <<'JS'
const { spawn } = require('child_process');
const [sm, nl, user] = process.argv.slice(2);
const eol = nl === 'crlf' ? '\r\n' : '\n';   // nodemailer's LeWindows or LeUnix
const head = [
  'Content-Type: text/plain; charset=utf-8',
  'From: Shop <shop@example.com>',
  'To: customer@example.net',
  'Bcc: audit@example.org',
  'Subject: Your order 1234',
  'Message-ID: <b1f3c2a0-7d1e-4c55-9a0e-1f2e3d4c5b6a@example.com>',
  'Content-Transfer-Encoding: 7bit',
  'Date: Mon, 07 Dec 2026 10:12:44 +0000',
  'MIME-Version: 1.0',
];
const body = ['Thank you for your order.', '.', 'Total: 12.00 EUR', ''];
const msg = head.join(eol) + eol + eol + body.join(eol);
const opts = { stdio: ['pipe', 'inherit', 'inherit'] };
if (user) { opts.uid = Number(user); opts.gid = 65534; opts.env = { PATH: '/usr/bin:/bin' }; }
const p = spawn(sm, ['-i', '-f', 'shop@example.com', 'customer@example.net', 'audit@example.org'], opts);
p.on('close', code => process.exit(code));
p.stdin.end(msg);
JS
printf 'Thank you for your order.\n.\nTotal: 12.00 EUR\n' > "$T/nm.body"
for eol in lf crlf; do
  run_node "$T/nm.js" "$SM" $eol 2>"$T/nm.err"
  rc=$?
  check
  is "$rc" 0 "nodemailer ($eol): sendmail -i -f FROM RCPT... exit 0 ($(cat "$T/nm.err"))"
  is "$E" "shop@example.com | customer@example.net audit@example.org" "nodemailer ($eol): -f of the account's domain kept, the argv recipients"
  is "$(nfield Bcc)" 0 "nodemailer ($eol): its Bcc field (left for sendmail to strip) not sent"
  like "$M" "Message-ID: <b1f3c2a0-7d1e-4c55-9a0e-1f2e3d4c5b6a@example.com>" "nodemailer ($eol): its Message-ID kept"
  is "$(nfield Message-ID):$(nfield Date):$(nfield From):$(nfield MIME-Version)" "1:1:1:1" "nodemailer ($eol): none of its fields doubled"
  body_is "$T/nm.body" "nodemailer ($eol): the body byte for byte, its lone '.' kept (-i)"
  crlf_only "nodemailer ($eol): CRLF line ends only on the wire"
done
# the same as the web server's user, through mailhook-drop
run_node "$T/nm.js" "$SM" crlf "$(id -u "$USR")" 2>"$T/nm.err"
rc=$?
check
is "$rc:$E" "0:pbx@example.com | customer@example.net audit@example.org" "nodemailer (crlf) as $USR: exit 0, the account's sender, the recipients"
is "$(nfield Bcc)" 0 "nodemailer as $USR: Bcc not sent"
body_is "$T/nm.body" "nodemailer as $USR: the body byte for byte"
else
  for _ in $(seq 17); do skip "node not installed (nodejs): nodemailer's sendmail transport not run"; done
fi

# --- PHP 8.2+'s mail($to, $subject, $message, ['From' => ..., 'Bcc' => ...], '-fADDR'),
# mail.add_x_header = On: popen("/usr/sbin/sendmail -t -i -fbilling@example.com", "w")
# (sh -c) as www-data, CRLF after each header line, the script's LF body, CRLF after it.
# The shop's Bcc holds the customer's address as typed into a form, its domain in capitals:
# one mailbox (RFC 5321 2.4: a domain is not case-sensitive), and Postfix sends it once;
# before, two RCPTs for it and the customer got the invoice twice
printf 'Dear customer,\n\nyour invoice 2026-117 is attached.\n.\nBilling\n' > "$T/php.body"
{ printf 'To: customer@example.net, other@example.net\r\nSubject: Invoice 2026-117\r\nX-PHP-Originating-Script: %s:invoice.php\r\nFrom: Billing <billing@example.com>\r\nBcc: archive@example.org, Customer <customer@EXAMPLE.net>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n' "$(id -u "$USR")"
  cat "$T/php.body"; printf '\r\n'; } > "$T/php.msg"
as "$USR" /bin/sh -c "$SM -t -i -fbilling@example.com" < "$T/php.msg" 2>"$T/php.err"
rc=$?
check
is "$rc" 0 "PHP 8.2 mail() (sendmail -t -i -fADDR, CRLF headers) as $USR: exit 0 ($(cat "$T/php.err"))"
is "$E" "pbx@example.com | customer@example.net other@example.net archive@example.org" \
   "PHP: To's two addresses and the Bcc; the customer's copy in Bcc (its domain in capitals) is the same mailbox: sent once"
is "$(nfield Bcc)" 0 "PHP: Bcc not sent"
like "$M" "From: Billing <billing@example.com>" "PHP: its From of the account's domain kept"
like "$M" "X-PHP-Originating-Script: $(id -u "$USR"):invoice.php" "PHP: its X-PHP-Originating-Script"
printf '\n' >> "$T/php.body"   # PHP's own line end after the message
body_is "$T/php.body" "PHP 8.2: the body byte for byte (the script's LF lines, PHP's CRLF after)"
crlf_only "PHP 8.2: CRLF line ends only on the wire"

# PHP 8.0/8.1: "To: %s\n", "Subject: %s\n", X-PHP-Originating-Script "\n", the array
# headers joined with "\r\n", then "\n" and the message: line ends mixed in one header
{ printf 'To: customer@example.net\nSubject: Invoice 2026-118\nX-PHP-Originating-Script: 33:invoice.php\nFrom: billing@example.com\r\nBcc: archive@example.org\r\nReply-To: help@example.com\n\n'
  printf 'second invoice\n'; } | as "$USR" /bin/sh -c "$SM -t -i" 2>"$T/php.err"
rc=$?
check
is "$rc" 0 "PHP 8.1 mail() (mixed LF and CRLF headers): exit 0 ($(cat "$T/php.err"))"
is "$E" "pbx@example.com | customer@example.net archive@example.org" "PHP 8.1: the To and the Bcc after a CRLF line"
is "$(nfield Bcc):$(nfield Reply-To)" "0:1" "PHP 8.1: Bcc not sent, its Reply-To kept once"
printf 'second invoice\n' > "$T/php2.body"
body_is "$T/php2.body" "PHP 8.1: the body"

# --- PHPMailer (WordPress's wp_mail()): sendmailSend() runs, through popen's sh,
# "/usr/sbin/sendmail -oi -f'wordpress@example.com' -t"; createHeader() writes the Bcc for
# sendmail to extract, every line ends CRLF (static::$LE), the body normalized to CRLF
printf 'Hallo Kunde,\r\n\r\nIhre Bestellung #1234 ist unterwegs \342\200\223 danke!\r\n' > "$T/pm.crlf"
{ printf 'Date: Mon, 7 Dec 2026 10:12:44 +0000\r\nTo: Customer <customer@example.net>\r\nFrom: Shop <wordpress@example.com>\r\nBcc: orders@example.com\r\nSubject: [Shop] Ihre Bestellung\r\nMessage-ID: <Xk2o3Bd0cQfKpXbyZlQeH1s9m0@example.com>\r\nX-Mailer: PHPMailer 6.9.1 (https://github.com/PHPMailer/PHPMailer)\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
  cat "$T/pm.crlf"; } > "$T/pm.msg"
as "$USR" /bin/sh -c "$SM -oi -f'wordpress@example.com' -t" < "$T/pm.msg" 2>"$T/pm.err"
rc=$?
check
is "$rc" 0 "PHPMailer's sendmail -oi -fADDR -t as $USR: exit 0 ($(cat "$T/pm.err"))"
is "$E" "pbx@example.com | customer@example.net orders@example.com" "PHPMailer: To and its Bcc"
is "$(nfield Bcc)" 0 "PHPMailer's Bcc field not sent"
like "$M" "X-Mailer: PHPMailer 6.9.1" "its X-Mailer"
is "$(nfield Message-ID):$(nfield Date):$(nfield From)" "1:1:1" "its Message-ID, Date, From, none doubled"
tr -d '\r' < "$T/pm.crlf" > "$T/pm.body"
body_is "$T/pm.body" "PHPMailer: the 8-bit body byte for byte"
crlf_only "PHPMailer: CRLF line ends only on the wire"

# --- Debian cron, MAILTO="ops@example.net,root" (crontab(5): a comma-separated list): one
# argument "ops@example.net,root" after -oem, To: as written
printf 'backup: 3 files\n' > "$T/cron.body"
{ printf 'From: root (Cron Daemon)\nTo: ops@example.net,root\nSubject: Cron <root@%s> /usr/local/bin/backup\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\nX-Cron-Env: <MAILTO=ops@example.net,root>\nX-Cron-Env: <SHELL=/bin/sh>\n\n' "$HOST"
  cat "$T/cron.body"; } | ( cd / && exec env -i PATH=/usr/bin:/bin "$SM" -FCronDaemon -i -B8BITMIME -oem "ops@example.net,root" ) 2>"$T/cron.err"
rc=$?
check
is "$rc" 0 "Debian cron, MAILTO with two addresses (one argument): exit 0 ($(cat "$T/cron.err"))"
is "$E" "pbx@example.com | ops@example.net admin@example.org" "cron: the argument split at its comma, root resolved"
like "$M" "To: ops@example.net,root" "its To as written"
body_is "$T/cron.body" "cron: the job's output"

# MAILTO="ops@example.net, root": cron_popen() splits the command at blanks, so the
# arguments are "ops@example.net," and "root"
printf 'Subject: Cron <root@%s> /usr/local/bin/backup\n\n' "$HOST" | cat - "$T/cron.body" |
  ( cd / && exec env -i PATH=/usr/bin:/bin "$SM" -FCronDaemon -i -B8BITMIME -oem "ops@example.net," root ) 2>"$T/cron.err"
rc=$?
check
is "$rc:$E" "0:pbx@example.com | ops@example.net admin@example.org" \
   "cron, MAILTO with a comma and a blank (arguments 'ops@example.net,' 'root'): both recipients ($(cat "$T/cron.err"))"

# cronie: sendmail -FCronDaemon -i -odi -oem -oi -t -f MAILFROM, From: "(Cron Daemon)" <MAILFROM>,
# To: MAILTO, Auto-Submitted, Precedence: bulk; a user's crontab, MAILFROM unset (-f USER)
{ printf 'From: "(Cron Daemon)" <%s>\nTo: ops@example.net, %s\nSubject: Cron <%s@%s> ./sync.sh\nContent-Type: text/plain; charset=UTF-8\nAuto-Submitted: auto-generated\nPrecedence: bulk\nX-Cron-Env: <LANG=C.UTF-8>\n\n' "$USR" "$USR" "$USR" "${HOST%%.*}"
  cat "$T/cron.body"; } > "$T/cronie.msg"
( cd / && exec setpriv --reuid="$USR" --regid=nogroup --init-groups env -i PATH=/usr/bin:/bin \
    "$SM" -FCronDaemon -i -odi -oem -oi -t -f "$USR" ) < "$T/cronie.msg" 2>"$T/cronie.err"
rc=$?
check
is "$rc" 0 "cronie's sendmail -FCronDaemon -i -odi -oem -oi -t -f USER as $USR: exit 0 ($(cat "$T/cronie.err"))"
is "$E" "pbx@example.com | ops@example.net admin@example.org" "cronie: To's list read by -t, the user resolved"
like "$M" "From: \"\(Cron Daemon\)\" <pbx@example.com>" "cronie's From: its name kept, the account's address"
like "$M" "Precedence: bulk" "its Precedence kept"
body_is "$T/cron.body" "cronie: the job's output"

# --- git send-email with sendemail.sendmailcmd (through sh -c), --envelope-sender, --cc,
# --bcc: `-f dev@example.com -i RCPT...`, the Bcc only in the argv
git init -q "$T/repo" && chmod -R a+rwX "$T/repo"
( cd "$T/repo" && echo a > f && git add f && git -c user.name=Dev -c user.email=dev@example.com commit -q -m first &&
  echo b > f && git -c user.name=Dev -c user.email=dev@example.com commit -qam "fix: the thing" &&
  git format-patch -q -1 -o "$T/patches" ) && chmod -R a+rX "$T/patches"
mkdir -p "$T/home"; chmod 777 "$T/home"
GITENV="GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=Dev GIT_AUTHOR_EMAIL=dev@example.com GIT_COMMITTER_NAME=Dev GIT_COMMITTER_EMAIL=dev@example.com"
as "$USR" env HOME="$T/home" $GITENV git -C "$T/repo" -c sendemail.sendmailcmd="$SM" send-email \
  --envelope-sender=auto --to=ops@example.net --cc="Rev <rev@example.org>" --bcc=me@example.com \
  --from="Dev <dev@example.com>" --suppress-cc=all --confirm=never --quiet "$T"/patches/*.patch >"$T/git.out" 2>&1
rc=$?
check
is "$rc" 0 "git send-email --sendmail-cmd, --envelope-sender=auto, --bcc as $USR: exit 0 ($(tr '\n' ' ' < "$T/git.out"))"
is "$E" "pbx@example.com | ops@example.net rev@example.org me@example.com" "git: To, Cc and the Bcc from the argv"
is "$(nfield Bcc)" 0 "git writes no Bcc field, none sent"
like "$M" "From: Dev <dev@example.com>" "git: a From of the account's domain kept"
like "$M" "Cc: Rev <rev@example.org>" "its Cc"

# --- bsd-mailx -r FROM -a HEADER -c CC -b BCC: sendmail -i -t -f FROM, From, To, Cc, Bcc,
# the -a field, as root
printf 'set sendmail=%s\n' "$SM" > "$T/mailrc"; chmod 644 "$T/mailrc"
printf 'RAID /dev/md0 degraded\n' | env -u MAILHOOK_CONF -u MAILHOOK_SPOOL MAILRC="$T/mailrc" HOME="$T/home" \
  "$MAILX" -s "md0 degraded" -r "Ops <ops@example.com>" -a "X-Priority: 1" -c cc@example.org -b bcc@example.org to@example.net root
rc=$?
check
is "$rc" 0 "bsd-mailx -r -a -c -b: exit 0"
is "$E" "ops@example.com | admin@example.org to@example.net cc@example.org bcc@example.org" "mailx: -f of the account's domain kept; To, Cc, Bcc"
is "$(nfield Bcc)" 0 "mailx's Bcc field not sent"
like "$M" "X-Priority: 1" "its -a field"
like "$M" "From: Ops <ops@example.com>" "its -r From"

# --- Icinga 2's mail-host-notification.sh (Debian branch: `-a "From: $MAILFROM"`), run by
# the icinga daemon's user: printf %b of its NOTIFICATION_MESSAGE (a tab, no final newline)
# into bsd-mailx, which runs `sendmail -i -t` (through mailhook-drop)
printf '***** Host Monitoring on icinga *****\n\nweb1 is DOWN!\n\nInfo:    PING CRITICAL - Packet loss = 100%%\n\nWhen:    2026-12-07 11:20:01 +0000\nHost:    web1\nIPv4:\t 192.0.2.10' > "$T/icinga.msg"
as "$USR" env MAILRC="$T/mailrc" HOME="$T/home" /bin/sh -c '/usr/bin/printf "%b" "$(cat "$1")" | "$2" -a "From: icinga@example.com" -s "[PROBLEM] Host web1 is DOWN!" ops@example.net' - "$T/icinga.msg" "$MAILX" 2>"$T/icinga.err"
rc=$?
check
is "$rc:$E" "0:pbx@example.com | ops@example.net" "Icinga 2's mail -a 'From: ...' -s SUBJ ADDR as $USR: exit 0, the account's sender ($(cat "$T/icinga.err"))"
like "$M" "From: icinga@example.com" "its -a From (the account's domain) kept"
is "$(nfield From)" 1 "one From (mailx writes none of its own)"
{ /usr/bin/printf "%b" "$(cat "$T/icinga.msg")"; echo; } > "$T/icinga.body"
body_is "$T/icinga.body" "Icinga: the notification byte for byte, its tab kept, a final newline"
done_testing
