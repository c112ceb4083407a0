#!/usr/bin/python3
"""tests/peers/smtpd.py — the one real SMTP server of the tests: aiosmtpd (Debian's
python3-aiosmtpd 1.4) on 127.0.0.1, with STARTTLS or implicit TLS, AUTH PLAIN
and LOGIN (and XOAUTH2/OAUTHBEARER with --token), and the replies a delivery test
needs on demand (per-recipient 4xx/5xx, a DATA that fails once, a size limit, the
--by-local-part conventions).  Run it with /usr/bin/python3.

Each accepted message lands atomically in --maildir as NNNNNN.eml (the content
exactly as received, dot-stuffing undone, CRLF kept) next to NNNNNN.json (the
envelope: from, to, options, tls, auth).  The .json is written first and the .eml
renamed into place last, so a test that sees NNNNNN.eml can read both.  Numbers
continue after the highest already in the folder, so a restarted server keeps
the arrival order.

--index FILE appends one line per stored message, "NNNNNN FROM RCPT,RCPT
MESSAGE-ID CLIENT_PORT", for shell tests that grep the arrivals in order.

--by-local-part: what the server answers is chosen by the addresses, so one
server plays every delivery scenario (files in the --maildir folder switch some):
  RCPT perm@...             550 5.1.1 (always)
  RCPT temp@...             450 4.2.1 (always)
  RCPT temp-once...@...     450 4.2.1 the first time for this sender, then accepted
  MAIL FROM tempdata-once@  451 4.3.0 at the final dot the first time (per Message-ID)
  MAIL FROM permdata@       554 5.6.0 at the final dot while MAILDIR/reject exists
  MAIL FROM stall@          never answers the final dot (a stalled server)
  any MAIL                  530 5.7.0 "must issue STARTTLS first" while MAILDIR/needtls
                            exists (each refusal appends a line to MAILDIR/refused)

With --port 0 a free port is chosen; "PORT n" is printed on stdout (flushed) once
the server accepts connections, so callers wait for that line (the one ready
signal; tests/lib/peers.sh's start_smtpd does).  SIGTERM and SIGINT exit 0 at once.
"""
import base64
import argparse
import asyncio
import json
import logging
import os
import re
import signal
import ssl
import sys
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def parse_reply(text, what):
    """'450 4.2.0 busy' -> the reply line as sent; refuses anything but a 3-digit code."""
    text = text.strip()
    if not re.match(r"^[2-5][0-9][0-9]( |$)", text):
        sys.exit(f"smtpd.py: {what}: reply must start with a 3-digit code: {text!r}")
    return text


def parse_addr_reply(spec, what):
    """'addr=450 4.2.0 busy' -> (lowercased addr, reply)."""
    addr, sep, reply = spec.partition("=")
    if not sep or not addr:
        sys.exit(f"smtpd.py: {what}: want ADDR=REPLY, got {spec!r}")
    return addr.strip().lower(), parse_reply(reply, what)


class Events:
    """The --log file: one line per session event, flushed at once so a test can
    wait for a line (connect, ehlo, starttls, auth ok/fail, mail, rcpt, data, quit)."""

    def __init__(self, path):
        self.f = open(path, "a", buffering=1) if path else None

    def __call__(self, *words):
        if self.f:
            self.f.write(" ".join(str(w) for w in words) + "\n")


