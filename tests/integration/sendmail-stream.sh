# mailhook sendmail streams stdin into the spool: a 50 MB message piped in
# keeps the peak RSS under 20 MB and lands byte for byte (LF and bare CR made CRLF, Bcc
# left out, X- envelope lines added); the lone-dot rule works across read
# boundaries; bad input fails clearly and leaves nothing in tmp/ or pickup/.
. "$ROOT/tests/lib/tap.sh"

C=$T/mailhook.conf; S=$T/spool
mh() { "$MAILHOOK" -c "$C" -s "$S" "$@"; }
n_files() { find "$S/pickup" "$S/tmp" -type f 2>/dev/null | wc -l; }
"$MAILHOOK" -c "$C" update enabled=true server=127.0.0.1 from=noreply@ex.org >/dev/null

# gen.py SIZE DOTMODE SHAFILE: writes a message to stdout in uneven writes (so
# CR and LF fall on either side of pipe reads); SHAFILE gets the sha1 of what
# the spool must hold after the X- lines.  Lines end in LF or CRLF at random,
# hold CRs, NULs, 8-bit bytes and dots; DOTMODE puts a lone "." line after
# 200 KB followed by 2 MB that must be dropped (and read: no EPIPE).
cat > "$T/gen.py" <<'PY'
import hashlib, random, sys
size, dotmode, shafile = int(sys.argv[1]), sys.argv[2] == "dot", sys.argv[3]
rnd = random.Random(7)
out = sys.stdout.buffer
h = hashlib.sha1()
head = [(b"From: App <app@ex.org>", b"\n"), (b"To: ops@ex.org", b"\r\n"),
        (b"Bcc: audit@ex.org,", b"\n"), (b"  more@ex.org", b"\n"),
        (b"Subject: big fax", b"\r\n"), (b"Date: Fri, 27 Nov 2026 06:22:49 +0000", b"\n"),
        (b"Message-ID: <big@ex.org>", b"\n"), (b"", b"\n")]
pending = bytearray()
def put(raw, want):
    pending.extend(raw)
    if want is not None: h.update(want)
    while len(pending) > 70000:   # uneven writes: 1..70000 bytes
        n = rnd.randint(1, 70000)
        out.write(bytes(pending[:n])); del pending[:n]
for content, end in head:
    put(content + end, None if content.startswith(b"Bcc") or content.startswith(b"  more") else content + b"\r\n")
words = [b"line", b"..dotted", b". dot space", b"x\ry", b"\x00nul", b"\xe9t\xe9", b"\r\rcr", b"."]
total, dot_done = 0, False
while total < size:
    content = b" ".join(rnd.choice(words) for _ in range(rnd.randint(0, 12)))
    if content == b"." or content.endswith(b"\r"): content += b"z"
    end = rnd.choice([b"\n", b"\r\n"])
    # a bare CR ends a line as the data writer sends it (runtime/eol.h): CRLF
    put(content + end, content.replace(b"\r", b"\r\n") + b"\r\n")
    total += len(content) + 2
    if dotmode and total > 200000 and not dot_done:
        put(b".\n", None); dot_done = True
        while total < size: put(b"after the dot\n" * 1000, None); total += 14000
if not dotmode:
    put(b"no newline at the end", b"no newline at the end\r\n")
out.write(bytes(pending)); out.flush()
open(shafile, "w").write(h.hexdigest())
PY
# body.py FILE: sha1 of a spool file after its X-Sender / X-Receiver / X-Submitter-Uid lines and
# the Received line intake puts first (naming the caller's uid: docs/sendmail.md)
cat > "$T/body.py" <<'PY'
import hashlib, sys
h = hashlib.sha1(); env = []
with open(sys.argv[1], "rb") as f:
    while True:
        line = f.readline()
        if line.startswith(b"X-Spool-Size:"): continue   # (the size recorded: docs/spool.md)
        if not line.startswith((b"X-Sender:", b"X-Receiver:", b"X-Submitter-Uid:")): break
        env.append(line.decode().strip())
    if line.startswith(b"Received: by ") and b"(mailhook, from userid" in line:
        line = f.readline()
        while line.startswith((b"\t", b" ")): line = f.readline()
    h.update(line)
    for chunk in iter(lambda: f.read(1 << 16), b""): h.update(chunk)
print(h.hexdigest(), " ".join(env))
PY

asan=0; case $BUILD in *asan*) asan=1;; esac

# --- 50 MB through a pipe, -t -i
/usr/bin/python3 "$T/gen.py" 50000000 plain "$T/want" \
  | /usr/bin/time -o "$T/time" -f "%M %e" "$MAILHOOK" -c "$C" -s "$S" sendmail -t -i 2>"$T/err"
