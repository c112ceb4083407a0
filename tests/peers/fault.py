#!/usr/bin/python3
"""tests/peers/fault.py — a scripted SMTP peer for the faults no real server
produces on demand (bytes after STARTTLS's 220, a reply cut mid-line, over-long
or mismatched multi-line replies, one byte per second, 421 in the middle of DATA,
a stall after the greeting).  Run it with /usr/bin/python3.

    fault.py --script FILE [--port 0] [--record FILE] [--cert C --key K] [--once]

Every connection runs the script from the top.  Script lines (# starts a comment):
    send TEXT        send TEXT + CRLF
    raw TEXT         send TEXT as is (no CRLF added)
    repeat N TEXT    send TEXT N times (no CRLF added)
    expect REGEX     read one line from the client; it must match (re.search), else
                     EXPECT-FAIL is reported and the connection closed
    read             read one line, whatever it is
    data             read up to and including CRLF.CRLF (the end of DATA)
    sleep SECONDS    pause
    trickle SECONDS  from now on, send one byte every SECONDS (0 = at once)
    starttls [MAX]   TLS handshake as the server (needs --cert/--key); then all
                     reads and writes go through TLS.  MAX (1.0 1.1 1.2 1.3) is the
                     highest version offered (1.0/1.1 at security level 0); with
                     it, a failed handshake prints "TLS-FAIL n REASON" and the raw
                     connection goes on being recorded until the client closes
                     (what a client sends after a refused handshake)
    close            close the connection now
    stall            say nothing more; record until the client closes
TEXT takes Python escapes (\\r \\n \\t \\xNN \\\\).  After the last line the peer
keeps reading (recording) until the client closes, or --idle seconds pass.

Every byte received is appended to --record FILE (the first connection; the Nth
goes to FILE.N), after TLS the decrypted bytes, written at once so a test can
inspect the wire: dot-stuffing, CRLF only, what was sent after a refusal.
stdout, flushed line by line: "PORT n" once listening, then "CONNECT n",
"EXPECT-FAIL n LINENO got ...", "END n REASON" per connection.  SIGTERM exits 0.
"""
import argparse
import codecs
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time

out_lock = threading.Lock()


def say(*words):
    with out_lock:
        print(*words, flush=True)


def unescape(text):
    return codecs.escape_decode(text.encode())[0]


TLS_MAX = {"": None, "1.0": "TLSv1", "1.1": "TLSv1_1", "1.2": "TLSv1_2", "1.3": "TLSv1_3"}


def cap_version(ctx, arg):
    """The highest TLS version ctx offers; OpenSSL 3 serves 1.0/1.1 only at level 0."""
    import warnings
    with warnings.catch_warnings():   # TLSv1/TLSv1_1 are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        if arg in ("1.0", "1.1"):
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = getattr(ssl.TLSVersion, TLS_MAX[arg])


def parse(path):
    """The script as a list of (lineno, op, arg); refuses unknown ops at start."""
    ops = {"send", "raw", "repeat", "expect", "read", "data", "sleep", "trickle",
           "starttls", "close", "stall"}
    steps = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            op, _, arg = line.partition(" ")
            if op not in ops:
                sys.exit(f"fault.py: {path}:{n}: unknown step {op!r}")
            if op == "expect":
                re.compile(arg)
            if op == "starttls" and arg not in TLS_MAX:
                sys.exit(f"fault.py: {path}:{n}: starttls takes 1.0, 1.1, 1.2 or 1.3, not {arg!r}")
            if op == "repeat":
                count, _, text = arg.partition(" ")
                arg = (int(count), text)
            steps.append((n, op, arg))
    return steps


