# The spool and mailhook's inputs attacked as a hostile local user, a buggy
# application or a full disk would (issue 10, points 1, 5, 6, 7, 8), through the
# real commands against a real server (aiosmtpd):
#   - FIFOs dropped into pickup/ (x.eml, ID.state): queue, flush, run + SIGTERM;
#   - enqueue --attach FIFO, --html /dev/zero, oversized attachment, html, stdin;
#   - hook --json of a document over its limit, fields over theirs;
#   - a spool pre-created by someone else (mode 777, lock and seq as links to a
#     victim file), a spool owned by another user;
#   - `mailhook test` run first: the modes it leaves;
#   - update tls_ca_file= a folder, /dev/zero, a FIFO, a text file;
#   - password_command's own stderr (a secret in it, a failure), one that never
#     ends, one that prints without end;
#   - a full disk (an ext4 loop device mounted here, as root; else tmpfs; skipped,
#     counted, when not root): adoption, deferral and corrupt/ failures said once.
# Every command runs under `timeout`: a hang is a failed test, never a stuck suite.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

LIMIT=15   # seconds a command may take here; past it, it hung
# run CMD...: OUT (stdout and stderr), RC (124 or 137: it hung and was killed)
run() { OUT=$(timeout -k 2 "$LIMIT" "$@" 2>&1); RC=$?; }
hung() { [ "$RC" = 124 ] || [ "$RC" = 137 ]; }
mode_of() { stat -c %a "$1" 2>/dev/null; }

PORT=$(free_port)
conf_for "$PORT"
peer_start "$PORT" "$T/peer"
make_certs_bg "$T/certs"   # (openssl runs while points 1 and 6 do: point 5 and 8 need them)

# --- point 1: FIFOs in pickup/ ------------------------------------------------------
id1=$(enqueue 1)
mkfifo "$SPOOL/pickup/x.eml" "$SPOOL/pickup/$id1.state"
run "$MAILHOOK" queue
is "$RC" 0 "a FIFO drop-in and a FIFO ID.state: \`mailhook queue\` returns (exit 0, not hung)"
like "$OUT" "$id1" "it lists the queued message"
like "$OUT" "x\.eml .*FIFO" "and the FIFO, flagged as what it is"
run "$MAILHOOK" flush
is "$RC" 0 "\`mailhook flush\` delivers and returns"
ok "$(received_count "$T/peer" | grep -qx 1; echo $?)" "the message beside the FIFO ID.state was delivered"
[ -p "$SPOOL/corrupt/x.eml" ]; ok $? "the FIFO drop-in was moved to corrupt/"
[ -p "$SPOOL/corrupt/$id1.state" ]; ok $? "the FIFO ID.state was moved to corrupt/"
like "$OUT" "pickup/x.eml moved to corrupt/x.eml: a FIFO, not a regular file" "and it was said"

svc_start
# (its pid in the lock: the flush above left its own there, and a lock file not empty
# was found before the service started)
wait_for 10 grep -qx "$SVC" "$SPOOL/lock"; ok $? "the service started"
mkfifo "$SPOOL/pickup/y.eml"
enqueue 1 >/dev/null
wait_for "$LIMIT" received_at_least "$T/peer" 2; ok $? "with a FIFO in pickup/, \`mailhook run\` still delivers"
wait_for "$LIMIT" test -p "$SPOOL/corrupt/y.eml"; ok $? "and moves the FIFO to corrupt/"
kill -TERM "$SVC"
wait_for "$LIMIT" sh -c "! kill -0 $SVC 2>/dev/null"; ok $? "SIGTERM stops the service"
is "$(grep -c 'y\.eml' "$T/svc.log")" 1 "the FIFO is logged once"

