#!/usr/bin/python3
"""tests/peers/smtp-aiosmtpd.py — a real SMTP server (Debian's aiosmtpd) for the
SMTP engine's own tests: plain, STARTTLS (optionally required) or implicit TLS,
AUTH PLAIN/LOGIN (aiosmtpd's own) plus XOAUTH2 and OAUTHBEARER with a fixed
token.  Listens on 127.0.0.1, a free port; prints "PORT n" once it accepts.
Each message lands in --maildir as N.eml (content as received, dot-stuffing
undone) and N.json (envelope, tls, auth).  Run with /usr/bin/python3.
"""
import argparse
import asyncio
import base64
import json
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

ap = argparse.ArgumentParser()
ap.add_argument("--mode", choices=["plain", "starttls", "implicit"], default="plain")
ap.add_argument("--require-starttls", action="store_true")
ap.add_argument("--cert")
ap.add_argument("--key")
ap.add_argument("--user", default="user")
ap.add_argument("--password", default="secret")
ap.add_argument("--token", default="good-token")
ap.add_argument("--maildir", required=True)
ap.add_argument("--size", type=int, default=0)
a = ap.parse_args()
os.makedirs(a.maildir, exist_ok=True)
count = [0]


def tls_ctx():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    return ctx


class Handler:
    async def handle_DATA(self, server, session, envelope):
        count[0] += 1
        base = os.path.join(a.maildir, "%06d" % count[0])
        with open(base + ".json", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "mail_options": envelope.mail_options,
                       "tls": session.ssl is not None,
                       "auth": session.authenticated}, f)
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".tmp", base + ".eml")
        return "250 2.0.0 Ok: queued"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == a.user
          and auth_data.password.decode() == a.password)
    return AuthResult(success=ok, handled=False)


class Server(SMTP):
    async def _oauth(self, args, parse):
        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        raw = base64.b64decode(args[1]).decode("utf-8", "replace")
        token = parse(raw)
        if token == a.token:
            return AuthResult(success=True, auth_data=token)
        # the error challenge both mechanisms use, then 535
        await self.challenge_auth(base64.b64encode(b'{"status":"401"}').decode(), encode_to_b64=False)
        return AuthResult(success=False, handled=False)

    async def auth_XOAUTH2(self, server, args):
        def parse(raw):
            for part in raw.split("\x01"):
                if part.startswith("auth=Bearer "):
                    return part[len("auth=Bearer "):]
        return await self._oauth(args, parse)

    async def auth_OAUTHBEARER(self, server, args):
        def parse(raw):
            for part in raw.split("\x01"):
                if part.startswith("auth=Bearer "):
                    return part[len("auth=Bearer "):]
        return await self._oauth(args, parse)


async def main():
    loop = asyncio.get_running_loop()
    kw = dict(authenticator=authenticator, auth_require_tls=a.mode == "starttls",
              hostname="peer.test")
    if a.size:
        kw["data_size_limit"] = a.size
    if a.mode == "starttls":
        kw["tls_context"] = tls_ctx()
        kw["require_starttls"] = a.require_starttls
    srv = await loop.create_server(lambda: Server(Handler(), **kw), "127.0.0.1", 0,
                                   ssl=tls_ctx() if a.mode == "implicit" else None)
    print("PORT", srv.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    srv.close()

asyncio.run(main())
