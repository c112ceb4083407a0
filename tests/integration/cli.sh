# The binary's own surface: scripts, -e, arg, exit codes, help, bad input.
. "$ROOT/tests/lib/tap.sh"

out=$("$MAILHOOK" -e 'print(select("#", ...), (...), arg[1], arg[2])' a b 2>&1)
is "$out" "2	a	a	b" "-e gets its arguments as ... and in arg"

printf 'print(arg[0], arg[1], ...)\nreturn 7\n' > "$T/s.lua"
out=$("$MAILHOOK" "$T/s.lua" x y); rc=$?
is "$out" "$T/s.lua	x	x	y" "a script gets arg[0], arg[1..] and ..."
is "$rc" 7 "an integer returned by the main chunk is the exit status"

"$MAILHOOK" -e 'error("boom")' 2>"$T/err"; rc=$?
is "$rc" 1 "a failing main chunk exits 1"
like "$(cat "$T/err")" "boom" "its message is printed"
like "$(cat "$T/err")" "stack traceback" "with a traceback"

printf 'x = = 1\n' > "$T/bad.lua"
out=$("$MAILHOOK" "$T/bad.lua" 2>&1); rc=$?
is "$rc" 1 "a syntax error exits 1"
like "$out" "bad.lua:1:" "and names the file and line"
is "$(printf '%s' "$out" | wc -l)" 0 "on one line"

out=$("$MAILHOOK" "$T/missing.lua" 2>&1); rc=$?
is "$rc" 1 "a missing script exits 1"
like "$out" "cannot open script .*missing.lua" "naming the script"

out=$("$MAILHOOK" frobnicate 2>&1); rc=$?
is "$rc" 2 "an unknown command exits 2"
like "$out" "unknown command 'frobnicate'" "naming it"

out=$("$MAILHOOK" --frob 2>&1); rc=$?
is "$rc" 2 "an unknown option exits 2"
like "$out" "unknown option '--frob'" "naming it"

out=$("$MAILHOOK" -c 2>&1); rc=$?
is "$rc" 2 "an option without its value exits 2"

# the usage a mistake prints names the options --help names (hook's left out --rules,
# update's --json)
out=$("$MAILHOOK" -c "$T/none.conf" -s "$T/spool" hook 2>&1); rc=$?
is "$rc" 2 "hook without EVENT: a usage error"
like "$out" "usage: mailhook hook \[--rules PATH\] EVENT" "its usage names --rules, as hook --help does"
out=$("$MAILHOOK" -c "$T/none.conf" -s "$T/spool" update 2>&1); rc=$?
is "$rc" 2 "update without KEY=VALUE: a usage error"
like "$out" "usage: mailhook update \[--json\] KEY=VALUE" "its usage names --json, as update --help does"

like "$("$MAILHOOK" version)" "^mailhook [0-9]+\.[0-9]+\.[0-9]+$" "version"
like "$("$MAILHOOK" help)" "enqueue" "help lists the commands"
# help COMMAND is its --help; anything else after help or version is a usage error (both
# took any argument and ignored it: `mailhook help run` printed the whole list)
is "$("$MAILHOOK" help run)" "$("$MAILHOOK" run --help)" "help run: run's --help"
is "$("$MAILHOOK" help update)" "$("$MAILHOOK" update --help)" "help update: update's --help"
for a in "help nosuch" "help run hook" "version extra"; do
  out=$("$MAILHOOK" $a 2>&1); rc=$?
  is "$rc" 2 "mailhook $a: a usage error"
done
like "$("$MAILHOOK" help nosuch 2>&1)" "unknown command 'nosuch'" "naming the command it does not know"
like "$("$MAILHOOK" version --help)" "usage: mailhook version" "version --help: its line"

