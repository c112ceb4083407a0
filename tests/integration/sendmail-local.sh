# Local addresses and missing headers (issue 12.3), delivered to a real server (aiosmtpd)
# whose mailbox is read: bare names qualified with default_domain (the account's domain by
# default), sent to admin_address, or through an aliases file (msmtp's format, default:,
# nested names, loops); @localhost and @this-host are local too; header addresses carried as
# written (cron's `From: root (Cron Daemon)`, mdadm's `From: mdadm monitoring <root>`,
# `To: root`); from_rewrite never / envelope / always; From, Date, Message-ID added.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

plain_smtpd_env
n=0
# send ARGS < message (not at the end of a pipe: it sets variables): queue, deliver, and set M (headers) and E (envelope: from | to...)
send() {
  "$MAILHOOK" sendmail "$@"; local rc=$?
  "$MAILHOOK" flush >"$T/flush.out" 2>&1 || diag "flush: $(cat "$T/flush.out")"
  n=$((n + 1))
  local f=$T/mail/$(printf %06d $n)
  M=$(sed -n '1,/^\r\?$/p' "$f.eml" 2>/dev/null | tr -d '\r')
  E=$(/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["from"] + " | " + " ".join(j["to"]))' "$f.json" 2>/dev/null)
  return $rc
}
H=$(hostname)

# --- cron, exactly: argv and headers (issue: exit 64, then 65)
send -FCronDaemon -i -B8BITMIME -oem root < <(printf 'From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@%s> run-parts /etc/cron.hourly\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\nX-Cron-Env: <SHELL=/bin/sh>\nX-Cron-Env: <HOME=/root>\n\nhello from cron\n' "$H"); rc=$?
is "$rc" 0 "cron's sendmail -FCronDaemon -i -B8BITMIME -oem root: queued"
is "$E" "pbx@example.com | root@example.com" "envelope: the account's from, root@default_domain (the account's domain)"
like "$M" "From: Cron Daemon <pbx@example.com>" "From rewritten to the account (a bare name has no domain), its name kept"
like "$M" "Reply-To: root@example.com" "the original, qualified, in Reply-To"
like "$M" "To: root" "To carried as written"
like "$M" "X-Cron-Env: <HOME=/root>" "cron's own headers intact"
like "$M" "Content-Transfer-Encoding: 8bit" "its MIME headers intact"
like "$M" "^Received: by .* \(mailhook, from userid $(id -u)\);" "a Received line first, naming the caller's uid"
like "$M" "Date: " "Date added"; like "$M" "Message-ID: <[0-9]+\.[0-9a-f]+@example\.com>" "Message-ID added"

# --- mdadm (through mail -t): a display name and a bare name in angles
send -t < <(printf 'From: mdadm monitoring <root>\nTo: root\nSubject: Fail event on /dev/md0:box\n\nThis is an automatically generated mail message from mdadm\n'); rc=$?
is "$rc" 0 "mdadm's From: mdadm monitoring <root> with -t: queued"
is "$E" "pbx@example.com | root@example.com" "To: root is root@example.com"
like "$M" "From: mdadm monitoring <pbx@example.com>" "the From's name kept, the address the account's"

# --- a message with no From (bsd-mailx): From added, with -F's name
send -t -F 'Ann Example' < <(printf 'To: ops@example.net\nSubject: no from\n\nx\n')
like "$M" "From: Ann Example <pbx@example.com>" "no From: one added (the account, -F's name)"

# --- admin_address: every local name goes there when no alias says otherwise
"$MAILHOOK" update admin_address="admin@example.org, backup@example.org" >/dev/null
send root www-data@localhost "nobody@$H" ops@example.net < <(printf 'Subject: x\n\ny\n')
is "$E" "pbx@example.com | admin@example.org backup@example.org ops@example.net" \
  "root, www-data@localhost and nobody@$H to admin_address (once), the rest as it is"

