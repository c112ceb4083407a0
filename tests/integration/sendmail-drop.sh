# Unprivileged submission (issue 12.5): any local user sends through the installed sendmail
# while the password stays readable by root and the service alone.  A user who may not
# write the spool goes through mailhook-drop (setgid, its group made for the test) into
# SPOOL/maildrop/ (1730); the lock holder (here `mailhook flush` as root) adopts the file
# and delivers it to aiosmtpd.  What the caller cannot forge: its uid (the record's must
# own the file), the recipients (the record's, not X-Sender/X-Receiver lines it typed), the
# envelope sender (its own login or the settings' from).  What it cannot do: read the
# secrets, write into maildrop/ or pickup/ itself, point the drop program at a maildrop an
# administrator did not make, store more than the size limit.  Needs root (skipped else).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mailer.sh"

unprivileged_install
start_smtpd S --maildir "$T/mail" --log "$T/smtpd.log" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
root_mh update enabled=true server=127.0.0.1 port="$S" tls=none tls_required=false from=pbx@example.com \
  auth=false username=pbx password=Top-Secret-7 >/dev/null 2>&1 || { echo "Bail out! update failed"; exit 1; }
perm() { stat -c '%U:%G %a' "$1"; }
n_drop() { find "$SPOOL/maildrop" -type f | wc -l; }
n_mail() { count_mail "$T/mail"; }
# deliver: what root runs (the service would do the same): adopt maildrop/, send
deliver() { MAILHOOK_LOG_LEVEL=info root_mh flush >"$T/flush.out" 2>&1; }
envelope() { /usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["from"] + " | " + " ".join(j["to"]))' \
               "$T/mail/$(printf %06d "$1").json"; }

# --- the layout install made
is "$(perm "$P/sbin/mailhook-drop")" "root:$DROPGROUP 2755" "mailhook-drop: setgid to its group"
is "$(perm "$SPOOL/maildrop")" "root:$DROPGROUP 1730" "maildrop/: 1730, the spool's owner's, of that group"
is "$(perm "$SPOOL")" "root:$DROPGROUP 710" "the spool: 0710, the group may only pass through"
is "$(perm "$CONF")" "root:root 644" "the settings: 0644"
is "$(perm "${CONF%.conf}.secrets")" "root:root 600" "the secrets: 0600"
out=$(root_mh queue 2>&1); rc=$?
is "$rc" 0 "root's commands accept the spool with its maildrop/ (the spool check knows that mode: $out)"

# --- nobody sends; the message waits in maildrop/, never in pickup/
printf 'To: ops@example.net\nSubject: from nobody\n\nhello\n' | as nobody "$SM" -t; rc=$?
is "$rc" 0 "nobody's sendmail -t: exit 0"
is "$(n_drop)" 1 "one file in maildrop/"
f=$(find "$SPOOL/maildrop" -type f)
is "$(perm "$f")" "nobody:$DROPGROUP 640" "nobody's, of the drop group, 0640"
like "$(head -c 200 "$f")" "^MAILHOOK-DROP 1"$'\n'"uid 65534"$'\n' "its record: the uid the kernel gave"
is "$(find "$SPOOL/pickup" -name '*.eml' | wc -l)" 0 "nothing in pickup/ (nobody cannot write there)"
out=$(env -u MAILHOOK_CONF -u MAILHOOK_SPOOL "$P/bin/mailq")
like "$out" "in maildrop/: waits for the service; from uid 65534 \(nobody\)" "root's mailq lists it (waiting in maildrop/)"
like "$out" $'\n[0-9a-f]{16} +[0-9]+ [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} pbx@example.com\n' \
   "in the columns of the others: its id part, size, arrival, the sender adoption gives it"
