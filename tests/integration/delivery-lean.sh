# The deliverer's work per message (issue 16, runtime/spool.c "the listing"),
# checked by what `mailhook flush` calls (strace), never by a clock: each
# message's file opened once, by the name its scan just listed, without a stat
# of that name first (the scan's d_type was that look) and without a lookup of
# an ID.state sidecar the scan did not see; no F_SETFL on it (a regular file
# ignores O_NONBLOCK), with O_NOATIME (a first read would write the inode for
# relatime); no fstat of its open file (the first read of a small file tells
# what it is and its size; the record after the 250 needs no look whether a
# `queue rm` took it meanwhile); one 17-byte record per message in the
# delivered journal.
# A sidecar that exists is still read (tests/unit/test-spool-listing.c covers
# the sidecars written after the scan, and what is swapped in under a name).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
if ! strace -f -o /dev/null true 2>/dev/null; then
  echo "1..0 # SKIP strace cannot trace here"
  exit 0
fi
PORT=$(free_port)
conf_for "$PORT"
peer_start "$PORT" "$T/peer"
N=20

# flush_traced NAME: `mailhook flush` under strace into $T/NAME.tr; its status
flush_traced() {
  # (LeakSanitizer cannot run under ptrace: an ASan build exits 1 there unless it is off)
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
  strace -f -qq -y -e trace=%file,%desc -o "$T/$1.tr" "$MAILHOOK" flush > "$T/$1.out" 2>&1
}
# by_name NAME SUFFIX: the stat-family calls on a spool name ending in .SUFFIX (any glibc's form)
by_name() { grep -cE '(newfstatat|fstatat64|statx|lstat|stat)\([^"]*"[^"]*[0-9a-f]{16}\.'"$2"'"' "$T/$1.tr"; }

enqueue "$N" > "$T/ids"
flush_traced plain; rc=$?
is "$rc" 0 "flush delivers $N messages (traced)"
wait_for 5 received_at_least "$T/peer" "$N"; ok $? "the server has all $N"
is "$(pickup_count)" 0 "pickup/ is empty afterwards"
opens=$(grep -cE 'openat\([^"]*"[0-9a-f]{16}\.eml", O_RDONLY' "$T/plain.tr")
is "$opens" "$N" "each message's file is opened once"
is "$(grep -cE 'openat\([^"]*"[0-9a-f]{16}\.eml", O_RDONLY[^)]*O_NOATIME' "$T/plain.tr")" "$N" \
   "without updating its access time (O_NOATIME: no inode write for a read)"
is "$(by_name plain eml)" 0 "no stat of a message's name before its open (the scan listed it)"
is "$(by_name plain state)" 0 "no lookup of a sidecar the scan did not see"
is "$(grep -cE '"[0-9a-f]{16}\.state"' "$T/plain.tr")" 0 "no sidecar name met at all (nor by the purge)"
is "$(grep -cE 'fcntl\([0-9]+<[^>]*/pickup/[0-9a-f]{16}\.eml>, F_SETFL' "$T/plain.tr")" 0 \
   "no F_SETFL on the messages' files"
is "$(grep -cE '(newfstatat|fstatat64|fstat|fstat64|statx)\([0-9]+<[^>]*/pickup/[0-9a-f]{16}\.eml>' "$T/plain.tr")" 0 \
   "no fstat of a message's open file (its first read tells; its record needs no look)"
# (no closing parenthesis: strace -f cuts a call another thread's line interrupts, "<unfinished ...>")
is "$(grep -cE 'write\([0-9]+<[^>]*/delivered>, "[0-9a-f]{16}\\n", 17' "$T/plain.tr")" "$N" "one 17-byte journal record per message"

# a message with a sidecar (queue retry writes one): it is still read
enqueue 2 > "$T/ids2"
id=$(head -1 "$T/ids2")
"$MAILHOOK" queue retry "$id" > /dev/null 2>&1
ok $? "queue retry gives one message a sidecar"
[ -f "$SPOOL/pickup/$id.state" ]; ok $? "pickup/$id.state exists"
flush_traced side; rc=$?
is "$rc" 0 "flush delivers them (traced)"
grep -qE 'openat\([^"]*"'"$id"'\.state"' "$T/side.tr"
ok $? "the sidecar the scan saw is read"
other=$(sed -n 2p "$T/ids2")
is "$(grep -cE '"'"$other"'\.state"' "$T/side.tr")" 0 "the other one's sidecar name is never met"
rec=$(grep -nE 'write\([0-9]+<[^>]*/delivered>, "'"$id"'\\n", 17' "$T/side.tr" | head -1 | cut -d: -f1)   # (unfinished or not)
# (strace -f: "0) = 0", or "0 <unfinished ...>" when another thread's call
# came in between; pickup/ empty below says it succeeded)
gone=$(grep -nE 'unlinkat\([^"]*"'"$id"'\.state", 0(\) = 0| <unfinished)' "$T/side.tr" | head -1 | cut -d: -f1)
ok "$([ -n "$rec" ] && [ -n "$gone" ] && [ "$gone" -gt "$rec" ]; echo $?)" \
   "its sidecar is removed after its delivered record (lines ${rec:-none} < ${gone:-none})"
wait_for 5 received_at_least "$T/peer" $((N + 2)); ok $? "the server has both"
is "$(ls -A "$SPOOL/pickup" | wc -l)" 0 "pickup/ is empty, sidecars too"
done_testing
