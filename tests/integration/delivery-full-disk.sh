# A full disk while the service delivers (review 2, durability F2): a message some
# recipients took while another got a 4xx is deferred, but its sidecar (who took it)
# cannot be written.  The service keeps that in memory: each later attempt goes only to
# the recipient still owed, its attempts counted (it sent the whole message again to
# the ones that had taken it, every ~30 s, "attempt 1" for ever).  Needs root (a small
# tmpfs as the spool); skipped otherwise.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
if [ "$(id -u)" != 0 ] || ! mkdir -p "$T/full" || ! mount -t tmpfs -o size=256k,mode=0700 tmpfs "$T/full" 2>/dev/null; then
  echo "1..0 # SKIP needs root and a tmpfs mount"; exit 0
fi
on_exit "umount -l '$T/full'"
SPOOL=$T/full/spool; export MAILHOOK_SPOOL=$SPOOL
delivery_peer retry_interval=0.5 retry_max=0.5
enqueue 1 app@example.com ok1@example.net temp@example.net >/dev/null
# the disk full: what is left is not enough for a sidecar
dd if=/dev/zero of="$T/full/pad" bs=1k count=1024 2>/dev/null
avail=$(df --output=avail -k "$T/full" | tail -1 | tr -d ' ')
is "$avail" 0 "the spool's disk is full"
svc_start
attempts() { [ "$(grep -c 'deferred (attempt' "$T/svc.log")" -ge "$1" ]; }
wait_for 20 attempts 4; ok $? "four attempts, each deferred (temp@ still owed)"
like "$(cat "$T/svc.log")" "could not record the deferral: .*No space left on device" "the failed record said"
is "$(grep -c 'could not record the deferral' "$T/svc.log")" 1 "once"
like "$(cat "$T/svc.log")" "deferred \\(attempt 4\\)" "the attempts counted (it said attempt 1 each time)"
n=$(grep -c 'ok1@example.net' "$T/peer/log" 2>/dev/null)
is "$n" 1 "ok1@ got the message once (it got it at every attempt)"
svc_stop

# A recipient refused for good (550) in an attempt whose deferral could not be
# recorded: once the last recipient owed takes the message, it goes to failed/
# naming the refused one (it was kept only in memory, and the message was
# removed as delivered: the refusal was lost)
rm -f "$T/full/pad"
ID2=$(enqueue 1 app2@example.com ok2@example.net perm@example.net temp-once@example.net)
dd if=/dev/zero of="$T/full/pad" bs=1k count=1024 2>/dev/null
svc_start
wait_for 20 grep -q "$ID2: could not record the deferral" "$T/svc.log"
ok $? "the second message's deferral (ok2 took it, perm refused, temp-once owed) is not recorded"
rm -f "$T/full/pad"               # room again: the next attempt takes temp-once
wait_for 20 test -e "$SPOOL/failed/$ID2.eml"
ok $? "once temp-once@ took it, the message goes to failed/ (the 550 recipient was kept)"
like "$(cat "$SPOOL/failed/$ID2.state" 2>/dev/null)" "perm@example.net" "its record names perm@"
is "$(grep -c 'ok2@example.net' "$T/peer/log")" 1 "ok2@ got it once"
svc_stop
done_testing
