#!/bin/bash
# lualib-exit.sh — os.exit from a Lua callback run by mh.step, in a stock lua5.4,
# while enqueues are in flight: each one asked for is in pickup/ afterwards, nothing is
# left in tmp/, the process exits 0 (no crash, no hang) and, under `make asan`, with no
# sanitizer report (leaks included: lua5.4 closes its state for os.exit(0, true)).
# It crashed in about one run in four (a pool thread wrote a message whose object
# lua_close had already freed) and lost the enqueues not yet started (cancelled).
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/lualib.sh"

[ -f "$LUAMOD" ] || { echo "Bail out! $LUAMOD is not built (make)"; exit 1; }
write_conf "$T/mailhook.conf" enabled=true server=127.0.0.1 from=pbx@example.com
export MAILHOOK_CONF=$T/mailhook.conf
N=12
for mode in close keep; do
  for run in 1 2 3 4 5; do
    sp=$T/spool-$mode-$run
    # one pool thread: most enqueues are still queued when the exit comes (they were
    # cancelled); four: several are being written (their message object was freed)
    threads=1; [ $run -gt 2 ] && threads=4
    UV_THREADPOOL_SIZE=$threads MAILHOOK_SPOOL=$sp lua_with timeout 60 "$LUA54" "$ROOT/tests/lualib/exit-in-callback.lua" $N $mode \
      >"$T/out" 2>"$T/err"
    rc=$?
    is "$rc" 0 "os.exit(0, $mode) in a step callback, run $run: exits 0"
    is "$(ls -A "$sp/pickup" 2>/dev/null | wc -l)" "$N" "  every enqueue asked for is in pickup/"
    is "$(ls -A "$sp/tmp" 2>/dev/null | wc -l)" 0 "  nothing is left in tmp/"
    grep -q 'ERROR: \|runtime error:' "$T/err"; ok $((! $?)) "  no sanitizer report"
    [ "$rc" = 0 ] || sed 's/^/#   stderr: /' "$T/err" | head -20
  done
done
n=$(cat "$T"/spool-close-*/pickup/*.eml | grep -c '^Subject: in flight ')
is "$n" $((N * 5)) "the messages are whole (a Subject each)"
done_testing