class Maildir:
    """Where accepted messages go: NNNNNN.json then NNNNNN.eml, each written to
    .tmp/ first and renamed, so a reader never sees half a file."""

    def __init__(self, path):
        self.path = path
        self.n = 0
        if path:
            os.makedirs(os.path.join(path, ".tmp"), exist_ok=True)
            for name in os.listdir(path):
                m = re.match(r"^(\d+)\.eml$", name)
                if m:
                    self.n = max(self.n, int(m.group(1)))

    def _put(self, name, data):
        tmp = os.path.join(self.path, ".tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.path, name))

    def store(self, content, meta):
        """Writes one message; returns its number (0 when there is no maildir)."""
        if not self.path:
            return 0
        self.n += 1
        base = "%06d" % self.n
        self._put(base + ".json", (json.dumps(meta, indent=1) + "\n").encode())
        self._put(base + ".eml", content)
        return self.n


def tls_of(server):
    """The TLS version of the session, or None when it is in the clear."""
    t = server.transport
    obj = t.get_extra_info("ssl_object") if t else None
    return obj.version() if obj else None


def message_id(content):
    m = re.search(rb"(?im)^message-id:[ \t]*(\S+)", content.split(b"\r\n\r\n", 1)[0])
    return m.group(1).decode("utf-8", "replace") if m else "-"


class Handler:
    """aiosmtpd hooks: the replies asked for on the command line, and the store."""

    def __init__(self, opts, maildir, log):
        self.o = opts
        self.maildir = maildir
        self.log = log
        self.seen = set()        # --by-local-part: the "once" replies already given
        self.rcpt = dict(parse_addr_reply(s, "--reply-rcpt") for s in opts.reply_rcpt)
        self.rcpt_once = dict(parse_addr_reply(s, "--reply-rcpt-once") for s in opts.reply_rcpt_once)
        self.mail = dict(parse_addr_reply(s, "--reply-mail") for s in opts.reply_mail)
        self.fail_data = [parse_reply(s, "--fail-data-once") for s in opts.fail_data_once]
        self.data_reply = parse_reply(opts.reply_data, "--reply-data") if opts.reply_data else None
        self.messages = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.log("ehlo", hostname, "tls=%s" % (tls_of(server) or "none"))
        if self.o.auth_mechs is not None:   # the AUTH line in the --auth-mechs order
            order = " ".join(m.strip().upper() for m in self.o.auth_mechs.split(",") if m.strip())
            responses = [("250-AUTH " + order).rstrip() if r.startswith("250-AUTH") else r for r in responses]
        if self.o.dsn:   # RFC 3461: announced before the last line
            responses.insert(len(responses) - 1, "250-DSN")
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        self.log("helo", hostname)
        return "250 %s" % server.hostname

    def switch(self, name):
        """Whether MAILDIR/name exists (--by-local-part's switches)."""
        return bool(self.o.maildir) and os.path.exists(os.path.join(self.o.maildir, name))

    async def handle_MAIL(self, server, session, envelope, address, options):
        self.log("mail", "<%s>" % address, *options)
        if self.o.by_local_part and self.switch("needtls"):
            with open(os.path.join(self.o.maildir, "refused"), "a") as f:
                f.write("530\n")
            return "530 5.7.0 Must issue a STARTTLS command first"
        reply = self.mail.get(address.lower())
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        self.log("rcpt", "<%s>" % address, *options)
        key = address.lower()
        if key in self.rcpt_once:
            return self.rcpt_once.pop(key)
        if key in self.rcpt:
            return self.rcpt[key]
        if self.o.by_local_part:
            local = key.split("@")[0]
            if local == "perm":
                return "550 5.1.1 no such user"
            if local == "temp":
                return "450 4.2.1 mailbox busy"
            if local.startswith("temp-once") and ("rcpt", envelope.mail_from, address) not in self.seen:
                self.seen.add(("rcpt", envelope.mail_from, address))
                return "450 4.2.1 mailbox busy, try again"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_RSET(self, server, session, envelope):
        self.log("rset")
        return "250 2.0.0 OK"

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content
        self.log("data", len(content), "bytes")
        if self.o.delay_data:
            # a test may act while the final dot waits for its reply: MAILDIR/in-data says when
            if self.o.maildir:
                open(os.path.join(self.o.maildir, "in-data"), "a").close()
            await asyncio.sleep(self.o.delay_data)
        if self.o.hold_data:
            # held until the test removes the file: a window as long as the test's action
            # takes, however loaded the machine, and no wait once it is done
            if self.o.maildir:
                open(os.path.join(self.o.maildir, "in-data"), "a").close()
            while os.path.exists(self.o.hold_data):
                await asyncio.sleep(0.02)
        mid = message_id(content)
        if self.o.by_local_part:
            sender = (envelope.mail_from or "").lower()
            if sender.startswith("stall@"):
                await asyncio.sleep(3600)
            if sender.startswith("tempdata-once@") and ("data", mid) not in self.seen:
                self.seen.add(("data", mid))
                return "451 4.3.0 try again later"
            if sender.startswith("permdata@") and self.switch("reject"):
                return "554 5.6.0 content rejected"
        if self.fail_data:
            reply = self.fail_data.pop(0)
            self.log("reply", reply)
            return reply
        if self.data_reply:
            self.log("reply", self.data_reply)
            return self.data_reply
        auth = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else \
            (self.o.auth.partition(":")[0] if session.authenticated else None)
        meta = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "rcpt_options": envelope.rcpt_options,
            "helo": session.host_name,
            "tls": tls_of(server),
            "auth": auth,
            "size": len(content),
            "message_id": mid,
            "client_port": session.peer[1] if session.peer else None,
            "time": time.time(),
        }
        n = self.maildir.store(content, meta)
        self.messages += 1
        self.log("stored", "%06d" % n if n else "-")
        if self.o.index:
            with open(self.o.index, "a") as f:
                f.write("%06d %s %s %s %s\n" % (n, envelope.mail_from, ",".join(envelope.rcpt_tos), mid,
                                                 session.peer[1] if session.peer else "-"))
        return "250 2.0.0 OK queued as %06d" % n

    async def handle_QUIT(self, server, session, envelope):
        self.log("quit")
        return "221 2.0.0 Bye"


