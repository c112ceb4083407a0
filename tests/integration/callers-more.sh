# More real callers of sendmail, each reproduced from its source as closely as a test can:
# the exact argv, the user it runs as, the environment, descriptors and stdin it gives
# the mailer, and the message it writes (callers-real.sh has cron, bsd-mailx, smartd, git
# send-email, mdadm and PHP's mail()).  Through the sendmail link of a staged install
# (make install-sendmail), as root or, through mailhook-drop, as another user; each
# message delivered to a recording server (aiosmtpd --maildir) and checked there: the
# envelope, the caller's headers kept, Bcc gone, the body byte for byte.
#   sudo        plugins/sudoers/logging.c (send_mail, exec_mailer), sudo 1.8/1.9
#   GNU at      atd.c (run_file), at 3.1/3.2
#   anacron     runjob.c (launch_job, launch_mailer)
#   fail2ban    config/action.d/sendmail-common.conf, sendmail.conf
#   unattended-upgrades  unattended-upgrade (_send_mail_using_sendmail)
#   logwatch    scripts/logwatch.pl (initprint; Debian's logwatch.conf: mailer = "/usr/sbin/sendmail -t")
#   mutt/neomutt sendlib.c send_msg ($sendmail "/usr/sbin/sendmail -oem -oi", -B8BITMIME, -f, --)
#   s-nail      sendout.c a_sendout_prepare_mta_args (-i [-m] [-f FROM] -- RCPT...)
#   Perl Mail::Mailer 'sendmail' (MailTools: exec $exe, '-t'), from a daemon that set
#               $SIG{CHLD} = 'IGNORE' (inherited across exec)
#   Python      email.message.EmailMessage + subprocess.run([sendmail, "-t", "-oi"])
#   vacation-style auto-replies: sendmail -oi -f '<>' -- RCPT (the null sender)
# Needs root (a group for the drop program, users); skipped otherwise.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mailer.sh"

callers_env
new_user mhusr; USR=$NEW_USER
# --- sudo: send_mail() forks twice, setsid, chdir("/"), 0-2 on /dev/null, closefrom(3),
# then exec_mailer: stdin the pipe, uid root, the environment exactly HOME=/ PATH=...
# LOGNAME=root USER=root, argv "sendmail -t" (mailerpath, mailerflags); the message
# "To: root\nFrom: USER\nAuto-Submitted: auto-generated\nSubject: ..." and, with a
# sudoers_locale other than C, Content-Type/Content-Transfer-Encoding 8bit without any
# MIME-Version; the log line, then "\n\n".
printf '%s : Dec  7 07:40:01 : %s : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/%s/donn\303\251es ; USER=root ; COMMAND=/usr/bin/id\n\n' \
  "$HOST" "$USR" "$USR" > "$T/sudo.body"
{ printf 'To: root\nFrom: %s\nAuto-Submitted: auto-generated\nSubject: *** SECURITY information for %s ***\nContent-Type: text/plain; charset="UTF-8"\nContent-Transfer-Encoding: 8bit\n\n' "$USR" "$HOST"
  cat "$T/sudo.body"; } > "$T/sudo.msg"
( cd / && exec setsid env -i HOME=/ PATH=/usr/bin:/bin:/usr/sbin:/sbin LOGNAME=root USER=root \
    /usr/bin/perl -e 'open(STDOUT, ">", "/dev/null"); open(STDERR, ">", "/dev/null"); exec { $ARGV[0] } "sendmail", "-t"' "$SM" ) < "$T/sudo.msg"
rc=$?
check
is "$rc" 0 "sudo's mailer (sendmail -t, root, HOME=/ LOGNAME=root, setsid, 1-2 on /dev/null): exit 0"
is "$E" "pbx@example.com | admin@example.org" "sudo: To: root reaches admin_address, from the account"
like "$M" "Auto-Submitted: auto-generated" "sudo's Auto-Submitted kept (no auto-reply loops)"
like "$M" "Subject: \*\*\* SECURITY information for $HOST \*\*\*" "its Subject"
like "$M" "To: root" "To: root as written"
like "$M" "Reply-To: admin@example.org" "From: $USR (the invoking user, a bare name): replies go where $USR's mail goes"
is "$(nfield From)" 1 "one From"
body_is "$T/sudo.body" "sudo's 8-bit log line, no MIME-Version: the body byte for byte"

