# /etc/mailname, the machine's mail domain on Debian (policy 11.6; Postfix's myorigin,
# Exim's qualify domain, nullmailer): a bare local name (cron's `root`, the caller's
# login as sender, a drop-in's owner) is qualified with default_domain, else the domain
# of `from`, else the first line of /etc/mailname when it is a domain, else the host
# name.  Before, /etc/mailname was never read: root went to root@HOSTNAME.  The file
# is $MAILHOOK_MAILNAME here (runtime/instpaths.h): no test reads the machine's own.
# Delivered to a real server (aiosmtpd) whose envelope is read.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

export MAILHOOK_CONF=$T/mailhook.conf MAILHOOK_SPOOL=$T/spool MAILHOOK_MAILNAME=$T/mailname
start_smtpd P --maildir "$T/mail" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
# no `from`, no default_domain: the settings of an admin who set only the server
"$MAILHOOK" update enabled=true server=127.0.0.1 port="$P" tls=none tls_required=false >/dev/null ||
  { echo "Bail out! update failed"; exit 1; }
spool_make   # the spool folders
login=$(id -un) host=$(hostname)
n=0
# send ARGS < message: queue (stderr in $T/err), deliver, E = "from | to..." of what the server got
send() {
  "$MAILHOOK" sendmail "$@" 2>"$T/err"; local rc=$?
  "$MAILHOOK" flush >"$T/flush.out" 2>&1 || diag "flush: $(cat "$T/flush.out")"
  n=$((n + 1))
  E=$("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["from"] + " | " + " ".join(j["to"]))' \
      "$T/mail/$(printf %06d $n).json" 2>/dev/null)
  return $rc
}
msg() { printf 'Subject: %s\n\nx\n' "$1"; }

printf 'mail.example.org\n' > "$T/mailname"
send root < <(msg valid); rc=$?
is "$rc" 0 "sendmail root, no from, /etc/mailname = mail.example.org: queued"
is "$E" "$login@mail.example.org | root@mail.example.org" "the recipient and the caller's login qualified with it"
like "$("$MAILHOOK" settings)" "default_domain = mail\.example\.org" "mailhook settings shows where the domain comes from"
printf 'To: cron\nSubject: drop\n\nx\n' > "$T/d.tmp"; mv "$T/d.tmp" "$MAILHOOK_SPOOL/pickup/d.eml"
"$MAILHOOK" flush >/dev/null 2>&1; n=$((n + 1))
E=$("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["from"] + " | " + " ".join(j["to"]))' \
    "$T/mail/$(printf %06d $n).json" 2>/dev/null)
is "$E" "$login@mail.example.org | cron@mail.example.org" "a drop-in naming no sender: its owner and its names at it too"

printf 'example.net.\nsecond line ignored\n' > "$T/mailname"
send root < <(msg rootdot)
is "$E" "$login@example.net | root@example.net" "its first line only, the root's dot dropped"

# --- a file that holds no domain: ignored, said; the host name
for bad in 'not a domain!' 'mail.example..org' '192.0.2.1' '/etc/hostname'; do
  printf '%s\n' "$bad" > "$T/mailname"
  send root < <(msg bad); rc=$?
  is "$rc:$E" "0:$login@$host | root@$host" "/etc/mailname '$bad': ignored, the host name used"
  like "$(cat "$T/err")" "$T/mailname: first line '$bad' is not a domain: ignored" "and a warning naming the file and line"
done
rm -f "$T/mailname"
send root < <(msg none)
is "$E" "$login@$host | root@$host" "no /etc/mailname: the host name, as before"
is "$(cat "$T/err")" "" "and no warning (most machines without an MTA have none)"

# --- the settings come first: default_domain, then from's domain
printf 'mail.example.org\n' > "$T/mailname"
"$MAILHOOK" update from=pbx@example.com >/dev/null
send root < <(msg from)
is "$E" "pbx@example.com | root@example.com" "from = pbx@example.com: its domain before /etc/mailname"
"$MAILHOOK" update default_domain=corp.example >/dev/null
send root < <(msg dd)
is "$E" "pbx@example.com | root@corp.example" "default_domain set: it, before both"

done_testing