# --- point 1: enqueue's inputs -------------------------------------------------------
n0=$(pickup_count)
mkfifo "$T/fifo"
run sh -c "echo hi | '$MAILHOOK' enqueue --to ok@example.net --attach '$T/fifo'"
is "$RC" 1 "enqueue --attach FIFO: refused at once (exit 1, not hung)"
like "$OUT" "attachment $T/fifo: a FIFO, not a regular file" "naming the file and what it is"
# the bound on memory only protects the machine from an unfixed build (a
# sanitizer build reserves more address space than it allows: none then)
MEMCAP="ulimit -v 2000000;"
sh -c "$MEMCAP '$MAILHOOK' -e 'return 0'" >/dev/null 2>&1 || MEMCAP=
run sh -c "$MEMCAP echo hi | '$MAILHOOK' enqueue --to ok@example.net --html /dev/zero"
is "$RC" 1 "enqueue --html /dev/zero: refused (not read without end)"
like "$OUT" "html /dev/zero: a character device, not a regular file" "naming it"
truncate -s 65M "$T/big.bin"
run sh -c "echo hi | '$MAILHOOK' enqueue --to ok@example.net --attach '$T/big.bin'"
is "$RC" 1 "an attachment over its limit is refused"
like "$OUT" "attachment $T/big.bin: 68157440 bytes, over the 64 MiB limit" "naming the file, its size and the limit"
truncate -s 17M "$T/big.html"
run sh -c "echo hi | '$MAILHOOK' enqueue --to ok@example.net --html '$T/big.html'"
like "$OUT" "html $T/big.html: 17825792 bytes, over the 16 MiB limit" "--html over its limit: refused, named"
run sh -c "head -c 17M /dev/zero | '$MAILHOOK' enqueue --to ok@example.net"
is "$RC" 1 "a body on stdin over its limit is refused"
like "$OUT" "the body on stdin: over the 16 MiB limit" "naming it and the limit"
run sh -c "$MEMCAP '$MAILHOOK' enqueue --to ok@example.net < /dev/zero"
like "$OUT" "the body on stdin: over the 16 MiB limit" "an endless stdin: refused at the limit, not read forever"
is "$(pickup_count)" "$n0" "nothing was queued by any of them"

# --- point 1: hook's inputs ----------------------------------------------------------
mkdir -p "$T/rules"
run sh -c "'$PY' -c 'import sys; sys.stdout.write(\"{\\\"note\\\": \\\"\" + \"x\" * 2000000 + \"\\\"}\")' |
           '$MAILHOOK' hook alarm --json --rules '$T/rules'"
is "$RC" 2 "hook --json of a 2 MB document: refused as a malformed event (exit 2)"
like "$OUT" "the JSON on stdin: over the 1 MiB limit" "naming the limit"
run sh -c "'$PY' -c 'import sys; sys.stdout.write(\"{\\\"a\\\": {\\\"b\\\": [\\\"\" + \"x\" * 70000 + \"\\\"]}}\")' |
           '$MAILHOOK' hook alarm --json --rules '$T/rules'"
is "$RC" 2 "a JSON field over its limit (nested): refused"
like "$OUT" "field 'a.b\[1\]': 70000 bytes, over the 64 KiB limit" "naming the field"
run "$MAILHOOK" hook alarm "note=$(head -c 70000 /dev/zero | tr '\0' x)" --rules "$T/rules"
is "$RC" 2 "a KEY=VALUE over its limit: refused"
like "$OUT" "field 'note': 70000 bytes, over the 64 KiB limit" "naming the field"
run sh -c "echo '{\"note\": \"fine\"}' | '$MAILHOOK' hook alarm --json --rules '$T/rules'"
is "$RC" 0 "a small event still works"

# --- point 5: a spool prepared by someone else ---------------------------------------
S2=$T/s2
mkdir -m 700 "$S2"
echo "precious lock" > "$T/victim-lock"
echo "precious seq" > "$T/victim-seq"
MAILHOOK_SPOOL=$S2 enqueue 1 >/dev/null
ln -s "$T/victim-lock" "$S2/lock"
run env MAILHOOK_SPOOL="$S2" "$MAILHOOK" flush
[ "$RC" != 0 ] && ! hung; ok $? "flush with lock a symbolic link: refused (exit $RC)"
like "$OUT" "lock is not a regular file" "with a clear error"
is "$(cat "$T/victim-lock")" "precious lock" "the link's target is untouched"
run env MAILHOOK_SPOOL="$S2" "$MAILHOOK" run
[ "$RC" != 0 ] && ! hung; ok $? "run with lock a symbolic link: refused (exit $RC)"
rm -f "$S2/seq"
ln -s "$T/victim-seq" "$S2/seq"
run sh -c "echo hi | MAILHOOK_SPOOL='$S2' '$MAILHOOK' enqueue --to ok@example.net"
is "$RC" 1 "enqueue with seq a symbolic link: refused"
like "$OUT" "seq: not a regular file" "naming seq"
is "$(cat "$T/victim-seq")" "precious seq" "the link's target is untouched"

