# What a caller wrote is shown unambiguously: intake keeps an item sendmail left out
# with its control bytes as \xNN AND its backslashes as \x5C (submit.printable, as
# mailhook-drop -l records it), and `mailhook queue`, `queue show` and `mailq` show a
# caller's raw strings (sender, recipients, names) with a backslash as \x5C, and the
# spool's escaped ones as kept.  Before, a backslash was left as it was: a "\x1b" the
# caller typed read exactly as the escaped ESC of an item holding that byte, in the
# spool, in --json and on the terminal.
. "$ROOT/tests/lib/tap.sh"
export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool"
printf 'enabled = true\nserver = 127.0.0.1\nport = 1\nfrom = pbx@example.com\n' > "$MAILHOOK_CONF"
mkdir -p "$T/bin"; ln -s "$MAILHOOK" "$T/bin/mailq"
typed='Ops\x1bName'                         # typed: a backslash, x, 1, b
esc=$'Esc\x1bName'                          # a real ESC
printf 'To: ops@example.net, %s, %s\nSubject: x\n\nbody\n' "$typed" "$esc" | "$MAILHOOK" sendmail -t 2>"$T/err"
is "$?" 0 "sendmail -t with a typed \\x1b and a real ESC in items left out: queued"
like "$(cat "$T/err")" "'Ops\\\\x5Cx1bName' is not an address" "the warning shows the typed one as \\x5C"
q=$("$MAILHOOK" queue)
like "$q" 'refused:Ops\\x5Cx1bName,Esc\\x1BName$' "queue: the typed backslash as \\x5C, the ESC as \\x1B ($q)"
id=$("$MAILHOOK" queue --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
s=$("$MAILHOOK" queue show "$id")
like "$s" 'refused: +Ops\\x5Cx1bName: ' "queue show: \\x5C"
like "$s" 'refused: +Esc\\x1BName: ' "and the ESC \\x1B"
j=$("$MAILHOOK" queue --json | python3 -c 'import json,sys; print("|".join(r["rcpt"] for r in json.load(sys.stdin)[0]["refused"]))')
is "$j" 'Ops\x5Cx1bName|Esc\x1BName' "--json: the items as the spool keeps them, told apart"
m=$("$T/bin/mailq")
like "$m" 'refused: Ops\\x5Cx1bName and 1 more' "mailq: \\x5C ($m)"

# a file waiting in maildrop/, as an unprivileged sendmail leaves it (its -l item is
# the escaped text, the record escaping its backslashes once more: runtime/drop.c)
mkdir -m 1730 "$T/spool/maildrop"
printf 'MAILHOOK-DROP 1\nuid %s\ngid %s\npid 1\ntime 1\nto ops@example.net\nleftout A\\x5Cx5Cx07B\twhy\n\nSubject: x\n\ny\n' \
  "$(id -u)" "$(id -g)" > "$T/spool/maildrop/0000000000000001.00000001"
like "$("$MAILHOOK" queue)" 'maildrop .*refused:A\\x5Cx07B' "queue: the maildrop file's item, \\x5C"
like "$("$T/bin/mailq")" 'refused: A\\x5Cx07B' "mailq too"
like "$("$MAILHOOK" queue show 0000000000000001.00000001)" 'refused: +A\\x5Cx07B: ' "queue show of it too"
done_testing
