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
done_testing