class Authenticator:
    """AUTH PLAIN and LOGIN against the one --auth USER:PASS; every attempt logged
    with its mechanism and outcome (never the password)."""

    def __init__(self, spec, log):
        user, sep, password = spec.partition(":")
        if not sep:
            sys.exit("smtpd.py: --auth wants USER:PASS")
        self.user, self.password, self.log = user.encode(), password.encode(), log

    def __call__(self, server, session, envelope, mechanism, auth_data):
        good = (isinstance(auth_data, LoginPassword)
                and auth_data.login == self.user and auth_data.password == self.password)
        who = auth_data.login.decode(errors="replace") if isinstance(auth_data, LoginPassword) else "?"
        self.log("auth", "ok" if good else "fail", mechanism, who)
        return AuthResult(success=good, handled=False, auth_data=auth_data)


class OAuth:
    """XOAUTH2 and OAUTHBEARER against the one --token (with --auth's user): a
    bad token gets the error challenge both mechanisms use, then 535."""

    async def _oauth(self, args, parse):
        if len(args) < 2:
            # no initial response on the AUTH line (RFC 4954 4: a client must not
            # put one that passes the line limit there): asked for with an empty 334
            # (a response line may be 12288 octets, RFC 4954 4; commands stay at 512)
            limit = self._reader._limit
            self._reader._limit = 12288
            try:
                blob = await self.challenge_auth("", encode_to_b64=False)
            finally:
                self._reader._limit = limit
            if not isinstance(blob, bytes):
                return AuthResult(success=False, handled=True)
            raw = blob.decode("utf-8", "replace")
        else:
            raw = base64.b64decode(args[1]).decode("utf-8", "replace")
        token = parse(raw)
        good = token == self.token
        if self.events:
            self.events("auth", "ok" if good else "fail", args[0].upper(), "token")
        if good:
            return AuthResult(success=True, auth_data=token)
        await self.challenge_auth(base64.b64encode(b'{"status":"401"}').decode(), encode_to_b64=False)
        return AuthResult(success=False, handled=False)

    @staticmethod
    def _bearer(raw):
        for part in raw.split("\x01"):
            if part.startswith("auth=Bearer "):
                return part[len("auth=Bearer "):]
        return None

    async def auth_XOAUTH2(self, server, args):
        return await self._oauth(args, self._bearer)

    async def auth_OAUTHBEARER(self, server, args):
        return await self._oauth(args, self._bearer)


class CramMD5:
    """--auth-mechs: CRAM-MD5 (RFC 2195) against --auth's USER:PASS: the answer's
    HMAC-MD5 of the challenge under the password is checked, not merely its shape.
    --cram-bad-challenge sends a challenge that is no base64.  DIGEST-MD5 is only
    advertised (a mechanism mailhook does not speak): any attempt fails."""
    bad_challenge = False

    async def auth_CRAM__MD5(self, server, args):
        import hmac
        challenge = ("<%d.%d@%s>" % (os.getpid(), time.time_ns(), self.hostname)).encode()
        if self.bad_challenge:
            blob = await self.challenge_auth("not*base64!", encode_to_b64=False)
            self._authenticator.log("auth", "fail", "CRAM-MD5", "bad-challenge:%r" % (blob,))
            return AuthResult(success=False, handled=True)
        blob = await self.challenge_auth(challenge)
        if not isinstance(blob, bytes):
            return AuthResult(success=False, handled=True)
        user, _, digest = blob.partition(b" ")
        a = self._authenticator
        good = (user == a.user and
                hmac.compare_digest(digest, hmac.new(a.password, challenge, "md5").hexdigest().encode()))
        a.log("auth", "ok" if good else "fail", "CRAM-MD5", user.decode(errors="replace"))
        return AuthResult(success=good, handled=False, auth_data=LoginPassword(user, b""))

    async def auth_DIGEST__MD5(self, server, args):
        self._authenticator.log("auth", "fail", "DIGEST-MD5", "?")
        return AuthResult(success=False, handled=False)


