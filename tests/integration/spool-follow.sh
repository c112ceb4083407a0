# Spool folders removed, moved or replaced while `mailhook run` runs (an administrator's
# `rm -rf SPOOL/pickup`, `mv SPOOL SPOOL.old`, a removed lock file): the service follows
# the path (runtime/spool.c, "following the folders"): a message enqueued into the new
# folder is delivered without a restart, one log line says what happened, the new
# pickup/ is watched (runtime/l_watch.c), and a second service is still refused the spool.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

service_delivering

# --- pickup/ removed: enqueue makes a new one, the service delivers from it
rm -rf "$SPOOL/pickup"
enqueue 1 >/dev/null
wait_for 15 received_at_least "$T/peer" 2; ok $? "after pickup/ was removed, a new message is delivered"
is "$(grep -c 'pickup/ was removed or replaced' "$T/svc.log")" 1 "one log line says pickup/ was removed"
# the kernel's watch on the old folder wakes nothing: the new one is watched (a message
# is sent at once, not at the next safety-net scan)
wait_for 15 grep -q "watch $SPOOL/pickup: it was removed or replaced: the folder now there is watched" "$T/svc.log"
ok $? "the new pickup/ is watched"
enqueue 1 >/dev/null
wait_for 15 received_at_least "$T/peer" 3; ok $? "and the next one too"
is "$(grep -c 'pickup/ was removed or replaced' "$T/svc.log")" 1 "still one line"

# --- pickup/ moved aside (mv): the same
mv "$SPOOL/pickup" "$T/pickup.aside"
enqueue 1 >/dev/null
wait_for 15 received_at_least "$T/peer" 4; ok $? "after pickup/ was moved away, a new message is delivered"

# --- the lock file removed: the service locks the new one; a second service is refused
rm -f "$SPOOL/lock"
enqueue 1 >/dev/null
wait_for 15 grep -q "lock file was removed or replaced while the service runs: locked again" "$T/svc.log"
ok $? "the lock file removed: the service says it locked the new one"
wait_for 15 received_at_least "$T/peer" 5; ok $? "and keeps delivering"
out=$(MAILHOOK_LOG_LEVEL=info timeout 20 "$MAILHOOK" run 2>&1); rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ]; ok $? "a second service exits at once ($rc)"
like "$out" "lock" "saying the spool is locked"

# --- the whole spool moved away: a new one is made at the path and followed
mv "$SPOOL" "$T/spool.old"
enqueue 1 >/dev/null
wait_for 15 received_at_least "$T/peer" 6; ok $? "after the spool was moved away, a new message is delivered"
like "$(cat "$T/svc.log")" "spool folder was removed, moved or replaced" "one line says so"
# (a function: `wait_for 15 test "$(grep -c ...)" -ge 3` counted once, before the wait)
watched_again() { [ "$(grep -c "watch $SPOOL/pickup: it was removed or replaced" "$T/svc.log")" -ge 3 ]; }
wait_for 15 watched_again
ok $? "the new spool's pickup/ is watched"
out=$(MAILHOOK_LOG_LEVEL=info timeout 20 "$MAILHOOK" run 2>&1); rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ]; ok $? "the new spool is locked by the service: a second one exits ($rc)"
unlike "$(cat "$T/svc.log")" " error " "no error line"
svc_stop; is $? 0 "SIGTERM: exit 0"
is "$(received_ids "$T/peer" | sort | uniq -d | wc -l)" 0 "no message twice"
done_testing