rc=${PIPESTATUS[1]}
is "$rc" 0 "sendmail -t -i of a 50 MB message exits 0"
read -r rss secs < "$T/time"
f=$(ls "$S"/pickup/*.eml)
diag "50 MB through sendmail: peak RSS $((rss / 1024)) MB, $secs s, file $(( $(stat -c %s "$f") / 1000000 )) MB"
if [ $asan = 1 ]; then ok 0 "# SKIP peak RSS under ASan (shadow memory) is not the program's"
else ok $([ "$rss" -lt 20480 ] && echo 0 || echo 1) "peak RSS ${rss} KB < 20 MB"; fi
read -r got envl < <(/usr/bin/python3 "$T/body.py" "$f")
is "$got" "$(cat "$T/want")" "the spool file is the input byte for byte (CRLF, Bcc left out)"
is "$envl" "X-Sender: noreply@ex.org X-Receiver: ops@ex.org X-Receiver: audit@ex.org X-Receiver: more@ex.org X-Submitter-Uid: $(id -u)" \
   "the envelope from the header block (Bcc folded)"
is "$(find "$S/tmp" -type f | wc -l)" 0 "nothing left in tmp/"
rm -f "$f"

# --- the lone dot ends the message, wherever the read boundary falls; the
# rest is read and dropped, so the writer sees no broken pipe
/usr/bin/python3 "$T/gen.py" 2500000 dot "$T/want" | mh sendmail ops@ex.org
st=("${PIPESTATUS[@]}")
is "${st[*]}" "0 0" "without -i: the writer finished (no EPIPE) and sendmail exits 0"
f=$(ls "$S"/pickup/*.eml)
read -r got envl < <(/usr/bin/python3 "$T/body.py" "$f")
is "$got" "$(cat "$T/want")" "the message ends before the dot line"
unlike "$(tail -c 100 "$f" | tr -d '\0')" "after the dot" "nothing after the dot was kept"
rm -f "$f"

# --- bad input: clear error, nothing in tmp/ or pickup/
out=$( { printf 'To: a@ex.org\nX-Long: '; head -c 5000000 /dev/zero | tr '\0' a; printf '\n\nbody\n'; } | mh sendmail -t 2>&1); rc=$?
is "$rc" 65 "a header block over 4 MB: EX_DATAERR"
like "$out" "header block over 4 MB" "says so ($out)"
is "$(n_files)" 0 "nothing in tmp/ or pickup/"
out=$(printf 'Subject: x\n\nbody\n' | mh sendmail -t 2>&1); rc=$?
is "$rc" 64 "no recipient: EX_USAGE"
like "$out" "no recipients" "says so"
is "$(n_files)" 0 "no refusal left anything in tmp/ or pickup/"
# no header lines, an empty message: queued as Postfix queues them (headers added;
# tests/integration/sendmail-callers2.sh has the callers)
out=$(printf '\nbody only\n' | mh sendmail a@ex.org 2>&1); rc=$?
is "$rc:$(n_files)" "0:1" "no header lines: all body, queued"
out=$(printf '.\nafter\n' | mh sendmail a@ex.org 2>&1); rc=$?
is "$rc:$(n_files)" "0:2" "a dot on the first line: an empty message, queued"
out=$(mh sendmail -t a@ex.org 2>&1 < /dev/null); rc=$?
is "$rc:$(n_files)" "0:3" "stdin at its end at once: an empty message, queued"
out=$(printf 'To: a@ex.org\nSubject: x\nX-Cut' | mh sendmail -t 2>&1); rc=$?
is "$rc:$(n_files)" "0:4" "stdin closed in the middle of the header block: queued, the line that is no header is body"
like "$(cat "$(ls -t "$S"/pickup/*.eml | head -1)")" $'Subject: x\r\n(.*\r\n)*\r\nX-Cut\r$' "after the headers intake adds"
is "$(find "$S/tmp" -type f | wc -l)" 0 "nothing left in tmp/"
rm -f "$S"/pickup/*.eml

# --- no body, no final newline: the header block is the message, CRLF added
printf 'To: a@ex.org\nSubject: no body' | mh sendmail -t; rc=$?
is "$rc" 0 "a message without body or final newline is queued"
f=$(ls "$S"/pickup/*.eml)
is "$(tail -c 2 "$f" | od -An -tx1 | tr -d ' \n')" "0d0a" "ends with CRLF"
grep -q $'^Subject: no body\r$' "$f"; ok $? "the last line of the input is a whole header line"

# --- the Lua API: a stream is enqueued once, and needs its envelope
rm -f "$S"/pickup/*.eml
out=$(printf 'Subject: s\nBcc: x@ex.org\n\nbody\n' | "$MAILHOOK" -s "$S" -e '
  local core = require "mailhook.core"
  local sp = assert(require("mailhook.spool").open(...))
  local st = core.spool.stream(0, { dot = false })
  local head, empty = assert(st:head())
  print("HEAD " .. head:gsub("\r", "<CR>"):gsub("\n", "<LF>") .. " " .. tostring(empty))
  print("NOENV", pcall(sp.enqueue, sp, st))
  st:set_head("Subject: s\r\n")
  print("ID", (assert(sp:enqueue(st, { from = "a@ex.org", to = { "b@ex.org" } }))))
  print("AGAIN", pcall(sp.enqueue, sp, st, { to = { "b@ex.org" } }))' "$S" 2>&1)
like "$out" 'HEAD Subject: s<CR><LF>Bcc: x@ex.org<CR><LF> false' "head(): the header lines in CRLF, not empty"
like "$out" "NOENV\s+false.*needs its envelope" "a stream without envelope: an error saying so"
like "$out" "ID\s+[0-9a-f]{16}" "enqueue(stream, env) returns the id"
like "$out" "AGAIN\s+false.*already used" "a second enqueue of the same stream: an error"
is "$(grep -av '^X-' "$S"/pickup/*.eml | od -An -c | tr -s ' \n' ' ')" " S u b j e c t : s \r \n \r \n b o d y \r \n " \
   "the file: the head set, then the rest of the input"

# --- sendmail -bs holds no line beyond its limits: a command line over 4096
# bytes is refused and a DATA line past the size limit makes the message too
# large, without the line being held whole (input:read("L") held it: a 100 MB
# MAIL FROM line took ~300 MB to be refused, a 150 MB DATA line ~450 MB, and a
# longer line took more: nothing bounded it).  The dialogue goes on after each.
rm -f "$S"/pickup/*.eml
cat > "$T/bs.py" <<'PY'
import sys
n, where = int(sys.argv[1]), sys.argv[2]
w = sys.stdout.write
w("EHLO x\r\n")
if where == "command": w("MAIL FROM:<")
else: w("MAIL FROM:<a@ex.org>\r\nRCPT TO:<b@ex.org>\r\nDATA\r\nSubject: big\r\n\r\n")
for _ in range(n // 1000000): w("a" * 1000000)
w("@ex.org>\r\n" if where == "command" else "\r\nmore\r\n.\r\n")
w("MAIL FROM:<a@ex.org>\r\nRCPT TO:<b@ex.org>\r\nDATA\r\nSubject: after\r\n\r\nok\r\n.\r\nQUIT\r\n")
PY
/usr/bin/python3 "$T/bs.py" 100000000 command \
  | /usr/bin/time -o "$T/time" -f "%M %e" "$MAILHOOK" -c "$C" -s "$S" sendmail -bs >"$T/bs.out" 2>"$T/err"
read -r rss secs < "$T/time"
like "$(tr -d '\r' < "$T/bs.out")" $'500 5.5.2 Line too long\n250 2.1.0 Ok\n250 2.1.5 Ok\n354 [^\n]*\n250 2.0.0 Ok: queued as [0-9a-f]{16}\n221 ' \
  "-bs: a 100 MB command line refused (500), the next message queued"
diag "a 100 MB command line to -bs: peak RSS $((rss / 1024)) MB, $secs s"
if [ $asan = 1 ]; then ok 0 "# SKIP peak RSS under ASan (shadow memory) is not the program's"
else ok $([ "$rss" -lt 40960 ] && echo 0 || echo 1) "and the line was never held: peak RSS ${rss} KB < 40 MB"; fi
/usr/bin/python3 "$T/bs.py" 150000000 data \
  | /usr/bin/time -o "$T/time" -f "%M %e" "$MAILHOOK" -c "$C" -s "$S" sendmail -bs >"$T/bs.out" 2>"$T/err"
read -r rss secs < "$T/time"
like "$(tr -d '\r' < "$T/bs.out")" $'552 5.3.4 Message size exceeds fixed limit\n250 2.1.0 Ok\n250 2.1.5 Ok\n354 [^\n]*\n250 2.0.0 Ok: queued as [0-9a-f]{16}\n221 ' \
  "-bs: a 150 MB DATA line over the 100 MB limit: 552, the next message queued"
diag "a 150 MB DATA line to -bs: peak RSS $((rss / 1024)) MB, $secs s"
if [ $asan = 1 ]; then ok 0 "# SKIP peak RSS under ASan (shadow memory) is not the program's"
else ok $([ "$rss" -lt 327680 ] && echo 0 || echo 1) "held at most the size limit's worth: peak RSS ${rss} KB < 320 MB"; fi
is "$(grep -l '^Subject: after' "$S"/pickup/*.eml | wc -l)" 2 "only the messages after the long lines were queued"
rm -f "$S"/pickup/*.eml

done_testing
