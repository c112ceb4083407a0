# `sendmail -bs` as its biggest caller drives it: PHP's Symfony Mailer (and so Laravel,
# whose 'sendmail' mailer path is "/usr/sbin/sendmail -bs -i"), rebuilt from its source
# (symfony/mailer 6.4-7.x) byte for byte in a Python driver, through the sendmail link of
# a staged install, as root and as an unprivileged user (through mailhook-drop), each
# message read back from a recording server (aiosmtpd --maildir): envelope and bytes.
#   SendmailTransport   a command with " -bs": a ProcessStream (proc_open of the command
#                       through /bin/sh, pipes for 0, 1 and 2; stderr read once, at once,
#                       without blocking: anything there is "Process could not be
#                       started") driven by a plain SmtpTransport (never Esmtp: no EHLO)
#   SmtpTransport       start(): the greeting, 220; "HELO [127.0.0.1]" (its default
#                       domain), 250.  Per message: a NOOP (250, else stop()) first when
#                       the last message is over pingThreshold (100 s) old or the last
#                       send failed; "MAIL FROM:<a>" (250; " SMTPUTF8" only when the
#                       transport supports it, and SmtpTransport says it does not: a
#                       non-ASCII local part throws before MAIL, a domain goes out as
#                       IDNA), "RCPT TO:<b>" each (250, 251 or 252), "DATA" (354), the
#                       message with "\r\n." made "\r\n..", then "\r\n.\r\n" (250; the
#                       queue id taken from "250 [x.y.z ]Ok: queued as ID").  No RSET
#                       between messages; a reply it does not expect throws, then
#                       "RSET" (250 expected, a failure ignored).  stop() (destructor,
#                       the restart threshold): "QUIT" (221), then stdin and stdout closed.
#                       A reply is lines read up to the one whose 4th byte is a space.
#   Swift Mailer 5/6    (Laravel <= 8, Symfony <= 4) the same HELO session, but a refused
#                       RCPT is only counted: DATA for the others, RSET when none is
#                       left; each Bcc in a transaction of its own, its message holding
#                       "Bcc: that address" (mailhook takes the field out)
#   stderr unread       after the start: a broken aliases file and 500 local RCPTs, the
#                       warning once (one per RCPT filled the pipe: a hang)
#   No service          (mail disabled) a 554 greeting saying why: start() throws with it,
#                       where an end of output said only "closed unexpectedly"
#   Without QUIT        the PHP process dies (fatal error, kill): stdin closed between
#                       messages, or during DATA when writing the body throws (the
#                       transport is terminated without the final dot).
# Needs root (a group for the drop program, users); skipped otherwise.
. "$ROOT/tests/lib/tap.sh"
. "$ROOT/tests/lib/peers.sh"
. "$ROOT/tests/lib/mailer.sh"

callers_env
new_user mhlara; USR=$NEW_USER
cat > "$T/symfony_bs.py" <<'PY'
# symfony_bs.py COMMAND SCENARIO OUTDIR: Symfony's SendmailTransport(COMMAND) sending the
# scenario's messages; prints "STATUS DESC" per check (0 = pass), writes OUTDIR/sent-K.eml
# (what the MTA must have received: the message and the CRLF of the final dot) and
# OUTDIR/sent-K.env ("from to...") for each message it saw accepted
import os, re, select, subprocess, sys
cmd, scenario, out = sys.argv[1:4]
LIMIT = int(os.environ.get("BS_LIMIT", 30))  # seconds any reply may take: a hang fails
def check(cond, desc): print("%d %s" % (0 if cond else 1, desc), flush=True)

class TransportError(Exception):
    def __init__(self, msg, code=0): super().__init__(msg); self.code = code

