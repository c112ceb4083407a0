# Disk faults injected at the system calls of every intake path and of the drain
# (strace -e inject): ENOSPC, EIO, EDQUOT at the write, fsync, rename, unlink,
# open and read that matter, one at a time.  What must hold (DESIGN.md, the spool
# and delivery): a caller told "stored" finds the message delivered once, byte for
# byte; a caller whose message was not stored is told so (non-zero exit, or a 4xx
# to sendmail -bs) with the file or folder, the operation and the errno text, no
# traceback, no "nil"; nothing half-written is ever left (tmp/, maildrop/); the
# messages queued before a fault are all delivered, in order; `mailhook update`
# leaves the old settings file or the new one, whole, and says which; the drain
# never sends a message twice after a failed journal record, unlink or rename, and
# a queued file it cannot read, or a pickup/ it cannot list, is said, never taken as
# an empty queue.  Each injection is checked to have hit the call it aims at.
# The places were found by failing every call of each path in turn (strace -c,
# -e trace): the rest behave as the ones kept here.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
strace_inject_require

delivery_peer retry_interval=1 retry_max=1
unset MAILHOOK_LOG_LEVEL; export MAILHOOK_LOG_LEVEL=warn

# fault CALL ERRNO WHEN [-P PATH]... -- CMD...: CMD with the WHEN-th CALL (counted per
# thread, among the calls on the paths given, if any) failed with ERRNO; stdout in
# $T/out, stderr in $T/err, strace's log in $T/st; returns CMD's status.  stdin is
# the caller's.
fault() {
  local call=$1 errno=$2 when=$3; shift 3
  local paths=()
  while [ "$1" != -- ]; do paths+=("$1"); shift; done; shift
  # (LeakSanitizer cannot run under ptrace: it would end every `make asan` run with 1)
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -o "$T/st" "${paths[@]}" -e trace="$call" -e inject="$call:error=$errno:when=$when" \
    "$@" >"$T/out" 2>"$T/err"
}
# hit REGEX: the injected call was the one aimed at (its line in strace's log; a call
# another thread's line cut has its "(INJECTED)" on its "resumed" half: joined first)
hit() { strace_joined "$T/st" | grep 'INJECTED' | grep -Eq -- "$1"; }
# nth CALL REGEX -- CMD...: the number, among its thread's CALLs, of the first CALL
# whose line matches REGEX, from a dry run of CMD on a copy of the spool (stdin: the
# caller's; what CMD writes elsewhere, a settings file, is written)
nth() {
  local call=$1 re=$2; shift 3
  rm -rf "$T/dry"; cp -a "$SPOOL" "$T/dry"
  MAILHOOK_SPOOL=$T/dry ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -o "$T/dry.st" -e trace="$call" "$@" >/dev/null 2>&1
  awk -v re="$re" '$0 ~ /resumed>/ { next } { n[$1]++ } $0 ~ re { print n[$1]; exit }' "$T/dry.st"
}
tmp_empty() { [ -z "$(ls -A "$SPOOL/tmp")" ]; }
clean_err() { unlike "$(cat "$T/err")" "[Tt]raceback|\\bnil\\b" "$1: no traceback, no nil"; }

# what was said "stored" (its Subject) and must come out once; what was refused must not
STORED=(); REFUSED=()
ids=$(enqueue 2)          # queued before any fault: "msg 1", "msg 2"
STORED+=("msg 1" "msg 2")
before=$(pickup_count)

# --- mailhook enqueue: the message file's write, its fsync, the rename, pickup/'s fsync
ENQ=("$MAILHOOK" enqueue --to ok@example.net --subject)
body() { printf 'body of %s\n' "$1"; }
n=$(body dry | nth write 'X-Sender' -- "${ENQ[@]}" dry)
body enq-write | fault write ENOSPC "$n" -- "${ENQ[@]}" enq-write; rc=$?
hit 'X-Sender'; ok $? "enqueue: the write of the message file failed (ENOSPC)"
ok $((rc == 0)) "enqueue: non-zero exit when the write fails"
like "$(cat "$T/err")" "spool $SPOOL: write tmp/[0-9a-f]{16}: No space left on device" "enqueue: names the file, the write and the errno"
clean_err "enqueue write"
REFUSED+=("enq-write")