like "$out" "-- [0-9]+ Kbytes in 1 Request\." "counted as a request"
deliver
is "$(n_drop):$(n_mail)" "0:1" "root's flush adopts it and delivers it"
is "$(envelope 1)" "pbx@example.com | ops@example.net" "envelope: the account's from (from_rewrite = envelope)"
like "$(cat "$T/mail/000001.eml")" "Received: by [^ ]+ \(mailhook, from userid 65534\)" "the uid in the Received line"
like "$(cat "$T/flush.out")" "maildrop: .* from uid 65534 \(nobody\) queued as [0-9a-f]{16}" "and in the log"

# --- what a caller types is not the envelope
printf 'X-Sender: boss@example.com\nX-Receiver: victim@example.org\nTo: ops@example.net\nSubject: forged\n\nx\n' |
  as nobody "$SM" -f ceo@example.com ops@example.net; rc=$?
is "$rc" 0 "a message starting with X-Sender/X-Receiver lines: queued"
deliver
is "$(envelope 2)" "pbx@example.com | ops@example.net" "the envelope is not the X- lines nor -f: the account's from, the given recipient"
unlike "$(cat "$T/smtpd.log")" "victim@example.org" "victim@ never reached the server"
like "$(cat "$T/mail/000002.eml")" "X-Receiver: victim@example.org" "the caller's X- lines are carried as headers, nothing more"
root_mh update from_rewrite=never >/dev/null
printf 'Subject: x\n\ny\n' | as nobody "$SM" -f root@example.com ops@example.net
deliver
is "$(envelope 3)" "nobody@example.com | ops@example.net" "from_rewrite = never: its own login, never the -f it asked for"
root_mh update from_rewrite= >/dev/null
# the drop program run directly, with a record lookalike in the message
printf 'Subject: x\n\nMAILHOOK-DROP 1\nuid 0\nto evil@example.org\n\ny\n' | as nobody "$P/sbin/mailhook-drop" -s "$SPOOL" -- ops@example.net
is "$?" 0 "mailhook-drop used directly"
deliver
is "$(envelope 4)" "pbx@example.com | ops@example.net" "the record the drop program wrote decides, not the body's lookalike"
grep -q "^Date: " "$T/mail/000004.eml"; ok $? "headers the caller left out are added by the service (Date)"
printf 'MAILHOOK-DROP 1\nuid 0\nto evil@example.org\n\nSubject: x\n\ny\n' | as nobody "$P/sbin/mailhook-drop" -s "$SPOOL" -- ops@example.net
deliver
is "$(n_mail):$(ls "$SPOOL/corrupt" | grep -c '^maildrop\.')" "5:0" "a message whose first line is no header: all body (as Postfix), delivered"
is "$(envelope 5)" "pbx@example.com | ops@example.net" "to the record's recipient, not the body's lookalike"
like "$(cat "$T/mail/000005.eml")" $'\r\n\r\nMAILHOOK-DROP 1\r\nuid 0\r\nto evil@example.org\r\n' "the lookalike is body text"
unlike "$(cat "$T/smtpd.log")" "evil@example.org" "evil@ never reached the server"

# --- a crontab user (useradd), cron's exact argv: its own name as the recipient
new_user mhcron; U=$NEW_USER
printf 'From: root (Cron Daemon)\nTo: %s\nSubject: Cron <%s@box> /usr/local/bin/job\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nX-Cron-Env: <LOGNAME=%s>\n\njob output\n' "$U" "$U" "$U" |
  as "$U" "$SM" -FCronDaemon -i -B8BITMIME -oem "$U"; rc=$?
is "$rc" 0 "a crontab user's sendmail -FCronDaemon -i -B8BITMIME -oem $U: exit 0"
deliver
is "$(envelope 6)" "pbx@example.com | $U@example.com" "delivered: its name qualified with default_domain"
like "$(cat "$T/mail/000006.eml")" "X-Cron-Env: <LOGNAME=$U>" "cron's headers intact"
like "$(cat "$T/mail/000006.eml")" "From: Cron Daemon <pbx@example.com>" "From: the account, cron's name"
like "$(cat "$T/mail/000006.eml")" "from userid $(id -u "$U")" "its uid recorded"