class ProcessStream:
    def initialize(self):
        self.p = subprocess.Popen(cmd, shell=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, bufsize=0)
        self.buf = b""
        self.eof = False
    def write(self, b):
        try: self.p.stdin.write(b)
        except BrokenPipeError: raise TransportError("Unable to write bytes on the wire.")
    def readline(self):                      # fgets(): a line with its LF; b"" at the end
        while b"\n" not in self.buf and not self.eof:
            r, _, _ = select.select([self.p.stdout], [], [], LIMIT)
            if not r: raise TransportError("Connection to process timed out.")
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if chunk: self.buf += chunk
            else: self.eof = True
        if b"\n" in self.buf:
            i = self.buf.index(b"\n") + 1
            line, self.buf = self.buf[:i], self.buf[i:]
            return line
        if self.buf: line, self.buf = self.buf, b""; return line
        raise TransportError("Connection to process has been closed unexpectedly.")
    def terminate(self):                     # fclose(in), fclose(out), proc_close()
        self.p.stdin.close(); self.p.stdout.close()
        try: rc = self.p.wait(LIMIT)
        except subprocess.TimeoutExpired: self.p.kill(); rc = "hung"
        err = self.p.stderr.read(); self.p.stderr.close()
        return rc, err

class SmtpTransport:
    def __init__(self):
        self.stream, self.started, self.last = ProcessStream(), False, None   # None: 0
        self.log = []
    def response(self):                      # getFullResponse()
        r = b""
        while True:
            line = self.stream.readline()
            r += line
            if not (line and len(line) > 3 and line[3:4] != b" "): return r
    def expect(self, r, codes, what):        # assertResponseCode(), each one a check
        m = re.match(rb"\d{3}", r)
        code = int(m.group()) if m else 0
        self.log.append((what, code))
        if code not in codes:
            raise TransportError("Expected response code %s but got %s (%r) to %s" % (codes, code, r, what), code)
        return r
    def command(self, c, codes):             # executeCommand()
        self.stream.write(c)
        return self.expect(self.response(), codes, c.split(b" ")[0].strip().decode())
    def start(self):
        self.stream.initialize()
        self.expect(self.response(), [220], "greeting")
        self.command(b"HELO [127.0.0.1]\r\n", [250])
        self.started, self.last = True, None
    def stop(self):
        if not self.started: return None
        try: self.command(b"QUIT\r\n", [221])
        except TransportError: pass
        self.started = False
        return self.stream.terminate()
    def ping(self):
        if not self.started: return
        try: self.command(b"NOOP\r\n", [250])
        except TransportError: self.stop()
    # send(): doSend() and, on a TransportError, RSET; idle: the last message is older
    # than pingThreshold (the driver cannot wait 100 s: it says when that is so)
    def send(self, msg, sender, rcpts, idle=False, cut=False):
        try:
            if self.last is None or idle: self.ping()
            try:
                if not self.started: self.start()
                self.command(b"MAIL FROM:<%s>\r\n" % sender, [250])
                for r in rcpts: self.command(b"RCPT TO:<%s>\r\n" % r, [250, 251, 252])
                self.command(b"DATA\r\n", [354])
                self.stream.write(msg.replace(b"\r\n.", b"\r\n.."))
                if cut: return None          # the body's writing threw: terminate(), no dot
                r = self.command(b"\r\n.\r\n", [250])
                self.last = 1
                m = re.search(rb"^250 (?:\S+ )?Ok:?+ (?:queued as |id=)?+(?P<id>[A-Z0-9._-]++)", r, re.I | re.M)
                return m.group("id").decode() if m else ""
            except TransportError:
                self.last = None
                raise
        except TransportError as e:
            if self.started:
                try: self.command(b"RSET\r\n", [250])
                except TransportError: pass
            return e

def email(n, subject, body, to=b"customer@example.net"):
    # what Symfony's Email serialises to (Message::toIterable()): its prepared headers,
    # CRLF, a quoted-printable text part with no final line end
    return (b"From: Shop <shop@example.com>\r\nTo: %s\r\nSubject: %s\r\n"
            b"Message-ID: <c0ffee%02d1e4b5a8d@example.com>\r\nMIME-Version: 1.0\r\n"
            b"Date: Mon, 07 Dec 2026 10:12:44 +0000\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n%s"
            % (to, subject, n, body))

