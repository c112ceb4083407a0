# `mailhook repl` fed from a pipe or a file: no prompts, lines run in order,
# results printed, errors reported and skipped, exit status 1 after an error.
. "$ROOT/tests/lib/tap.sh"
export MAILHOOK_HISTORY="$T/history"

repl() { timeout 20 "$MAILHOOK" repl "$@"; }

out=$(printf '1 + 1\n"a" .. "b"\n{b = 2, a = {1, 2}}\nnil\n1, "x"\n' | repl 2>"$T/err"); rc=$?
is "$out" '2
"ab"
{ a = { 1, 2 }, b = 2 }
nil
1	"x"' "expressions print their values, tables pretty-printed, no prompt"
is "$rc" 0 "exit status 0 when every line ran"
is "$(cat "$T/err")" "" "nothing on stderr"
ok "$([ ! -e "$T/history" ]; echo $?)" "no history file written from a pipe"

out=$(printf 'x = 41\nx = x + 1\nx\nlocal y = 5\ny\n' | repl 2>&1)
is "$out" "42
nil" "statements print nothing; globals persist between lines, locals do not"

out=$(printf 'function double(n)\n  local r = n * 2\n  return r\nend\ndouble(21)\nt = {\n  k = "v",\n}\nt.k\n' | repl 2>&1)
is "$out" '42
"v"' "a multi-line function definition and table constructor"

out=$(printf '{\n  b = 1,\n  a = 2,\n}\n' | repl 2>&1)
is "$out" "{ a = 2, b = 1 }" "a table expression over several lines prints its value"

out=$(printf 'for i = 1, 3 do\nprint("line", i)\nend\n' | repl 2>&1)
is "$out" "line	1
line	2
line	3" "a multi-line loop runs once complete"

out=$(printf 't0 = mh.monotonic()\nmh.sleep(0.3)\nmh.monotonic() - t0 >= 0.29\n"after"\n' | repl 2>&1)
is "$out" 'true
"after"' "mh.sleep at the prompt waits, and the next line runs after it"

out=$(printf 'addrs = mh.resolve("localhost")\n#addrs >= 1\n' | repl 2>&1)
is "$out" "true" "mh.resolve at the prompt (a real getaddrinfo)"

out=$(printf 'n = 0\nh = mh.every(0.05, function() n = n + 1 end)\nmh.sleep(0.3)\nh:stop()\nn >= 3\n' | repl 2>&1)
is "$out" "true" "an mh.every timer started at the prompt fires between and during lines"

printf '1\nerror("boom")\n"after error"\nnil + 1\n"after arith"\nx = = 2\n"after syntax"\n' | repl >"$T/out" 2>"$T/err"; rc=$?
is "$(cat "$T/out")" '1
"after error"
"after arith"
"after syntax"' "after each error the REPL goes on with the next line"
like "$(cat "$T/err")" "stdin:1: boom" "a raised error is printed with its message"
like "$(cat "$T/err")" "stack traceback:" "and a traceback"
unlike "$(cat "$T/err")" "xpcall|repl.lua" "the traceback stops at the line's own frames"
like "$(cat "$T/err")" "attempt to perform arithmetic on a nil value" "a runtime error is printed"
like "$(cat "$T/err")" "stdin:1: unexpected symbol near '='" "a syntax error is printed"
is "$rc" 1 "exit status 1 when a line failed"

printf 'function f()\n  return 1\n' | repl >"$T/out" 2>"$T/err"; rc=$?
like "$(cat "$T/err")" "'end' expected" "input ending inside an unfinished chunk is an error"
is "$rc" 1 "and exits 1"

out=$(printf '"no newline at the end"' | repl 2>&1)
is "$out" '"no newline at the end"' "a partial last line still runs"

out=$(printf '1\r\n2\r\n' | repl 2>&1)
is "$out" "1
2" "CRLF line endings"

printf 'os.exit(7)\n' | repl >/dev/null 2>&1; rc=$?
is "$rc" 7 "os.exit at the prompt sets the exit status"

# a long input: more than one read() of stdin, lines in order
seq 1 20000 | sed 's/^/return /' > "$T/many.lua"
out=$(repl < "$T/many.lua" | tail -1)
is "$out" "20000" "a 20000-line file through stdin (several reads), in order"

out=$(repl < /dev/null 2>&1); rc=$?
is "$out$rc" "0" "empty input exits 0 silently"

out=$(printf 'mh.version\ntype(help)\ntype(test), type(update), type(enqueue), type(queue)\n' | repl 2>&1)
is "$out" "\"$("$MAILHOOK" version | cut -d' ' -f2)\"
\"function\"
\"function\"	\"function\"	\"function\"	\"function\"" "mh and the admin functions are globals"

out=$(printf 'help()\n' | repl 2>&1)
for f in 'help\(\)' 'test\(\)' 'update\{' 'enqueue\{' 'queue\(\)' 'settings\(\)'; do
  like "$out" "$f" "help() lists $f"
done

out=$(printf 'update(5)\n"go on"\n' | repl 2>&1)
like "$out" "update: expected a table" "update with a wrong argument says what it expects"
like "$out" '"go on"' "and the REPL goes on"

# Admin functions whose module is not in this build say so, and the REPL goes on.
for spec in "test():smtp" "update{port = 25}:settings" "settings():settings" "queue():queue"; do
  call=${spec%:*}; mod=${spec##*:}
  [ -f "$ROOT/lua/mailhook/$mod.lua" ] && continue
  out=$(printf '%s\n"next"\n' "$call" | repl 2>&1)
  like "$out" "not available in this build \\(no mailhook\.$mod\\)" "$call without mailhook.$mod: not available in this build"
  like "$out" '"next"' "and the REPL goes on"
done
if ! "$MAILHOOK" -e 'local mh = require "mailhook"; os.exit(type(mh.enqueue) == "function" and 0 or 1)' 2>/dev/null; then
  out=$(printf 'enqueue{to = "a@b.example", subject = "s", text = "t"}\n' | repl 2>&1)
  like "$out" "not available in this build" "enqueue without mh.enqueue: not available in this build"
fi

out=$("$MAILHOOK" repl extra 2>&1); rc=$?
is "$rc" 2 "an unexpected argument exits 2"
like "$out" "unexpected argument 'extra'" "naming it"

done_testing
