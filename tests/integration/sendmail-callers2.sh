# What real callers pipe into sendmail that is not a tidy RFC 5322 message, delivered to
# a real server (aiosmtpd) whose mailbox is read; Postfix's sendmail queues every one:
#  - no header at all: `df -h | sendmail root`, `echo "backup failed" | sendmail ops@...`
#    (the whole input is the body);
#  - a header, then text without the empty line: `(echo "Subject: disk"; df -h) | sendmail
#    root` (the header block ends at the first line that is no header field; the empty
#    line is put there);
#  - an mbox From_ line first: `git format-patch --stdout -1 | sendmail -t`, a message
#    saved from a mailbox (the From_ lines are dropped, the headers after them read);
#  - nothing at all: `cmd | sendmail root` when cmd printed nothing, a "." first line
#    (an empty message: the headers intake adds);
#  - the same through `sendmail -bs` and, as another user, through mailhook-drop.
# Before, each was refused with EX_DATAERR (65) or, for the From_ line with -t, EX_USAGE
# (64): mail lost by callers that do not read the exit status.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

plain_smtpd_env
n=0
# deliver: flush what waits, then M (headers), B (body), E (envelope: from | to...) of
# message n+1 as the server got it, and the spool's count of what is left
deliver() {
  "$MAILHOOK" flush >"$T/flush.out" 2>&1 || diag "flush: $(cat "$T/flush.out")"
  n=$((n + 1))
  local f=$T/mail/$(printf %06d $n)
  M=$(sed -n '1,/^\r\?$/p' "$f.eml" 2>/dev/null | tr -d '\r')
  B=$(sed '1,/^\r\?$/d' "$f.eml" 2>/dev/null | tr -d '\r')
  E=$(/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["from"] + " | " + " ".join(j["to"]))' "$f.json" 2>/dev/null)
}
# send ARGS < message: sendmail's exit status in RC, what it said in ERR, then deliver
send() { "$MAILHOOK" sendmail "$@" 2>"$T/err"; RC=$?; ERR=$(cat "$T/err"); deliver; }
DF='Filesystem      Size  Used Avail Use% Mounted on
/dev/sda1        20G   19G  1.0G  95% /
tmpfs           1.9G     0  1.9G   0% /dev/shm'

# --- no header at all: all of it is the body
send ops@example.net < <(printf '%s\n' "$DF")
is "$RC" 0 "df -h | sendmail ops@example.net: queued ($ERR)"
is "$E" "pbx@example.com | ops@example.net" "delivered to the argument"
is "$B" "$DF" "every line of the input is the body"
like "$M" "From: pbx@example.com" "From added"
like "$M" "Date: " "Date added"
like "$M" "Message-ID: <" "Message-ID added"
unlike "$M" "Filesystem" "no line of the input was taken for a header"

send -i ops@example.net < <(printf 'backup of /srv failed: disk full')
is "$RC:$B" "0:backup of /srv failed: disk full" "echo -n TEXT | sendmail -i ADDR: one line, no final newline: the body"

# --- a header, then text without the empty line (Postfix: the text starts the body)
send -i root < <(printf 'Subject: disk report\n'; printf '%s\n' "$DF")
is "$RC" 0 "(echo Subject: disk report; df -h) | sendmail -i root: queued ($ERR)"
like "$M" "Subject: disk report" "the Subject is a header"
is "$B" "$DF" "the df lines are the body, after an empty line put there"
is "$E" "pbx@example.com | root@example.com" "root qualified with default_domain"

# a cron-like job: headers, a folded one, then the job's output straight away
send -t < <(printf 'To: ops@example.net\nSubject: nightly\n  job\nX-Job : 42\nrsync error: some files could not be transferred (code 23)\nsent 1,024 bytes\n')
is "$RC" 0 "sendmail -t: To, a folded Subject, 'X-Job :' (the obsolete form), then output: queued ($ERR)"
is "$E" "pbx@example.com | ops@example.net" "the recipient from To"
like "$M" $'Subject: nightly\n  job' "the folded line stays with its header"
like "$M" "X-Job : 42" "'Name :' is a header (RFC 5322's obsolete syntax, as Postfix reads it)"
is "$B" $'rsync error: some files could not be transferred (code 23)\nsent 1,024 bytes' \
   "'rsync error: ...' is no header field (a blank inside the name): the body starts there"

# --- an mbox From_ line first: git format-patch --stdout | sendmail -t
send -t < <(printf 'From 5e1f0c2d3a4b Mon Sep 17 00:00:00 2001\nFrom: Dev <dev@example.com>\nTo: list@example.net\nDate: Fri, 4 Dec 2026 10:00:00 +0000\nSubject: [PATCH] fix the frobnicator\n\n---\n frob.c | 2 +-\n')
is "$RC" 0 "git format-patch --stdout | sendmail -t: queued ($ERR)"
is "$E" "pbx@example.com | list@example.net" "its To read (the From_ line did not end the headers)"
like "$M" "Subject: \[PATCH\] fix the frobnicator" "its Subject a header"
unlike "$M$B" "Mon Sep 17 00:00:00 2001" "the From_ line is dropped (as Postfix's sendmail drops it)"
like "$M" "Date: Fri, 4 Dec 2026 10:00:00" "its own Date kept"