sent = 0
t = SmtpTransport()
def send(msg, sender, rcpts, desc, **kw):
    global sent
    r = t.send(msg, sender, rcpts, **kw)
    if kw.get("cut"): return r
    check(isinstance(r, str), "%s: accepted (%s)" % (desc, r if isinstance(r, TransportError) else t.log[-1]))
    if isinstance(r, str):
        if os.getuid() == 0:
            check(re.fullmatch(r"[0-9a-f]{16}", r) is not None, "%s: Symfony reads the queue id from the 250 (%r)" % (desc, r))
        else:                                # mailhook-drop: the id comes at pickup; none is read
            check(r == "", "%s: Symfony reads no queue id from the 250, it keeps the Message-ID (%r)" % (desc, r))
        sent += 1
        open(os.path.join(out, "sent-%d.eml" % sent), "wb").write(msg + b"\r\n")
        open(os.path.join(out, "sent-%d.env" % sent), "wb").write(b" ".join([sender] + rcpts) + b"\n")
    return r
def finish(desc, quit=True):
    if quit: rc, err = t.stop()
    else: rc, err = t.stream.terminate()
    check(rc == 0, "%s: sendmail exits 0 (%s)" % (desc, rc))
    check(err == b"", "%s: nothing on stderr (Symfony fails a start that writes there) %r" % (desc, err[:300]))
    print("# " + " ".join("%s=%d" % w for w in t.log), flush=True)

S, R = b"shop@example.com", [b"customer@example.net"]
if scenario == "one":
    send(email(1, b"Your order 1234", b"Thank you for your order.=0A=0ATotal: 12.00 EUR"), S, R, "one message")
    finish("one message, QUIT")
    check(t.log[-1] == ("QUIT", 221), "QUIT answered 221 %r" % (t.log[-1],))
elif scenario == "three":
    for k in (1, 2, 3):
        send(email(10 + k, b"Invoice %d" % k, b"Invoice %d attached." % k), S,
             R + [b"billing@example.org"], "message %d of 3 on one process" % k, idle=(k == 3))
    finish("three messages, QUIT")
    check([w for w, _ in t.log] == ["greeting", "HELO"] + ["MAIL", "RCPT", "RCPT", "DATA", "."] * 2 +
          ["NOOP", "MAIL", "RCPT", "RCPT", "DATA", ".", "QUIT"], "three messages: Symfony's commands, no RSET, the idle NOOP")
elif scenario == "failure":
    r = t.send(email(20, b"To nobody", b"x"), S, [b"a b@example.net"])
    check(isinstance(r, TransportError) and 500 <= r.code < 600, "a recipient that is no address: RCPT refused 5xx, Symfony throws (%s)" % r)
    check(t.log[-1] == ("RSET", 250), "then its RSET answered 250 %r" % (t.log[-1],))
    send(email(21, b"After a failure", b"Second try."), S, R, "the next message (a NOOP first: the last send failed)")
    check([w for w, _ in t.log][-6:-4] == ["RSET", "NOOP"], "RSET, then the NOOP ping, both 250")
    finish("after a failed send, QUIT")
