# What a command prints and cannot write (a full disk under `> report`; here
# /dev/full, which fails every write with ENOSPC) is said on stderr, not lost
# without a word with exit 0 (`mailhook queue --json > report` left an empty
# report that read as "nothing queued").  An intake (enqueue, hook, sendmail)
# has queued its message by then: its exit status stays 0 (a caller that
# retried on 1 sent it twice) and it says the message is queued.  A reader
# that left (`mailhook queue | head -1`) is no error: nothing said.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
if [ ! -c /dev/full ]; then echo "1..0 # SKIP no /dev/full here"; exit 0; fi
conf_for "$(free_port)"
spool_make

echo "the voicemail" | "$MAILHOOK" enqueue --to b@example.com --subject vm > /dev/full 2> "$T/e1"; rc=$?
is "$rc" 0 "enqueue with its id unwritable: exit 0 (the message is queued)"
like "$(cat "$T/e1")" "cannot write standard output: .*\(what it queued stays queued\)" \
  "it says the id was not shown, and that the message is queued ($(cat "$T/e1"))"
is "$(ls "$SPOOL/pickup" | grep -c '\.eml$')" 1 "the message is in pickup/"

"$MAILHOOK" queue --json > /dev/full 2> "$T/e2"; rc=$?
is "$rc" 1 "queue --json into a full disk: exit 1"
like "$(cat "$T/e2")" "^mailhook: cannot write standard output: No space left on device" "said why ($(cat "$T/e2"))"
"$MAILHOOK" queue > /dev/full 2> "$T/e3"; rc=$?
is "$rc" 1 "queue (text) into a full disk: exit 1"
like "$(cat "$T/e3")" "cannot write standard output" "said ($(cat "$T/e3"))"

"$MAILHOOK" sendmail -bp > /dev/full 2> "$T/e5"; rc=$?
is "$rc" 1 "sendmail -bp (mailq) into a full disk: exit 1 (a listing, nothing queued)"
unlike "$(cat "$T/e5")" "stays queued" "and no word of mail queued ($(cat "$T/e5"))"

# a reader that leaves early: 300 messages make a listing longer than a pipe's buffer
"$MAILHOOK" -e '
  local sp = require("mailhook.spool").open(os.getenv("MAILHOOK_SPOOL"))
  for i = 1, 300 do
    assert(sp:enqueue("From: a@example.com\r\nTo: b@example.com\r\nSubject: " .. i .. "\r\n\r\nx\r\n",
                      { from = "a@example.com", to = { "b@example.com" } }))
  end'
"$MAILHOOK" queue 2> "$T/e4" | head -1 > /dev/null; rc=${PIPESTATUS[0]}
is "$rc" 0 "queue | head -1: exit 0"
is "$(cat "$T/e4")" "" "nothing said on stderr"
"$MAILHOOK" queue > "$T/q.txt"; rc=$?
is "$rc" 0 "queue into a file: exit 0"
is "$(grep -c 'b@example.com' "$T/q.txt")" 301 "every message listed"
done_testing
