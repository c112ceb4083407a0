# Attachment names of every length and script, read back by Python's email package
# (an independent parser, both its compat32 and default policies): the exact name
# comes back, and a long one is folded in RFC 2231 continuations (filename*0*=,
# filename*1*=, ...) with every header line within 78 characters, each piece
# ending on a whole character (never a %XX or a UTF-8 sequence cut in two).
. "$ROOT/tests/lib/tap.sh"
PY=/usr/bin/python3
export T
printf 'x\n' > "$T/f.txt"

# The names, NUL-separated, written by Python (what a caller passes).
$PY - "$T" <<'PY'
import sys
names = [
    "report.pdf",                                   # short: filename="..."
    "a" * 66 + ".pdf",                              # ASCII past 70
    ("quarterly report " * 12).strip() + ".pdf",    # ASCII with spaces, 200+
    "é" * 40 + ".pdf",                              # 2-byte characters
    "a" + "é" * 80 + ".pdf",                        # odd offset: cuts mid-character unless careful
    "€" * 60 + ".txt",                              # 3-byte
    "😀" * 40 + ".png",                             # 4-byte
    'He said "hi" to ' + "x" * 60 + ".txt",         # quotes
    "=?UTF-8?B?ZXZpbC5leGU=?=" + "x" * 60 + ".exe", # an encoded word that must stay literal
    "100% o'clock; a=b " * 5 + ".txt",              # %, ', ;, =
    "a" + "é" * 125 + ".pdf",                       # 255 bytes
    "€" * 83 + "ab.pdf",                            # 255 bytes, 3-byte
    "Bericht März.csv",                             # short non-ASCII: one filename*=
]
assert len(names[10].encode()) == 255 and len(names[11].encode()) == 255
open(sys.argv[1] + "/names", "wb").write(b"\0".join(n.encode() for n in names))
PY

"$MAILHOOK" -e '
local mh = require "mailhook"
local T = os.getenv("T")
local names = io.open(T .. "/names", "rb"):read("a")
local atts = {}
for n in (names .. "\0"):gmatch("(.-)%z") do atts[#atts + 1] = { path = T .. "/f.txt", name = n } end
local m = assert(mh.message { from = "a@example.com", to = "b@example.com", subject = "names",
                              text = "see attached", attachments = atts })
assert(m:save(T .. "/m.eml"))
' 2>"$T/err"
ok $? "message with 13 attachments built"

out=$($PY - "$T" <<'PY'
import sys, re, email
from email import policy
T = sys.argv[1]
names = [n.decode() for n in open(T + "/names", "rb").read().split(b"\0")]
raw = open(T + "/m.eml", "rb").read()
def check(name, cond):
    print(("ok " if cond else "FAIL ") + name)
for pol, label in ((policy.compat32, "compat32"), (policy.default, "default")):
    msg = email.message_from_bytes(raw, policy=pol)
    atts = [p for p in msg.walk() if p.get_content_disposition() == "attachment"]
    check(label + ": 13 attachments", len(atts) == len(names))
    for i, (p, want) in enumerate(zip(atts, names)):
        got = p.get_filename()
        check("%s: name %d (%d bytes) exact%s" % (label, i, len(want.encode()), "" if got == want else ": got %r" % got),
              got == want)
    check(label + ": no defects", all(not p.defects for p in msg.walk()))
head_lines = [l for part in raw.split(b"\r\n\r\n") for l in part.split(b"\r\n")
              if l.startswith(b" filename") or l.startswith(b"Content-")]
long_lines = [l for l in head_lines if len(l) > 78]
check("every Content-* / filename line within 78 (%d lines, longest %d)"
      % (len(head_lines), max(len(l) for l in head_lines)), not long_lines)
cont = [l for l in head_lines if re.match(rb" filename\*\d+\*=", l)]
check("long names use continuations (%d pieces)" % len(cont), len(cont) > 20)
# each piece decodes alone to whole UTF-8 characters (a reader may decode pieces one by one)
from urllib.parse import unquote_to_bytes
def whole(l):
    v = l.split(b"=", 1)[1].rstrip(b";")
    if v.startswith(b"UTF-8''"): v = v[7:]
    try: unquote_to_bytes(v).decode("utf-8"); return True
    except UnicodeDecodeError: return False
check("every piece is whole characters", all(whole(l) for l in cont))
check("short ASCII name stays quoted", b'filename="report.pdf"' in raw)
check("short non-ASCII name: one filename*=", b"filename*=UTF-8''Bericht%20M%C3%A4rz.csv" in raw)
PY
)
while IFS= read -r line; do
  case $line in ok\ *) ok 0 "python email: ${line#ok }" ;; *) ok 1 "python email: ${line#FAIL }" ;; esac
done <<< "$out"
[ -s "$T/err" ] && diag "$(cat "$T/err")"
done_testing
