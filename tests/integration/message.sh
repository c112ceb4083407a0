# mh.message output read back by Python's email package (an independent parser):
# RFC 2047 round trip of names and subjects, bodies, attachments, Bcc absent.
. "$ROOT/tests/lib/tap.sh"
PY=/usr/bin/python3

head -c 300000 /dev/urandom > "$T/fax.pdf"
printf 'a,b\n1,2\n' > "$T/report.csv"
SUBJECT='Nachricht von Jürgen — 3 min — ☎ +49 30 1234567 '"$(printf 'lang%.0s ' $(seq 1 30))"
TRICK='=?UTF-8?B?DQpCY2M6IGV2aWxAZXhhbXBsZS5jb20=?='
export SUBJECT TRICK T

"$MAILHOOK" -e '
local mh = require "mailhook"
local T = os.getenv("T")
local m = assert(mh.message {
  from = {name = "Téléphone PBX", address = "pbx@example.com"},
  to = {"Jürgen Groß <jg@example.com>", "\"Doe, John\" <jd@example.com>"},
  cc = {{name = os.getenv("TRICK"), address = "cc@example.com"}},
  bcc = "audit@example.com",
  subject = os.getenv("SUBJECT"),
  text = "Grüße\nline 2\r\n" .. ("x"):rep(1200) .. "\n",
  html = "<p>Grüße</p>",
  headers = {["X-Trick"] = os.getenv("TRICK")},
  attachments = {{path = T .. "/fax.pdf"}, {path = T .. "/report.csv", name = "Bericht März.csv"}},
})
assert(m:save(T .. "/m.eml"))
local e = m:envelope()
io.open(T .. "/env", "w"):write(e.from, " ", table.concat(e.to, " "), "\n")
' 2>"$T/err"
ok $? "message built and saved"

out=$($PY - "$T" <<'PY'
import sys, os, email
from email import policy
T = sys.argv[1]
raw = open(T + "/m.eml", "rb").read()
msg = email.message_from_bytes(raw, policy=policy.default)
def check(name, cond):
    print(("ok " if cond else "FAIL ") + name)
check("subject round trip", str(msg["Subject"]) == os.environ["SUBJECT"])
check("from display name", msg["From"].addresses[0].display_name == "Téléphone PBX")
tos = msg["To"].addresses
check("to names", [a.display_name for a in tos] == ["Jürgen Groß", "Doe, John"])
check("to addresses", [a.addr_spec for a in tos] == ["jg@example.com", "jd@example.com"])
# (policy.default puts a space between adjacent encoded words in a phrase, against
#  RFC 2047 6.2; the compat32 decoder follows the RFC)
from email.header import decode_header, make_header
raw_cc = email.message_from_bytes(raw)["Cc"]
check("encoded-word trick stays literal in a name",
      str(make_header(decode_header(raw_cc))) == os.environ["TRICK"] + " <cc@example.com>")
check("encoded-word trick stays literal in a header", str(msg["X-Trick"]) == os.environ["TRICK"])
check("no Bcc header", msg["Bcc"] is None and b"audit@example.com" not in raw)
check("no extra header", sorted(msg.keys()) == sorted(["Date", "From", "To", "Cc", "Subject", "Message-ID", "X-Trick", "MIME-Version", "Content-Type"]))
check("multipart/mixed", msg.get_content_type() == "multipart/mixed")
body = msg.get_body(preferencelist=("plain",))
check("text body", body.get_content().replace("\r\n", "\n") == "Grüße\nline 2\n" + "x" * 1200 + "\n")
check("html body", msg.get_body(preferencelist=("html",)).get_content().startswith("<p>Grüße</p>"))
atts = list(msg.iter_attachments())
check("two attachments", len(atts) == 2)
check("pdf type from extension", atts[0].get_content_type() == "application/pdf")
check("pdf bytes identical", atts[0].get_content() == open(T + "/fax.pdf", "rb").read())
check("csv name (RFC 2231)", atts[1].get_filename() == "Bericht März.csv")
check("csv content", atts[1].get_payload(decode=True) == b"a,b\n1,2\n")
check("no defects", not msg.defects and all(not p.defects for p in msg.walk()))
check("lines", all(len(l) <= 998 for l in raw.split(b"\r\n")) and b"\r\n" in raw and raw.count(b"\n") == raw.count(b"\r\n"))
PY
)
while IFS= read -r line; do
  case $line in ok\ *) ok 0 "python email: ${line#ok }" ;; *) ok 1 "python email: ${line#FAIL }" ;; esac
done <<< "$out"
is "$(cat "$T/env")" "pbx@example.com jg@example.com jd@example.com cc@example.com audit@example.com" \
   "envelope: sender, To, Cc, Bcc"
[ -s "$T/err" ] && diag "$(cat "$T/err")"
done_testing
