# An update keeps the settings files' mode, owner and group (docs/settings.md,
# "Secrets"): an administrator's mailhook.conf 0640 root:daemon stays 0640
# root:daemon whether the update comes from the CLI, the Lua API (the REPL and
# the console call the same settings.update) or `password`; it was rewritten
# 0644 root:root and the group lost it.  The secrets file keeps its group and
# its owner's and group's bits, never a bit for others (warned).  A process
# that may not give the file back to its owner changes nothing and says so.
# Needs root (chown to a real group: daemon) and `setpriv` for the non-root part.
. "$ROOT/tests/lib/tap.sh"
if [ "$(id -u)" != 0 ] || ! getent group daemon >/dev/null; then
  echo "1..0 # SKIP needs root and the group daemon"; exit 0
fi
C=$T/mailhook.conf S=$T/mailhook.secrets
export MAILHOOK_SPOOL=$T/spool
owner() { stat -c '%a %U:%G' "$1"; }

"$MAILHOOK" -c "$C" update enabled=true server=mx.example.com from=app@example.com >/dev/null
chown root:daemon "$C"; chmod 0640 "$C"
out=$("$MAILHOOK" -c "$C" update port=2525 2>&1); rc=$?
is "$rc" 0 "CLI update of a 0640 root:daemon settings file exits 0"
is "$(owner "$C")" "640 root:daemon" "CLI update keeps mode 0640 and the group daemon"
grep -qx "port = 2525" "$C"; ok $? "and the change is written"

"$MAILHOOK" -c "$C" -e 'assert(require("mailhook").settings.update{port = 2526})' >/dev/null 2>&1
is "$(owner "$C")" "640 root:daemon" "settings.update (the REPL's and the console's) keeps them too"
grep -qx "port = 2526" "$C"; ok $? "(written)"

# a new secrets file beside a settings file kept from others: the same owner and group, 0640
"$MAILHOOK" -c "$C" update auth=true username=bob password=pw-one-XYZ allow_plaintext_auth=true >/dev/null 2>&1
is "$(owner "$S")" "640 root:daemon" "a new secrets file takes the settings file's group (0640: it is the service's)"
is "$(owner "$C")" "640 root:daemon" "(the settings file unchanged in mode and group)"

# an existing secrets file: its group and bits kept
chmod 0660 "$S"
echo pw-two-XYZ | "$MAILHOOK" -c "$C" password --stdin >/dev/null 2>&1 ||
  "$MAILHOOK" -c "$C" update password=pw-two-XYZ >/dev/null 2>&1
grep -qx "password = pw-two-XYZ" "$S"; ok $? "the password changed"
is "$(owner "$S")" "660 root:daemon" "the secrets file keeps 0660 root:daemon"

# a secrets file open to others: never kept so, and said
chmod 0644 "$S"
err=$("$MAILHOOK" -c "$C" update password=pw-three-XYZ 2>&1 >/dev/null)
is "$(owner "$S")" "640 root:daemon" "a secrets file readable by others is written without that bit (0644 -> 0640)"
like "$err" "mailhook.secrets was readable by other users \(mode 0644\): written 0640" "with a warning naming it"
unlike "$err" "pw-three-XYZ" "(never the password)"

# umask and setuid bits: not the file's mode
chmod 04755 "$C"
(umask 077; "$MAILHOOK" -c "$C" update port=2527 >/dev/null 2>&1)
is "$(owner "$C")" "755 root:daemon" "the umask does not narrow a kept mode; a setuid bit is not kept"
chmod 0640 "$C"

# a settings file that is a symbolic link (configuration management): the target is rewritten,
# keeping its mode and group, and the link stays; a link another user planted is not followed
mkdir "$T/cm"
printf 'enabled = true\nserver = mx.example.com\nfrom = app@example.com\n' > "$T/cm/real.conf"
chown root:daemon "$T/cm/real.conf"; chmod 0640 "$T/cm/real.conf"
ln -s "$T/cm/real.conf" "$T/linked.conf"
"$MAILHOOK" -c "$T/linked.conf" update port=2528 >/dev/null 2>&1; ok $? "update through a link"
ok "$([ -L "$T/linked.conf" ]; echo $?)" "the link stays a link"
grep -qx "port = 2528" "$T/cm/real.conf"; ok $? "its target has the change"
is "$(owner "$T/cm/real.conf")" "640 root:daemon" "and keeps its mode and group"
ln -s "$T/cm/real.conf" "$T/planted.conf"; chown -h nobody "$T/planted.conf"
"$MAILHOOK" -c "$T/planted.conf" update port=2529 >/dev/null 2>&1
grep -qx "port = 2528" "$T/cm/real.conf"; ok $? "a link nobody made is not followed: its target untouched"
ok "$([ ! -L "$T/planted.conf" ] && grep -qx 'port = 2529' "$T/planted.conf"; echo $?)" "(the link itself replaced, as before)"

