# mailhook-drop -l ITEM WHY records each part with its control characters AND
# backslashes escaped (\x0A, \x5C), and the reader (runtime/maildrop.c, for
# lua/mailhook/maildrop.lua) decodes them: what the caller gave -l comes back
# byte for byte.  The backslash was left as it was, so a "\x0A" typed by a
# user read in the record exactly as an escaped newline: the reader could not
# tell them apart, nor give back either.  The drop program is run here as
# built, by this user, on a spool made for it (maildrop/ 1730 of this user's
# group: what it checks; no setgid install: sendmail-leftout.sh does that).
. "$ROOT/tests/lib/tap.sh"

SP=$T/spool
mkdir -p "$SP/maildrop"
chmod 0700 "$SP"
chmod 1730 "$SP/maildrop"
typed='a\x0Ab'                       # typed by hand: a backslash, x, 0, A
nl=$'c\nd'                           # a real newline
why_typed='C:\dir\x09tab \ end\'
why_ctl=$'w\th\x7f'
printf 'Subject: x\n\nbody\n' | "$BUILD/mailhook-drop" -s "$SP" -l "$typed" "$why_typed" -l "$nl" "$why_ctl" \
  -- ops@example.net 2>"$T/err"; rc=$?
is "$rc" 0 "mailhook-drop -l with typed escapes and real control characters: stored ($(cat "$T/err"))"
f=$(find "$SP/maildrop" -type f | head -1)
rec=$(sed '/^$/q' "$f")
like "$rec" $'\nleftout a\\\\x5Cx0Ab\tC:\\\\x5Cdir\\\\x5Cx09tab \\\\x5C end\\\\x5C\n' \
     "the typed backslashes are escaped (\\x5C): a typed \\x0A is no escaped newline"
like "$rec" $'\nleftout c\\\\x0Ad\tw\\\\x09h\\\\x7F' "the control characters as before (\\x0A, \\x09, \\x7F)"
is "$(printf '%s\n' "$rec" | grep -c '^leftout ')" 2 "two leftout lines, no line added"

# the reader: core.maildrop.open gives back each part as given
out=$("$MAILHOOK" -e '
  local core = require("mailhook").core
  local sp = arg[1]
  local names = assert(core.maildrop.list(sp))
  local rec, fd = assert(core.maildrop.open(sp, names[1]))
  core.maildrop.close(fd)
  local want = { { arg[2], arg[3] }, { arg[4], arg[5] } }
  for i, l in ipairs(rec.left) do
    print(i, l.item == want[i][1] and "item same" or ("item %q"):format(l.item),
             l.why == want[i][2] and "why same" or ("why %q"):format(l.why))
  end' "$SP" "$typed" "$why_typed" "$nl" "$why_ctl" 2>&1)
is "$out" $'1\titem same\twhy same\n2\titem same\twhy same' "the reader decodes each part to the bytes given to -l"

# a record of an older drop program (backslashes unescaped) still reads: a
# backslash that starts no \xHH is taken as it is; an escaped NUL is refused
mk() { printf 'MAILHOOK-DROP 1\nuid %s\ngid %s\npid 1\ntime 1\nto ops@example.net\nleftout %s\twhy\n\nSubject: x\n\ny\n' \
         "$(id -u)" "$(id -g)" "$2" > "$SP/maildrop/$1"; }
rm -f "$SP/maildrop"/*
mk 0000000000000001.00000001 'C:\dir\\end\'
mk 0000000000000002.00000001 'x\x00y'
out=$("$MAILHOOK" -e '
  local core = require("mailhook").core
  for _, n in ipairs(assert(core.maildrop.list(arg[1]))) do
    local rec, fd = core.maildrop.open(arg[1], n)
    if type(fd) == "number" or type(fd) == "userdata" then core.maildrop.close(fd) end
    print(n, rec and rec.left[1].item or ("refused: " .. tostring(fd)))
  end' "$SP" 2>&1)
is "$(printf '%s\n' "$out" | sed -n 1p)" $'0000000000000001.00000001\tC:\\dir\\\\end\\' "an unescaped backslash: as it is"
like "$(printf '%s\n' "$out" | sed -n 2p)" $'^0000000000000002.00000001\trefused: .*bad leftout line' "an escaped NUL: a bad record"
done_testing