S3=$T/s3
mkdir "$S3"; chmod 777 "$S3"
run env MAILHOOK_SPOOL="$S3" "$MAILHOOK" queue
[ "$RC" != 0 ] && ! hung; ok $? "a spool folder of mode 777 is refused"
like "$OUT" "spool $S3 is mode 0777, writable by other users" "naming the folder and its mode"
chmod 700 "$S3"; mkdir -p "$S3/pickup"; chmod 757 "$S3/pickup"
run env MAILHOOK_SPOOL="$S3" "$MAILHOOK" queue
like "$OUT" "spool $S3/pickup is mode 0757" "a service sub-folder writable by others: refused, named"
if [ "$(id -u)" = 0 ]; then
  # the attack as reported: another user's spool, world-writable, lock and seq
  # pointing at root's files; root's enqueue and flush must touch neither
  S4=$T/s4
  mkdir "$S4"; chmod 777 "$S4"
  ln -s "$T/victim-lock" "$S4/lock"; ln -s "$T/victim-seq" "$S4/seq"
  chown -h 65534:65534 "$S4" "$S4/lock" "$S4/seq"
  run sh -c "echo hi | MAILHOOK_SPOOL='$S4' '$MAILHOOK' enqueue --to ok@example.net"
  is "$RC" 1 "root's enqueue into another user's world-writable spool: refused"
  like "$OUT" "belongs to uid 65534" "naming its owner"
  run env MAILHOOK_SPOOL="$S4" "$MAILHOOK" flush
  [ "$RC" != 0 ]; ok $? "root's flush of it: refused"
  ok "$([ "$(cat "$T/victim-lock")" = "precious lock" ] && [ "$(cat "$T/victim-seq")" = "precious seq" ]; echo $?)" \
     "root's files behind the links are untouched"
else
  for i in 1 2 3 4; do skip "not root: cannot give a spool to another user"; done
fi

# --- point 5: the modes `mailhook test` leaves when it runs first ----------------------
certs_ready
C=$T/certs
# (point 8's password_command that never ends waits out its 10 s limit: started here, it
# waits while points 5 and 8 run; its checks stay in their place below)
PASS=s3cret-Pw-4711
start_smtpd AUTHP --tls starttls --cert "$C/server.crt" --key "$C/server.key" --auth "user:$PASS"
BASE=(enabled=true from=a@example.org server=127.0.0.1 port="$AUTHP" tls=starttls tls_ca_file="$C/ca.crt"
      auth=true username=user connect_timeout=5 command_timeout=5)
write_conf "$T/pw3.conf" "${BASE[@]}" "password_command=echo $PASS; exec sleep 120"
mh_test_bg pw3 "$T/pw3.conf"
start_smtpd TLSP --tls starttls --cert "$C/server.crt" --key "$C/server.key"
write_conf "$T/tls.conf" enabled=true from=a@example.org server=127.0.0.1 port="$TLSP" tls=starttls \
  tls_ca_file="$C/ca.crt" connect_timeout=5 command_timeout=5
S5=$T/s5
OUT=$( (umask 000; MAILHOOK_SPOOL=$S5 timeout -k 2 60 "$MAILHOOK" -c "$T/tls.conf" test 2>&1) ); RC=$?
is "$RC" 0 "mailhook test over STARTTLS on a fresh spool (umask 000)"
is "$(mode_of "$S5")" 700 "it leaves the spool root 0700"
is "$(mode_of "$S5/state")" 700 "and state/ 0700"
is "$(mode_of "$S5/state/tls-seen")" 600 "and state/tls-seen 0600"
grep -q "^127.0.0.1:$TLSP starttls$" "$S5/state/tls-seen"; ok $? "holding the server seen with STARTTLS"

