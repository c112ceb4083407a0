# mailhook hook as hostile callers and careless applications call it: a field
# that would pose as the event's name, a key given twice (on the command line
# or in the JSON), JSON keys that are no field names, names with control bytes
# echoed in the error, and what a rule may pass on from an event into an
# attachment (a name that looks like an RFC 2047 encoded word, a composite
# content type). Each malformed event: exit 2, a message naming what, no rule
# run, nothing queued, the mail already queued still there.
. "$ROOT/tests/lib/tap.sh"
rules_env
cat > "$T/rules/10-probe.lua" <<'LUA'
on("ev", function(ev)
  local f = assert(io.open(ev.out or (RULE_FILE .. ".ran"), "a")); f:write(tostring(ev.event), "\n"); f:close()
end)
on("att", function(ev)
  assert(mh.enqueue { to = "ops@example.com", subject = "att", text = "t",
                      attachments = {{ path = ev.file, name = ev.name, type = ev.type }} })
end)
on("val", function(ev)   -- what a rule sees of ev.v: its bytes in hex, whether UTF-8
  local f = assert(io.open(ev.out, "w"))
  f:write((ev.v:gsub(".", function(c) return string.format("%02x", c:byte()) end)), " ",
          utf8.len(ev.v) and "utf8" or "not-utf8", "\n")
  f:close()
end)
on("len", function(ev)   -- what a rule sees of ev.v: its length, whether UTF-8
  local f = assert(io.open(ev.out, "w"))
  f:write(#ev.v, " ", utf8.len(ev.v) and "utf8" or "not-utf8", "\n")
  f:close()
end)
on("fail", function(ev) error("bad value: " .. ev.v, 0) end)
on("failbig", function(ev) error(string.rep("x", 3000000) .. "END", 0) end)
on("failtask", function(ev) mh.spawn(function() error("task: " .. ev.v .. string.rep("y", tonumber(ev.n or 0)), 0) end) end)
on("list", function(ev)
  local f = assert(io.open(ev.out, "w"))
  f:write(mh.template("{{#each items}}[{{.}}]{{/each}} {{#if gone}}present{{else}}absent{{/if}}")(ev), "\n", #ev.items, "\n")
  f:close()
end)
on("id", function(ev)
  local r = mh.template("Ticket {{id}} amount {{amount}}", { header = true })
  assert(mh.enqueue { to = "ops@example.com", subject = r(ev), text = "id " .. ev.id })
end)
LUA
ran="$T/rules/10-probe.lua.ran"
pickup() { ls "$T/spool/pickup" 2>/dev/null | grep -c '\.eml$'; }
echo hello > "$T/f.txt"

# one message queued before the hostile calls: it must still be there after them
"$MAILHOOK" hook att file="$T/f.txt" >/dev/null 2>&1
is "$(pickup)" 1 "a first message is queued"
rm -f "$ran"

refused() {   # refused DESC REGEX CMD... : exit 2, REGEX in the message, no rule ran
  local desc=$1 re=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  is "$rc" 2 "$desc: exit 2"
  like "$out" "$re" "$desc: the message says what"
  ok "$([ ! -e "$ran" ]; echo $?)" "$desc: no rule ran"
  rm -f "$ran"
}

# The event's name is the caller's first argument and nothing else: a field
# named 'event' would make the handler of 'ev' see another event's name.
refused "a field named event" "field name 'event' is reserved" "$MAILHOOK" hook ev event=other
refused "a JSON field named event" "field name 'event' is reserved" \
  sh -c 'printf "{\"event\":\"other\"}" | "$0" hook ev --json' "$MAILHOOK"

# A key given twice: one of the values would be dropped without a word.
refused "a key given twice" "field 'to' is given twice" "$MAILHOOK" hook ev to=a@example.com to=b@example.com
refused "a JSON key given twice" "line 1, column [0-9]+: duplicate key 'to'" \
  sh -c 'printf "{\"to\":\"a@example.com\",\"to\":\"b@example.com\"}" | "$0" hook ev --json' "$MAILHOOK"
refused "a nested JSON key given twice" "duplicate key 'x'" \
  sh -c 'printf "{\"a\":{\"x\":1,\"x\":2}}" | "$0" hook ev --json' "$MAILHOOK"

# JSON keys obey the rule KEY=VALUE obeys (docs/rules.md: a bad field name is exit 2)
refused "an empty JSON key" "bad field name ''" sh -c 'printf "{\"\":1}" | "$0" hook ev --json' "$MAILHOOK"
refused "a JSON key with a space" "bad field name 'a b'" \
  sh -c 'printf "{\"a b\":1}" | "$0" hook ev --json' "$MAILHOOK"
refused "a JSON key with LF" "bad field name 'a\\\\nb'" \
  sh -c 'printf "{\"a\\\\nb\":1}" | "$0" hook ev --json' "$MAILHOOK"

# A name with control bytes is shown escaped: the error stays one line, and no
# escape sequence reaches the terminal or the log that captured it.
out=$("$MAILHOOK" hook $'ev\nFAKE: line' 2>&1); rc=$?
is "$rc" 2 "an event name with LF: exit 2"
like "$(printf '%s' "$out" | head -1)" "bad event name 'ev\\\\nFAKE: line'" "shown escaped, on one line"
ok "$(printf '%s' "$out" | grep -q '^FAKE'; [ $? -ne 0 ]; echo $?)" "no forged line in the output"
out=$("$MAILHOOK" hook ev $'a\r\x1b[2Jb=1' 2>&1)
like "$out" "bad field name 'a\\\\r\\\\27\[2Jb'" "a field name with CR and ESC: shown escaped"
ok "$(printf '%s' "$out" | grep -q $'\x1b'; [ $? -ne 0 ]; echo $?)" "no ESC byte in the output"
out=$("$MAILHOOK" hook $'\xff\xfe' 2>&1)
like "$out" "bad event name '\\\\255\\\\254'" "non-UTF-8 bytes: shown escaped"
# an event's name is [A-Za-z0-9_.:-]+ (docs/rules.md): a ':' and a leading digit are names
for ev in backup:done 9am; do
  out=$("$MAILHOOK" hook "$ev" 2>&1); rc=$?
  is "$rc" 0 "event '$ev' is a name (exit 0: $out)"
done
rm -f "$ran"

# A value that is not UTF-8 (a PBX's Latin-1 caller name) is read as Windows-1252 at
# intake, on the command line and in JSON alike (docs/rules.md, "Values"): the rules see
# UTF-8, what the mail will carry.  JSON's were refused (exit 2: the event lost), and
# KEY=VALUE's reached the rules as raw bytes ("Jos\xe9" ~= "José", utf8.len nil).
val() {   # val DESC WANT CMD...: exit 0 and the rule saw WANT (hex, utf8 or not)
  local desc=$1 want=$2; shift 2
  rm -f "$T/val.out"
  "$@" >/dev/null 2>&1
  is "$?:$(cat "$T/val.out" 2>/dev/null)" "0:$want" "$desc"
}
val "KEY=VALUE in Latin-1: the rule sees UTF-8" "4a6f73c3a9 utf8" \
  "$MAILHOOK" hook val "v=$(printf 'Jos\351')" out="$T/val.out"
val "KEY=VALUE: Windows-1252's quotes and euro, an undefined byte as U+FFFD, UTF-8 beside them kept" \
  "e2809c78e2809d20e282ac20efbfbd20c3a9 utf8" "$MAILHOOK" hook val "v=$(printf '\223x\224 \200 \201 \303\251')" out="$T/val.out"
val "KEY=VALUE already UTF-8: untouched" "4a6f73c3a9 utf8" "$MAILHOOK" hook val "v=$(printf 'Jos\303\251')" out="$T/val.out"
val "a JSON string in Latin-1: read the same way, not refused" "c3bfc3be utf8" \
  sh -c 'printf "{\"v\":\"\377\376\",\"out\":\"%s\"}" "$1" | "$0" hook val --json' "$MAILHOOK" "$T/val.out"
val "a JSON string with a UTF-8-encoded surrogate: its bytes read one by one" "6f6bc3adc2a0e282ac utf8" \
  sh -c 'printf "{\"v\":\"ok\355\240\200\",\"out\":\"%s\"}" "$1" | "$0" hook val --json' "$MAILHOOK" "$T/val.out"
val "a JSON lone surrogate escape (a UTF-16 string cut mid-pair): U+FFFD" "61efbfbd62efbfbd utf8" \
  sh -c 'printf "{\"v\":\"a\\\\ud83db\\\\udc00\",\"out\":\"%s\"}" "$1" | "$0" hook val --json' "$MAILHOOK" "$T/val.out"
# A path in Latin-1 bytes to a file that exists (an old PBX's recording, msg\xe9.wav) is
# kept as its bytes: made UTF-8 it named no file, and the mail went without the recording
mkdir -p "$T/vm"; printf 'RIFF' > "$T/vm/$(printf 'msg\351.wav')"
hexpath=$(printf '%s' "$T/vm/" | od -An -tx1 | tr -d ' \n')
val "KEY=VALUE: a Latin-1 path to a file that exists: its bytes kept" "${hexpath}6d7367e92e776176 not-utf8" \
  "$MAILHOOK" hook val "v=$T/vm/$(printf 'msg\351.wav')" out="$T/val.out"
val "JSON: the same path: its bytes kept" "${hexpath}6d7367e92e776176 not-utf8" \
  sh -c 'printf "{\"v\":\"%s\",\"out\":\"%s\"}" "$1" "$2" | "$0" hook val --json' "$MAILHOOK" \
  "$T/vm/$(printf 'msg\351.wav')" "$T/val.out"
val "a Latin-1 path to nothing: made UTF-8 as any value" "${hexpath}6e6fc3a92e776176 utf8" \
  "$MAILHOOK" hook val "v=$T/vm/$(printf 'no\351.wav')" out="$T/val.out"
# The field limit (64 KiB) is on the value as given, whatever it grows to made UTF-8
# (up to 3 bytes a byte): the same 30000 bytes of Latin-1 were taken as KEY=VALUE and
# refused in JSON as "90000 bytes, over the 64 KiB limit" (the event lost).
v30k=$(head -c 30000 /dev/zero | tr '\0' '\200')
val "KEY=VALUE: 30000 bytes of Windows-1252's euro taken, the rule sees 90000 (UTF-8)" "90000 utf8" \
  "$MAILHOOK" hook len "v=$v30k" out="$T/val.out"
val "JSON: the same 30000 bytes taken too, the rule sees the same" "90000 utf8" \
  sh -c 'printf "{\"v\":\"%s\",\"out\":\"%s\"}" "$1" "$2" | "$0" hook len --json' "$MAILHOOK" "$v30k" "$T/val.out"
v70k=$(head -c 70000 /dev/zero | tr '\0' '\351')
refused "JSON: 70000 bytes of Latin-1 given: refused, its size as given" "field 'v': 70000 bytes, over the 64 KiB limit" \
  sh -c 'printf "{\"v\":\"%s\"}" "$1" | "$0" hook ev --json' "$MAILHOOK" "$v70k"
refused "JSON: a key given twice once made UTF-8 (Latin-1 and UTF-8 e-acute)" "duplicate key" \
  sh -c 'printf "{\"a\":{\"\351\":1,\"\303\251\":2}}" | "$0" hook ev --json' "$MAILHOOK"
refused "a stray byte outside a string" "unexpected character '\\\\255'" \
  sh -c 'printf "{\"a\":\377}" | "$0" hook ev --json' "$MAILHOOK"
out=$(printf '{"to":"caf\303\251","out":"%s"}' "$T/utf8.ran" | "$MAILHOOK" hook ev --json 2>&1); rc=$?
is "$rc" 0 "valid UTF-8 in a JSON string is fine"
is "$(cat "$T/utf8.ran" 2>/dev/null)" "ev" "and the rule ran"

# names have a limit, as every input has (docs/spool.md, "Limits"): 255 bytes
long=$(head -c 256 /dev/zero | tr '\0' e)
refused "an event name of 256 bytes" "event name 'e{80}\.\.\.': 256 bytes, over the 255-byte limit" \
  "$MAILHOOK" hook "$long"
refused "a field name of 256 bytes" "field name 'e{80}\.\.\.': 256 bytes, over the 255-byte limit" \
  "$MAILHOOK" hook ev "$long=1"
refused "a JSON key of 256 bytes" "field name 'e{80}\.\.\.': 256 bytes, over the 255-byte limit" \
  sh -c 'printf "{\"%s\":1}" "$1" | "$0" hook ev --json' "$MAILHOOK" "$long"
"$MAILHOOK" hook "$(head -c 255 /dev/zero | tr '\0' e)" x=1 >/dev/null 2>&1
is "$?" 0 "an event name of 255 bytes is fine"

# --rules: an empty value resolved to the settings file's folder and ran every
# *.lua there as a rule file; a path naming nothing ran no rule and exited 0
printf 'local f = assert(io.open(RULE_FILE .. ".ran", "w")); f:close()\n' > "$T/stray.lua"
refused "--rules= (empty)" "option '--rules' needs a folder or file" "$MAILHOOK" hook ev --rules= a=1
refused "--rules '' (empty)" "option '--rules' needs a folder or file" "$MAILHOOK" hook ev --rules '' a=1
ok "$([ ! -e "$T/stray.lua.ran" ]; echo $?)" "no *.lua beside the settings file ran"
refused "--rules naming nothing" "--rules $T/nope: no such folder or file" "$MAILHOOK" hook ev --rules "$T/nope" a=1
refused "a relative --rules naming nothing" "--rules nope: no such folder or file" "$MAILHOOK" hook ev --rules nope a=1
"$MAILHOOK" hook ev --rules "$T/rules/10-probe.lua" out="$T/explicit.ran" >/dev/null 2>&1
is "$?:$(cat "$T/explicit.ran" 2>/dev/null)" "0:ev" "--rules naming a rule file: it runs"
(cd "$T" && "$MAILHOOK" hook ev --rules rules out="$T/relative.ran" >/dev/null 2>&1)
is "$?:$(cat "$T/relative.ran" 2>/dev/null)" "0:ev" "a relative --rules folder: it runs"
# --rules given twice: the first was dropped without a word (its rules never ran);
# mailhook(1): an option that takes one value given twice is a usage error
refused "--rules given twice" "option '--rules' given twice \(it takes one value\)" \
  "$MAILHOOK" hook ev --rules "$T/rules" --rules "$T/rules/10-probe.lua" a=1
refused "--rules= given twice" "option '--rules' given twice" \
  "$MAILHOOK" hook ev --rules="$T/rules" a=1 --rules "$T/rules"

# what an event field may carry into an attachment's headers
"$MAILHOOK" hook att file="$T/f.txt" 'name==?UTF-8?B?ZXZpbC5leGU=?=' >/dev/null 2>&1
is "$?" 0 "an attachment name that looks like an encoded word is accepted"
newest=$(ls "$T"/spool/pickup/*.eml | tail -1)
like "$(cat "$newest")" "filename\*=UTF-8''%3D%3FUTF-8%3FB%3FZXZpbC5leGU%3D%3F%3D" "it goes as RFC 2231, shown literally"
ok "$(grep -q 'name="=?' "$newest"; [ $? -ne 0 ]; echo $?)" "never as a quoted name a reader would decode to evil.exe"
n=$(pickup)
for ty in 'multipart/mixed; boundary="x"' 'message/rfc822' 'Multipart/Related'; do
  out=$("$MAILHOOK" hook att file="$T/f.txt" "type=$ty" 2>&1); rc=$?
  is "$rc" 1 "attachment type '$ty': the rule fails"
  like "$out" "content type '.*' is composite" "attachment type '$ty': named"
done
is "$(pickup)" "$n" "nothing queued for a composite attachment type"

# The shipped examples, called with a file= the application got wrong: the
# notification goes without the attachment and says so (docs/rules.md). They
# tested it with io.open, which says yes to a folder (then mh.enqueue failed:
# no mail) and waits for ever on a FIFO (the rule was stopped: no mail).
mkdir -p "$T/ex/rules" "$T/ex/dir.wav" "$T/ex/dir.pdf"
mkfifo "$T/ex/pipe.wav" "$T/ex/pipe.pdf"
cp "$ROOT/examples/voicemail.lua" "$ROOT/examples/fax.lua" "$T/ex/rules/"
exn() { ls "$T/ex/spool/pickup" 2>/dev/null | grep -c '\.eml$'; }
for f in "$T/ex/dir.wav" "$T/ex/pipe.wav"; do
  before=$(exn)
  out=$(timeout 30 "$MAILHOOK" -s "$T/ex/spool" hook voicemail mailbox=200 caller=+33123 file="$f" --rules "$T/ex/rules" 2>&1)
  rc=$?
  is "$rc" 0 "voicemail with file=${f##*/}: hook exits 0 (not stopped, not failed)"
  is "$(exn)" $((before + 1)) "voicemail with file=${f##*/}: the notification is queued"
  like "$(cat "$(ls -t "$T"/ex/spool/pickup/*.eml | head -1)")" "could not be attached" "and says the recording is missing"
  like "$out" "not a regular file" "the log says why"
done
for f in "$T/ex/dir.pdf" "$T/ex/pipe.pdf"; do
  before=$(exn)
  out=$(timeout 30 "$MAILHOOK" -s "$T/ex/spool" hook fax sender=+33198 pages=1 file="$f" --rules "$T/ex/rules" 2>&1)
  is "$?" 0 "fax with file=${f##*/}: hook exits 0"
  is "$(exn)" $((before + 1)) "fax with file=${f##*/}: the notification is queued"
done

# A throttle key made of an event's field (the alarm example's "alarm:" ..
# source): one over ~200 characters failed the rule ("key is too long"), and
# the major alarm was never sent. Now a long key is named by a hash.
cp "$ROOT/examples/alarm.lua" "$T/ex/rules/"
long=$(head -c 300 /dev/zero | tr '\0' s)
before=$(exn)
for i in 1 2 3 4; do
  "$MAILHOOK" -s "$T/ex/spool" hook alarm severity=major "source=$long" message="m$i" --rules "$T/ex/rules" >/dev/null 2>&1
  is "$?" 0 "a major alarm from a 300-character source, #$i: hook exits 0"
done
is "$(exn)" $((before + 3)) "three sent, the fourth throttled (max 3 per source)"
"$MAILHOOK" -s "$T/ex/spool" hook alarm severity=major "source=${long}t" message=other --rules "$T/ex/rules" >/dev/null 2>&1
is "$(exn)" $((before + 4)) "another long source with the same first 300 characters: its own throttle"
ok "$(ls "$T/ex/spool/state/rules/throttle" | awk 'length($0) > 255 { bad = 1 } END { exit bad }'; echo $?)" \
  "the state files' names fit a file system's 255 bytes"

# A rule's error may carry an event's value: on stderr and in the log it is
# one line, its control bytes escaped (no forged line, no terminal escape), and
# at most ~1000 bytes with how much was cut (a 3 MB error was printed whole).
out=$("$MAILHOOK" hook fail v=$'a\r\x1b[31mred\n2026-01-01T00:00:00.000+00:00 error FORGED' 2>&1); rc=$?
is "$rc" 1 "a failing rule: exit 1"
like "$out" 'rule fail@10-probe.lua:[0-9]+ failed: bad value: a\\r\\27\[31mred\\n2026-01-01' "the error shown escaped"
ok "$(printf '%s' "$out" | grep -q $'[\x1b\r]'; [ $? -ne 0 ]; echo $?)" "no ESC or CR byte on stderr or in the log"
ok "$(printf '%s\n' "$out" | grep -q '^2026-01-01'; [ $? -ne 0 ]; echo $?)" "no forged log line"
out=$("$MAILHOOK" hook failbig 2>&1)
ok "$([ ${#out} -lt 8000 ]; echo $?)" "a 3 MB error: the output stays small (${#out} bytes)"
like "$out" "mailhook hook failbig: rule failbig@10-probe.lua:[0-9]+ failed: x{900,} \.\.\. \(2999[0-9]{3} more bytes\)" \
  "stderr keeps its start and says how much was cut"
like "$out" "error rule failbig@10-probe.lua:[0-9]+ for event 'failbig' failed: x{900,} \.\.\. \([0-9]+ more bytes\)" \
  "so does the log"
like "$out" "stack traceback" "and the log keeps the traceback"
out=$("$MAILHOOK" hook failtask v=$'a\x1b[2J\nFORGED' 2>&1)
like "$out" '\(a task it started, [^)]*\): task: a\\27\[2J\\nFORGED' "a task's error on stderr: escaped"
ok "$(printf '%s\n' "$out" | grep -q '^FORGED'; [ $? -ne 0 ]; echo $?)" "no line of its own"
out=$("$MAILHOOK" hook failtask v=a n=3000000 2>&1)
ok "$([ ${#out} -lt 8000 ]; echo $?)" "a task's 3 MB error: the output stays small (${#out} bytes)"
like "$out" "task: ay{900,} \.\.\. \(2999[0-9]{3} more bytes\)" "its start kept, the cut counted"

# A long numeric id (a ticket number past 2^63) in the JSON: every digit reaches
# the mail, never 9.2233720368548e+18; a whole float is shown without .0
n=$(pickup)
printf '{"id":92233720368547758071234,"amount":12.0}' | "$MAILHOOK" hook id --json >/dev/null 2>&1
is "$?" 0 "an event with a 23-digit id: hook exits 0"
newest=$(ls -t "$T"/spool/pickup/*.eml | head -1)
like "$(cat "$newest")" "Subject: Ticket 92233720368547758071234 amount 12"$'\r' "the subject has every digit, 12 not 12.0"
like "$(cat "$newest")" "id 92233720368547758071234" "so has the text"
# A number past a float's range, over or under it, is its text both ways (it was
# exit 2 for 1e400, 'number out of range', while 1e-400 was kept as text)
for pair in '1e400:-1E+999' '1e-400:-2.5e-999'; do
  printf '{"id":%s,"amount":%s}' "${pair%%:*}" "${pair#*:}" | "$MAILHOOK" hook id --json >/dev/null 2>&1
  is "$?" 0 "an event with ${pair%%:*} and ${pair#*:}: hook exits 0, not refused"
  newest=$(ls -t "$T"/spool/pickup/*.eml | head -1)
  amt=${pair#*:}
  like "$(cat "$newest")" "Subject: Ticket ${pair%%:*} amount ${amt//+/\\+}"$'\r' "both reach the mail as written"
done

# A null inside a JSON list keeps its place ("" there): dropped, it left a hole,
# and {{#each}} and ipairs lost every element after it. A null value of a key: absent.
printf '{"items":["a",null,"c"],"gone":null,"out":"%s"}' "$T/list.out" | "$MAILHOOK" hook list --json >/dev/null 2>&1
is "$?" 0 "a list with a null: hook exits 0"
is "$(cat "$T/list.out" 2>/dev/null | tr '\n' '|')" "[a][][c] absent|3|" "every element shown, the null as empty; a null key absent"

# An attachment name from an event is a file name, never a path (RFC 2183)
for nm in '../../.bashrc' '/etc/passwd' 'C:\Users\x\report.pdf' '..'; do
  "$MAILHOOK" hook att file="$T/f.txt" "name=$nm" >/dev/null 2>&1
  newest=$(ls -t "$T"/spool/pickup/*.eml | head -1)
  want=${nm##*[/\\]}
  case $want in ''|.|..) want=f.txt ;; esac
  like "$(cat "$newest")" "filename=\"${want//./\\.}\"" "attachment name '$nm' sent as $want"
done

# A custom rule that builds its Subject with a plain template (not {header = true}) and
# never looks at mh.enqueue's answer, given a field holding CR LF: no header is injected,
# and the loss of that mail is no secret: hook exits 1, its message and the log name the
# rule, the event's field and the header (it said "subject: CR, LF or NUL in the
# subject", no word of the field). Nothing is rewritten: nothing is queued.
cat > "$T/rules/20-plain.lua" <<'LUA'
local subject = mh.template("Voicemail from {{caller}} ({{box.name}})")
on("vm", function(ev)
  mh.enqueue { to = "ops@example.com", subject = subject(ev), text = "a voicemail" }
end)
on("vmh", function(ev)
  mh.enqueue { to = "ops@example.com", subject = "vm", text = "t", headers = { ["X-Caller"] = ev.caller } }
end)
LUA
before=$(pickup)
err=$("$MAILHOOK" hook vm "caller=$(printf 'Bob\r\nBcc: evil@example.net')" 2>&1); rc=$?
is "$rc" 1 "a plain-template subject with CR LF from a field: hook exits 1 (the caller knows)"
out=$(printf '%s\n' "$err" | grep '^mailhook hook vm:')
like "$out" "rule vm@20-plain\.lua:2 failed: its mail was not queued" "its message names the rule"
like "$out" "subject: CR, LF or NUL in the subject \(the event's field 'caller' holds a line break" \
  "and the field and the header ($out)"
like "$out" "mh\.template\(src, \{header = true\}\)" "and how a rule keeps a header on one line"
like "$(printf '%s\n' "$err" | grep ' error ' | head -1)" "rule vm@20-plain\.lua:2 .*field 'caller'.*subject" \
  "the log line names them too"
is "$(pickup)" "$before" "nothing queued (no header injected, no value rewritten)"
err=$(printf '{"caller": "Bob", "box": {"name": "sales\\nBcc: x@example.net"}}' | "$MAILHOOK" hook vm --json 2>&1); rc=$?
is "$rc" 1 "a nested field (JSON): exit 1"
like "$err" "the event's field 'box\.name' holds a line break" "named by its path"
err=$("$MAILHOOK" hook vmh "caller=$(printf 'Bob\nX: y')" 2>&1); rc=$?
is "$rc" 1 "an extra header from a field with LF: exit 1"
like "$err" "header X-Caller: CR, LF or NUL .*the event's field 'caller' holds a line break or NUL, and the X-Caller copies it" \
  "the header named by its name"
"$MAILHOOK" hook vm caller=Bob 'box.name=sales' >/dev/null 2>&1; rc=$?
is "$rc:$(pickup)" "0:$((before + 1))" "the same rule with clean fields queues its mail"
rm -f "$T/rules/20-plain.lua"

is "$(ls "$T/spool/tmp" 2>/dev/null | wc -l)" 0 "nothing left in tmp/"
ok "$(ls "$T/spool/pickup" | grep -q .; echo $?)" "the first message is still queued"
done_testing
