# `mailhook repl` on a real pseudo-terminal (tmux on a private socket): prompt,
# results, continuation prompt, waiting lines, Ctrl-C on a busy loop and on a
# wait, Ctrl-C at the prompt, timers firing while the prompt waits, history
# across sessions, Ctrl-D.  Every step polls the screen; no blind sleeps.
. "$ROOT/tests/lib/tap.sh"

if ! command -v tmux >/dev/null; then
  echo "1..0 # SKIP tmux is not installed (scripts/deps installs it)"; exit 0
fi
TM="tmux -L mhtest-$$ -f /dev/null"
on_exit "$TM kill-server"
HIST="$T/history"
LIMIT=${REPL_PTY_LIMIT:-10}   # seconds per step (ASan builds are slower)

# start NAME: a REPL in a 120x40 terminal; its exit status is shown after it.
start() {
  $TM new-session -d -s "$1" -x 120 -y 40 \
    "env MAILHOOK_HISTORY='$HIST' HOME='$T' MAILHOOK_LOG_LEVEL=warn '$MAILHOOK' repl; echo EXITED:\$?; sleep 600"
  S=$1
}
screen() { $TM capture-pane -p -t "$S" 2>/dev/null; }
last() { screen | sed '/^$/d' | tail -1; }
has() { screen | grep -qF -- "$1"; }
last_is() { [ "$(last)" = "$1" ]; }
count_is_at_least() { [ "$(screen | grep -cxF -- "$1")" -ge "$2" ]; }
type_line() { $TM send-keys -t "$S" -l -- "$1"; $TM send-keys -t "$S" Enter; }
# step DESC CMD...: wait for CMD to hold, report; show the screen on failure.
step() {
  local desc=$1; shift
  if wait_for "$LIMIT" "$@"; then ok 0 "$desc"; else ok 1 "$desc"; screen | sed 's/^/#   | /'; fi
}
# running: Enter was taken (the cursor went below the last line) and no new
# prompt came: the line runs.  Ctrl-C is sent only then, once.
running() {
  local rows y
  rows=$(screen | sed -n '/./=' | tail -1)          # 1-based row of the last text
  y=$($TM display -p -t "$S" '#{cursor_y}')          # 0-based cursor row
  [ -n "$rows" ] && [ "$y" -ge "$rows" ] && [ "$(last)" != ">" ]
}

start one
step "the banner and the prompt are shown" last_is ">"
like "$(screen | head -1)" "^mailhook [0-9.]+ \(Lua 5\.4\)" "banner names the version"

type_line '1 + 2'
step "an expression prints its value" count_is_at_least "3" 1
type_line '{b = {1, 2}, a = "x"}'
step "a table is pretty-printed" has '{ a = "x", b = { 1, 2 } }'

type_line 'function triple(x)'
step "an incomplete chunk gets the continuation prompt" last_is ">>"
type_line '  return x * 3'
step "still incomplete" last_is ">>"
type_line 'end'
step "the chunk completes: back to the prompt" last_is ">"
type_line 'triple(14)'
step "the function defined over three lines works" count_is_at_least "42" 1

$TM send-keys -t "$S" -l 'tri'; $TM send-keys -t "$S" Tab
step "Tab completes a global defined at the prompt" last_is "> triple"
$TM send-keys -t "$S" -l '(5) + mh.sl'; $TM send-keys -t "$S" Tab
step "Tab completes a field of mh" last_is "> triple(5) + mh.sleep"
$TM send-keys -t "$S" C-u
step "Ctrl-U clears it" last_is ">"
type_line 'package.loaded["mailhook.smtp"] == nil and "smtp not loaded"'
step "(mh.smtp is not loaded yet)" has '"smtp not loaded"'
$TM send-keys -t "$S" -l 'mh.sm'; $TM send-keys -t "$S" Tab
step "Tab completes a lazily loaded module before it was touched" last_is "> mh.smtp"
$TM send-keys -t "$S" C-u
step "Ctrl-U clears it" last_is ">"

type_line 't0 = mh.monotonic()'
type_line 'mh.sleep(0.5) or "slept"'
step "mh.sleep(0.5) at the prompt returns, with its result" has '"slept"'
step "then the prompt is back" last_is ">"
type_line 'mh.monotonic() - t0 >= 0.5'
step "the prompt came back only after the sleep" count_is_at_least "true" 1

type_line 'while true do end'
step "a busy loop runs (no prompt)" running
$TM send-keys -t "$S" C-c
step "one Ctrl-C interrupts the busy loop" has "interrupted"
step "and the prompt is back" last_is ">"
type_line '"alive after loop"'
step "the REPL is usable after it" has '"alive after loop"'

type_line 'n = 0; while true do pcall(function() n = n + 1 end) end'
step "a busy loop that catches errors runs" running
$TM send-keys -t "$S" C-c
step "one Ctrl-C interrupts it too (the hook stays armed past its pcall)" count_is_at_least "interrupted" 2
step "and the prompt is back" last_is ">"
type_line 'n > 0'
step "it had run" count_is_at_least "true" 2

type_line 'mh.sleep(100)'
step "mh.sleep(100) waits (no prompt)" running
$TM send-keys -t "$S" C-c
step "Ctrl-C interrupts the waiting line" count_is_at_least "interrupted" 3
step "and the prompt is back" last_is ">"
type_line '"alive after sleep"'
step "the REPL is usable after it" has '"alive after sleep"'

$TM send-keys -t "$S" -l 'garbage typed'
step "text typed at the prompt" last_is "> garbage typed"
$TM send-keys -t "$S" C-c
step "Ctrl-C at the prompt clears the line and shows a fresh prompt" last_is ">"
type_line '"clean"'
step "the next line does not contain the cleared text" has '"clean"'
unlike "$(screen)" "garbage typed\"clean\"|garbage typed.*error" "the cleared text was not run"

type_line 'function never()'
step "a chunk is being continued" last_is ">>"
$TM send-keys -t "$S" C-c
step "Ctrl-C at the continuation prompt goes back to the first prompt" last_is ">"
type_line 'type(never)'
step "the unfinished chunk was dropped" has '"nil"'

type_line 'h = mh.every(0.05, function() print("tick") end)'
step "mh.every keeps firing while the prompt waits (printed above it)" count_is_at_least "tick" 3
step "with the prompt redrawn below" last_is ">"
type_line 'h:stop()'

type_line 'pw = "password123"'
type_line '"last line"'
step "the last line ran" has '"last line"'

$TM send-keys -t "$S" C-d
step "Ctrl-D exits with status 0" has "EXITED:0"

ok "$(grep -qxF '"last line"' "$HIST"; echo $?)" "the history file holds the lines"
ok "$(grep -q password123 "$HIST"; [ $? = 1 ]; echo $?)" "a line mentioning a password is not kept in the history"
is "$(stat -c %a "$HIST")" 600 "the history file is private (0600)"
like "$(grep -c 'function triple(x) return x \* 3 end' "$HIST")" "^1$" "a multi-line chunk is one history entry"

start two
step "a second session starts" last_is ">"
$TM send-keys -t "$S" Up
step "up-arrow recalls the last line of the previous session" last_is '> "last line"'
$TM send-keys -t "$S" Up
step "up again: the line before it (the password line was skipped)" last_is '> h:stop()'

$TM send-keys -t "$S" C-u
type_line 'triple = nil'
$TM send-keys -t "$S" C-d
step "Ctrl-D exits the second session" has "EXITED:0"

done_testing