# --- point 8: tls_ca_file is checked when saved ----------------------------------------
cp "$CONF" "$T/conf.before"
printf 'just text\n' > "$T/notpem.txt"
run "$MAILHOOK" update tls_ca_file="$T/certs"
is "$RC" 2 "update tls_ca_file=a folder: refused"
like "$OUT" "tls_ca_file: cannot read $T/certs: a folder, not a regular file" "naming it"
run "$MAILHOOK" update tls_ca_file=/dev/zero
is "$RC" 2 "update tls_ca_file=/dev/zero: refused"
like "$OUT" "/dev/zero: a character device, not a regular file" "naming it"
run "$MAILHOOK" update tls_ca_file="$T/fifo"
is "$RC" 2 "update tls_ca_file=a FIFO: refused at once (not hung)"
run "$MAILHOOK" update tls_ca_file="$T/notpem.txt"
is "$RC" 2 "update tls_ca_file=a text file: refused"
like "$OUT" "no PEM certificate in it" "saying why"
cmp -s "$CONF" "$T/conf.before"; ok $? "the settings file is unchanged"
run "$MAILHOOK" update tls_ca_file="$C/ca.crt"
is "$RC" 0 "a real CA file is accepted"

# --- point 8: password_command's own stderr -------------------------------------------
# (AUTHP, BASE: started with point 5)
write_conf "$T/pw1.conf" "${BASE[@]}" \
  "password_command=echo $PASS; echo 'pass: decrypting, debug: the password is $PASS' >&2"
mh_test "$T/pw1.conf"
is "$RC" 0 "password_command that also talks on stderr: authenticated"
unlike "$OUT" "$PASS" "the secret it wrote on stderr never shows"
unlike "$OUT" "pass: decrypting" "its stderr is not passed through raw"
write_conf "$T/pw2.conf" "${BASE[@]}" \
  "password_command=printf 'vault: permission denied\\033[31m for smtp\\n' >&2; exit 3"
mh_test "$T/pw2.conf"
is "$RC" 1 "a failing password_command fails the test"
like "$OUT" "password_command failed \(exit 3\): vault: permission denied\[31m for smtp" \
  "named with its stderr's first line, control characters dropped"
# a command that never ends (a vault waiting for a prompt) held the delivery loop for
# ever; one that prints without end grew its line in memory (600 MB for 300 MB of NULs).
# The first, started with point 5 ("password_command=echo $PASS; exec sleep 120"), is
# checked at the end, after point 7 (pw3_checks): its 10 s limit runs out meanwhile.
pw3_checks() {
  mh_test_wait pw3
  is "$RC" 1 "a password_command that never ends fails the test"
  like "$OUT" "password_command did not finish within 10 s \(ended\)" "naming the limit"
  ok "$([ "$ELAPSED_MS" -lt 40000 ]; echo $?)" "it is ended ($ELAPSED_MS ms, limit 10 s), not waited for"
}
write_conf "$T/pw4.conf" "${BASE[@]}" "password_command=cat /dev/zero"
mh_test "$T/pw4.conf"
is "$RC" 1 "a password_command printing a line without end fails the test"
like "$OUT" "password_command printed a line over 65536 bytes" "naming the limit (read no further)"

# --- point 7: a full disk ------------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
  for i in $(seq 11); do skip "not root: no file system can be mounted for a full disk"; done
  pw3_checks; done_testing; exit
fi
MNT=$T/mnt
mkdir -p "$MNT"
FS=ext4
truncate -s 4M "$T/disk.img"
if mkfs.ext4 -q -F -b 1024 -m 0 -N 128 -O ^metadata_csum,^dir_index,^has_journal "$T/disk.img" >/dev/null 2>&1 &&
   mount -o loop "$T/disk.img" "$MNT" 2>/dev/null; then
  on_exit "umount -l '$MNT'"