class Conn:
    """One client: the socket (plain or TLS), its read buffer and its record file."""

    def __init__(self, sock, n, record, idle):
        self.sock, self.n, self.buf, self.delay = sock, n, b"", 0.0
        self.idle = idle
        self.rec = None
        if record:
            self.rec = open(record if n == 1 else "%s.%d" % (record, n), "ab", buffering=0)

    def _recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return None
        except (ConnectionError, ssl.SSLError, OSError):
            return b""
        if chunk and self.rec:
            self.rec.write(chunk)
        return chunk

    def readuntil(self, sep):
        """Bytes up to and including sep; None on EOF or --idle seconds of silence."""
        while sep not in self.buf:
            chunk = self._recv(self.idle)
            if not chunk:
                return None
            self.buf += chunk
        i = self.buf.index(sep) + len(sep)
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def readline(self):
        """One line ending in LF (a CRLF line is the usual case)."""
        return self.readuntil(b"\n")

    def send(self, data):
        if self.delay <= 0:
            self.sock.sendall(data)
            return
        for i in range(len(data)):
            self.sock.sendall(data[i:i + 1])
            time.sleep(self.delay)

    def drain(self, timeout):
        """Record whatever the client still sends until it closes (or timeout)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return "idle"
            chunk = self._recv(left)
            if chunk is None:
                return "idle"
            if not chunk:
                return "eof"


def serve(sock, n, steps, o):
    c = Conn(sock, n, o.record, o.idle)
    say("CONNECT", n)
    reason = "done"
    try:
        for lineno, op, arg in steps:
            if op == "send":
                c.send(unescape(arg) + b"\r\n")
            elif op == "raw":
                c.send(unescape(arg))
            elif op == "repeat":
                c.send(unescape(arg[1]) * arg[0])
            elif op in ("expect", "read"):
                line = c.readline()
                if line is None:
                    reason = "eof-at-line-%d" % lineno
                    break
                text = line.rstrip(b"\r\n").decode("utf-8", "replace")
                if op == "expect" and not re.search(arg, text):
                    say("EXPECT-FAIL", n, lineno, "got", repr(text))
                    reason = "expect-failed"
                    break
            elif op == "data":
                if c.readuntil(b"\r\n.\r\n") is None:
                    reason = "eof-in-data"
                    break
            elif op == "sleep":
                time.sleep(float(arg))
            elif op == "trickle":
                c.delay = float(arg)
            elif op == "starttls":
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(o.cert, o.key)
                if c.buf:
                    say("EXPECT-FAIL", n, lineno, "bytes before handshake", repr(c.buf))
                c.sock.settimeout(o.idle)
                if not arg:
                    c.sock = ctx.wrap_socket(c.sock, server_side=True)
                    continue
                cap_version(ctx, arg)
                raw = c.sock.dup()    # the connection outlives a failed handshake
                try:
                    c.sock = ctx.wrap_socket(c.sock, server_side=True)
                except (OSError, ssl.SSLError) as e:
                    say("TLS-FAIL", n, getattr(e, "reason", None) or e.__class__.__name__)
                    c.sock = raw
                    reason = "tls-failed-" + c.drain(o.idle)
                    break
                raw.close()
            elif op == "close":
                reason = "closed"
                break
            elif op == "stall":
                reason = "stalled-" + c.drain(3600)
                break
        else:
            reason = "done-" + c.drain(o.idle)
    except (OSError, ssl.SSLError) as e:
        reason = "error " + e.__class__.__name__
    finally:
        try:
            c.sock.close()
        except OSError:
            pass
    say("END", n, reason)


def main():
    p = argparse.ArgumentParser(description="scripted SMTP fault peer")
    p.add_argument("--script", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--record", help="append every byte received here")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--idle", type=float, default=30, help="seconds of client silence before giving up")
    p.add_argument("--once", action="store_true", help="serve one connection, then exit")
    o = p.parse_args()
    steps = parse(o.script)
    if any(op == "starttls" for _, op, _ in steps) and not (o.cert and o.key):
        sys.exit("fault.py: the script uses starttls: give --cert and --key")

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((o.host, o.port))
    ls.listen(16)
    say("PORT", ls.getsockname()[1])
    n = 0
    while True:
        sock, _ = ls.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        n += 1
        if o.once:
            serve(sock, n, steps, o)
            return 0
        threading.Thread(target=serve, args=(sock, n, steps, o), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
