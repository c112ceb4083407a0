# Service, issue 14: run as root, mailhook works as the owner of its spool (runtime/privdrop.c).
# The service runs as a dedicated user; a message root's sendmail (cron) queued as a root-owned
# 0600 file would never be readable by it, nor rule state or settings root rewrote.  Here the
# spool belongs to the service's account (SERVICE_USER, `mailhook`, as the package creates it):
# root's sendmail, enqueue, hook (its rules), update and run all work as that user, the files they
# make are its own, and the service delivers them; a spool owned by root changes nothing; a spool
# owned by any other user (one who pre-created it) is no reason to become them: root stays root
# and is refused, naming the owner; a non-root caller is left as it is; settings the owner cannot
# read are a clear error.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

if [ "$(id -u)" != 0 ] || ! id nobody >/dev/null 2>&1; then
  echo "1..0 # SKIP needs root and the user nobody"
  exit 0
fi
# the service's account, as the Debian package's postinst makes it (kept: other tests use it too)
id mailhook >/dev/null 2>&1 ||
  useradd --system --user-group --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin mailhook ||
  id mailhook >/dev/null 2>&1 || { echo "Bail out! cannot create the system user mailhook"; exit 1; }
SVC=$(id -u mailhook)
NOBODY=$(id -u nobody)
chmod 755 "$T"                                   # the service user must reach its files under $T
# and its program: a copy it can read (root's clone in /root is mode 700), run without run-one's
# LD_LIBRARY_PATH into the checkout
MAILHOOK=$(mailhook_for_others "$T/inst")
unset LD_LIBRARY_PATH
W=$T/site; mkdir -p "$W/rules"
start_smtpd SMTP --maildir "$T/mail"
write_conf "$W/mailhook.conf" enabled=true from=app@example.com server=127.0.0.1 port="$SMTP" tls=none \
  tls_required=false rules=./rules
echo 'on("touch", function(ev) local f = assert(io.open(ev.path, "w")); f:write("x"); f:close() end)' > "$W/rules/touch.lua"
mkdir -p "$T/spool"
chown -R mailhook "$W" "$T/spool"
chmod 755 "$W"
mh() { "$MAILHOOK" -c "$W/mailhook.conf" -s "$T/spool" "$@"; }

is "$(mh -e 'io.write(io.popen("id -u"):read("l"))')" "$SVC" "root, on the service's spool, runs as the service user"
printf 'To: ops@example.net\nSubject: from root cron\n\nhello\n' | mh sendmail -t; rc=$?
is "$rc" 0 "root's sendmail -t queues"
f=$(ls "$T/spool/pickup/"*.eml 2>/dev/null | head -1)
is "$(stat -c %U "$f" 2>/dev/null)" mailhook "the spool file is the service's, not root's"
# but the mail is root's: its Received line, the spool's submitter (it read as the service's uid)
like "$(cat "$f")" "Received: by [^ ]+ \(mailhook, from userid 0\)" "the Received line names root, the caller"
like "$(mh queue)" " root +ops@example.net" "the queue's USER: root"
id=$(echo body | mh enqueue --to ops@example.net --subject enq); rc=$?
is "$rc:$(stat -c %U "$T/spool/pickup/$id.eml" 2>/dev/null)" "0:mailhook" "enqueue as well"
mh hook touch path="$T/spool/touched" >/dev/null 2>&1; rc=$?
is "$rc:$(stat -c %U "$T/spool/touched" 2>/dev/null)" "0:mailhook" "a rule run by root's hook runs as the service user"
mh update helo_name=mail.example.com >/dev/null; rc=$?
is "$rc:$(stat -c %U "$W/mailhook.conf")" "0:mailhook" "update rewrites the settings as the service user: they stay the owner's"
# (chown mailhook: the group stayed root's, which the service user may not give: the
# file takes the service user's group, with no right the old group did not have)
is "$(stat -c %G:%a "$W/mailhook.conf")" "mailhook:600" "in the service user's group, mode 600 as written (no group bit given)"
"$MAILHOOK" -c "$W/mailhook.conf" -s "$T/spool" run >"$T/run.log" 2>&1 &
RUN=$!
on_exit "kill -9 $RUN"
# (waited for, not read once: until it has dropped root, the service is root's; the spool's
# lock file may be there before, made by the intakes above)
run_uids() { awk '/^Uid:/ { print $2 ":" $3 }' /proc/$RUN/status 2>/dev/null; }
wait_for 20 eval '[ "$(run_uids)" = "$SVC:$SVC" ]'
is "$(run_uids)" "$SVC:$SVC" "the service started by root runs as the service user (real and effective)"
wait_for 20 test -e "$T/mail/000002.eml"; ok $? "and delivers what root queued"
kill -TERM "$RUN"; wait "$RUN"
is "$(ls "$T/spool/pickup" | grep -c '\.eml$')" 0 "pickup/ is empty"