# --- stdio closed, as an unprivileged user (mailutils)
( exec 1>&- 2>&-; printf 'To: ops@example.net\nSubject: closed\n\nx\n' | as nobody "$SM" -oi -t; echo $? > "$T/rc" )
is "$(cat "$T/rc"):$(n_drop)" "0:1" "nobody with stdout and stderr closed: exit 0, one file"
deliver

# --- the service (mailhook run) adopts what arrives while it runs
env -u MAILHOOK_CONF -u MAILHOOK_SPOOL "$MH" run >"$T/run.out" 2>&1 &
svc=$!
on_exit "kill $svc"
wait_for 20 grep -qx "$svc" "$SPOOL/lock"   # (its pid: each flush above left its own there)
before=$(n_mail)
printf 'To: ops@example.net\nSubject: while the service runs\n\nx\n' | as nobody "$SM" -t; rc=$?
is "$rc" 0 "nobody sends while the service runs"
delivered() { [ "$(n_mail)" -gt "$before" ]; }
wait_for 60 delivered; rc=$?
ok $rc "the service adopts and delivers it"
[ $rc = 0 ] || diag "$(cat "$T/run.out")"
is "$(n_drop)" 0 "maildrop/ is empty again"
kill -TERM $svc; wait $svc
is "$?" 0 "the service stops cleanly"

# --- the secrets stay the service's
out=$(as nobody "$MH" settings 2>&1); rc=$?
is "$rc" 0 "nobody may read the settings"
unlike "$out" "Top-Secret-7" "but never the password"
out=$(as nobody cat "${CONF%.conf}.secrets" 2>&1); rc=$?
[ "$rc" != 0 ]; ok $? "nor read the secrets file ($out)"
out=$(as nobody "$MH" -e 'print(require("mailhook.settings").password(require("mailhook.settings").load()))' 2>&1)
like "$out" "the password is in .*mailhook\.secrets, which this process \(running as nobody\) cannot read: it is [a-z]+'s, mode 0600; only root and the service's user \([a-z]+\) may read it: run this as one of them" \
  "password() says where it is and why not (not to chown it to nobody)"
unlike "$out" "Top-Secret-7" "and does not give it"

# --- what a caller cannot do
as nobody sh -c "echo x > '$SPOOL/maildrop/forged'" 2>/dev/null; rc=$?
[ "$rc" != 0 ]; ok $? "nobody cannot write into maildrop/ itself"
as nobody sh -c "echo x > '$SPOOL/pickup/forged.eml'" 2>/dev/null; rc=$?
[ "$rc" != 0 ]; ok $? "nor into pickup/"
out=$(as nobody "$MH" queue 2>&1); rc=$?
[ "$rc" != 0 ]; ok $? "nobody's mailhook queue is refused"
like "$out" "^mailhook queue: spool .*: Permission denied$" "in one line, naming the spool"
out=$(as nobody "$P/bin/mailq" 2>&1); rc=$?
is "$rc" 77 "nobody's mailq: EX_NOPERM"
like "$out" "readable only by root and the service's user" "saying why"
out=$(as nobody "$SM" -q 2>&1); rc=$?
is "$rc" 77 "nobody's sendmail -q: EX_NOPERM (it was a Lua traceback, exit 1)"
like "$out" "^mailhook sendmail: only root and the service's user flush the queue $SPOOL" "saying why, naming the spool"
unlike "$out" "traceback|attempt to" "no traceback"
out=$(as nobody "$MH" flush 2>&1); rc=$?
is "$rc" 1 "nobody's mailhook flush: exit 1"
like "$out" "^mailhook flush: spool $SPOOL: .*Permission denied" "in one line, naming the spool"
unlike "$out" "traceback|attempt to" "no traceback"
mkdir -p "$T/evil"; chmod 777 "$T/evil"
out=$(as nobody sh -c "mkdir -m 700 $T/evil/sp && mkdir $T/evil/sp/maildrop && chmod 1730 $T/evil/sp/maildrop && echo x | '$P/sbin/mailhook-drop' -s $T/evil/sp a@example.net" 2>&1); rc=$?
is "$rc" 73 "a maildrop/ the caller made: refused (EX_CANTCREAT)"
like "$out" "not this program's group" "naming why"
ln -s "$SPOOL/maildrop" "$T/evil/maildrop"
out=$(echo x | as nobody "$P/sbin/mailhook-drop" -s "$T/evil" a@example.net 2>&1); rc=$?
is "$rc" 73 "a maildrop/ that is a link to the real one: refused"
out=$({ printf 'Subject: big\n\n'; head -c 104857700 /dev/zero | tr '\0' a; } | as nobody "$SM" ops@example.net 2>&1); rc=$?
is "$rc" 65 "a message over 100 MiB: EX_DATAERR"
like "$out" "over the 100 MiB limit: nothing stored" "saying so"
is "$(n_drop)" 0 "and nothing is left in maildrop/"

