# mailhook-drop (what sendmail runs for a user who may not write the spool) names its
# file in maildrop/, then makes the name durable (the folder's fsync).  When that
# fsync fails, it says "not stored" (75) and removes the file: but a running service
# adopts a file the moment it is named, and had taken it already.  The drop said 75
# for mail the service then delivered, and a caller that retries sent it twice.  Now
# a file the service took is stored: exit 0, delivered once; one it did not take is
# removed: 75, never delivered.  The fault: strace fails the folder's fsync with EIO
# after holding it 3 s, the time the service needs to adopt the file.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
strace_inject_require
delivery_peer
DROP=${MAILHOOK_DROP:-$(dirname "$MAILHOOK")/mailhook-drop}
[ -x "$DROP" ] || DROP=$BUILD/mailhook-drop
chmod 1730 "$SPOOL/maildrop" 2>/dev/null || mkdir -m 1730 "$SPOOL/maildrop"
svc_start
wait_for 15 grep -q "delivering" "$T/svc.log"; ok $? "the service started"

# drop CALL-OPTS: the drop of one message under strace (the first fsync of maildrop/
# itself failed with EIO, held DELAY us first); stdout+stderr in $T/err; its status
drop() {
  printf 'Subject: dropped %s\n\nbody\n' "$1" |
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -o "$T/st" -P "$SPOOL/maildrop" \
      -e trace=fsync -e inject="fsync:error=EIO:delay_enter=$2:when=1" \
      "$DROP" -s "$SPOOL" -f app@example.com -- ok@example.net >"$T/err" 2>&1
}
drop taken 3000000; rc=$?
grep 'INJECTED' "$T/st" | grep -q fsync; ok $? "the fsync of maildrop/ failed (EIO)"
wait_for 15 received_at_least "$T/peer" 1; ok $? "the service took the file while the fsync was held, and delivered it"
is "$rc" 0 "the drop: exit 0, stored (it said 75, and a caller that retries sent it twice)"
like "$(cat "$T/err")" "fsync of $SPOOL/maildrop: Input/output error.*the service had taken the message already: stored" \
  "the drop says the fault and that the message is stored"
unlike "$(cat "$T/err")" "nothing stored" "and not that nothing was stored"
is "$(find "$SPOOL/maildrop" -type f | wc -l)" 0 "nothing left in maildrop/"

# the service stopped: nobody takes the file, the drop removes it, 75
svc_stop; is $? 0 "the service stopped"
drop removed 0; rc=$?
is "$rc" 75 "no service: the drop removes the file it could not make durable: 75"
is "$(find "$SPOOL/maildrop" -type f | wc -l)" 0 "and it is gone"
"$MAILHOOK" flush --timeout 30 >/dev/null 2>&1; ok $? "a flush sends what is queued (it waits)"
is "$(received_count "$T/peer")" 1 "the removed message never went; the taken one went once"
done_testing
