#!/usr/bin/python3
"""tests/peers/unixgram.py — the other end of mailhook's Unix datagram protocols, for the
service tests: it binds a datagram socket and writes one JSON line per datagram received
to --out (flushed at once, so a test can wait for a line).

  --mode notify    systemd's NOTIFY_SOCKET protocol: newline-separated VAR=VALUE
                   assignments -> {"n": N, "fields": {...}, "raw": "..."}
  --mode journal   the journal's native protocol: NAME=value lines, or NAME\\n + a 64-bit
                   little-endian length + bytes + \\n -> {"n": N, "fields": {...}}
  --mode syslog    a syslog(3) datagram, "<PRI>Mmm dd hh:mm:ss IDENT[PID]: message"
                   -> {"n": N, "raw": "...", "pri": P, "ident": "...", "msg": "..."}

--socket PATH binds a file system socket (removed first); @NAME an abstract one.
"Bound" is printed on stdout once the socket exists, so callers wait for that line.

With --lock-probe FILE (notify mode), each datagram holding READY=1 is followed at once by
a probe of FILE's flock: "held" when another process holds it (the spool lock), "free"
otherwise (the probe releases it at once), in the record's "lock".  With --log-probe FILE
--log-needle TEXT, "logged" says whether FILE contained TEXT when READY=1 arrived.
A datagram that does not parse in its mode is recorded with "error".  SIGTERM exits 0.
"""
import argparse
import fcntl
import json
import os
import re
import signal
import socket
import struct
import sys


def parse_notify(data):
    fields = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        if line == "":
            continue
        k, sep, v = line.partition("=")
        if not sep:
            raise ValueError("assignment without '=': %r" % line)
        fields[k] = v
    return fields


def parse_journal(data):
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, _, v = line.partition(b"=")
            i = nl + 1
        else:
            k = line
            (n,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            v = data[nl + 9:nl + 9 + n]
            if data[nl + 9 + n:nl + 10 + n] != b"\n":
                raise ValueError("binary field %r not followed by a newline" % k)
            i = nl + 10 + n
        if not re.match(rb"^[A-Z0-9][A-Z0-9_]*$", k) or len(k) > 64:
            raise ValueError("bad field name %r" % k)
        fields.setdefault(k.decode(), []).append(v.decode("utf-8", "replace"))
    # one value per name is the rule for what mailhook sends: flatten, keep lists as an error
    flat = {}
    for k, vs in fields.items():
        if len(vs) != 1:
            raise ValueError("field %s sent %d times" % (k, len(vs)))
        flat[k] = vs[0]
    return flat


SYSLOG_RE = re.compile(r"^<(\d+)>(\w{3} [ \d]\d \d\d:\d\d:\d\d) ([^\[: ]+)(?:\[(\d+)\])?: (.*)$", re.S)


def parse_syslog(data):
    text = data.decode("utf-8", "replace").rstrip("\0").rstrip("\n")
    m = SYSLOG_RE.match(text)
    if not m:
        raise ValueError("not a syslog(3) line: %r" % text)
    return {"raw": text, "pri": int(m.group(1)), "ident": m.group(3),
            "pid": int(m.group(4)) if m.group(4) else None, "msg": m.group(5)}


def lock_state(path):
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as e:
        return "missing (%s)" % e.strerror
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return "held"
    finally:
        os.close(fd)        # closing releases a probe lock we got
    return "free"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--socket", required=True)
    p.add_argument("--mode", choices=["notify", "journal", "syslog"], required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--lock-probe")
    p.add_argument("--log-probe")
    p.add_argument("--log-needle")
    a = p.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if a.socket.startswith("@"):
        s.bind("\0" + a.socket[1:])
    else:
        try:
            os.unlink(a.socket)
        except FileNotFoundError:
            pass
        s.bind(a.socket)
        os.chmod(a.socket, 0o666)     # a service that dropped privileges may write to it
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    out = open(a.out, "a", buffering=1)
    print("Bound", flush=True)
    n = 0
    while True:
        data = s.recv(1 << 20)
        n += 1
        rec = {"n": n}
        try:
            if a.mode == "notify":
                rec["raw"] = data.decode("utf-8", "replace")
                rec["fields"] = parse_notify(data)
                if rec["fields"].get("READY") == "1":
                    if a.lock_probe:
                        rec["lock"] = lock_state(a.lock_probe)
                    if a.log_probe:
                        try:
                            with open(a.log_probe, "r", errors="replace") as f:
                                rec["logged"] = a.log_needle in f.read()
                        except OSError:
                            rec["logged"] = False
            elif a.mode == "journal":
                rec["fields"] = parse_journal(data)
            else:
                rec.update(parse_syslog(data))
        except Exception as e:      # recorded, so the test names what was malformed
            rec["error"] = str(e)
            rec["raw"] = data.decode("utf-8", "replace")
        out.write(json.dumps(rec, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
