# A property test of mh.message read back by Python's email package (both its
# compat32 and default policies): 300 seeded random messages whose subjects,
# display names, extra header, bodies and attachment names mix UTF-8 (CJK,
# emoji, combining marks), Windows-1252 bytes, long words and long runs of
# blanks, "=?"/"?=" typed literally, quotes, backslashes, controls and
# CR/LF/NUL; bodies with "From " and "." lines, lines over 998, CR/LF mixes;
# binary, empty and lone-CR attachments.  Each message parses with no defect,
# has CRLF lines of at most 998 octets and no line starting "From " (an mbox
# would make it ">From "), no header nor part more than asked, a valid Date and
# Message-ID, and gives back every value as docs/message.md says (Charset,
# controls, direction marks, attachment names); a value with CR, LF or NUL is
# refused, naming the field, and a missing attachment naming the file.
. "$ROOT/tests/lib/tap.sh"
PY=/usr/bin/python3
export T
mkdir -p "$T/cases"

$PY - "$T/cases" <<'PY'
import os, random, sys
R = random.Random(20261207)
OUT = sys.argv[1]
PIECES = ["a", "word", " ", "  ", "é", "Jürgen", "中文字符", "😀", "👩‍👩‍👧", "e\u0301", "\"", "\\", "(", ")", ";",
          ",", "<", ">", "@", "=?", "?=", "=?UTF-8?B?ZXZpbC5leGU=?=", "'", "%", "\t", "\u00a0", "x" * 80, "y" * 1000,
          "Ω" * 40, "עברית", "From ", ".", "/", " " * 1000, "\t" * 600, "w" * 899, "\u2028", "\u0085", "\u202e",
          "\x1b", "\x7f"]
RAW = [b"\xe9", b"\x80", b"\x81", b"\xff", b"\xc3", b"\xe2\x82", b"\x93caf\xe9\x94"]
def text(maxn, bad=0.0):
    out = b"".join(R.choice(RAW) if R.random() < 0.1 else R.choice(PIECES).encode() for _ in range(R.randint(0, maxn)))
    if R.random() < bad:
        i = R.randint(0, len(out)); out = out[:i] + R.choice([b"\r", b"\n", b"\r\n", b"\0"]) + out[i:]
    return out
def body():
    lines = []
    for _ in range(R.randint(0, 10)):
        k = R.random()
        lines.append(b"." + text(3) if k < 0.1 else b"From " + text(3) if k < 0.25 else
                     b"z" * R.choice([998, 999, 3000]) if k < 0.3 else "ü".encode() * 500 if k < 0.33 else
                     b"a\0b" if k < 0.36 else text(6))
    out = b""
    for i, l in enumerate(lines):
        out += l
        if i < len(lines) - 1 or R.random() < 0.6: out += R.choice([b"\n", b"\r\n", b"\r", b"\r\r\n"])
    return out
NAMEP = ["report", " ", "é", "März", "中文", "😀", "\"", "'", ";", "=?", "=?UTF-8?B?ZXZpbC5leGU=?=", "%20", "*",
         "x" * 70, "ab" * 100, ".", "..", "\\", "/", "\t", "\u202e", "e\u0301", "C:"]
for i in range(300):
    d = os.path.join(OUT, "%03d" % i); os.makedirs(d)
    def w(k, v): open(os.path.join(d, k), "wb").write(v)
    w("subject", text(10, 0.08))
    w("fromname", text(5, 0.05))
    w("toname", text(5, 0.05))
    if R.random() < 0.3: w("hdr", text(5, 0.05))
    if R.random() < 0.7: w("text", body())
    if R.random() < 0.4: w("html", b"<p>" + body() + b"</p>")
    for j in range(R.choice([0, 1, 1, 2, 3])):
        k = R.random()
        w("att%d.data" % j, b"" if k < 0.2 else os.urandom(R.randint(1, 3000)) if k < 0.5 else
          b"a\rb\rc" if k < 0.6 else b"q" * 3000 + b"\n" if k < 0.7 else text(8))
        if R.random() < 0.85:
            w("att%d.name" % j, b"".join(R.choice(RAW) if R.random() < 0.05 else R.choice(NAMEP).encode()
                                         for _ in range(R.randint(1, 5))) + R.choice([b".pdf", b".eml", b"", b".txt"]))
    if R.random() < 0.05: w("missing", b"")
PY
ok $? "300 cases generated"