# settings the owner cannot read: a clear error, not a silent default
write_conf "$T/root-only.conf" enabled=true from=x@example.com server=127.0.0.1
chmod 600 "$T/root-only.conf"
out=$("$MAILHOOK" -c "$T/root-only.conf" -s "$T/spool" settings 2>&1); rc=$?
[ "$rc" != 0 ]; ok $? "settings the service user cannot read: an error (exit $rc)"
like "$out" "root-only.conf.*(Permission denied|cannot read)" "naming the file and why"

# secrets root:root 0600 (a careful admin, or an update run before the spool was the
# service's): root's commands act as the service's user, who cannot read them; the
# error says so and names the chown (it said "(the service's user and root can)")
start_smtpd AUTHD --auth "pbx:s3cret" --auth-in-clear --maildir "$T/mail-auth" || exit 1
write_conf "$W/mailhook.conf" enabled=true from=app@example.com server=127.0.0.1 port="$AUTHD" tls=none \
  tls_required=false rules=./rules auth=true username=pbx allow_plaintext_auth=true
chown mailhook "$W/mailhook.conf"
printf 'password = s3cret\n' > "$W/mailhook.secrets"; chown root:root "$W/mailhook.secrets"; chmod 600 "$W/mailhook.secrets"
out=$(mh test 2>&1); rc=$?
is "$rc" 1 "test with root-only secrets: exit 1"
like "$out" "mailhook.secrets, which this process \(running as mailhook, as root's commands do on this spool\) cannot read: it is root's, mode 0600; the service's user \(mailhook, the spool's owner\) must read it: chown mailhook " \
  "the error says who runs, whose the file is and the chown"
unlike "$out" "s3cret" "the password is not shown"
out=$(mh update retry_interval=20s 2>&1); rc=$?
[ "$rc" != 0 ]; ok $? "update with root-only secrets: refused (exit $rc)"
like "$out" "mailhook.secrets: cannot read: Permission denied: this process runs as mailhook, as root's commands do on this spool; the file is root's, mode 0600; .*chown mailhook " \
  "update says the same ($out)"
rm -f "$W/mailhook.secrets"

# a spool another user owns (pre-created by them): root stays root and refuses it, naming the owner
mkdir -p "$T/theirs/pickup"; chown -R nobody "$T/theirs"; chmod 700 "$T/theirs"
out=$(printf 'To: ops@example.net\n\nx\n' | "$MAILHOOK" -c "$W/mailhook.conf" -s "$T/theirs" sendmail -t 2>&1); rc=$?
[ "$rc" != 0 ]; ok $? "root's sendmail into a spool nobody owns: refused (exit $rc)"
like "$out" "belongs to uid $NOBODY" "naming its owner"
is "$(ls -A "$T/theirs/pickup" | wc -l)" 0 "nothing written there"
is "$("$MAILHOOK" -c "$W/mailhook.conf" -s "$T/theirs" -e 'io.write(io.popen("id -u"):read("l"))' 2>/dev/null)" 0 \
  "root did not become that user"

# a spool owned by root: root stays root; a non-root caller is not touched
mkdir -p "$T/rootspool"
is "$("$MAILHOOK" -c "$W/mailhook.conf" -s "$T/rootspool" -e 'io.write(io.popen("id -u"):read("l"))')" 0 \
  "a spool owned by root: root stays root"
is "$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$MAILHOOK" -s "$T/spool" -e 'io.write(io.popen("id -u"):read("l"))')" \
  "$NOBODY" "a non-root caller runs as itself"
done_testing