# --- GNU at: atd's run_file() ends with stdin the job's output file (opened, unlinked,
# lseek 0), stdout and stderr on /dev/null, chdir("/"), setgid/setuid to the job's user,
# atd's own (empty: it was started by init) environment, and
# execl(SENDMAIL, "sendmail", "-i", mailname, NULL); the file starts "Subject: Output
# from your job %8ld\nTo: USER\n\n" (at 3.2; 3.1 writes the Subject alone).
printf 'total 8\ndrwxr-xr-x 2 %s nogroup 4096 Dec  7 07:41 .\n.\n--- backup done\n' "$USR" > "$T/at.body"
printf 'Subject: Output from your job        7\nTo: %s\n\n' "$USR" | cat - "$T/at.body" > "$T/at.out"
chown "$USR" "$T/at.out"
( cd / && exec setpriv --reuid="$USR" --regid=nogroup --init-groups env -i \
    /usr/bin/perl -e 'open(STDIN, "<", $ARGV[1]) or die; unlink $ARGV[1]; open(STDOUT, ">", "/dev/null"); open(STDERR, ">", "/dev/null");
                      exec { $ARGV[0] } "sendmail", "-i", $ARGV[2]' "$SM" "$T/at.out" "$USR" )
rc=$?
check
is "$rc" 0 "at's mailer as $USR (sendmail -i USER, no environment, stdin an unlinked file): exit 0"
is "$E" "pbx@example.com | admin@example.org" "at: the job's owner (a local name) reaches admin_address"
like "$M" "Subject: Output from your job        7" "at's Subject, its blanks kept"
like "$M" "To: $USR" "its To as written"
like "$M" "from userid $(id -u "$USR")" "the job's uid recorded"
body_is "$T/at.body" "at: the job's output byte for byte, its lone '.' line kept (-i)"

# at -m with a job that printed nothing: the headers alone
printf 'Subject: Output from your job        8\nTo: %s\n\n' "$USR" > "$T/at2.out"; chown "$USR" "$T/at2.out"
( cd / && exec setpriv --reuid="$USR" --regid=nogroup --init-groups env -i "$SM" -i "$USR" < "$T/at2.out" >/dev/null 2>&1 )
rc=$?
check
is "$rc:$E" "0:pbx@example.com | admin@example.org" "at -m, no output: the header-only message queued and sent"
: > "$T/empty"; body_is "$T/empty" "at -m: an empty body"

# --- anacron: launch_job() writes "From: Anacron <USER>\nTo: MAILTO\nContent-Type:
# text/plain; charset=\"CODESET\"\nSubject: Anacron job 'ID' on HOST\n\n" and the job's
# output into a temporary file; launch_mailer() makes it stdin (lseek 0), 1 and 2
# /dev/null, and runs execl(SENDMAIL, SENDMAIL, "-FAnacron", "-odi", mailto, NULL): no
# -i (a lone '.' line would end the message, as with every sendmail), as root
printf '/etc/cron.daily/logrotate:\nerror: error running shared postrotate script for \342\200\230/var/log/apache2/*.log\342\200\231\nrun-parts: /etc/cron.daily/logrotate exited with return code 1\n' > "$T/ana.body"
{ printf "From: Anacron <root>\nTo: root\nContent-Type: text/plain; charset=\"ANSI_X3.4-1968\"\nSubject: Anacron job 'cron.daily' on %s\n\n" "$HOST"
  cat "$T/ana.body"; } > "$T/ana.out"
( cd / && exec env -i PATH=/usr/bin:/bin SHELL=/bin/sh MAILTO=root "$SM" -FAnacron -odi root < "$T/ana.out" >/dev/null 2>&1 )
rc=$?
check
is "$rc" 0 "anacron's mailer (sendmail -FAnacron -odi root, root): exit 0"
is "$E" "pbx@example.com | admin@example.org" "anacron: root reaches admin_address"
like "$M" "From: Anacron <pbx@example.com>" "anacron's From: its name kept, the account's address"
like "$M" "Subject: Anacron job 'cron.daily' on $HOST" "its Subject"
like "$M" 'Content-Type: text/plain; charset="ANSI_X3.4-1968"' "its Content-Type as written"
body_is "$T/ana.body" "anacron: the job's 8-bit output byte for byte"

# --- fail2ban: actionban of action.d/sendmail.conf (Python's configparser joins the
# value's lines with \n), run by fail2ban-server as root through /bin/sh:
#   printf %b "Subject: ...\nDate: ...\nFrom: <sendername> <<sender>>\nTo: <dest>\n\n...Fail2Ban"
#     | /usr/sbin/sendmail -f <sender> <dest>
# sender = fail2ban, sendername = Fail2Ban, dest = root (sendmail-common.conf [Init]): a
# bare local name as -f, in the From's angle brackets; no -i; no final newline.
F2B_DATE=$(LC_ALL=C date +"%a, %d %h %Y %T %z")
cat > "$T/f2b.sh" <<EOF
printf %b "Subject: [Fail2Ban] sshd: banned 192.0.2.7 from $HOST
Date: $F2B_DATE
From: Fail2Ban <fail2ban>
To: root\\n
Hi,\\n
The IP 192.0.2.7 has just been banned by Fail2Ban after
5 attempts against sshd.\\n
Regards,\\n
Fail2Ban" | $SM -f fail2ban root
EOF
env -u MAILHOOK_CONF -u MAILHOOK_SPOOL /bin/sh "$T/f2b.sh" >"$T/f2b.err" 2>&1
rc=$?
check
is "$rc" 0 "fail2ban's actionban (sendmail -f fail2ban root): exit 0 ($(cat "$T/f2b.err"))"
is "$E" "fail2ban@example.com | admin@example.org" \
   "fail2ban: -f fail2ban, a local name, qualified (the account's domain: kept, as Postfix's myorigin); root reaches admin_address"
like "$M" "Date: ${F2B_DATE/+/[+]}" "fail2ban's own Date kept"
like "$M" "From: Fail2Ban <pbx@example.com>" "From: its name kept, the account's address"
like "$M" "Subject: \[Fail2Ban\] sshd: banned 192.0.2.7 from $HOST" "its Subject"
printf 'Hi,\n\nThe IP 192.0.2.7 has just been banned by Fail2Ban after\n5 attempts against sshd.\n\nRegards,\n\nFail2Ban\n' > "$T/f2b.body"
body_is "$T/f2b.body" "fail2ban: the body byte for byte, its missing final newline added"

# --- unattended-upgrades: _send_mail_using_sendmail(): an email.message.Message with
# Subject, From (Unattended-Upgrade::Sender, default "root"), To ("root"), Auto-Submitted,
# the body set with a utf-8 charset whose body_encoding is QP; then
# subprocess.Popen([SENDMAIL_BINARY, "-oi", "-t"], stdin=PIPE, universal_newlines=True)
# .stdin.write(msg.as_string()), as root from apt's systemd unit
cat > "$T/uu.py" <<'PY'
import email.charset, subprocess, sys
from email.message import Message
msg = Message()
msg['Subject'] = "[reboot required] unattended-upgrades result for host: True"
msg['From'] = "root"
msg['To'] = "root"
msg['Auto-Submitted'] = "auto-generated"
charset = email.charset.Charset("utf-8")
charset.body_encoding = email.charset.QP
body = sys.stdin.read()
msg.set_payload(body, charset)
p = subprocess.Popen([sys.argv[1], "-oi", "-t"], stdin=subprocess.PIPE, universal_newlines=True)
p.stdin.write(msg.as_string())
p.stdin.close()
sys.exit(p.wait())
PY
printf 'Unattended upgrade result: All upgrades installed\n\nPackages that were upgraded:\n libssl3 openssl \n\nPackage installation log:\nLog started: 2026-12-07  06:12:01\nPr\303\251paration du d\303\251paquetage de .../libssl3_3.0.17-1~deb12u3_amd64.deb ...\n.\nLog ended: 2026-12-07  06:12:09\n' > "$T/uu.text"
env -u MAILHOOK_CONF -u MAILHOOK_SPOOL /usr/bin/python3 "$T/uu.py" "$SM" < "$T/uu.text" >"$T/uu.err" 2>&1
rc=$?
check
is "$rc" 0 "unattended-upgrades (sendmail -oi -t from Python, root): exit 0 ($(cat "$T/uu.err"))"
is "$E" "pbx@example.com | admin@example.org" "u-u: To: root reaches admin_address"
like "$M" "Content-Transfer-Encoding: quoted-printable" "its MIME headers kept"
like "$M" 'Content-Type: text/plain; charset="utf-8"' "its charset"
like "$M" "Auto-Submitted: auto-generated" "its Auto-Submitted"
got_text=$(/usr/bin/python3 -c 'import email, sys; m = email.message_from_binary_file(open(sys.argv[1], "rb")); sys.stdout.write(m.get_payload(decode=True).decode())' "$T/mail/$(printf %06d $n).eml")
is "$got_text" "$(cat "$T/uu.text")" "u-u: the report decodes to the text written"

# --- logwatch: initprint() opens "|$Config{'mailer'}" (Debian: /usr/sbin/sendmail -t),
# writes one "To: ADDR" line per word of MailTo, "From: $Config{'mailfrom'}" (default
# "Logwatch", no address at all), the Subject, MIME 7bit iso-8859-1; run from cron as root
printf '\n ################### Logwatch 7.7 (07/22/22) #################### \n        Processing Initiated: Mon Dec  7 06:25:01 2026\n        Detail Level of Output: 0\n\n --------------------- pam_unix Begin ------------------------ \n' > "$T/lw.body"
{ printf 'To: root\nTo: ops@example.net\nFrom: Logwatch\nSubject: Logwatch for %s (Linux)\nMIME-Version: 1.0\nContent-Transfer-Encoding: 7bit\nContent-Type: text/plain; charset="iso-8859-1"\n\n' "$HOST"
  cat "$T/lw.body"; } | env -u MAILHOOK_CONF -u MAILHOOK_SPOOL /usr/bin/perl -e 'open(M, "|$ARGV[0] -t") or die; print M <STDIN>; close M; exit($? >> 8)' "$SM"
rc=$?
check
is "$rc" 0 "logwatch (sendmail -t, MailTo = \"root ops@example.net\"): exit 0"
is "$E" "pbx@example.com | admin@example.org ops@example.net" "logwatch: both To fields read by -t"
is "$(nfield To)" 2 "both To fields carried as written"
like "$M" "From: pbx@example.com" "From: Logwatch (no address): the account's"
body_is "$T/lw.body" "logwatch: the report byte for byte (its leading empty line kept)"

# --- mutt / neomutt: send_msg() runs $sendmail ("/usr/sbin/sendmail -oem -oi"), then
# -B8BITMIME for an 8-bit body ($use_8bitmime), -f FROM ($use_envelope_from), "--" and
# every To, Cc and Bcc address; with $write_bcc (mutt's default before 2.0) the Bcc field
# is in the message too.  A desktop user's: through mailhook-drop.
printf 'Hallo,\n\nder Bericht f\303\274r Dezember liegt bei.  \n-- \nAnn\n' > "$T/mutt.body"
{ printf 'Date: Mon, 7 Dec 2026 08:12:44 +0100\nFrom: Ann Example <ann@example.com>\nTo: ops@example.net\nCc: Bob <bob@example.org>\nBcc: audit@example.org\nSubject: Bericht f\303\274r Dezember\nMessage-ID: <20261207071244.GA1234@example.com>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Disposition: inline\nContent-Transfer-Encoding: 8bit\nUser-Agent: NeoMutt/20231103\n\n'
  cat "$T/mutt.body"; } > "$T/mutt.msg"
as "$USR" "$SM" -oem -oi -B8BITMIME -f ann@example.com -- ops@example.net bob@example.org audit@example.org < "$T/mutt.msg"
rc=$?
check
is "$rc" 0 "mutt's sendmail -oem -oi -B8BITMIME -f ADDR -- RCPT... as $USR: exit 0"
is "$E" "pbx@example.com | ops@example.net bob@example.org audit@example.org" "mutt: the recipients after --"
is "$(nfield Bcc)" 0 "mutt's Bcc field ($write_bcc) not in the copy sent"
like "$M" "Message-ID: <20261207071244.GA1234@example.com>" "mutt's Message-ID kept"
like "$M" "User-Agent: NeoMutt/20231103" "its User-Agent"
like "$M" "Cc: Bob <bob@example.org>" "its Cc as written"
body_is "$T/mutt.body" "mutt: the 8-bit body byte for byte (its '-- ' signature separator kept)"

# --- s-nail: a_sendout_prepare_mta_args(): argv[0] *mta-argv0* ("sendmail"), -i, -m
# (*metoo*), -f FROM (-r), "--", the recipients (a local name among them)
printf 'Subject: s-nail\nFrom: ann@example.com\nTo: root, ops@example.net\n\nsent with s-nail\n' |
  env -u MAILHOOK_CONF -u MAILHOOK_SPOOL "$SM" -i -m -f ann@example.com -- root ops@example.net
rc=$?
check
is "$rc:$E" "0:ann@example.com | admin@example.org ops@example.net" \
   "s-nail's sendmail -i -m -f ADDR -- root ADDR (root): exit 0, -f of the account's domain kept, both recipients"

# --- a Perl daemon that reaps nothing ($SIG{CHLD} = 'IGNORE', inherited across exec) and
# mails with Mail::Mailer's 'sendmail' (MailTools: exec($exe, '-t', @args)), as a user:
# sendmail's own child (mailhook-drop) is reaped by the kernel, waitpid() fails ECHILD
cat > "$T/mm.pl" <<'PL'
BEGIN { $ENV{PERL_MAILERS} = "sendmail:$ARGV[0]" }   # where Mail::Mailer finds sendmail
use Mail::Mailer;
$SIG{CHLD} = 'IGNORE';
my $m = Mail::Mailer->new('sendmail');
$m->open({ From => 'monitor@example.com', To => 'ops@example.net', Subject => 'disk /srv 95%' }) or die "open: $!";
print $m "disk /srv is 95% full\n";
$m->close;
PL
printf 'From: monitor@example.com\nTo: ops@example.net\nSubject: disk /srv 95%%\n\ndisk /srv is 95%% full\n' > "$T/mm.msg"
as "$USR" /usr/bin/perl -e '$SIG{CHLD} = "IGNORE"; open(STDIN, "<", $ARGV[1]) or die; exec { $ARGV[0] } "sendmail", "-t", "-oi"' "$SM" "$T/mm.msg" 2>"$T/mm.err"
rc=$?
check
is "$rc" 0 "sendmail -t -oi as $USR with SIGCHLD ignored by its parent: exit 0 ($(cat "$T/mm.err"))"
is "$E" "pbx@example.com | ops@example.net" "delivered once"
as "$USR" /usr/bin/perl "$T/mm.pl" "$SM" 2>"$T/mm2.err"
rc=$?
check
is "$rc" 0 "Mail::Mailer 'sendmail' from a Perl process ignoring SIGCHLD: no error ($(cat "$T/mm2.err"))"
is "$E" "pbx@example.com | ops@example.net" "Mail::Mailer's message delivered"
is "$(count_mail "$T/mail")" "$n" "each message exactly once"

# --- Python's email + subprocess idiom: EmailMessage (policy default, LF lines), To, Cc,
# Bcc, then subprocess.run(["/usr/sbin/sendmail", "-t", "-oi"], input=msg.as_bytes())
cat > "$T/py.py" <<'PY'
import subprocess, sys
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "Backup <backup@example.com>"
m["To"] = "ops@example.net"
m["Cc"] = "root"
m["Bcc"] = "audit@example.org"
m["Subject"] = "backup of /srv: 3 files changed"
m.set_content("rsync: 3 files changed\n" + "x" * 1200 + "\n")
sys.exit(subprocess.run([sys.argv[1], "-t", "-oi"], input=m.as_bytes()).returncode)
PY
as "$USR" /usr/bin/python3 "$T/py.py" "$SM" 2>"$T/py.err"
rc=$?
check
is "$rc" 0 "Python's subprocess.run([sendmail, -t, -oi]) as $USR: exit 0 ($(cat "$T/py.err"))"
is "$E" "pbx@example.com | ops@example.net admin@example.org audit@example.org" "To, Cc (root) and Bcc are the recipients"
is "$(nfield Bcc)" 0 "the Bcc field not sent"
like "$M" "Cc: root" "Cc as written"
got_text=$(/usr/bin/python3 -c 'import email, sys; m = email.message_from_binary_file(open(sys.argv[1], "rb")); sys.stdout.write(m.get_payload(decode=True).decode())' "$T/mail/$(printf %06d $n).eml")
is "$got_text" "$(printf 'rsync: 3 files changed\n%s' "$(printf 'x%.0s' $(seq 1200))")" "its 1200-character line decodes whole"

# --- an auto-reply (vacation(1), procmail's autoresponders): sendmail -oi -f '<>' -- RCPT
# from the null sender, so that it never gets a reply or a bounce itself
printf 'From: ann@example.com\nTo: someone@example.net\nSubject: Auto: away\nAuto-Submitted: auto-replied\nPrecedence: bulk\n\nI am away until Monday.\n' |
  env -u MAILHOOK_CONF -u MAILHOOK_SPOOL "$SM" -oi -f '<>' -- someone@example.net
rc=$?
check
is "$rc:$E" "0:<> | someone@example.net" "vacation's sendmail -oi -f '<>' -- RCPT: the null sender kept"
like "$M" "Auto-Submitted: auto-replied" "its Auto-Submitted kept"
done_testing