send ops@example.net < <(printf '>From old\nSubject: saved\n\nFrom the start, a body line\n')
is "$RC" 0 "a '>From ' line first: queued"
like "$M" "Subject: saved" "the header after it read"
is "$B" "From the start, a body line" "a 'From ' line in the body is the body's"

# --- nothing at all: an empty message (the headers intake adds)
send ops@example.net < /dev/null
is "$RC" 0 "sendmail ops@example.net < /dev/null: an empty message, queued as Postfix queues it ($ERR)"
is "$E" "pbx@example.com | ops@example.net" "delivered"
like "$M" "From: pbx@example.com" "with a From"
like "$M" "Message-ID: <" "and a Message-ID"
is "$B" "" "and no body"

send ops@example.net < <(printf '.\nwhat follows the dot\n')
is "$RC" 0 "a lone '.' first (no -i): the message ends there: empty, queued"
is "$B" "" "nothing after the dot kept"

# --- a message replayed from a mailbox: its Return-Path and Content-Length are dropped, as
# Postfix's cleanup drops them (the server adds its own Return-Path; a stale Content-Length
# made an mbox reader cut the body once intake had added headers)
send -t -i < <(printf 'Return-Path: <old@elsewhere.example>\nContent-Length: 5\nFrom: pbx@example.com\nTo: ops@example.net\nSubject: replayed\ncontent-length:  5\n\nhello there, longer than five\n')
is "$RC" 0 "a message with Return-Path and Content-Length: queued ($ERR)"
unlike "$M" "Return-Path: <old@" "its Return-Path not sent"
unlike "$M" "(C|c)ontent-(L|l)ength" "nor any Content-Length field"
like "$M" "Subject: replayed" "the rest of its header kept"
is "$B" "hello there, longer than five" "its whole body"

# --- two From fields (a script adding its own to a template that has one): the first is
# rewritten (from_rewrite = envelope), the other carried as X-Original-From, never a second
# From a provider that checks it against the account would refuse
send ops@example.net < <(printf 'From: Web <web@site.example>\nFROM : Other <other@site2.example>\nSubject: two froms\n\nb\n')
is "$RC" 0 "a message with two From fields: queued ($ERR)"
is "$(printf '%s\n' "$M" | grep -ci '^from *:')" 1 "one From field sent"
like "$M" "From: Web <pbx@example.com>" "the first, rewritten"
like "$M" "X-Original-From: Other <other@site2.example>" "the other carried as X-Original-From"

# --- a resent message (RFC 5322 3.6.6): -t reads Resent-To/Cc/Bcc, not the first
# recipients again (Postfix's and sendmail's rule); Resent-Bcc never in the copy sent
send -t -i < <(printf 'From: a@example.com\nTo: first@example.net\nSubject: report\nResent-From: pbx@example.com\nResent-To: again@example.net\nResent-Bcc: hidden@example.net\n\nthe report\n')
is "$RC" 0 "sendmail -t of a message with Resent- fields: queued ($ERR)"
is "$E" "pbx@example.com | again@example.net hidden@example.net" "to Resent-To and Resent-Bcc, not again to To"
unlike "$M" "hidden@example.net" "Resent-Bcc left out of the copy sent"
like "$M" "To: first@example.net" "the first To carried as written"
send -i again@example.net < <(printf 'From: a@example.com\nTo: first@example.net\nResent-To: again@example.net\nResent-Bcc: hidden@example.net,\n  hidden2@example.net\nSubject: r\n\nx\n')
is "$RC:$E" "0:pbx@example.com | again@example.net" "without -t: the argument only"
unlike "$M" "hidden" "Resent-Bcc (folded) left out all the same"
out=$(printf 'To: first@example.net\nResent-Date: Fri, 4 Dec 2026 10:00:00 +0000\nSubject: r\n\nx\n' | "$MAILHOOK" sendmail -t 2>&1); rc=$?
is "$rc" 64 "-t, Resent- fields but no Resent-To/Cc/Bcc: EX_USAGE (no recipient)"
like "$out" "no recipients in Resent-To, Resent-Cc or Resent-Bcc" "says so"

# --- the refusals that stay: no recipient at all
out=$(printf 'hello\n' | "$MAILHOOK" sendmail -t 2>&1); rc=$?
is "$rc" 64 "-t and a message without any header: no recipient, EX_USAGE"
like "$out" "no recipients in To, Cc or Bcc" "says so"
is "$(find "$T/spool/pickup" -name '*.eml' | wc -l)" 0 "nothing queued"