# no help or usage line ends in a blank (repl, version and help did, in `mailhook help`: a
# command with no arguments left "  repl      " before its summary's line): the global
# help, and each command's --help and usage error (the commands come from `mailhook help`)
blanks() { printf '%s\n' "$1" | grep -n '[[:blank:]]$' | head -3 | tr '\n' '|'; }
for form in help --help -h ""; do
  out=$("$MAILHOOK" -c "$T/none.conf" -s "$T/spool" $form 2>&1 </dev/null)
  is "$(blanks "$out")" "" "mailhook ${form:-(no command)}: no line ends in a blank"
done
cmds=$("$MAILHOOK" help | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p; s/^  \([a-z][a-z-]*\)$/\1/p')
like "$(echo $cmds)" "run .*repl version help" "the command list read from mailhook help ($(echo $cmds))"
for c in $cmds; do
  for a in --help --no-such-option; do
    out=$(timeout 20 "$MAILHOOK" -c "$T/none.conf" -s "$T/spool" $c $a 2>&1 </dev/null)
    is "$(blanks "$out")" "" "mailhook $c $a: no line ends in a blank"
  done
done
for c in "queue show" "queue rm" "queue retry" "queue bogus"; do
  out=$("$MAILHOOK" -c "$T/none.conf" -s "$T/spool" $c 2>&1 </dev/null)
  is "$(blanks "$out")" "" "mailhook $c (a usage error): no line ends in a blank"
done

out=$("$MAILHOOK" -e 'local mh = require "mailhook"; mh.spawn(function() mh.sleep(0.05) print("late") end) print("main done")')
is "$out" "main done
late" "the process waits for every task before exiting"

out=$(timeout 5 "$MAILHOOK" -e 'coroutine.yield() print("resumed")' 2>&1)
is "$out" "resumed" "a plain coroutine.yield() in a task just lets others run"

out=$(timeout 5 "$MAILHOOK" -e 'local mh = require "mailhook"; mh.current_task():wait()' 2>&1); rc=$?
is "$rc" 1 "a main task that waits on nothing does not hang"
like "$out" "a task cannot wait for itself" "and says so (at once: the wait raises)"

# every command's --timeout by one rule (mailhook.args.seconds): a usage error naming it
for cmd in flush status test; do
  for bad in 0 1e999 abc; do
    out=$("$MAILHOOK" -c "$T/none.conf" -s "$T/spool" "$cmd" --timeout "$bad" 2>&1); rc=$?
    is "$rc" 2 "$cmd --timeout '$bad': a usage error"
    like "$out" "mailhook $cmd: --timeout needs a number of seconds" "naming the option"
  done
done

# Many arguments: each took a Lua stack slot beyond the 20 Lua guarantees (30
# arguments crashed every command; mh.spawn with 200 hung)
out=$(timeout 20 "$MAILHOOK" -e 'print(select("#", ...))' $(seq 30000) 2>&1); rc=$?
is "$rc:$out" "0:30000" "-e with 30,000 arguments gets them all"
out=$(timeout 20 "$MAILHOOK" "$T/s.lua" $(seq 40) 2>&1); rc=$?
like "$rc:$out" "^7:" "a script with 40 arguments runs"
rcpts=$(for i in $(seq 40); do printf 'r%d@example.net ' "$i"; done)
out=$(printf 'Subject: many\n\nbody\n' | MAILHOOK_SPOOL="$T/spool" MAILHOOK_CONF="$T/many.conf" \
      timeout 20 sh -c '"$0" update enabled=true server=127.0.0.1 from=app@example.com >/dev/null &&
                        "$0" sendmail "$@"' "$MAILHOOK" $rcpts 2>&1); rc=$?
is "$rc" 0 "sendmail with 40 recipient arguments queues the message ($out)"
is "$(grep -c '^X-Receiver: r' "$T"/spool/pickup/*.eml 2>/dev/null)" 40 "for all 40 recipients"
out=$(timeout 20 "$MAILHOOK" -e 'local t = {} for i = 1, 200 do t[i] = i end
  require("mailhook").spawn(function(...) print(select("#", ...)) end, table.unpack(t))' 2>&1); rc=$?
is "$rc:$out" "0:200" "mh.spawn with 200 arguments passes them all and ends"

done_testing