elif scenario == "raw":
    # Mailer::send(new RawMessage($string), $envelope): the string as written: a line that is
    # ".", one starting with "." and "..", a 998-byte line (RFC 5322's most: a longer one is
    # sent quoted-printable, docs/smtp.md), UTF-8, an IDNA recipient domain,
    # a final CRLF (so the dot's CRLF makes an empty last line)
    body = ("Header: none, this is the body\r\n.\r\n.leading dot\r\n..two dots\r\n" + "x" * 998 +
            "\r\nGrüße aus Köln — 8-bit UTF-8, no encoding\r\n\r\nend\r\n").encode()
    msg = (b"From: Shop <shop@example.com>\r\nTo: kunde@xn--bcher-kva.example\r\nSubject: raw\r\n"
           b"Message-ID: <raw0001@example.com>\r\nDate: Mon, 07 Dec 2026 10:12:44 +0000\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body)
    send(msg, S, [b"kunde@xn--bcher-kva.example"], "a RawMessage: dots, a long line, 8-bit, an IDNA domain")
    send(email(31, b"Then killed", b"No QUIT follows."), S, R, "a second message, then the PHP process dies")
    finish("stdin closed after a message, no QUIT", quit=False)
elif scenario == "swift":
    # Swift Mailer 5/6 (Laravel <= 8, Symfony <= 4: "/usr/sbin/sendmail -bs"), the same
    # HELO session (AbstractSmtpTransport), but a refused RCPT is only counted failed and
    # the others go on to DATA; no recipient left: RSET; each Bcc its own transaction with
    # the message carrying "Bcc: that one" (mailhook takes the field out)
    t.start()
    def swift_transaction(msg, rcpts, want, desc):
        global sent
        t.command(b"MAIL FROM:<%s>\r\n" % S, [250])
        ok = []
        for r in rcpts:
            try: t.command(b"RCPT TO:<%s>\r\n" % r, [250, 251, 252]); ok.append(r)
            except TransportError: pass
        if not ok:
            t.command(b"RSET\r\n", [250])
            return
        t.command(b"DATA\r\n", [354])
        t.stream.write(msg.replace(b"\r\n.", b"\r\n.."))
        t.command(b"\r\n.\r\n", [250])
        check(True, desc)
        sent += 1
        open(os.path.join(out, "sent-%d.eml" % sent), "wb").write(want + b"\r\n")
        open(os.path.join(out, "sent-%d.env" % sent), "wb").write(b" ".join([S] + ok) + b"\n")
    head = (b"Message-ID: <5f1e2d3c4b5a69788796a5b4c3d2e1f0@swift.generated>\r\n"
            b"Date: Mon, 07 Dec 2026 10:12:44 +0000\r\nSubject: Welcome\r\n"
            b"From: Shop <shop@example.com>\r\nTo: customer@example.net, a b@example.net\r\n")
    tail = (b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\nWelcome aboard.=0A.")
    try:
        swift_transaction(head + tail, [b"customer@example.net", b"a b@example.net"], head + tail,
                          "Swift: a refused RCPT among the To, DATA for the other")
        swift_transaction(head + b"Bcc: audit@example.org\r\n" + tail, [b"audit@example.org"], head + tail,
                          "Swift: the Bcc's own transaction, its Bcc field in the message")
        swift_transaction(head + tail, [b"a b@example.net"], b"", "")
        check(t.log[-2:] == [("RCPT", 553), ("RSET", 250)], "Swift: no recipient taken: RSET, 250 %r" % (t.log[-2:],))
    except TransportError as e:
        check(False, "Swift: a reply it does not take: %s" % e)
    finish("Swift Mailer, QUIT")
elif scenario == "aliases":
    # a broken aliases file and a message to 500 local names (Symfony takes "u1@localhost"):
    # mailhook's warning goes to the stderr Symfony never reads after the start; more
    # than its pipe holds (64 KiB) and sendmail, and PHP waiting on its reply, hang
    r = t.send(email(50, b"To the locals", b"Hi."), S, [b"u%d@localhost" % k for k in range(1, 501)])
    check(isinstance(r, str), "a message to 500 local names with the aliases file broken: accepted (%s)" % r)
    rc, err = t.stop()
    check(rc == 0, "aliases broken: sendmail exits 0 (%s)" % rc)
    n = err.count(b"mailhook: warning:")     # (its line in the log sink may follow it)
    check(n == 1 and b"the aliases file is not used" in err,
          "the broken aliases file warned about once in the session (%d times, %d bytes: %r)" % (n, len(err), err[:300]))
elif scenario == "disabled":
    # outgoing mail disabled: start() reads the greeting; anything but 220 throws (not
    # started: no QUIT), and what the exception says is all the application logs
    try:
        t.start(); r = None
    except TransportError as e:
        r = e
    check(isinstance(r, TransportError) and r.code == 554 and b"disabled" in str(r).encode(),
          "mail disabled: Symfony's start() fails on a 554 greeting that says why (%s)" % r)
    rc, err = t.stream.terminate()
    check(rc == 69, "mail disabled: sendmail exits 69 as ever (%s)" % rc)
elif scenario == "cut":
    send(email(40, b"Before the cut", b"Kept."), S, R, "a message before the cut")
    t.send(email(41, b"Cut", b"never ends " * 100), S, R, cut=True)
    finish("stdin closed in DATA (the body's write threw), no QUIT", quit=False)
print("sent %d" % sent)
PY
chmod 644 "$T/symfony_bs.py"

# delivered N WHO: deliver what waits (root's `sendmail -q`), then each of the N messages
# the driver saw accepted (in $T/WHO) is found in the recording server's mailbox by its
# Message-ID: the bytes after mailhook's Received field are what Symfony sent, the
# envelope its MAIL FROM (SENDER: what the user may send as) and RCPTs
delivered() {
  env -u MAILHOOK_CONF -u MAILHOOK_SPOOL "$SM" -q >"$T/q.out" 2>&1 || diag "sendmail -q: $(cat "$T/q.out")"
  /usr/bin/python3 - "$T/mail" "$T/$2" "$1" "$3" <<'PY'
import glob, json, os, re, sys
box, sent, n, sender = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
got = {}
for f in sorted(glob.glob(os.path.join(box, "*.eml"))):   # the newest last: it wins
    b = open(f, "rb").read()
    m = re.search(rb"(?im)^message-id:[ \t]*(\S+)", b.split(b"\r\n\r\n", 1)[0])
    if m:
        j = json.load(open(f[:-4] + ".json"))
        got[(m.group(1), tuple(j["to"]))] = (b, j)
for k in range(1, n + 1):
    want = open(os.path.join(sent, "sent-%d.eml" % k), "rb").read()
    env = open(os.path.join(sent, "sent-%d.env" % k)).read().split()
    mid = re.search(rb"(?im)^message-id:[ \t]*(\S+)", want).group(1)
    b, j = got.get((mid, tuple(env[1:])), (b"", {"from": "", "to": []}))
    # mailhook's Received field first (with its folded lines), then the message as sent
    rest = re.sub(rb"\AReceived:[^\r]*\r\n(?:[ \t][^\r]*\r\n)*", b"", b)
    d = mid.decode()
    k = next((i for i, (x, y) in enumerate(zip(rest, want)) if x != y), min(len(rest), len(want)))
    print("%d %s delivered, the bytes after the Received field exactly as Symfony sent them%s" %
          (rest != want, d, "" if rest == want else " (at byte %d of %d, %d sent: got %r, sent %r)" %
           (k, len(rest), len(want), rest[max(k - 40, 0):k + 40], want[max(k - 40, 0):k + 40])))
    print("%d %s: envelope %s | %s" % ([j["from"]] + j["to"] != [sender] + env[1:], d, j["from"], " ".join(j["to"])))
PY
}
# run WHO SCENARIO: the driver as WHO (root or $USR) with Laravel's command line
run() {
  mkdir -p "$T/$1"; chmod 777 "$T/$1"
  if [ "$1" = root ]; then
    env -u MAILHOOK_CONF -u MAILHOOK_SPOOL /usr/bin/python3 "$T/symfony_bs.py" "$SM -bs -i" "$2" "$T/$1" > "$T/drv.out" 2>"$T/drv.err"
  else
    as "$1" /usr/bin/python3 "$T/symfony_bs.py" "$SM -bs -i" "$2" "$T/$1" > "$T/drv.out" 2>"$T/drv.err"
  fi
  ok $? "$1, $2: the driver ran to its end ($(head -c 300 "$T/drv.err"))"
  local st desc
  while read -r st desc; do
    case $st in 0|1) ok "$st" "$1, $2: $desc" ;; '#') diag "$desc" ;; sent) NSENT=$desc ;; esac
  done < "$T/drv.out"
}

for who in root "$USR"; do
  # root may send as shop@example.com (the account's domain); another user sends as the account
  if [ "$who" = root ]; then FROM=shop@example.com; else FROM=pbx@example.com; fi
  for sc in one three failure raw cut swift; do
    rm -rf "$T/$who"; NSENT=0
    run "$who" $sc
    while read -r st desc; do ok "$st" "$who, $sc: $desc"; done < <(delivered "$NSENT" "$who" "$FROM")
  done
done
is "$(count_mail "$T/mail")" 20 "20 messages delivered in all: the cut one never stored"
# a broken aliases file (an alias with no address), readable by all
printf 'root:\n' > "$T/aliases"; chmod 644 "$T/aliases"
root_mh update aliases="$T/aliases" >/dev/null 2>&1
for who in root "$USR"; do BS_LIMIT=10 run "$who" aliases; done
root_mh update enabled=false >/dev/null 2>&1
for who in root "$USR"; do run "$who" disabled; done
done_testing
