# The session breaking in the middle of a burst (two messages in flight, the
# data of the deliverer's load a handle its submit takes: docs/delivery.md):
# a 421 in the middle of DATA, a reply cut in half, a close after the 354, with
# one and two connections, 1 KB and 600 KB messages.  Afterwards, against a real
# server (aiosmtpd), every message arrives once, byte for byte (none is sent
# again with no data or with another's), and the log says why the first flush
# stopped.  The scripted peer takes one message per connection and breaks on the
# next: the one in flight (its data handle taken by its submit) is loaded again
# and goes on a new connection.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/delivery.sh"
delivery_require

HELLO='send 220 fault.example ESMTP
expect ^EHLO
send 250-fault.example
send 250 PIPELINING'

# make_msgs N SIZE: N messages of SIZE bytes in $T/src-*.eml, queued in order (made once
# per size, in $T/gen-SIZE: the same bytes for every scenario of that size)
make_msgs() {
  rm -f "$T"/src-*.eml
  [ -d "$T/gen-$2" ] || { mkdir "$T/gen-$2"; $PY - "$T/gen-$2" "$1" "$2" <<'PY'
import sys, random
t, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(1, n + 1):
    random.seed(i * 7 + size)
    head = (b"From: app@example.com\r\nTo: ok@example.net\r\nSubject: msg %d\r\nMessage-ID: <%d-%d@test>\r\n\r\n"
            % (i, i, size))
    body, left = [], size - len(head)
    while left > 0:
        line = bytes(random.choices(b"abcdefghij .", k=random.randrange(0, 200)))   # (one C loop, not a call a byte)
        if random.random() < 0.05: line = b"." + line
        body.append(line + b"\r\n"); left -= len(line) + 2
    open("%s/src-%03d.eml" % (t, i), "wb").write(head + b"".join(body))
PY
  }
  cp "$T/gen-$2"/src-*.eml "$T/"
  enqueue_file "$T"/src-*.eml -- app@example.com >/dev/null
}

# arrivals: every queued message is at aiosmtpd or was taken by the fault peer (its
# Message-ID in a record there), none twice at aiosmtpd, none there that was not queued;
# prints "AT-PEER UNIQUE WRONG LOST"
arrivals() {
  $PY - "$T" "$T/peer" "$F_REC"* <<'PY'
import sys, glob, os, re
t, peer, recs = sys.argv[1], sys.argv[2], sys.argv[3:]
src = {open(p, "rb").read(): p for p in sorted(glob.glob(t + "/src-*.eml"))}
got = [open(p, "rb").read() for p in sorted(glob.glob(peer + "/*.eml"))]
names = [src[g] for g in got if g in src]
wrong = len(got) - len(names)
faulted = b"".join(open(r, "rb").read() for r in recs)
# what the fault peer was sent: each DATA's bytes, dot-stuffing undone, are a queued
# message whole (its final dot came) or the start of one (the session broke)
for rec in recs:
    for part in open(rec, "rb").read().split(b"\r\nDATA\r\n")[1:]:
        whole = b"\r\n.\r\n" in part
        body = part.split(b"\r\n.\r\n")[0] + b"\r\n" if whole else part
        body = re.sub(rb"(^|\r\n)\.", rb"\1", body)
        if not any(s == body if whole else s.startswith(body) for s in src):
            wrong += 1
            print("wrong data sent (%s, %d bytes): %r" % ("whole" if whole else "cut", len(body), body[:60]),
                  file=sys.stderr)
lost = [os.path.basename(p) for b, p in src.items() if p not in names
        and re.search(rb"Message-ID: (<[^>]*>)", b).group(1) not in faulted]
print(len(names), len(set(names)), wrong, len(lost))
PY
}

# scenario NAME CONNS SIZE: 4 messages of SIZE, a flush against the fault peer (script on
# stdin: every connection takes one message, then breaks on the next), then one against aiosmtpd
# (one for all scenarios, its messages removed before each)
N=4
peer_start "$(free_port)" "$T/peer" || { echo "Bail out! aiosmtpd did not start"; exit 1; }
GOOD=$PEER
scenario() {
  local name=$1 conns=$2 size=$3
  SPOOL=$T/spool-$name-$conns-$size; export MAILHOOK_SPOOL=$SPOOL
  rm -f "$T/peer"/*.eml "$T/peer"/*.json
  start_fault F "$(fault_script)" --idle 5 || { echo "Bail out! fault.lua did not start"; exit 1; }
  conf_for "$F" connections="$conns" retry_interval=30 retry_max=60 command_timeout=2 data_timeout=3 \
    session_deadline=20
  spool_make
  make_msgs $N "$size"
  FLUSH_OUT=$(MAILHOOK_LOG_LEVEL=info timeout 60 "$MAILHOOK" flush 2>&1); FLUSH_RC=$?
  stop_peer F
  conf_for "$GOOD" connections="$conns"
  timeout 60 "$MAILHOOK" flush >/dev/null 2>&1
  local a; a=$(arrivals)
  set -- $a
  is "$3 $4" "0 0" "$name, $conns connection(s), $size-byte messages: none wrong, none lost ($a)"
  is "$1" "$2" "$name, $conns connection(s), $size bytes: none twice at the second server"
  is "$(pickup_count)" 0 "$name, $conns/$size: nothing left after the second flush"
  like "$FLUSH_OUT" "$WHY" "$name, $conns/$size: the log says why the session ended"
}

for conns in 1 2; do
  for size in 1000 600000; do
    WHY='(421 4.3.0 going down mid-DATA|session broke with [0-9a-f]{16} in flight)'
    scenario 421-mid-data "$conns" "$size" <<S
$HELLO
$TXN
data
send 250 2.0.0 taken
$TXN
read
read
send 421 4.3.0 going down mid-DATA
close
S
    WHY='session broke with [0-9a-f]{16} in flight \('
    scenario cut-reply "$conns" "$size" <<S
$HELLO
$TXN
data
send 250 2.0.0 taken
$TXN
data
raw 25
close
S
    WHY='session broke with [0-9a-f]{16} in flight \('
    scenario close-after-354 "$conns" "$size" <<S
$HELLO
$TXN
data
send 250 2.0.0 taken
$TXN
close
S
  done
done
done_testing