# --- aliases (msmtp's format) before admin_address; default:; nested names; a loop
cat > "$T/aliases" <<'EOF'
# the site's aliases
root: sysadmin@example.org, ops
ops: ops-team@example.org   # a comment after the value
cron: root
loop: loop, loopback@example.org
EOF
"$MAILHOOK" update aliases=aliases >/dev/null   # relative to the settings file
send root cron loop www-data < <(printf 'Subject: x\n\ny\n')
is "$E" "pbx@example.com | sysadmin@example.org ops-team@example.org admin@example.org backup@example.org loopback@example.org" \
  "root and cron through the aliases (nested, each address once), a loop stops at the name (which goes where a name without alias goes: admin_address, as www-data)"
printf 'default: catchall@example.org\n' >> "$T/aliases"
send www-data < <(printf 'Subject: x\n\ny\n')
is "$E" "pbx@example.com | catchall@example.org" "the aliases file's default: before admin_address"
out=$("$MAILHOOK" sendmail -bv root x@example.net 2>&1)
like "$out" "root\.\.\. deliverable: sysadmin@example\.org, ops-team@example\.org" "-bv shows where a name goes"
printf 'root sysadmin@example.org\n' > "$T/aliases"
# a broken aliases file: cron never retries a 75, so the mail went nowhere; now
# the names go where a name without an alias goes, the problem said loudly
send root < <(printf 'Subject: x\n\ny\n') 2>"$T/err"; rc=$?; out=$(cat "$T/err")
is "$rc:$E" "0:pbx@example.com | admin@example.org backup@example.org" \
  "a broken aliases file: root queued to admin_address, delivered"
like "$out" "aliases:1: expected 'name: address, address'.*admin_address" "the warning names the file and line ($out)"
"$MAILHOOK" update admin_address= >/dev/null
send root www-data < <(printf 'Subject: x\n\ny\n') 2>"$T/err"; rc=$?; out=$(cat "$T/err")
is "$rc:$E" "0:pbx@example.com | root@example.com www-data@example.com" \
  "without admin_address: NAME@default_domain"
like "$out" "aliases:1: .*default_domain" "said ($out)"
is "$(grep -c 'aliases:1' "$T/err")" 1 "once per message, not once per name"
out=$(printf 'EHLO x\r\nMAIL FROM:<pbx@example.com>\r\nRCPT TO:<root>\r\nDATA\r\nSubject: bs\r\n\r\nx\r\n.\r\nQUIT\r\n' |
      "$MAILHOOK" sendmail -bs 2>/dev/null)
unlike "$out" "451" "-bs: RCPT TO:<root> is no longer a 451 ($out)"
"$MAILHOOK" flush >/dev/null 2>&1; n=$((n + 1))
E=$(/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["from"] + " | " + " ".join(j["to"]))' \
    "$T/mail/$(printf %06d $n).json" 2>/dev/null)
is "$E" "pbx@example.com | root@example.com" "-bs: delivered to root@default_domain"
rm -f "$T/aliases"
send cron < <(printf 'Subject: x\n\ny\n') 2>"$T/err"; rc=$?; out=$(cat "$T/err")
is "$rc:$E" "0:pbx@example.com | cron@example.com" "a missing aliases file: the same"
like "$out" "aliases.*No such file" "said ($out)"
"$MAILHOOK" update admin_address="admin@example.org, backup@example.org" >/dev/null
send ops@example.net < <(printf 'Subject: x\n\ny\n'); rc=$?
is "$rc:$E" "0:pbx@example.com | ops@example.net" "a message for no local name does not need the aliases file"
"$MAILHOOK" update aliases= admin_address= >/dev/null

# --- default_domain set explicitly
"$MAILHOOK" update default_domain=corp.example.net >/dev/null
send -f root root < <(printf 'Subject: x\n\ny\n')
is "$E" "pbx@example.com | root@corp.example.net" "default_domain qualifies recipients"

