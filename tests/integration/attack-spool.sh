# The pickup folder attacked through the real commands and a real server
# (aiosmtpd), once issue 10's fixes were in: what still got through.
#   - a hard link dropped into pickup/ (O_NOFOLLOW does not see those): to a
#     file of someone else's, it was adopted and MAILED OUT; to a queued
#     message, that message went twice;
#   - a drop-in written in place (no rename): adopted half-written, its end lost;
#   - `mailhook flush` with no service running: a drop-in was not counted, so
#     flush said "0 left" and never delivered it;
#   - a drop-in whose name holds a newline and an escape sequence: a forged
#     line in the log, and the escape sent raw to the terminal by `mailhook queue`;
#   - `mailhook queue rm` of the message being sent: an error "could not be
#     removed (it may be sent again)", false: it is gone.
# Every command runs under `timeout`: a hang is a failed test, never a stuck suite.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

LIMIT=15
run() { OUT=$(timeout -k 2 "$LIMIT" "$@" 2>&1); RC=$?; }
got_subject() { grep -l "^Subject: $1" "$T/peer/"*.eml 2>/dev/null | wc -l; }

PORT=$(free_port)
conf_for "$PORT"
peer_start "$PORT" "$T/peer"
mkdir -p "$SPOOL"
enqueue 1 >/dev/null   # creates the spool
run "$MAILHOOK" flush
is "$(received_count "$T/peer")" 1 "the spool works: one message delivered"

# --- hard links ---------------------------------------------------------------------------
printf 'From: app@example.com\r\nTo: thief@example.net\r\nSubject: stolen\r\n\r\nsomeone else'"'"'s secret\r\n' \
  > "$T/secret"
ln "$T/secret" "$SPOOL/pickup/stolen.eml"
id=$(enqueue 1)
ln "$SPOOL/pickup/$id.eml" "$SPOOL/pickup/twice.eml"
svc_start
wait_for "$LIMIT" test -e "$SPOOL/corrupt/twice.eml"; ok $? "a hard link to a queued message: moved to corrupt/"
wait_for "$LIMIT" pickup_empty; ok $? "the queue drains"
is "$(got_subject stolen)" 0 "a hard link to a file outside the spool is never mailed out"
[ -e "$SPOOL/corrupt/stolen.eml" ]; ok $? "it is in corrupt/, for a human"
is "$(got_subject "msg 2")" 1 "the message a link pointed at went once, not twice"
like "$(grep 'stolen.eml' "$T/svc.log")" "has 2 names \(a hard link" "the log says why"

# --- a drop-in written in place ---------------------------------------------------------------
"$PY" - "$SPOOL/pickup/inplace.eml" "$T/go" <<'EOF' &
import os, sys, time
with open(sys.argv[1], "w") as f:
    f.write("From: app@example.com\r\nTo: ok@example.net\r\nSubject: inplace\r\n\r\npart one\r\n")
    f.flush()
    for _ in range(600):                      # until the test says go (30 s at most)
        if os.path.exists(sys.argv[2]): break
        time.sleep(0.05)
    f.write("part two\r\n")
EOF
WRITER=$!
on_exit "kill $WRITER"
wait_for "$LIMIT" grep -q "inplace.eml is still being written" "$T/svc.log"
ok $? "a drop-in still open for writing: not adopted, said so"
is "$(got_subject inplace)" 0 "nothing of it was sent yet"
touch "$T/go"
wait "$WRITER"
sent_once() { [ "$(got_subject "$1")" = 1 ]; }
wait_for "$LIMIT" sent_once inplace; ok $? "once closed, it is adopted and sent"
f=$(grep -l "^Subject: inplace" "$T/peer/"*.eml 2>/dev/null | head -1)
grep -q "part two" "$f" 2>/dev/null; ok $? "whole: with the part written last"
is "$(grep -c 'inplace.eml is still being written' "$T/svc.log")" 1 "said once"
svc_stop

# --- flush with no service: drop-ins count ------------------------------------------------------
printf 'From: app@example.com\r\nTo: ok@example.net\r\nSubject: dropped-for-flush\r\n\r\nhi\r\n' > "$T/d.tmp"
mv "$T/d.tmp" "$SPOOL/pickup/app-1.eml"
run "$MAILHOOK" flush
is "$RC" 0 "flush with only a drop-in waiting and no service: exit 0"
like "$OUT" "1 delivered" "it delivered the drop-in"
is "$(got_subject dropped-for-flush)" 1 "the server got it"
[ ! -e "$SPOOL/pickup/app-1.eml" ]; ok $? "pickup/ no longer holds it"