# --- a file in maildrop/ the drop program did not write: corrupt/, never delivered
printf 'MAILHOOK-DROP 1\nuid 65534\ngid 65534\npid 1\ntime 1\nto evil@example.org\n\nSubject: x\n\ny\n' > "$SPOOL/maildrop/000000000000000a.00000001"
chmod 640 "$SPOOL/maildrop/000000000000000a.00000001"   # root's, but its record says 65534
printf 'not a drop at all\n' > "$SPOOL/maildrop/000000000000000b.00000001"
chown nobody "$SPOOL/maildrop/000000000000000b.00000001"
mkfifo "$SPOOL/maildrop/000000000000000c.00000001"
out=$(env -u MAILHOOK_CONF -u MAILHOOK_SPOOL "$P/bin/mailq")
like "$out" "000000000000000b +- .*"$'\n'" *\(maildrop/000000000000000b\.00000001: not a file of mailhook-drop.* \(the service moves it to corrupt/\)\)" \
  "root's mailq lists the foreign file with why (before: left out, the queue looked empty)"
like "$out" "000000000000000a +- .*"$'\n'" *\(.*belongs to uid 0 but its record says 65534" "and the one whose record lies"
like "$out" "\(maildrop/000000000000000c\.00000001 is not a regular file" "and the FIFO (never opened)"
is "$(ls "$SPOOL/maildrop" | wc -l)" 3 "and leaves them there"
before=$(n_mail)
deliver; rc=$?
is "$rc:$(n_mail)" "0:$before" "root's flush: nothing of them delivered"
is "$(ls "$SPOOL/corrupt" | grep -c '^maildrop\.')" 3 "all three in corrupt/ (named maildrop.NAME)"
like "$(cat "$T/flush.out")" "belongs to uid 0 but its record says 65534" "the owner/record mismatch said"
like "$(cat "$T/flush.out")" "not a file of mailhook-drop" "the foreign file said"
like "$(cat "$T/flush.out")" "is not a regular file" "the FIFO said (never opened)"
unlike "$(cat "$T/smtpd.log")" "evil@example.org" "evil@ never reached the server"