# --- from_rewrite = never: nothing rewritten, -f and From as the caller wrote them
"$MAILHOOK" update from_rewrite=never >/dev/null
send -f bounces@other.example ops@example.net < <(printf 'From: Billing <billing@other.example>\nSubject: x\n\ny\n')
is "$E" "bounces@other.example | ops@example.net" "never: -f is the envelope sender"
like "$M" "From: Billing <billing@other.example>" "never: From as written"
unlike "$M" "Reply-To" "and no Reply-To"
send ops@example.net < <(printf 'From: Billing <billing@other.example>\nSubject: x\n\ny\n')
is "$E" "billing@other.example | ops@example.net" "never, no -f: the From's address"
send ops@example.net < <(printf 'From: root (Cron Daemon)\nSubject: x\n\ny\n')
is "$E" "root@corp.example.net | ops@example.net" "never: a bare From qualified for the envelope only"
like "$M" "From: root \(Cron Daemon\)" "and carried as written in the header"

# --- from_rewrite = always: every From is the account, the original in Reply-To
"$MAILHOOK" update from_rewrite=always >/dev/null
send -f alerts@example.com ops@example.net < <(printf 'From: Alerts <alerts@example.com>\nSubject: x\n\ny\n')
is "$E" "pbx@example.com | ops@example.net" "always: the envelope sender is from, even of the same domain"
like "$M" "From: Alerts <pbx@example.com>" "always: From rewritten, its name kept"
like "$M" "Reply-To: alerts@example.com" "the original in Reply-To"
send ops@example.net < <(printf 'From: Alerts <alerts@example.com>\nReply-To: desk@example.com\nSubject: x\n\ny\n')
like "$M" "Reply-To: desk@example.com" "a Reply-To the message has is kept"
is "$(printf '%s\n' "$M" | grep -c '^Reply-To:')" 1 "and no second one added"
send ops@example.net < <(printf 'From: pbx@example.com\nSubject: x\n\ny\n')
like "$M" "From: pbx@example.com" "always: a From that is the account already stays"
unlike "$M" "Reply-To" "without a Reply-To"

# --- envelope (the default): From of the account's domain kept, others rewritten
"$MAILHOOK" update from_rewrite= >/dev/null
send ops@example.net < <(printf 'From: Voicemail <vm@example.com>\nSubject: x\n\ny\n')
like "$M" "From: Voicemail <vm@example.com>" "envelope: a From of the account's domain is kept"
unlike "$M" "Reply-To" "no Reply-To then"
send ops@example.net < <(printf 'From: "Doe, John" <john@gmail.example>\nSubject: x\n\ny\n')
like "$M" 'From: "Doe, John" <pbx@example.com>' "another domain: rewritten, the quoted name kept quoted"
like "$M" "Reply-To: john@gmail.example" "the original in Reply-To"

# --- headers the caller did not write are added once, the ones it wrote are kept
send ops@example.net < <(printf 'Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <mine@example.com>\nSubject: x\n\ny\n')
is "$(printf '%s\n' "$M" | grep -c '^Date:')" 1 "one Date"
like "$M" "Date: Mon, 1 Jan 2024" "the caller's Date kept"
like "$M" "Message-ID: <mine@example.com>" "the caller's Message-ID kept"

# --- bad recipients are refused (what goes into the envelope is checked), nothing queued
before=$(find "$T/spool/pickup" -name '*.eml' | wc -l)
out=$(printf 'To: broken address here\n\nx\n' | "$MAILHOOK" sendmail -t 2>&1); rc=$?
is "$rc" 65 "To: broken address here: EX_DATAERR"
like "$out" "'broken address here' is not an address" "naming it"
out=$(printf 'To: ok@example.net\n\nx\n' | "$MAILHOOK" sendmail 'a b' 2>&1); rc=$?
is "$rc" 65 "an argument that is no address: EX_DATAERR"
is "$(find "$T/spool/pickup" -name '*.eml' | wc -l)" "$before" "nothing queued by the refusals"
done_testing