def send_handshake_alerts():
    """asyncio (3.11's sslproto) closes the connection when a server-side handshake
    fails without sending the alert OpenSSL queued (e.g. protocol_version when no
    TLS version is shared).  Real servers (Postfix, Exim: OpenSSL on a socket) send
    it, and the client's report depends on it: flush it before asyncio closes."""
    import asyncio.sslproto as sp
    done = sp.SSLProtocol._on_handshake_complete

    def on_handshake_complete(self, exc):
        if exc is not None:
            try:
                self._process_outgoing()
            except Exception:
                pass
        return done(self, exc)
    sp.SSLProtocol._on_handshake_complete = on_handshake_complete


class Server(SMTP):
    """aiosmtpd's SMTP with the connection and STARTTLS events logged."""

    events = None

    def connection_made(self, transport):
        starttls = self._original_transport is not None
        super().connection_made(transport)
        if self.events:
            self.events("starttls" if starttls else "connect", tls_of(self) or "")

    dsn = False

    async def _dsn_split(self, arg, keys):
        """With --dsn: the RFC 3461 parameters (keys) taken out of a MAIL/RCPT argument,
        which aiosmtpd would refuse (it knows none), to be put back on the envelope."""
        if not self.dsn or not arg:
            return arg, []
        words = arg.split(" ")
        taken = [w for w in words[1:] if w.split("=", 1)[0].upper() in keys]
        return " ".join([words[0]] + [w for w in words[1:] if w not in taken]), taken

    async def smtp_MAIL(self, arg):
        arg, taken = await self._dsn_split(arg, ("RET", "ENVID"))
        await super().smtp_MAIL(arg)
        if taken and self.envelope.mail_from is not None:
            self.envelope.mail_options.extend(taken)
            if self.events:
                self.events("dsn mail", *taken)

    async def smtp_RCPT(self, arg):
        arg, taken = await self._dsn_split(arg, ("NOTIFY", "ORCPT"))
        before = len(self.envelope.rcpt_tos)
        await super().smtp_RCPT(arg)
        if taken and len(self.envelope.rcpt_tos) > before:
            self.envelope.rcpt_options.extend(taken)
            if self.events:
                self.events("dsn rcpt", *taken)

    async def smtp_STARTTLS(self, arg):
        if self.events:
            self.events("cmd STARTTLS")
        return await super().smtp_STARTTLS(arg)


