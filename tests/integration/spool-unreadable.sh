# A queued message the service cannot read (chmod 000 by a careless administrator,
# an unprivileged service): it stays queued, one warning names it and why (it waited
# without a word), and once readable again it is delivered.  The service runs as
# nobody (root reads any file); skipped, counted, when not root.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
  for i in $(seq 6); do skip "not root (or no setpriv): cannot run the service as another user"; done
  done_testing; exit
fi
chmod 755 "$T"
# a copy of the program nobody can read: a clone in /root (mode 700, as CI's fresh roots have
# it) is out of nobody's reach, and then nothing here ran at all
MAILHOOK=$(mailhook_for_others "$T/inst")
PORT=$(free_port)
conf_for "$PORT"; chmod 644 "$CONF"
mkdir -m 700 "$SPOOL"; chown 65534:65534 "$SPOOL"
printf '#!/bin/sh\nexec env -u LD_LIBRARY_PATH setpriv --reuid=65534 --regid=65534 --clear-groups %s "$@"\n' "$MAILHOOK" > "$T/mh-nobody"
chmod 755 "$T/mh-nobody"
MAILHOOK=$T/mh-nobody
ids=$(enqueue 2)
first=$(printf '%s\n' "$ids" | head -1)
chmod 000 "$SPOOL/pickup/$first.eml"
peer_start "$PORT" "$T/peer"
svc_start
wait_for 15 received_at_least "$T/peer" 1; ok $? "the readable message is delivered"
wait_for 15 grep -q "pickup/$first.eml cannot be read" "$T/svc.log"
ok $? "one warning names the unreadable message"
like "$(grep "pickup/$first.eml cannot be read" "$T/svc.log")" "Permission denied.*stays queued" "and says why, and that it stays queued"
"$MAILHOOK" flush --timeout 30 >/dev/null 2>&1; "$MAILHOOK" flush --timeout 30 >/dev/null 2>&1
is "$(grep -c "pickup/$first.eml cannot be read" "$T/svc.log")" 1 "said once, not at each scan"
chmod 600 "$SPOOL/pickup/$first.eml"
"$MAILHOOK" flush --timeout 30 >/dev/null 2>&1
wait_for 20 received_at_least "$T/peer" 2; ok $? "readable again: delivered"
svc_stop; is $? 0 "SIGTERM: exit 0"
done_testing