"$MAILHOOK" -e '
local mh = require "mailhook"
local dir = os.getenv("T") .. "/cases"
local function rd(p) local f = io.open(p, "rb"); if not f then return nil end local s = f:read("a"); f:close(); return s end
local function wr(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end
for i = 0, 299 do
  local d = string.format("%s/%03d", dir, i)
  local t = { from = { name = rd(d .. "/fromname"), address = "pbx@example.com" },
              to = { { name = rd(d .. "/toname"), address = "jg@example.com" } },
              subject = rd(d .. "/subject"), text = rd(d .. "/text"), html = rd(d .. "/html") }
  if rd(d .. "/hdr") then t.headers = { ["X-Event"] = rd(d .. "/hdr") } end
  local atts = {}
  for j = 0, 3 do
    if rd(d .. "/att" .. j .. ".data") then
      atts[#atts + 1] = { path = d .. "/att" .. j .. ".data", name = rd(d .. "/att" .. j .. ".name") }
    end
  end
  if rd(d .. "/missing") then atts[#atts + 1] = { path = d .. "/no-such-file" } end
  if #atts > 0 then t.attachments = atts end
  local m, err, info = mh.message(t)
  if not m then wr(d .. "/err", tostring(info.code) .. " " .. tostring(info.field) .. " " .. err)
  else assert(m:save(d .. "/out.eml")) end
end
' 2>"$T/err"
ok $? "built"
[ -s "$T/err" ] && diag "$(cat "$T/err")"

out=$($PY - "$T/cases" <<'PY'
import os, re, sys, codecs, email, email.utils
from email import policy
from email.header import decode_header, make_header
BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A)) | {0x200E, 0x200F, 0x061C}
def w1252(e):   # docs/message.md, Charset: a byte that is no UTF-8 is read as Windows-1252
    out = []
    for b in e.object[e.start:e.end]:
        try: out.append(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError: out.append("\ufffd")
    return "".join(out), e.end
codecs.register_error("w1252", w1252)
def u8(b): return b.decode("utf-8", "w1252")
def ctl(c): return c < 32 or c == 127 or 0x80 <= c <= 0x9f or c in (0x2028, 0x2029)
def shown(b):   # bidi controls dropped, other controls and line separators made spaces
    return "".join("" if ord(ch) in BIDI else " " if ctl(ord(ch)) else ch for ch in u8(b))
def fname(b, own):   # the file name rules of docs/message.md, Attachments
    s = re.split(r"[/\\]", u8(b))[-1]
    s = re.sub(r"^[A-Za-z]:", "", s)
    s = "".join("_" if ctl(ord(ch)) or ord(ch) in BIDI else ch for ch in s).strip(" ").rstrip(". ") or own
    if len(s.encode()) > 255:   # cut on a character, its extension kept
        ext = re.search(r"(\.[^.]{1,16})$", s); ext = ext.group(1) if ext else ""
        stem = s[:len(s) - len(ext)]
        while len((stem + ext).encode()) > 255: stem = stem[:-1]
        s = stem + ext
    return s
def eol(b): return re.sub(rb"\r*\n|\r", b"\n", b)
def rd(d, k):
    p = os.path.join(d, k)
    return open(p, "rb").read() if os.path.exists(p) else None
def unfold(h): return re.sub(r"\r?\n", "", h)
fails = {}
def bad(case, what, detail=""):
    fails.setdefault(what, []).append("%s %s" % (case, detail[:200]))
base = sys.argv[1]; built = refused = 0
for c in sorted(os.listdir(base)):
    d = os.path.join(base, c)
    raw, err = rd(d, "out.eml"), rd(d, "err")
    vals = {k: rd(d, k) for k in ("subject", "fromname", "toname", "hdr")}
    atts = [j for j in range(4) if rd(d, "att%d.data" % j) is not None]
    crlf = [k for k, v in vals.items() if v is not None and re.search(rb"[\r\n\0]", v)]
    crlf += ["attachments"] if any(re.search(rb"[\r\n\0]", rd(d, "att%d.name" % j) or b"") for j in atts) else []
    missing = rd(d, "missing") is not None
    if raw is None:
        refused += 1
        e = err.decode()
        field = {"fromname": "from", "toname": "to", "hdr": "headers"}
        if crlf and e.startswith("EBADHDR") and any(" %s " % field.get(k, k) in e for k in crlf) and "CR, LF or NUL" in e: continue
        if not crlf and missing and e.startswith("ENOENT") and "no-such-file" in e: continue
        bad(c, "refused, or not saying why", e); continue
    built += 1
    if crlf or missing: bad(c, "accepted", repr(crlf) + " missing" * missing); continue
    if raw.count(b"\n") != raw.count(b"\r\n") or b"\r" in raw.replace(b"\r\n", b""): bad(c, "bare CR or LF")
    if max(len(l) for l in raw.split(b"\r\n")) > 998: bad(c, "line over 998")
    if raw.startswith(b"From ") or b"\nFrom " in raw: bad(c, "a line starts with 'From '")
    for pol in (policy.default, policy.compat32):
        m = email.message_from_bytes(raw, policy=pol)
        if any(p.defects for p in m.walk()): bad(c, "defects", repr([p.defects for p in m.walk()]))
    m = email.message_from_bytes(raw, policy=policy.default)
    m32 = email.message_from_bytes(raw, policy=policy.compat32)
    want = {"date", "from", "to", "subject", "message-id", "mime-version", "content-type"} | ({"x-event"} if vals["hdr"] is not None else set())
    keys = [k.lower() for k in m.keys()]
    if len(keys) != len(set(keys)) or set(keys) - {"content-transfer-encoding"} != want: bad(c, "headers", repr(keys))
    try: email.utils.parsedate_to_datetime(m["Date"])
    except Exception: bad(c, "Date", str(m["Date"]))
    if not re.fullmatch(r"<[0-9]{14}\.[0-9a-f]{24}@example\.com>", str(m["Message-ID"])): bad(c, "Message-ID", str(m["Message-ID"]))
    # a plain ASCII value's outer blanks are dropped by readers (docs/message.md, Line limits)
    got = str(make_header(decode_header(unfold(m32["Subject"]))))
    if got.strip() != shown(vals["subject"]).strip(): bad(c, "Subject", "%r != %r" % (got, shown(vals["subject"])))
    if vals["hdr"] is not None:
        got = str(make_header(decode_header(unfold(m32["X-Event"]))))
        if got.strip() != u8(vals["hdr"]).strip(): bad(c, "X-Event", "%r" % got)
    for k, v in (("From", vals["fromname"]), ("To", vals["toname"])):
        h = unfold(m32[k]).strip()
        ph = h[:h.rfind("<")].strip() if shown(v).strip() else ""   # a blank name: the address alone
        name = re.sub(r"\\(.)", r"\1", ph[1:-1]) if ph.startswith('"') else str(make_header(decode_header(ph)))
        if name.strip() != shown(v).strip(): bad(c, k + " name", "%r != %r" % (name, shown(v)))
        if m[k].addresses[0].addr_spec != ("pbx@example.com" if k == "From" else "jg@example.com"): bad(c, k + " address")
    leaves = [p for p in m.walk() if not p.is_multipart()]
    text, html = rd(d, "text"), rd(d, "html")
    wb = ([("text/plain", text or b"")] if text is not None or html is None else []) + ([("text/html", html)] if html is not None else [])
    if len(leaves) != len(wb) + len(atts): bad(c, "parts", "%d != %d" % (len(leaves), len(wb) + len(atts))); continue
    for p, (ct, wv) in zip(leaves, wb):
        g = p.get_content().replace("\r\n", "\n")
        wt = eol(wv).decode("utf-8", "w1252")
        if p.get_content_type() != ct or (g != wt and g != wt + "\n"): bad(c, "body", "%s %r" % (ct, g[:80]))
    for p, p32, j in zip(leaves[len(wb):], [q for q in m32.walk() if not q.is_multipart()][len(wb):], atts):
        if p.get_payload(decode=True) != rd(d, "att%d.data" % j): bad(c, "attachment bytes")
        wn = fname(rd(d, "att%d.name" % j) or b"", "att%d.data" % j)
        if p32.get_filename() != wn.strip(): bad(c, "attachment name", "%r != %r" % (p32.get_filename(), wn))
print("ok %d built, %d refused" % (built, refused) if built > 150 and refused > 10 else "FAIL %d built, %d refused" % (built, refused))
for k in ("refused, or not saying why", "accepted", "bare CR or LF", "line over 998", "a line starts with 'From '",
          "defects", "headers", "Date", "Message-ID", "Subject", "X-Event", "From name", "To name", "From address",
          "To address", "parts", "body", "attachment bytes", "attachment name"):
    v = fails.get(k, [])
    print(("ok " if not v else "FAIL ") + "%s: %d cases%s" % (k, len(v), (" e.g. " + " | ".join(v[:3])) if v else ""))
PY
)
while IFS= read -r line; do
  case $line in ok\ *) ok 0 "python email: ${line#ok }" ;; *) ok 1 "python email: ${line#FAIL }" ;; esac
done <<< "$out"
done_testing