def main():
    p = argparse.ArgumentParser(description="aiosmtpd test peer")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = a free port, printed as PORT n")
    p.add_argument("--hostname", default="localhost", help="name in the greeting and EHLO reply")
    p.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    p.add_argument("--require-starttls", action="store_true", help="refuse all but EHLO/NOOP/QUIT before STARTTLS")
    p.add_argument("--cert", help="server certificate (PEM; may hold the chain)")
    p.add_argument("--key", help="server key (PEM)")
    p.add_argument("--tls-max", choices=["1.0", "1.1", "1.2", "1.3"],
                   help="highest TLS version offered (1.0/1.1: a legacy server, security level 0)")
    p.add_argument("--tls-no-alert", action="store_true",
                   help="with --tls-max: a failed handshake just closes (asyncio's own behaviour)")
    p.add_argument("--auth", help="USER:PASS; AUTH PLAIN and LOGIN, required before MAIL")
    p.add_argument("--auth-optional", action="store_true", help="offer AUTH but accept mail without it")
    p.add_argument("--auth-in-clear", action="store_true", help="offer AUTH before TLS (a bad server)")
    p.add_argument("--auth-mechs", help="with --auth: the mechanisms offered, in this order (comma-separated "
                   "among PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5 (advertised only); default PLAIN and LOGIN); "
                   "'' offers AUTH with none")
    p.add_argument("--cram-bad-challenge", action="store_true",
                   help="with --auth-mechs CRAM-MD5: the challenge is no base64 (a broken server)")
    p.add_argument("--maildir", help="store each accepted message here as NNNNNN.eml + .json")
    p.add_argument("--log", help="append one line per session event to this file")
    p.add_argument("--reply-rcpt", action="append", default=[], metavar="ADDR=REPLY",
                   help="RCPT TO ADDR always gets REPLY, e.g. 'x@y=450 4.2.0 busy'")
    p.add_argument("--reply-rcpt-once", action="append", default=[], metavar="ADDR=REPLY",
                   help="the first RCPT TO ADDR gets REPLY, later ones are accepted")
    p.add_argument("--reply-mail", action="append", default=[], metavar="ADDR=REPLY",
                   help="MAIL FROM ADDR always gets REPLY")
    p.add_argument("--fail-data-once", action="append", default=[], metavar="REPLY",
                   help="the next DATA gets REPLY (repeat the option for several)")
    p.add_argument("--reply-data", metavar="REPLY", help="every DATA gets REPLY (nothing stored)")
    p.add_argument("--delay-data", type=float, default=0, help="seconds before answering the final dot (MAILDIR/in-data is made first)")
    p.add_argument("--hold-data", metavar="FILE",
                   help="while FILE exists the final dot waits for its reply (MAILDIR/in-data is made first)")
    p.add_argument("--size", type=int, default=33554432, help="SIZE limit (0 = no SIZE)")
    p.add_argument("--smtputf8", action="store_true", help="offer SMTPUTF8")
    p.add_argument("--dsn", action="store_true",
                   help="offer DSN (RFC 3461): RET, ENVID, NOTIFY, ORCPT accepted and kept in the .json options")
    p.add_argument("--timeout", type=float, default=300, help="idle timeout of a session")
    p.add_argument("--token", help="with --auth: XOAUTH2 and OAUTHBEARER offered too, TOKEN the good one")
    p.add_argument("--index", help="append NNNNNN FROM RCPTS MESSAGE-ID CLIENT_PORT per stored message")
    p.add_argument("--by-local-part", action="store_true",
                   help="replies chosen by the addresses (perm@, temp@, temp-once, tempdata-once@, "
                        "permdata@, stall@; MAILDIR/reject and MAILDIR/needtls switch)")
    o = p.parse_args()
    if o.token and not o.auth:
        sys.exit("smtpd.py: --token needs --auth USER:PASS")
    if o.by_local_part and not o.maildir:
        sys.exit("smtpd.py: --by-local-part needs --maildir (its switch files live there)")

    logging.basicConfig(level=logging.CRITICAL)
    log = Events(o.log)
    maildir = Maildir(o.maildir)
    handler = Handler(o, maildir, log)

    ctx = None
    if o.tls != "none":
        if not (o.cert and o.key):
            sys.exit("smtpd.py: --tls %s needs --cert and --key" % o.tls)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(o.cert, o.key)
        if o.tls_max:
            import warnings
            with warnings.catch_warnings():   # TLSv1/TLSv1_1 are deprecated: that is the point
                warnings.simplefilter("ignore", DeprecationWarning)
                versions = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1,
                            "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
                if o.tls_max in ("1.0", "1.1"):
                    # OpenSSL 3 refuses TLS < 1.2 at its default security level, on the
                    # server side too: a legacy server is played at level 0 (this peer only).
                    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                    ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = versions[o.tls_max]
            if not o.tls_no_alert:
                send_handshake_alerts()
    if o.require_starttls and o.tls != "starttls":
        sys.exit("smtpd.py: --require-starttls needs --tls starttls")

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    Server.events = log
    Server.dsn = o.dsn
    kwargs = dict(
        hostname=o.hostname,
        data_size_limit=o.size or None,
        enable_SMTPUTF8=o.smtputf8,
        timeout=o.timeout,
        tls_context=ctx if o.tls == "starttls" else None,
        require_starttls=o.require_starttls,
        # Implicit TLS: the whole session is encrypted, aiosmtpd only knows STARTTLS.
        auth_require_tls=not (o.auth_in_clear or o.tls == "implicit"),
        loop=loop,
    )
    if o.auth:
        kwargs["authenticator"] = Authenticator(o.auth, log)
        kwargs["auth_required"] = not o.auth_optional
    if kwargs.get("auth_required") and not kwargs["auth_require_tls"]:
        import warnings
        warnings.simplefilter("ignore")

    cls = Server
    if o.auth_mechs is not None:
        want = [m.strip().upper() for m in o.auth_mechs.split(",") if m.strip()]
        for m in want:
            if m not in ("PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5"):
                sys.exit("smtpd.py: --auth-mechs: PLAIN, LOGIN, CRAM-MD5 or DIGEST-MD5, got %r" % m)
        kwargs["auth_exclude_mechanism"] = [m for m in ("PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5")
                                            if m not in want]
        cls = type("MechServer", (CramMD5, Server), {"bad_challenge": o.cram_bad_challenge})
    if o.token:
        cls = type("OAuthServer", (OAuth, Server), {"token": o.token})
    server = loop.run_until_complete(loop.create_server(
        lambda: cls(handler, **kwargs), o.host, o.port,
        ssl=ctx if o.tls == "implicit" else None))

    # SIGTERM/SIGINT end the process at once, whatever the loop is doing: every file
    # this server writes is complete (renamed into place) or still in .tmp/.
    def bye(*_):
        sys.stdout.flush()
        os._exit(0)
    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)

    port = server.sockets[0].getsockname()[1]
    print("PORT %d" % port, flush=True)
    loop.run_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
