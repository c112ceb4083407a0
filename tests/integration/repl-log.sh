# Log lines of background tasks while `mailhook repl` waits at a prompt, on a
# real pseudo-terminal (tmux on a private socket, as repl-pty.sh): the line
# being typed is taken off the screen, the log line is written on a line of
# its own, and the prompt comes back below it with the partial input and the
# cursor where they were (runtime/l_repl.c log_before/log_after, set through
# mh_log_set_hooks).  From a pipe, log lines are written as they always were.
# The background task logs when a file appears: no blind sleeps.
. "$ROOT/tests/lib/tap.sh"

# ---------------------------------------------------------------- pipe
out=$(printf 'mh.spawn(function() mh.log.warn("from a task") end)\nmh.sleep(0.05)\n"after"\n' |
      MAILHOOK_HISTORY= timeout 20 "$MAILHOOK" repl 2>"$T/err")
like "$out" '^mailhook\.Task.*
"after"$' "piped: stdout holds the results only"
like "$(cat "$T/err")" '^[0-9T:.+-]+ warn  from a task$' "piped: the log line on stderr, as one plain line"
is "$(tr -d '\r\033' < "$T/err" | cmp -s - "$T/err"; echo $?)" 0 "piped: no terminal control bytes on stderr"
is "$(printf '%s' "$out" | tr -d '\r\033' | cmp -s - <(printf '%s' "$out"); echo $?)" 0 \
   "piped: none on stdout either"

# ---------------------------------------------------------------- terminal
if ! command -v tmux >/dev/null; then
  echo "# SKIP terminal part: tmux is not installed (scripts/deps installs it)"; done_testing; exit
fi
TM="tmux -L mhlog-$$ -f /dev/null"
on_exit "$TM kill-server"
LIMIT=${REPL_PTY_LIMIT:-10}   # seconds per step (ASan builds are slower)
GO="$T/go"                    # the background task logs once this file exists

$TM new-session -d -s log -x 120 -y 40 \
  "env MAILHOOK_HISTORY= HOME='$T' MAILHOOK_LOG_LEVEL=warn '$MAILHOOK' repl; echo EXITED:\$?; sleep 600"
S=log
screen() { $TM capture-pane -p -t "$S" 2>/dev/null; }
last() { screen | sed '/^$/d' | tail -1; }
has() { screen | grep -qF -- "$1"; }
last_is() { [ "$(last)" = "$1" ]; }
count_is() { [ "$(screen | grep -cxF -- "$1")" = "$2" ]; }
cursor() { $TM display -p -t "$S" '#{cursor_x},#{cursor_y}'; }
type_line() { $TM send-keys -t "$S" -l -- "$1"; $TM send-keys -t "$S" Enter; }
step() {
  local desc=$1; shift
  if wait_for "$LIMIT" "$@"; then ok 0 "$desc"; else ok 1 "$desc"; screen | sed 's/^/#   | /'; fi
}
# a task that logs two lines each time $GO appears (and removes it)
type_line "mh.spawn(function() for round = 1, 2 do
  while not io.open('$GO') do mh.sleep(0.02) end
  os.remove('$GO')
  mh.log.warn('hello from task ' .. round) mh.log.warn('second line ' .. round)
end end) and 'spawned'"
step "a background task waits for its signal" has '"spawned"'
step "the prompt is back" last_is ">"

$TM send-keys -t "$S" -l 'v = "ab"'
step "a partial line is typed" last_is '> v = "ab"'
$TM send-keys -t "$S" Left Left
step "the cursor moved back two places" eval '[ "$(cursor | cut -d, -f1)" = 8 ]'
touch "$GO"
step "the task's log lines appear" has "second line 1"
step "the prompt and the partial line are redrawn last" last_is '> v = "ab"'
scr=$(screen | sed '/^$/d')
like "$(printf '%s\n' "$scr" | tail -3 | head -1)" '^[0-9T:.+-]+ warn  hello from task 1$' \
   "the first log line is a line of its own"
like "$(printf '%s\n' "$scr" | tail -2 | head -1)" '^[0-9T:.+-]+ warn  second line 1$' \
   "so is the second, right below it"
is "$(printf '%s\n' "$scr" | grep -c 'v = "ab"')" 1 "the partial line is shown once (the old copy was wiped)"
# the cursor: column 8 (between a and b) of the last row with text
at_mark() { [ "$(cursor)" = "8,$(( $(screen | sed -n '/./=' | tail -1) - 1 ))" ]; }
step "the cursor is back in the redrawn line, where it was" at_mark
$TM send-keys -t "$S" -l 'X'
step "typing goes on at the cursor" last_is '> v = "aXb"'
$TM send-keys -t "$S" Enter
type_line 'v'
step "Enter ran the line as typed" count_is '"aXb"' 1

type_line 'function f()'
step "a continuation prompt" last_is ">>"
$TM send-keys -t "$S" -l 'return 4'
step "a partial line at it" last_is '>> return 4'
touch "$GO"
step "log lines at the continuation prompt" has "second line 2"
step "the continuation prompt is redrawn with its text" last_is '>> return 4'
like "$(screen | sed '/^$/d' | tail -2 | head -1)" 'warn  second line 2$' "below the log lines"
$TM send-keys -t "$S" -l '2'
$TM send-keys -t "$S" Enter
type_line 'end'
type_line 'f()'
step "the chunk continued over the log lines runs as typed" count_is "42" 1

$TM send-keys -t "$S" C-d
step "Ctrl-D exits with status 0" has "EXITED:0"
unlike "$(screen)" 'warn  .*>|> .*warn ' "no log line shares a row with a prompt"

done_testing
