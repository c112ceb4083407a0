# What local users write (a queued message's sender, recipients, Subject, body, a
# file of maildrop/, a process's name) reaches the administrator's terminal by one
# rule (lua/mailhook/display.lua, runtime/text.c mh_text_visible): a control byte,
# a C1 control and a byte that is not UTF-8 as \xNN, a direction override or
# isolate and U+2028/9 as \u202e.  Before, `mailhook queue` escaped the controls
# only (a Subject "<U+202E>txt.exe" read "exe.txt", a To holding U+2028 forged a
# line, a Subject of bytes no UTF-8 went out raw), mailq (sendmail -bp) left the
# C1 controls raw too (a From holding U+009B "2J" cleared the screen), and
# `mailhook status` cut a flush holder's name inside a character.  --json gives
# the data itself, these characters as \u escapes (valid JSON, read back the same).
. "$ROOT/tests/lib/tap.sh"
export MAILHOOK_CONF="$T/mailhook.conf" MAILHOOK_SPOOL="$T/spool"
printf 'enabled = true\nserver = 127.0.0.1\nport = 1\nfrom = pbx@example.com\n' > "$MAILHOOK_CONF"
mkdir -p "$T/bin"; ln -s "$MAILHOOK" "$T/bin/mailq"
# bytes FILE PYEXPR: evaluate PYEXPR with b = FILE's bytes, print the result
bytes() { /usr/bin/python3 -c 'import sys; b = open(sys.argv[1], "rb").read(); print(eval(sys.argv[2]))' "$1" "$2"; }
# the raw characters no display may write: C1 controls (UTF-8 C2 80-9F), the
# direction marks, overrides, isolates, U+2028/9, and bytes that are not UTF-8
RAW='sum(b.count(bytes([0xc2, c])) for c in range(0x80, 0xa0)) + sum(b.count(("%c" % c).encode()) for c in [0x61c, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069]) + len(b) - len(b.decode("utf-8", "ignore").encode())'

from=$(printf 'a\302\2332J@example.com')              # U+009B: a CSI to xterm, "ESC [ 2J"
to=$(printf 'ops@example.net\342\200\250forged')       # U+2028: a line separator
printf 'Subject: \342\200\256txt.exe \377\376 \342\201\246iso\n\nbody \342\200\256x \377\tend\n' \
  | "$MAILHOOK" sendmail -f "$from" "$to"
is "$?" 0 "sendmail queues a message with a bidi override, a C1 CSI, U+2028 and bytes no UTF-8"
id=$(ls "$T/spool/pickup" | sed -n 's/\.eml$//p')

"$MAILHOOK" queue > "$T/list"
is "$(bytes "$T/list" "$RAW")" 0 "queue: no raw C1, bidi, separator or stray byte"
like "$(cat "$T/list")" 'ops@example\.net\\u2028forged$' "queue: the To's U+2028 as \\u2028, on one line"

"$MAILHOOK" queue show "$id" > "$T/show"
is "$(bytes "$T/show" "$RAW")" 0 "queue show: no raw C1, bidi, separator or stray byte"
like "$(cat "$T/show")" 'Subject: \\u202etxt\.exe \\xff\\xfe \\u2066iso' "queue show: the Subject's override as \\u202e, its bytes as \\xNN"
like "$(cat "$T/show")" 'from: +a\\xc2\\x9b2J@example\.com' "queue show: the From's CSI as \\xc2\\x9b"
like "$(cat "$T/show")" 'to: +ops@example\.net\\u2028forged' "queue show: the To's U+2028"
like "$(cat "$T/show")" 'body \\u202ex \\xff	end' "queue show: the body by the same rule, its tab kept"

"$T/bin/mailq" > "$T/mailq"
is "$(bytes "$T/mailq" "$RAW")" 0 "mailq: no raw C1, bidi, separator or stray byte"
like "$(cat "$T/mailq")" 'a\\xc2\\x9b2J@example\.com' "mailq: the From's CSI as \\xc2\\x9b"
like "$(cat "$T/mailq")" 'ops@example\.net\\u2028forged' "mailq: the To's U+2028 as \\u2028"
"$MAILHOOK" sendmail -bp > "$T/bp"
is "$(bytes "$T/bp" "$RAW")" 0 "sendmail -bp: the same"

"$MAILHOOK" queue --json > "$T/json"
is "$(bytes "$T/json" "$RAW")" 0 "queue --json: no raw C1, bidi or separator (written as \\u escapes)"
is "$(python3 -c 'import json,sys; e = json.load(open(sys.argv[1]))[0]; print(ascii(e["from"]), ascii(e["to"][0]))' "$T/json")" \
   "'a\\x9b2J@example.com' 'ops@example.net\\u2028forged'" "queue --json: valid JSON, the data as it is"
"$MAILHOOK" queue --json show "$id" > "$T/sjson"
is "$(python3 -c 'import json,sys; print(ascii(json.load(open(sys.argv[1]))["to"]))' "$T/sjson"):$(bytes "$T/sjson" "$RAW")" \
   "['ops@example.net\\u2028forged']:0" "queue show --json: the same"

# a file of maildrop/, as an unprivileged sendmail leaves it (runtime/drop.c)
mkdir -m 1730 "$T/spool/maildrop"
printf 'MAILHOOK-DROP 1\nuid %s\ngid %s\npid 1\ntime 1\nto \342\200\256moc.elpmaxe@sop\nleftout A\342\200\256B\twhy\n\nSubject: x\n\ny\n' \
  "$(id -u)" "$(id -g)" > "$T/spool/maildrop/0000000000000001.00000001"
"$MAILHOOK" queue > "$T/list2"; "$T/bin/mailq" > "$T/mailq2"
is "$(bytes "$T/list2" "$RAW"):$(bytes "$T/mailq2" "$RAW")" 0:0 "maildrop/: neither queue nor mailq writes its override raw"
like "$(cat "$T/list2")" 'maildrop .*\\u202emoc\.elpmaxe@sop refused:A\\u202eB' "queue: its To and item left out as \\u202e"
like "$(cat "$T/mailq2")" 'refused: A\\u202eB' "mailq: the item left out as \\u202e"

# a flush holder's name, cut to 200 bytes: on a character boundary
long=$(python3 -c 'print("\u00e9" * 150 + ".lua")')
(exec -a /tmp/mailhook bash -c 'sleep 30; :' a0 "$long") &
HP=$!
wait_for 5 grep -q lua "/proc/$HP/cmdline"
"$MAILHOOK" -e "io.write((select(2, require('mailhook.status').holder($HP))))" > "$T/holder"
pkill -P "$HP" sleep; wait "$HP" 2>/dev/null   # (its sleep ended: a kill of the shell alone left it running)
is "$(bytes "$T/holder" "$RAW")" 0 "status: a holder's name cut on a character boundary (no stray byte)"
like "$(cat "$T/holder")" '^mailhook (é){95}$' "  as many whole characters as fit in 200 bytes"

# a bad id quoted in the error: cut to 60 bytes on a character boundary
badid="a$(python3 -c 'print("\u00e9" * 40)')$(printf '\001')"
"$MAILHOOK" queue show "$badid" > "$T/badid" 2>&1
is "$(bytes "$T/badid" "$RAW")" 0 "queue show BAD-ID: the id quoted cut on a character boundary"
like "$(cat "$T/badid")" "'a(é){29}\\.\\.\\. \\(82 bytes\\)'" "  29 whole characters, then ... ($(head -c 120 "$T/badid"))"
done_testing
