# Delivery of a big message (a fax, a voicemail with a long recording): it is
# read from its spool file piece by piece as it is sent (core.smtp
# submit_file), so the deliverer's memory does not grow with the message, and
# it arrives byte for byte: dot-stuffing across the pieces, 8-bit bytes, long
# lines and a line that is a single dot all survive.  Under strace (issue 16
# point 3): a 100 KB message's file is read once, and a big message's data
# leaves before the next message's file is read for its submit.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require
[ -x /usr/bin/time ] || { echo "Bail out! /usr/bin/time is missing (Debian package time)"; exit 1; }

PORT=$(free_port)
conf_for "$PORT"

peer_start "$PORT" "$T/peer"

# 12 MB: lines of every length up to 990 octets, some starting with ".", one
# made of a single ".", 8-bit bytes; CRLF line ends (what a spool file holds)
$PY - "$T/big.eml" <<'PY'
import random, sys
random.seed(5)
out = [b"From: fax@example.com\r\nTo: ok@example.net\r\nSubject: big fax\r\n"
       b"Message-ID: <big@test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
       b"Content-Transfer-Encoding: 8bit\r\n\r\n"]
size = 0
i = 0
while size < 12 * 1024 * 1024:
    i += 1
    n = random.randrange(0, 990)
    line = bytes(random.choice(b"abcdefghij .\xc3\xa9") for _ in range(n))
    if i % 97 == 0:
        line = b"." + line[:n]
    if i == 5000:
        line = b"."
    out.append(line + b"\r\n")
    size += len(line) + 2
open(sys.argv[1], "wb").write(b"".join(out))
PY
enqueue_file "$T/big.eml" -- fax@example.com >/dev/null
is "$(pickup_count)" 1 "a 12 MB message queued"

# peak RSS of a flush (KB); an ASan build keeps freed blocks in quarantine,
# which would count every piece sent: not here (ignored by other builds)
flush_rss() {
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0" \
    /usr/bin/time -f "%M" -o "$T/rss" "$MAILHOOK" flush >"$T/flush.out" 2>&1 || return 1
  tail -1 "$T/rss"
}
big=$(flush_rss); rc=$?
is "$rc" 0 "flush delivers it"
wait_for 10 received_at_least "$T/peer" 1
cmp -s "$T/big.eml" "$T/peer/000001.eml"; ok $? "the server received it byte for byte"
is "$(pickup_count)" 0 "and it left pickup/"

# the same binary delivering two small messages (read with their entry) is the baseline
enqueue 2 >/dev/null
small=$(flush_rss); ok $? "small messages after it"
wait_for 10 received_at_least "$T/peer" 3; ok $? "all three received"
diag "peak RSS of mailhook flush: $big KB for the $(stat -c %s "$T/big.eml")-byte message, $small KB for two small ones"
[ $((big - small)) -lt 6000 ]; ok $? "the big message costs under 6 MB more ($((big - small)) KB): it is never held whole"

# a 100 KB message (streamed: over 16 KiB) is read from its file once: the
# pre-scan (long lines, NUL, the header's 8-bit bytes) reads it whole before
# it is submitted and its first piece is what is sent (it was read three
# times: the header's 64 KiB, the whole file for the long lines, and the
# piece sent).  The load reads the envelope and the header's first bytes too.
if strace -f -o /dev/null true 2>/dev/null; then
  $PY - "$T/mid.eml" <<'PY'
import sys
body = b"".join((b"." if i % 50 == 0 else b"") + b"line %05d " % i + b"x" * 60 + b"\r\n" for i in range(1400))
open(sys.argv[1], "wb").write(b"From: a@example.com\r\nTo: ok@example.net\r\nSubject: mid\r\n\r\n" + body)
PY
  enqueue_file "$T/mid.eml" >/dev/null
  ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
    strace -f -qq -y -e trace=read,pread64,readv,preadv -o "$T/mid.tr" "$MAILHOOK" flush >"$T/flush.out" 2>&1
  ok $? "flush delivers a 100 KB message (traced)"
  wait_for 10 received_at_least "$T/peer" 4
  cmp -s "$T/mid.eml" "$T/peer/000004.eml"; ok $? "it arrives byte for byte"
  size=$(stat -c %s "$T/mid.eml")
  # (joined: a read another thread's line cut has its byte count on its "resumed" half)
  got=$(strace_joined "$T/mid.tr" | grep -E '^[0-9]+ +p?readv?64?\([0-9]+<[^>]*/pickup/[0-9a-f]{16}\.eml>' |
        sed -nE 's/.*= ([0-9]+)$/\1/p' | awk '{ s += $1 } END { print s + 0 }')
  diag "read from its spool file: $got bytes for a $size-byte message"
  [ "$got" -le $((size + 16384)) ]; ok $? "its file is read once ($got bytes read, the message is $size)"

  # three messages of 1 MB (four pieces each), to smtp-sink (PIPELINING: the
  # next message's commands ride with the final dot): once the first is
  # recorded, the second's data leaves before the third's file is opened and
  # read whole for its submit (the pre-scan would else keep the server waiting;
  # 5 MB: ms)
  if start_sink SINK; then
    conf_for "$SINK"
    for i in 1 2 3; do
      $PY -c "import sys; sys.stdout.buffer.write(b'Subject: m$i\r\n\r\n' + b''.join(b'%07d ' % k + b'y' * 70 + b'\r\n' for k in range(13000)))" > "$T/m$i.eml"
      enqueue_file "$T/m$i.eml" >/dev/null
    done
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
      strace -f -qq -y -e trace=openat,write -o "$T/three.tr" "$MAILHOOK" flush >"$T/flush.out" 2>&1
    ok $? "flush delivers three 1 MB messages to smtp-sink (traced)"
    # the line numbers: the first record, the socket's next write, the third file's open for its send
    order=$($PY - "$T/three.tr" <<'PY'
import re, sys
rec = sock = third = None
opened = []
for n, l in enumerate(open(sys.argv[1]), 1):
    if rec is None and re.search(r'write\(\d+<[^>]*/delivered>', l):
        rec = n
    elif rec is not None and sock is None and re.search(r'write\(\d+<(TCP|socket)', l):
        sock = n
    m = re.search(r'openat\(AT_FDCWD(?:<[^>]*>)?, "[^"]*/pickup/([0-9a-f]{16})\.eml", O_RDONLY', l)
    if m and m.group(1) not in opened:
        opened.append(m.group(1))
        if len(opened) == 3: third = n
print(rec, sock, third)
PY
    )
    read -r rec sock third <<< "$order"
    diag "first record, the next socket write, the third message opened for its send: lines $order"
    [ "$rec" != None ] && [ "$sock" != None ] && [ "$third" != None ] && [ "$sock" -lt "$third" ]
    ok $? "after the first record, the second's data goes before the third is read"
  else
    ok 1 "smtp-sink did not start"
  fi
else
  diag "strace cannot trace here: the reads of a 100 KB message not counted"
fi
done_testing