body enq-fsync | fault fsync EIO 1 -- "${ENQ[@]}" enq-fsync; rc=$?
hit 'fsync'; ok $? "enqueue: the fsync of the message file failed (EIO)"
ok $((rc == 0)) "enqueue: non-zero exit"
like "$(cat "$T/err")" "fsync tmp/[0-9a-f]{16}: Input/output error" "enqueue: names the fsync of the file"
REFUSED+=("enq-fsync")

body enq-rename | fault renameat2 EDQUOT 1 -P "$SPOOL/pickup" -- "${ENQ[@]}" enq-rename; rc=$?
hit 'renameat2'; ok $? "enqueue: the rename into pickup/ failed (EDQUOT)"
ok $((rc == 0)) "enqueue: non-zero exit"
like "$(cat "$T/err")" "the rename from tmp/ into pickup/: Disk quota exceeded" "enqueue: names the rename"
REFUSED+=("enq-rename")

body enq-dirsync | fault fsync EIO 1 -P "$SPOOL/pickup" -- "${ENQ[@]}" enq-dirsync; rc=$?
hit 'fsync'; ok $? "enqueue: the fsync of pickup/ failed (EIO)"
ok $((rc == 0)) "enqueue: non-zero exit"
like "$(cat "$T/err")" "fsync pickup/: Input/output error" "enqueue: names pickup/'s fsync"
clean_err "enqueue folder fsync"
REFUSED+=("enq-dirsync")
is "$(pickup_count)" "$before" "enqueue: none of the four is queued (the renamed one was taken back)"
tmp_empty; ok $? "enqueue: nothing left in tmp/"

body enq-ok | "${ENQ[@]}" enq-ok >/dev/null; ok $? "enqueue: without a fault, stored"
STORED+=("enq-ok")

# --- sendmail (root: straight into the spool): sendmail's EX_TEMPFAIL (75)
sm_msg() { printf 'From: app@example.com\nTo: ok@example.net\nSubject: %s\n\nbody of %s\n' "$1" "$1"; }
n=$(sm_msg dry | nth write 'Received:' -- "$MAILHOOK" sendmail -t -i)
sm_msg sm-write | fault write ENOSPC "$n" -- "$MAILHOOK" sendmail -t -i; rc=$?
hit 'Received:'; ok $? "sendmail: the write of the message failed (ENOSPC)"
is "$rc" 75 "sendmail: exit 75 (EX_TEMPFAIL: try again)"
like "$(cat "$T/err")" "write tmp/[0-9a-f]{16}: No space left on device" "sendmail: names the file and the errno"
clean_err "sendmail"
REFUSED+=("sm-write")
sm_msg sm-ok | "$MAILHOOK" sendmail -t -i; ok $? "sendmail: without a fault, stored"
STORED+=("sm-ok")

# --- sendmail -bs: the first message's pickup/ fsync fails (451), the second is taken
bs_input() {
  local s
  printf 'EHLO me\r\n'
  for s in bs-fail bs-ok; do
    printf 'MAIL FROM:<app@example.com>\r\nRCPT TO:<ok@example.net>\r\nDATA\r\n'
    printf 'Subject: %s\r\n\r\nbody of %s\r\n.\r\n' "$s" "$s"
  done
  printf 'QUIT\r\n'
}
before=$(pickup_count)
bs_input | fault fsync EIO 1 -P "$SPOOL/pickup" -- "$MAILHOOK" sendmail -bs; rc=$?
hit 'fsync'; ok $? "sendmail -bs: the fsync of pickup/ failed for the first message (EIO)"
like "$(cat "$T/out")" "^451 4\\.3\\.0 .*fsync pickup/: Input/output error" "sendmail -bs: 451 naming the fsync"
is "$(grep -c '^250 2.0.0 Ok: queued' "$T/out")" 1 "sendmail -bs: the second message queued (250)"
is "$(pickup_count)" $((before + 1)) "sendmail -bs: only the second is in pickup/"
REFUSED+=("bs-fail"); STORED+=("bs-ok")