# --- an endless stdin stops at the message limit -------------------------------------------------
# (mailhook sendmail's stream, limits.message = 1 GiB; here the same stream with a small max)
n0=$(pickup_count)
run sh -c "{ printf 'To: x@example.net\n\n'; yes; } | head -c 300000 | '$MAILHOOK' -e '
  local st = require(\"mailhook.core\").spool.stream(0, { dot = false, max = 65536 })
  assert(st:head())
  local sp = assert(require(\"mailhook.spool\").open(os.getenv(\"MAILHOOK_SPOOL\")))
  local id, err, info = sp:enqueue(st, { from = \"a@example.com\", to = { \"x@example.net\" } })
  io.write(tostring(id), \" | \", tostring(err), \" | \", tostring(info and info.code))'"
like "$OUT" "^nil \| the message: over the 64 KiB limit \(nothing queued\) \| ELIMIT" \
  "a stream past its limit: refused, naming the limit"
is "$(pickup_count)" "$n0" "nothing queued"
is "$(ls -A "$SPOOL/tmp" | wc -l)" 0 "nothing left in tmp/"
run "$MAILHOOK" -e 'io.write(require("mailhook.core").fsutil.limits.message)'
is "$OUT" 1073741824 "limits.message is 1 GiB"

# --- names that would forge log lines or drive the terminal --------------------------------------
NAME=$'x\n2026-01-01T00:00:00.000+00:00 info  forged: all delivered\e[2J.eml'
printf 'no header\033[31m here\n' > "$SPOOL/pickup/$NAME"
run "$MAILHOOK" queue
unlike "$OUT" $'\e' "\`mailhook queue\`: no escape byte reaches the terminal"
like "$OUT" 'x\\x0a2026-01-01T00:00:00.000\+00:00 info  forged: all delivered\\x1b\[2J\.eml' \
  "the name is shown with its control bytes as \\xNN, on one line"
run "$MAILHOOK" flush
unlike "$OUT" $'\e' "the log of the move to corrupt/: no escape byte"
is "$(printf '%s\n' "$OUT" | grep -c '^2026-01-01T00:00:00.000+00:00 info  forged')" 0 "and no forged log line"
like "$OUT" "moved to corrupt/x\\\\x0A2026" "the name is logged escaped"

# --- queue rm of the message being sent ----------------------------------------------------------
# (here and below a final dot waits for its reply while $T/hold exists: tests/peers/smtpd.py
# --hold-data; the test removes it once it has done what it does meanwhile)
peer_stop
touch "$T/hold"
peer_start "$PORT" "$T/slow" --hold-data "$T/hold"
svc_start
id=$(enqueue 1)
wait_for "$LIMIT" test -e "$T/slow/in-data"; ok $? "the message is in flight (its final dot waits for the reply)"
run "$MAILHOOK" queue rm "$id"
is "$RC" 0 "queue rm of the message in flight"
rm -f "$T/hold"
wait_for "$LIMIT" grep -q "$id.*status=sent" "$T/svc.log"; ok $? "the send in flight completes"
svc_stop
unlike "$(grep "$id" "$T/svc.log")" "could not be removed" "no false alarm that it may be sent again"
like "$(grep "$id" "$T/svc.log")" "removed meanwhile \(mailhook queue rm\)" "it says it was removed meanwhile"

# --- another file renamed over a loaded message's name --------------------------------------------
# Three 100 KB messages (streamed from their files): while the first one's dot waits for
# its reply, the third is loaded already; then another spool's file (a longer envelope:
# four recipients) is renamed over its name.  It was sent from the loaded offset: the
# other file's last envelope lines went out as the message's first header lines, to the
# loaded recipient only.  Now it is refused at the submit (not the file loaded) and sent
# whole, to its own recipients, once loaded again.
# loaded_by PID ID: the process PID started (a `timeout`) holds ID's file open, as a load
# with keep does (delivery.lua: picked and loaded ahead, while the server works)
loaded_by() { local p; p=$(pgrep -P "$1") && ls -l "/proc/$p/fd" 2>/dev/null | grep -q "/$2\.eml\$"; }
# big_eml NAME: a 100 KB message (streamed from its file) in $T/NAME.eml, Subject NAME
big_eml() {
  $PY -c "import sys; sys.stdout.buffer.write(b'From: a@example.com\r\nSubject: $1\r\n\r\n' +
    b''.join(b'$1 %06d ' % k + b'z' * 90 + b'\r\n' for k in range(1000)))" > "$T/$1.eml"
}
for m in A B C D; do big_eml swap-$m; done
rm -f "$T/slow/in-data"; touch "$T/hold"
ids=$(enqueue_file "$T/swap-A.eml" "$T/swap-B.eml" "$T/swap-C.eml")
c=$(printf '%s\n' "$ids" | tail -1)
d=$(MAILHOOK_SPOOL=$T/other enqueue_file "$T/swap-D.eml" -- a@example.com ok@example.net o1@example.net \
    o2@example.net o3@example.net)
MAILHOOK_LOG_LEVEL=info timeout -k 2 30 "$MAILHOOK" flush > "$T/swap.out" 2>&1 &
FL=$!
wait_for "$LIMIT" test -e "$T/slow/in-data"; ok $? "the first of three is in flight"
wait_for "$LIMIT" loaded_by "$FL" "$c"; ok $? "the third is loaded ahead"
cp "$T/other/pickup/$d.eml" "$SPOOL/pickup/.swap" && mv "$SPOOL/pickup/.swap" "$SPOOL/pickup/$c.eml"
rm -f "$T/hold"
wait "$FL"
like "$(cat "$T/swap.out")" "$c.*changed since it was loaded \([0-9]+ bytes, now [0-9]+\): not sent" \
  "the file renamed over the loaded one is not sent as it; the log says why"
is "$(grep -l '^X-Receiver:\|^X-Submitter' "$T/slow/"*.eml 2>/dev/null | wc -l)" 0 "no envelope line was sent as a header"
run "$MAILHOOK" flush
got=$(grep -l "^Subject: swap-D" "$T/slow/"*.eml 2>/dev/null)
is "$(printf '%s\n' "$got" | grep -c .)" 1 "loaded again, it is sent once"
cmp -s "$got" "$T/swap-D.eml"; ok $? "whole, byte for byte"
is "$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1].replace(".eml", ".json")))["to"]))' "$got")" 4 \
  "to its own four recipients"

# --- queue rm of a message loaded ahead, before its submit ---------------------------------------
# The third of three 100 KB messages is loaded while the first one's dot waits; removed
# then, its file is gone at its submit: it was "deferred" with an error ("could not record
# the deferral: no such message") and counted as deferred.  It is removed, as rm said.
for m in A B C; do big_eml rm-$m; done
rm -f "$T/slow/in-data"; touch "$T/hold"
ids=$(enqueue_file "$T/rm-A.eml" "$T/rm-B.eml" "$T/rm-C.eml")
c=$(printf '%s\n' "$ids" | tail -1)
MAILHOOK_LOG_LEVEL=info timeout -k 2 30 "$MAILHOOK" flush > "$T/rm.out" 2>&1 &
FL=$!
wait_for "$LIMIT" test -e "$T/slow/in-data"; ok $? "the first of three is in flight"
wait_for "$LIMIT" loaded_by "$FL" "$c"; ok $? "the third is loaded ahead"
run "$MAILHOOK" queue rm "$c"
is "$RC" 0 "queue rm of the one loaded ahead"
rm -f "$T/hold"
wait "$FL"
like "$(cat "$T/rm.out")" "$c was removed meanwhile \(mailhook queue rm\); not sent" "the log says it was removed"
unlike "$(cat "$T/rm.out")" "could not record|$c deferred" "no deferral of a removed message, no error"
like "$(cat "$T/rm.out")" "flush: 2 delivered, 0 deferred" "the flush counts no deferral"
is "$(grep -l "^Subject: rm-C" "$T/slow/"*.eml | wc -l)" 0 "it was not sent"
is "$(grep -l "^Subject: rm-B" "$T/slow/"*.eml | wc -l)" 1 "the one before it was"

done_testing
