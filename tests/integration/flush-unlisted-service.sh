# `mailhook flush` while a service holds the spool, and the flush's own listing of
# pickup/ fails (an I/O error injected with strace into the flush alone): never "0
# left" and exit 0.  faults-inject.sh covers the flush that delivers itself (the lock
# holder); here the flush only asks the service (SIGUSR1) and counts pickup/ to know
# when it is done.  Its first count failing read as an empty queue ("0 delivered, 0
# left", exit 0).
# Real server: aiosmtpd (tests/peers/smtpd.py --by-local-part: temp@ is always 450).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
strace_inject_require

delivery_peer retry_interval=1 retry_max=1
svc_start
wait_for 10 grep -q "delivering" "$T/svc.log"; ok $? "the service started"
# a message the server defers each time: it stays in pickup/ whatever the flush does
enqueue 1 app@example.com temp@example.net >/dev/null
wait_for 10 grep -q "temp@example.net" "$T/svc.log"; ok $? "the service tried it (450, deferred)"
is "$(pickup_count)" 1 "it is queued"

# flush_fault WHEN: the flush with its WHEN-th getdents64 of pickup/ failed (EIO)
flush_fault() {
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -o "$T/st" -P "$SPOOL/pickup" -e trace=getdents64 \
    -e inject="getdents64:error=EIO:when=$1" "$MAILHOOK" flush --timeout 20 >"$T/out" 2>"$T/err"
}

# its first count (before it asks the service)
flush_fault 1; rc=$?
grep 'INJECTED' "$T/st" | grep -q getdents64; ok $? "first count: the listing of pickup/ failed (EIO)"
ok $((rc == 0)) "first count: flush exits non-zero (exit $rc; it read an empty queue and exited 0)"
like "$(cat "$T/err")" "cannot list the queue: .*pickup/: Input/output error" "first count: said, with the errno"
unlike "$(cat "$T/out")" "0 left" "first count: no '0 left'"

# (a count failing while it waits for the service: tests/lua/test-delivery-spool.lua;
# here the thread pool's threads each count their own getdents64 calls for strace)
is "$(pickup_count)" 1 "the message is still queued"

# without a fault: the deferred message is left, and said so (exit 1, as before)
"$MAILHOOK" flush --timeout 20 >"$T/out" 2>"$T/err"; rc=$?
is "$rc" 1 "no fault: exit 1 (a message left)"
like "$(cat "$T/out")" "asked the service .* 1 left" "no fault: 1 left"
svc_stop
done_testing