# --- mailhook hook with a shipped rule (examples/alarm.lua): a critical alarm
mkdir -p "$T/rules"; cp "$ROOT/examples/alarm.lua" "$T/rules/"
printf 'rules = %s\n' "$T/rules" >> "$CONF"
ALARM=("$MAILHOOK" hook alarm severity=critical message=on-battery)
fault renameat2 ENOSPC 1 -P "$SPOOL/pickup" -- "${ALARM[@]}" source=hook-fail; rc=$?
hit 'renameat2'; ok $? "hook: the rename into pickup/ failed (ENOSPC)"
ok $((rc == 0)) "hook: non-zero exit when the rule's message is not stored"
like "$(cat "$T/err")" "the rename from tmp/ into pickup/: No space left on device" "hook: names the rename and the errno"
REFUSED+=("[critical] hook-fail: on-battery")
"${ALARM[@]}" source=hook-ok >/dev/null 2>&1; ok $? "hook: without a fault, stored"
STORED+=("[critical] hook-ok: on-battery")
tmp_empty; ok $? "after every intake fault: nothing left in tmp/"

# --- mailhook-drop (what sendmail runs for a user who may not write the spool):
# a maildrop/ as the installer makes it, the caller's group
DS=$T/ds; mkdir -m 700 "$DS"; mkdir -m 1730 "$DS/maildrop"; chgrp "$(id -g)" "$DS/maildrop"; chmod 1730 "$DS/maildrop"
DROP=("$BUILD/mailhook-drop" -s "$DS" -f app@example.com -- ok@example.net)
dmsg() { printf 'Subject: dropped\n\nbody\n'; }
dmsg | "${DROP[@]}"; ok $? "drop: without a fault, stored"; rm -f "$DS"/maildrop/*
dmsg | fault fsync ENOSPC 1 -P "$DS/maildrop" -- "${DROP[@]}"; rc=$?
hit 'fsync'; ok $? "drop: the fsync of maildrop/ failed (ENOSPC), after the file was named"
is "$rc" 75 "drop: exit 75 (try again)"
like "$(cat "$T/err")" "fsync of $DS/maildrop: No space left on device \\(nothing stored\\)" "drop: names the folder's fsync"
is "$(ls -A "$DS/maildrop" | wc -l)" 0 "drop: the file it said it did not store is gone (it stayed, and was delivered beside the caller's retry)"
dmsg | fault write ENOSPC 1 -- "${DROP[@]}"; rc=$?
hit 'MAILHOOK-DROP'; ok $? "drop: the write of the file failed (ENOSPC)"
is "$rc" 75 "drop: exit 75"
like "$(cat "$T/err")" "$DS/maildrop: writing the message: No space left on device" "drop: names the folder and the write"
is "$(ls -A "$DS/maildrop" | wc -l)" 0 "drop: nothing left"

# --- mailhook update: the old file or the new one, whole, and which is said
U=$T/u.conf; cp "$CONF" "$U"; cp "$U" "$T/u.old"
UPD=(env MAILHOOK_CONF="$U" "$MAILHOOK" update retry_interval=45)
n=$(nth rename 'u\.conf"' -- "${UPD[@]}"); cp "$T/u.old" "$U"   # (the dry run saved it)
fault rename ENOSPC "$n" -- "${UPD[@]}"; rc=$?
hit 'rename\(.*u\.conf"'; ok $? "update: the rename over the settings file failed (ENOSPC)"
is "$rc" 1 "update: exit 1 (the disk failed)"
like "$(cat "$T/err")" "u\\.conf: rename the new copy over it: No space left on device; not saved: the old file is kept, whole" \
  "update: names the rename and says the old file is kept"
cmp -s "$U" "$T/u.old"; ok $? "update: the old file, whole"
n=$(nth write '^[0-9]+ +write\([0-9]+, "enabled' -- "${UPD[@]}")
cp "$T/u.old" "$U"
fault write EIO "$n" -- "${UPD[@]}"; rc=$?
hit 'enabled'; ok $? "update: the write of the new copy failed (EIO)"
like "$(cat "$T/err")" "write the new copy: Input/output error; not saved: the old file is kept, whole" "update: says so"
cmp -s "$U" "$T/u.old"; ok $? "update: the old file, whole"
fault fsync EIO 1 -P "$T" -- "${UPD[@]}"; rc=$?
hit 'fsync'; ok $? "update: the fsync of the folder failed (EIO), after the rename"
is "$rc" 1 "update: exit 1"
like "$(cat "$T/err")" "fsync the folder: Input/output error; the new file is in place, but may not survive a power cut" \
  "update: says the new file is in place"
MAILHOOK_CONF=$U "$MAILHOOK" settings 2>&1 | grep -q 'retry_interval = 45'; ok $? "update: the new file, whole"
is "$(ls -A "$T" | grep -c '^\.u\.conf\.')" 0 "update: no temporary copy left"

# --- the drain of what intake stored: each once, byte for byte, in queue order
mkdir -p "$T/want"
"$MAILHOOK" -e 'local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL"))
  for _, id in ipairs(sp:scan()) do print(id, sp:load(id).offset) end' > "$T/queued"
order=()
while read -r id off; do
  s=$(grep -m1 '^Subject: ' "$SPOOL/pickup/$id.eml" | tr -d '\r'); s=${s#Subject: }
  tail -c +$((off + 1)) "$SPOOL/pickup/$id.eml" > "$T/want/$(printf %s "$s" | md5sum | cut -c1-32)"
  order+=("$s")
done < "$T/queued"
is "${#order[@]}" "${#STORED[@]}" "the queue holds what intake said it stored (${#STORED[@]})"
"$MAILHOOK" flush >/dev/null 2>"$T/err"; ok $? "flush: exit 0"
subject_of() { grep -m1 '^Subject: ' "$1" | tr -d '\r' | sed 's/^Subject: //'; }
got=(); same=0
for f in $(ls "$T/peer"/*.eml | sort); do
  s=$(subject_of "$f"); got+=("$s")
  cmp -s "$f" "$T/want/$(printf %s "$s" | md5sum | cut -c1-32)" && same=$((same + 1))
done
is "$(printf '%s\n' "${got[@]}" | sort | uniq -d)" "" "no message delivered twice"
is "$(printf '%s\n' "${got[@]}" | sort)" "$(printf '%s\n' "${STORED[@]}" | sort)" "every stored message delivered, none of the refused ones"
is "$same" "${#STORED[@]}" "each byte for byte as queued"
is "${got[*]}" "${order[*]}" "in queue order (the two queued before the faults first)"

# --- the drain's own faults; each round: 3 messages, a faulted flush, a clean one
DELIVERED_BEFORE=$(received_count "$T/peer")
round() {   # round: queue 3 (ids in ID1..ID3; Message-IDs <FIRST..FIRST+2@test>)
  FIRST=$((ENQ_SEQ + 1))
  local r; r=$(enqueue 3); ID1=$(sed -n 1p <<<"$r"); ID2=$(sed -n 2p <<<"$r"); ID3=$(sed -n 3p <<<"$r")
  MARK=$(received_count "$T/peer")
}
round_got() { received_ids "$T/peer" | tail -n +$((MARK + 1)) | tr -d '<>' | sed 's/@test//' | tr '\n' ' '; }
want_once() {   # want_once DESC: after one more clean flush, each of the round's 3 once, in order
  "$MAILHOOK" flush >/dev/null 2>"$T/err2"
  is "$(round_got)" "$FIRST $((FIRST + 1)) $((FIRST + 2)) " "$1: each message delivered once, in order"
  is "$(pickup_count)" 0 "$1: the queue is empty"
}

# the journal's record of the 2nd message fails (a full disk), then its unlink (EIO):
# the file stays in pickup/ with no record; it was sent again by the same flush
round
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -o "$T/st" -P "$SPOOL/delivered" -P "$SPOOL/pickup" -e trace=write,unlinkat \
  -e inject=write:error=ENOSPC:when=2 -e inject=unlinkat:error=EIO:when=1 "$MAILHOOK" flush >/dev/null 2>"$T/err"
hit "write\\(.*$ID2"; ok $? "drain: the journal's record of the 2nd message failed (ENOSPC)"
hit "unlinkat\\(.*$ID2\\.eml"; ok $? "drain: and then the unlink of the 2nd message failed (EIO)"
like "$(cat "$T/err")" "$ID2 was delivered but could be neither recorded nor removed: .*unlink pickup/$ID2\\.eml: Input/output error" \
  "drain: said, with the file and the errno"
clean_err "drain record+unlink"
want_once "journal record and unlink failed"

round
fault renameat ENOSPC 1 -P "$SPOOL" -- "$MAILHOOK" flush; rc=$?
hit 'renameat\(.*"delivered", .*"delivered.old"'; ok $? "drain: the purge's rename of the journal failed (ENOSPC)"
like "$(cat "$T/err")" "removing delivered messages failed .*rename delivered: No space left on device" "drain: said"
want_once "purge rename failed"

round
fault pread64 EIO 1 -P "$SPOOL/pickup/$ID2.eml" -- "$MAILHOOK" flush; rc=$?
hit 'pread64'; ok $? "drain: the read of the 2nd queued file failed (EIO)"
like "$(cat "$T/err")" "pickup/$ID2\\.eml cannot be read: Input/output error; it stays queued" "drain: the unreadable file named"
like "$(round_got)" "^$FIRST .*$((FIRST + 2)) " "drain: the others were delivered all the same"
"$MAILHOOK" flush >/dev/null 2>&1
is "$(round_got | tr ' ' '\n' | sort | uniq -c | awk '$1 != 1' | wc -l)" 0 "drain: each once once readable"
is "$(pickup_count)" 0 "drain: the queue is empty"

round
fault getdents64 EIO 1 -P "$SPOOL/pickup" -- "$MAILHOOK" flush; rc=$?
hit 'getdents64'; ok $? "drain: the listing of pickup/ failed (EIO)"
ok $((rc == 0)) "drain: flush exits non-zero (it said '0 left' and 0: an empty queue)"
like "$(cat "$T/err")" "cannot list the queue: spool $SPOOL: reading pickup/: Input/output error" "drain: names the folder's read"
want_once "pickup/ unlisted"

round
fault openat EIO 1 -P "$SPOOL/pickup" -- "$MAILHOOK" flush; rc=$?
hit 'openat\([0-9]+, "\."'; ok $? "drain: the open of pickup/ for its listing failed (EIO)"
ok $((rc == 0)) "drain: flush exits non-zero"
like "$(cat "$T/err")" "spool $SPOOL: pickup/: Input/output error" "drain: the errno as it was (it said ENOENT)"
want_once "pickup/ not opened"

round
fault fdatasync EIO 1 -P "$SPOOL/delivered" -- "$MAILHOOK" flush; rc=$?
hit 'fdatasync'; ok $? "drain: the fsync of the journal failed (EIO)"
like "$(cat "$T/err")" "the fsync of the delivered records failed: .*fsync delivered: Input/output error" "drain: said as what it is"
want_once "journal fsync failed"
done_testing