elif mount -t tmpfs -o size=2m,mode=0700 tmpfs "$MNT" 2>/dev/null; then
  FS=tmpfs
  on_exit "umount -l '$MNT'"
else
  FS=
fi
if [ -z "$FS" ]; then
  for i in $(seq 11); do skip "no loop device and no tmpfs could be mounted"; done
  pw3_checks; done_testing; exit
fi
diag "full disk on $FS"
S6=$MNT/spool
mkdir -m 700 "$S6"
CONF6=$T/full.conf
MAILHOOK_CONF=$CONF6 "$MAILHOOK" update enabled=true server=127.0.0.1 port="$PORT" tls=none \
  tls_required=false from=app@example.com retry_interval=0.25 retry_max=0.25 connect_timeout=2 >/dev/null
MAILHOOK_SPOOL=$S6 enqueue 1 app@example.com temp@example.net >/dev/null   # 450 at every try
printf 'From: app@example.com\r\nTo: ok@example.net\r\nSubject: dropped\r\n\r\nhi\r\n' > "$MNT/drop.tmp"
mv "$MNT/drop.tmp" "$S6/pickup/drop.eml"
printf 'no header here\n' > "$MNT/bad.tmp"
mv "$MNT/bad.tmp" "$S6/pickup/bad.eml"
if [ "$FS" = ext4 ]; then   # corrupt/'s one block full: a new name there needs a block
  for i in 1 2 3 4; do : > "$S6/corrupt/$(printf 'k%0239d' "$i")"; done
fi
# full: ext4 gives back blocks it had set aside for delayed allocation once
# synced, so fill again until nothing is left
for k in 1 2 3 4 5; do dd if=/dev/zero of="$MNT/fill$k" bs=1k >/dev/null 2>&1; sync; done
echo x 2>/dev/null > "$MNT/probe-write"; [ ! -s "$MNT/probe-write" ]; ok $? "the $FS file system is full"
RENAME_FAILS=0
if [ "$FS" = ext4 ]; then
  if touch "$S6/corrupt/probe" 2>/dev/null; then rm -f "$S6/corrupt/probe"; else RENAME_FAILS=1; fi
fi
: > "$T/svc.log"
SVC_LOG_LEVEL=info MAILHOOK_SPOOL=$S6 MAILHOOK_CONF=$CONF6 svc_start

deferrals() { [ "$(grep -c 'deferred (attempt' "$T/svc.log")" -ge "$1" ]; }
wait_for 30 deferrals 4; ok $? "on a full disk the service goes on retrying (4 deferrals seen)"
term_wait "$SVC"
is "$(grep -c 'could not record the deferral' "$T/svc.log")" 1 "\"could not record the deferral\": said once, not at each retry"
like "$(grep 'could not record the deferral' "$T/svc.log")" "No space left on device" "naming the cause"
is "$(grep -c 'cannot adopt pickup/drop.eml' "$T/svc.log")" 1 "a drop-in that cannot be adopted: said once, not at each scan"
[ -f "$S6/pickup/drop.eml" ]; ok $? "the drop-in waits in pickup/"
if [ "$RENAME_FAILS" = 1 ]; then
  is "$(grep -c 'pickup/bad.eml' "$T/svc.log")" 1 "a move to corrupt/ failing with ENOSPC: said once"
  like "$(grep 'pickup/bad.eml' "$T/svc.log")" "cannot be moved: No space left on device" "as a failure, naming the cause"
  is "$(grep -c 'bad.eml moved to corrupt' "$T/svc.log")" 0 "never as moved"
  [ -f "$S6/pickup/bad.eml" ]; ok $? "the file is still in pickup/"
else
  for i in 1 2 3 4; do skip "the move to corrupt/ could not be made to fail on $FS"; done
fi
rm -f "$MNT"/fill*
run env MAILHOOK_SPOOL="$S6" MAILHOOK_CONF="$CONF6" "$MAILHOOK" flush
[ -f "$S6/corrupt/bad.eml" ] && [ ! -e "$S6/pickup/drop.eml" ]; ok $? "with room again: the drop-in is adopted, the bad file moved to corrupt/"

pw3_checks
done_testing