# --- who submitted it is kept (X-Submitter-Uid, docs/spool.md) and shown: queue, --json,
# queue show, the mail log's uid=.  No server (port 1) so the adopted messages stay queued.
root_mh update port=1 >/dev/null
printf 'X-Submitter-Uid: 0\nX-Receiver: victim@example.org\nTo: ops@example.net\nSubject: whose\n\nx\n' | as nobody "$SM" -t; rc=$?
is "$rc" 0 "nobody's sendmail -t with an X-Submitter-Uid: 0 header: queued"
printf 'To: ops@example.net\nSubject: root s\n\nx\n' | root_mh sendmail -t
deliver
qjson() { root_mh queue --json | /usr/bin/python3 -c 'import json,sys
for e in json.load(sys.stdin): print(e["id"], e.get("uid", "-"), e.get("login", "-"), " ".join(e["to"]))'; }
q=$(qjson)
like "$q" "^[0-9a-f]{16} 65534 nobody ops@example.net$" "root's queue --json: nobody's message with uid 65534, login nobody ($q)"
like "$q" "^[0-9a-f]{16} 0 root ops@example.net$" "root's own sendmail: uid 0"
unlike "$q" "victim" "the caller's header is neither the uid nor a recipient"
nid=$(echo "$q" | sed -n 's/^\([0-9a-f]\{16\}\) 65534 .*/\1/p' | head -1)
like "$(head -c 300 "$SPOOL/pickup/$nid.eml")" "^X-Sender: [^"$'\r'"]*"$'\r\n'"X-Receiver: ops@example.net"$'\r\n'"X-Spool-Size: [0-9]{12}"$'\r\n'"X-Submitter-Uid: 65534"$'\r\n'"Received:" \
  "the spool file: the uid the drop program proved, the envelope's last line"
like "$(root_mh queue show "$nid")" "submitter: +uid 65534 \(nobody\)" "queue show names it"
like "$(root_mh queue)" "$nid .* nobody +ops@example.net" "the listing's USER column"
root_mh update port="$S" >/dev/null
for id in $(echo "$q" | cut -d' ' -f1); do root_mh queue retry "$id" >/dev/null; done
deliver
like "$(cat "$T/flush.out")" "$nid: to=<ops@example.net>, from=<[^>]*>, uid=65534, size=[0-9]+, .*status=sent" \
  "the mail log's line: uid=65534"
is "$(qjson)" "" "both delivered"

# --- one bad recipient item costs only itself, for a local user too: nobody's sendmail -t
# leaves it out (stderr), and the service leaves out a bad "to" line of the record (log)
n0=$(n_mail)
out=$(printf 'To: ops@example.net, Some Name\nSubject: bad item\n\nx\n' | as nobody "$SM" -t 2>&1); rc=$?
is "$rc" 0 "nobody's sendmail -t with 'To: ops@example.net, Some Name': exit 0"
like "$out" "'Some Name' is not an address \(left out\)" "the bad item named on stderr"
printf 'Subject: x\n\ny\n' | as nobody "$P/sbin/mailhook-drop" -s "$SPOOL" -- "Some Name" ops@example.net
deliver
is "$(n_mail)" "$((n0 + 2))" "both delivered"
is "$(envelope $((n0 + 1))) / $(envelope $((n0 + 2)))" "pbx@example.com | ops@example.net / pbx@example.com | ops@example.net" \
   "to the good recipient only"
like "$(cat "$T/flush.out")" "maildrop: .* from uid 65534: recipient: 'Some Name' is not an address \(left out\)" \
   "the service logs the record's bad item"

# --- a typo'd key in the settings: nobody's cron mail still goes into maildrop/ (warned,
# naming FILE:LINE); root's flush refuses the file as the service does; fixed, delivered
n0=$(n_mail)
cp -p "$CONF" "$T/conf.good"
echo "sever = 10.0.0.1" >> "$CONF"
out=$(printf 'Subject: typo

x
' | as nobody "$SM" ops@example.net 2>&1); rc=$?
is "$rc:$(n_drop)" "0:1" "nobody's sendmail with a typo'd key: exit 0, the message in maildrop/ ($out)"
like "$out" "$CONF:[0-9]+: unknown setting 'sever'" "the warning names the file, line and key"
deliver
is "$(n_mail)" "$n0" "root's flush refuses the broken file (nothing sent on it)"
cp -p "$T/conf.good" "$CONF"
deliver
is "$(n_mail):$(n_drop)" "$((n0 + 1)):0" "the file fixed: adopted and delivered"

# --- an ENVID holding '<' or '>' (RFC 3461 xtext allows them): nobody's mail is adopted,
# the value encoded (+3C, +3E); it stayed in maildrop/ for ever, warned at every scan
n0=$(n_mail)
printf 'Subject: envid\n\nx\n' | as nobody "$SM" -V 'ticket<42>' ops@example.net; rc=$?
is "$rc:$(n_drop)" "0:1" "nobody's sendmail -V 'ticket<42>': exit 0, in maildrop/"
deliver
is "$(n_mail):$(n_drop)" "$((n0 + 1)):0" "adopted and delivered"
unlike "$(cat "$T/flush.out")" "cannot queue" "no 'cannot queue' warning"

# --- a file the spool refuses for what it holds goes to corrupt/, said once, never
# retried at every scan (a refusal made here by a spool whose enqueue says EBADADDR)
printf 'Subject: refused\n\nx\n' | as nobody "$SM" ops@example.net
is "$(n_drop)" 1 "one more file in maildrop/"
name=$(basename "$(find "$SPOOL/maildrop" -type f)")
out=$(SPOOL_DIR="$SPOOL" MAILHOOK_LOG_LEVEL=info root_mh -e '
  local spool = require("mailhook.spool")
  local sp = assert(spool.open(os.getenv("SPOOL_DIR")))
  local refusing = setmetatable({ enqueue = function() return nil, "recipient refused by the test", { code = "EBADADDR" } end },
                                { __index = function(_, k) return function(_, ...) return sp[k](sp, ...) end end })
  print("adopted", require("mailhook.maildrop").adopt(refusing, os.getenv("SPOOL_DIR")))' 2>&1)
like "$out" "adopted	0" "nothing adopted ($out)"
is "$(n_drop)" 0 "the file left maildrop/"
[ -f "$SPOOL/corrupt/maildrop.$name" ]; ok $? "to corrupt/maildrop.$name"
like "$out" "maildrop: $name from uid 65534: recipient refused by the test: moved to corrupt/" "saying why"

# --- adopted inside a user namespace that hides the caller (systemd's PrivateUsers=):
# www-data's file shows as nobody's there; it stays in maildrop/ with an error naming
# the cause (it went to corrupt/: cron's and PHP's mail lost), and is adopted by a
# process that sees its owner
! grep -q '^PrivateUsers=' "$ROOT/packaging/mailhook.service.in"
ok $? "the shipped unit has no PrivateUsers= (its namespace hides the submitting user)"
if unshare --user --map-root-user true 2>/dev/null; then
  printf 'To: ops@example.net\nSubject: from www-data\n\nhello\n' | as www-data "$SM" -t
  f=$(find "$SPOOL/maildrop" -type f); name=$(basename "$f")
  chmod 644 "$f"   # (readable inside the namespace, where root has no power over another's file)
  before=$(n_mail)
  out=$(MAILHOOK_LOG_LEVEL=info unshare --user --map-root-user \
        env -u MAILHOOK_CONF -u MAILHOOK_SPOOL "$MH" flush 2>&1)
  [ -f "$f" ]; ok $? "in a user namespace: the drop stays in maildrop/ ($out)"
  [ ! -e "$SPOOL/corrupt/maildrop.$name" ]; ok $? "not moved to corrupt/"
  like "$out" "maildrop/$name: its owner shows as uid 65534 \(nobody\): this process runs in a user namespace" \
    "the error names the cause"
  like "$(root_mh status 2>&1)" "; 1 in maildrop/ \(from local users: wait for the service\)" \
    "status counts the message waiting in maildrop/"
  deliver
  is "$(n_drop):$(( $(n_mail) - before ))" "0:1" "outside it: adopted and delivered"
else
  ok 0 "# SKIP no user namespaces here"; ok 0 "# SKIP"; ok 0 "# SKIP"; ok 0 "# SKIP"
fi

# --- a maildrop/ of any other mode: the spool is refused (the exemption is exact)
chmod 1777 "$SPOOL/maildrop"
out=$(root_mh queue 2>&1); rc=$?
[ "$rc" != 0 ]; ok $? "maildrop/ at 1777: root's commands refuse the spool"
like "$out" "maildrop is mode 1777" "naming the folder and its mode ($out)"
out=$(echo x | as nobody "$P/sbin/mailhook-drop" -s "$SPOOL" a@example.net 2>&1); rc=$?
is "$rc" 73 "and the drop program refuses it too"
chmod 1730 "$SPOOL/maildrop"
done_testing
