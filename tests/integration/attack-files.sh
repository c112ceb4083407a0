# Files mailhook writes outside the spool, with something hostile already at
# their path (issue 10's catalogue, continued):
#   - msg:save(path) truncated and wrote through a symbolic link (one planted in
#     /tmp by another user pointing at root's file) and blocked on a FIFO;
#   - the REPL's history file: a link made root's REPL append to (and truncate)
#     the file it pointed at, a FIFO hung the REPL at start, and a HOME that is
#     another user's folder (sudo keeping the caller's HOME) was written by root.
# Every command runs under `timeout`: a hang is a failed test, never a stuck suite.
. "$ROOT/tests/lib/tap.sh"

LIMIT=10
run() { OUT=$(timeout -k 2 "$LIMIT" "$@" 2>&1); RC=$?; }
hung() { [ "$RC" = 124 ] || [ "$RC" = 137 ]; }

echo "precious" > "$T/victim"
ln -s "$T/victim" "$T/link.eml"
mkfifo "$T/fifo.eml"
SAVE='local m = assert(require("mailhook").message{ from = "a@example.com", to = "x@example.net",
        subject = "s", text = "t" })
      local ok, err = m:save(arg[1]); io.write(tostring(ok), " ", tostring(err))'
run "$MAILHOOK" -e "$SAVE" "$T/link.eml"
like "$OUT" "^nil .*link.eml: a symbolic link, not a regular file" "msg:save through a planted symbolic link: refused"
is "$(cat "$T/victim")" "precious" "the file it points at is untouched"
run "$MAILHOOK" -e "$SAVE" "$T/fifo.eml"
! hung; ok $? "msg:save to a FIFO returns at once"
like "$OUT" "^nil .*fifo.eml: a FIFO, not a regular file" "refused, naming it"
run "$MAILHOOK" -e "$SAVE" "$T/new.eml"
like "$OUT" "^true" "a new file is saved"
grep -q "^Subject: s" "$T/new.eml"; ok $? "holding the message"

# the REPL keeps history only on a terminal: script(1) gives it one
if ! command -v script >/dev/null; then
  for i in 1 2 3 4 5 6 7; do skip "no script(1) for a terminal"; done
  done_testing; exit
fi
repl() {   # repl HISTORY_PATH: one line typed in an interactive REPL
  OUT=$(printf '6*7\nos.exit(0)\n' | MAILHOOK_HISTORY="$1" timeout -k 2 "$LIMIT" \
        script -qc "'$MAILHOOK' repl" /dev/null 2>&1 | tr -d '\r'); RC=$?
}
ln -s "$T/victim" "$T/hist-link"
repl "$T/hist-link"
like "$OUT" "history file $T/hist-link: not a regular file \(history not kept\)" \
  "a history file that is a symbolic link: not kept, said so"
is "$(cat "$T/victim")" "precious" "the file it points at is untouched (no line appended, not truncated)"
like "$OUT" "42" "the REPL works without it"
mkfifo "$T/hist-fifo"
repl "$T/hist-fifo"
like "$OUT" "42" "a history file that is a FIFO: the REPL does not hang"
repl "$T/hist"
grep -qx '6\*7' "$T/hist"; ok $? "a history file of our own is kept"
if [ "$(id -u)" = 0 ]; then
  mkdir "$T/bob"; chown 65534 "$T/bob"        # sudo keeping bob's HOME
  repl "$T/bob/.mailhook_history"
  like "$OUT" "its folder belongs to another user \(history not kept\)" "root's history in another user's folder: not kept"
  [ ! -e "$T/bob/.mailhook_history" ]; ok $? "nothing written there"
else
  skip "not root"; skip "not root"
fi

done_testing
