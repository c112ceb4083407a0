# The REPL fed from a pipe: start-up with empty input next to `mailhook -e ''`,
# and the cost of one line (compile, its own task, wait, print), from 5000 lines.
. "$(dirname "$0")/lib.sh"
lines=$(mktemp); trap 'rm -f "$lines"' EXIT
seq 1 5000 | sed 's/^/x = /' > "$lines"
read -r empty plain < <(alternate 50 sh -c "'$MAILHOOK' repl </dev/null" -- sh -c "'$MAILHOOK' -e '' </dev/null")
read -r many _ < <(alternate 10 sh -c "'$MAILHOOK' repl <'$lines'" -- true)
echo "repl     start-up (empty pipe) ${empty} ms   mailhook -e '' ${plain} ms"
echo "repl     5000 piped lines ${many} ms   per line $(/usr/bin/python3 -c "print('%.1f' % (($many - $empty) * 1000 / 5000))") us (compile + own task + wait)"