# an update while the service runs on the spool: it says the service needs a reload (SIGHUP);
# without a service, no such note
err=$("$MAILHOOK" -c "$T/cm/real.conf" update port=2530 2>&1 >/dev/null)
unlike "$err" "reload" "no service: no note"
MAILHOOK_SPOOL=$T/svcspool "$MAILHOOK" -c "$T/cm/real.conf" run >"$T/svc.log" 2>&1 &
SVC=$!; on_exit "kill -9 $SVC"
holder() { MAILHOOK_SPOOL=$T/svcspool "$MAILHOOK" -e 'local c = require "mailhook.core"
  os.exit(c.admin.lock_holder(c.paths.spool) and 0 or 1)'; }
wait_for 30 holder; ok $? "(the service holds the spool lock)"
err=$(MAILHOOK_SPOOL=$T/svcspool "$MAILHOOK" -c "$T/cm/real.conf" update port=2531 2>&1 >/dev/null); rc=$?
is "$rc" 0 "update while the service runs: saved"
like "$err" "note: the service running on .*svcspool \(pid $SVC\) uses the new settings once reloaded: systemctl reload mailhook \(or kill -HUP $SVC\)" \
  "says the running service needs a reload, naming its pid"
term_wait "$SVC"

# a settings file any user may write, or another user's: it decides where the password goes,
# so the service refuses it (it was loaded without a word: a local user pointed it at a
# server of theirs and got the password); intake still queues, warned; update drops o+w
cp "$C" "$T/ww.conf"; chmod 0666 "$T/ww.conf"; [ -e "$S" ] && cp -p "$S" "$T/ww.secrets"
out=$("$MAILHOOK" -c "$T/ww.conf" settings 2>&1); rc=$?
is "$rc" 1 "a settings file of mode 0666: refused"
like "$out" "ww.conf: any user may write it \(mode 0666\), and it decides where the password is sent: refused \(chmod o-w" \
  "naming why and the fix"
out=$(printf 'To: a@example.com\n\nx\n' | "$MAILHOOK" -c "$T/ww.conf" sendmail -t 2>&1); rc=$?
is "$rc" 0 "sendmail with it: still queued (intake accepts)"
like "$out" "warning: .*any user may write it" "warned"
out=$("$MAILHOOK" -c "$T/ww.conf" update port=2525 2>&1); rc=$?
is "$rc:$(owner "$T/ww.conf")" "0:664 root:root" "update writes it without the others' write bit"
like "$out" "was writable by any user \(mode 0666\): written 0664" "and says so"
"$MAILHOOK" -c "$T/ww.conf" settings >/dev/null 2>&1; ok $? "then it loads"
chown nobody "$T/ww.conf"; chmod 0644 "$T/ww.conf"
out=$("$MAILHOOK" -c "$T/ww.conf" settings 2>&1); rc=$?
is "$rc" 1 "a settings file owned by nobody (neither root, this user nor the spool's owner): refused"
like "$out" "ww.conf: owned by nobody, who is neither root, this user nor the spool's owner" "naming the owner"

# not root: a file another user owns cannot be given back to them -- refused, nothing changed
if command -v setpriv >/dev/null; then
  MH=$(mailhook_for_others "$T/inst")
  mkdir "$T/open"; chmod 1777 "$T/open"
  printf 'enabled = true\nserver = mx.example.com\nfrom = app@example.com\n' > "$T/open/mailhook.conf"
  chown root:daemon "$T/open/mailhook.conf"; chmod 0666 "$T/open/mailhook.conf"
  cp "$T/open/mailhook.conf" "$T/before"
  out=$(cd / && env -u LD_LIBRARY_PATH MAILHOOK_SPOOL="$T/open/spool" setpriv --reuid=65534 --regid=65534 \
        --clear-groups "$MH" -c "$T/open/mailhook.conf" update port=2600 2>&1); rc=$?
  ok $((rc == 0)) "an update as nobody of root:daemon's file fails (exit $rc)"
  like "$out" "cannot keep its owner root:daemon" "naming the owner it cannot keep"
  cmp -s "$T/before" "$T/open/mailhook.conf"; ok $? "the file is unchanged"
  is "$(owner "$T/open/mailhook.conf")" "666 root:daemon" "its owner too"
  is "$(ls -A "$T/open" | grep -c '^\.mailhook')" 0 "no temporary file left"
  # a file nobody may write, in a folder nobody may not: the error names the folder
  mkdir "$T/shut"; printf 'port = 25\n' > "$T/shut/mailhook.conf"
  chown nobody "$T/shut/mailhook.conf"; chmod 0755 "$T/shut"
  out=$(cd / && env -u LD_LIBRARY_PATH MAILHOOK_SPOOL="$T/open/spool" setpriv --reuid=65534 --regid=65534 \
        --clear-groups "$MH" -c "$T/shut/mailhook.conf" update port=2601 2>&1); rc=$?
  is "$rc" 1 "an update whose folder is not writable: exit 1"
  like "$out" "mailhook.conf: cannot write: Permission denied \(a new copy is made in .*/shut and renamed over it: that folder must be writable by nobody\); nothing was changed" \
    "naming the folder and the user"
fi
done_testing
