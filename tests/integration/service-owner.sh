# Service, issue 14: run as root, mailhook works as the owner of its spool (runtime/privdrop.c).
# The service runs as a dedicated user; a message root's sendmail (cron) queued as a root-owned
# 0600 file would never be readable by it, nor rule state or settings root rewrote.  Here the
# spool belongs to `nobody`: root's sendmail, enqueue, hook (its rules), update and run all work
# as nobody, the files they make are nobody's, and the service delivers them; a spool owned by
# root changes nothing; a non-root caller is left as it is; settings the owner cannot read are
# a clear error.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"

if [ "$(id -u)" != 0 ] || ! id nobody >/dev/null 2>&1; then
  echo "1..0 # SKIP needs root and the user nobody"
  exit 0
fi
NOBODY=$(id -u nobody)
chmod 755 "$T"                                   # nobody must reach its files under $T
W=$T/site; mkdir -p "$W/rules"
start_smtpd SMTP --maildir "$T/mail"
write_conf "$W/mailhook.conf" enabled=true from=app@example.com server=127.0.0.1 port="$SMTP" tls=none \
  tls_required=false rules=./rules
echo 'on("touch", function(ev) local f = assert(io.open(ev.path, "w")); f:write("x"); f:close() end)' > "$W/rules/touch.lua"
mkdir -p "$T/spool"
chown -R nobody "$W" "$T/spool"
chmod 755 "$W"
mh() { "$MAILHOOK" -c "$W/mailhook.conf" -s "$T/spool" "$@"; }

is "$(mh -e 'io.write(io.popen("id -u"):read("l"))')" "$NOBODY" "root, on a spool that nobody owns, runs as nobody"
printf 'To: ops@example.net\nSubject: from root cron\n\nhello\n' | mh sendmail -t; rc=$?
is "$rc" 0 "root's sendmail -t queues"
f=$(ls "$T/spool/pickup/"*.eml 2>/dev/null | head -1)
is "$(stat -c %U "$f" 2>/dev/null)" nobody "the spool file is nobody's, not root's"
id=$(echo body | mh enqueue --to ops@example.net --subject enq); rc=$?
is "$rc:$(stat -c %U "$T/spool/pickup/$id.eml" 2>/dev/null)" "0:nobody" "enqueue as well"
mh hook touch path="$T/spool/touched" >/dev/null 2>&1; rc=$?
is "$rc:$(stat -c %U "$T/spool/touched" 2>/dev/null)" "0:nobody" "a rule run by root's hook runs as nobody"
mh update helo_name=mail.example.com >/dev/null; rc=$?
is "$rc:$(stat -c %U "$W/mailhook.conf")" "0:nobody" "update rewrites the settings as nobody: they stay the owner's"
"$MAILHOOK" -c "$W/mailhook.conf" -s "$T/spool" run >"$T/run.log" 2>&1 &
RUN=$!
on_exit "kill -9 $RUN"
wait_for 5 test -e "$T/spool/lock"
is "$(awk '/^Uid:/ { print $2 ":" $3 }' /proc/$RUN/status)" "$NOBODY:$NOBODY" "the service started by root runs as nobody (real and effective)"
wait_for 20 test -e "$T/mail/000002.eml"; ok $? "and delivers what root queued"
kill -TERM "$RUN"; wait "$RUN"
is "$(ls "$T/spool/pickup" | grep -c '\.eml$')" 0 "pickup/ is empty"

# settings the owner cannot read: a clear error, not a silent default
write_conf "$T/root-only.conf" enabled=true from=x@example.com server=127.0.0.1
chmod 600 "$T/root-only.conf"
out=$("$MAILHOOK" -c "$T/root-only.conf" -s "$T/spool" settings 2>&1); rc=$?
[ "$rc" != 0 ]; ok $? "settings nobody cannot read: an error (exit $rc)"
like "$out" "root-only.conf.*(Permission denied|cannot read)" "naming the file and why"

# a spool owned by root: root stays root; a non-root caller is not touched
mkdir -p "$T/rootspool"
is "$("$MAILHOOK" -c "$W/mailhook.conf" -s "$T/rootspool" -e 'io.write(io.popen("id -u"):read("l"))')" 0 \
  "a spool owned by root: root stays root"
is "$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$MAILHOOK" -s "$T/spool" -e 'io.write(io.popen("id -u"):read("l"))')" \
  "$NOBODY" "a non-root caller runs as itself"
done_testing
