#!/usr/bin/python3
"""tests/peers/maildir.py — read what a real MTA (Exim, OpenSMTPD) delivered into its maildir,
for tests/lib/mta.sh and tests/integration/mta-*.sh.

  maildir.py list DIR        one line per delivered message (new/ and cur/), oldest first:
                             RCPT<TAB>MESSAGE-ID<TAB>SUBJECT<TAB>FILE
                             RCPT is the server's own record of the envelope recipient
                             (Exim's Envelope-to:, OpenSMTPD's Delivered-To:), so one line is
                             one copy for one recipient.
  maildir.py strip FILE      the message as the client sent it: the trace fields the server
                             put on top (Return-path, Envelope-to, Delivered-To, Received) are
                             cut off; line ends normalised to LF (maildirs store LF)
  maildir.py wire FILE       a spool file (pickup/ID.eml) as the client must send it: the
                             leading X-Sender/X-Receiver/X-Spool-Size/X-Submitter-Uid lines cut off, then the trace fields
                             on top as `strip` cuts them (sendmail's intake puts a Received
                             line first), LF line ends; the same form as `strip`, so the two
                             compare byte for byte
  maildir.py decoded FILE    what a reader sees: header values decoded (RFC 2047 words, or raw
                             UTF-8 as written) and every leaf part's content decoded from its
                             transfer encoding (text parts with LF line ends), as canonical
                             text: an 8-bit original and its 7-bit conversion print the same
  maildir.py eightbit FILE   exit 0 when the file holds a byte over 127 (prints the first line
                             that does), 1 when it is 7-bit clean
Nothing here changes a maildir.
"""
import email
import email.header
import email.policy
import os
import sys

TRACE = (b"return-path", b"envelope-to", b"delivered-to", b"received")


def lf(data):
    return data.replace(b"\r\n", b"\n")


def header_fields(head):
    """Split a header block (LF ends) into [(name_lower, raw_field_bytes)], folding kept."""
    fields = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + b"\n" + line)
        elif line:
            fields.append((line.split(b":", 1)[0].strip().lower(), line))
    return fields


def split(data):
    data = lf(data)
    i = data.find(b"\n\n")
    if i < 0:
        return data, b""
    return data[:i], data[i + 2:]


def strip(data):
    """The message without the server's trace fields on top."""
    data = lf(data)
    lines = data.split(b"\n")
    i = 0
    while i < len(lines):
        name = lines[i].split(b":", 1)[0].strip().lower()
        if name not in TRACE:
            break
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
    return b"\n".join(lines[i:])


def wire(data):
    data = lf(data)
    lines = data.split(b"\n")
    i = 0
    while i < len(lines) and lines[i].split(b":", 1)[0].lower() in (b"x-sender", b"x-receiver"):
        i += 1
    if i > 0 and i < len(lines) and lines[i].split(b":", 1)[0].lower() == b"x-spool-size":
        i += 1   # the message's size when queued (docs/spool.md)
    if i > 0 and i < len(lines) and lines[i].split(b":", 1)[0].lower() == b"x-submitter-uid":
        i += 1   # the envelope's last line (docs/spool.md)
    return strip(b"\n".join(lines[i:]))


def field_value(fields, name):
    for n, raw in fields:
        if n == name:
            return raw.split(b":", 1)[1].strip()
    return b""


def decode_value(raw):
    """A header value as a reader sees it: raw UTF-8 as written, else RFC 2047 decoded."""
    raw = b" ".join(p.strip() for p in raw.split(b"\n"))
    if any(b > 127 for b in raw):
        return raw.decode("utf-8", "replace")
    text = raw.decode("ascii", "replace")
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except Exception:
        return text


def listing(folder):
    rows = []
    for sub in ("new", "cur"):
        d = os.path.join(folder, sub)
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            path = os.path.join(d, name)
            st = os.stat(path)
            with open(path, "rb") as f:
                head, _ = split(f.read())
            fields = header_fields(head)
            rcpt = field_value(fields, b"envelope-to") or field_value(fields, b"delivered-to")
            rows.append((st.st_mtime_ns, name, rcpt.decode("ascii", "replace"),
                         field_value(fields, b"message-id").decode("ascii", "replace"),
                         decode_value(field_value(fields, b"subject")), path))
    rows.sort()
    for _, _, rcpt, mid, subject, path in rows:
        print("%s\t%s\t%s\t%s" % (rcpt, mid, subject.replace("\t", " "), path))


def decoded(data):
    """Canonical text: decoded headers (trace fields and transfer-encoding details left out),
    then each leaf part's type and decoded content."""
    data = strip(data)
    head, _ = split(data)
    out = []
    for name, raw in header_fields(head):
        if name in (b"content-transfer-encoding", b"mime-version"):
            continue
        if name == b"content-type":
            continue  # compared per part below, without its encoding-dependent details
        out.append("%s: %s" % (name.decode("ascii", "replace"), decode_value(raw.split(b":", 1)[1])))
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    for n, part in enumerate(msg.walk()):
        ctype = part.get_content_type()
        out.append("-- part %d %s charset=%s" % (n, ctype, part.get_content_charset()))
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True) or b""
        if part.get_content_maintype() == "text":
            payload = lf(payload)
        out.append(repr(payload))
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    cmd, arg = sys.argv[1], sys.argv[2]
    if cmd == "list":
        listing(arg)
        return 0
    with open(arg, "rb") as f:
        data = f.read()
    if cmd == "strip":
        sys.stdout.buffer.write(strip(data))
    elif cmd == "wire":
        sys.stdout.buffer.write(wire(data))
    elif cmd == "decoded":
        sys.stdout.write(decoded(data))
    elif cmd == "eightbit":
        for line in lf(data).split(b"\n"):
            if any(b > 127 for b in line):
                sys.stdout.buffer.write(line[:200] + b"\n")
                return 0
        return 1
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