# --- sendmail -bs: a message whose text follows a header without the empty line
out=$(printf 'EHLO x\r\nMAIL FROM:<pbx@example.com>\r\nRCPT TO:<ops@example.net>\r\nDATA\r\nSubject: bs\r\nFilesystem  Size\r\n/dev/sda1 20G\r\n.\r\nQUIT\r\n' |
      "$MAILHOOK" sendmail -bs 2>&1)
like "$out" "250 2.0.0 Ok: queued as [0-9a-f]{16}" "-bs: a header then text: queued ($(printf '%s' "$out" | grep -E '^[45]' | tr -d '\r'))"
deliver
like "$M" "Subject: bs" "-bs: the Subject a header"
is "$B" $'Filesystem  Size\n/dev/sda1 20G' "-bs: the text is the body"

# --- a Python script's smtplib speaking to `sendmail -bs` on a pipe: asked for SMTPUTF8
# (an address not ASCII: send_message asks itself), it raises SMTPNotSupportedError
# unless EHLO offers it (before: it did not, though MAIL FROM took the parameter)
smtplib_bs() {   # FROM TO: the script's sendmail(); prints its result or the error
  /usr/bin/python3 - "$@" <<'PY'
import os, smtplib, subprocess, sys
from email.message import EmailMessage
class BS(smtplib.SMTP):   # the SMTP session on sendmail -bs's stdin and stdout
    def connect(self, host="", port=0, source_address=None):
        p = self.proc = subprocess.Popen([os.environ["MAILHOOK"], "sendmail", "-bs"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        class Sock:
            def sendall(self, b): p.stdin.write(b); p.stdin.flush()
            def makefile(self, mode): return p.stdout
            def close(self): p.stdin.close()
        self.sock, self.file = Sock(), None
        return self.getreply()
s = BS(); s.connect()
m = EmailMessage(); m["From"], m["To"], m["Subject"] = sys.argv[1], sys.argv[2], "smtplib"
m.set_content("from a script")
utf8 = not (sys.argv[1] + sys.argv[2]).isascii()
try: print(s.sendmail(sys.argv[1], [sys.argv[2]], m.as_bytes(), ["SMTPUTF8"] if utf8 else []))
except smtplib.SMTPException as e: print(type(e).__name__, e)
s.quit(); s.proc.wait()
PY
}
is "$(smtplib_bs pbx@example.com ops@example.net.)" "{}" "smtplib over -bs: accepted"
deliver
is "$E" "pbx@example.com | ops@example.net" "delivered, the root's dot gone from RCPT TO"
is "$(smtplib_bs pbx@example.com 'zoë@example.net')" "{}" "smtplib over -bs, a UTF-8 recipient: SMTPUTF8 offered, accepted"
like "$("$MAILHOOK" queue)" "zoë@example\.net" "and queued for it (delivery decides: this server offers no SMTPUTF8)"
"$MAILHOOK" queue rm "$("$MAILHOOK" queue | awk '/zoë/ {print $1}')" >/dev/null 2>&1

# --- another user: through mailhook-drop, adopted by root's flush (needs root)
if [ "$(id -u)" != 0 ]; then
  ok 0 "# SKIP unprivileged submission needs root to set up a user, a group and a setgid program"
  done_testing; exit 0
fi
. "$ROOT/tests/lib/mailer.sh"
stage_install || { echo "Bail out! the staged install failed"; exit 1; }
start_smtpd Q --maildir "$T/mail2" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
root_mh update enabled=true server=127.0.0.1 port="$Q" tls=none tls_required=false from=pbx@example.com \
  >/dev/null 2>&1 || { echo "Bail out! update failed"; exit 1; }
printf '%s\n' "$DF" | as nobody "$P/sbin/sendmail" ops@example.net; rc=$?
is "$rc" 0 "nobody's df -h | sendmail ops@example.net: handed to mailhook-drop"
as nobody "$P/sbin/sendmail" ops@example.net < /dev/null; rc=$?
is "$rc" 0 "nobody's empty message: handed over too"
root_mh flush >"$T/flush2.out" 2>&1 || diag "flush: $(cat "$T/flush2.out")"
is "$(count_mail "$T/mail2")" 2 "root's flush adopted and delivered both"
is "$(sed '1,/^\r\?$/d' "$T/mail2/000001.eml" | tr -d '\r')" "$DF" "the first: the df lines are its body"
like "$(tr -d '\r' < "$T/mail2/000002.eml")" "Message-ID: <" "the second: the headers intake adds"
is "$(find "$SPOOL/corrupt" -type f 2>/dev/null | wc -l)" 0 "nothing went to corrupt/"
done_testing
