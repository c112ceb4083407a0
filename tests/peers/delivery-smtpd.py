#!/usr/bin/python3
"""tests/peers/delivery-smtpd.py — a real SMTP server (aiosmtpd) for the delivery tests.

    delivery-smtpd.py --port PORT --out DIR [--delay S]

Every accepted message is written to DIR/NNNNNN.eml (arrival order) and a line
"NNNNNN MAIL_FROM RCPT,RCPT MESSAGE-ID CLIENT_PORT" is appended to DIR/log.  DIR/ready is
created once listening.  What the server answers is chosen by the addresses,
so one server plays every scenario:

  RCPT perm@...           550 5.1.1 (always)
  RCPT temp@...           450 4.2.1 (always)
  RCPT temp-once@...      450 4.2.1 the first time for this sender, then 250
  MAIL FROM tempdata-once@  451 4.3.0 at the final dot the first time (per Message-ID)
  MAIL FROM permdata@     554 5.6.0 at the final dot while DIR/reject exists
  MAIL FROM stall@        never answers the final dot (a stalled server)
  any MAIL                530 5.7.0 "must issue STARTTLS first" while DIR/needtls exists
                          (each refusal appends a line to DIR/refused)
--delay S: wait S seconds before each final-dot reply (a slow server); DIR/in-data
is created when a message's data has arrived and its reply waits.
"""
import argparse, asyncio, os, re, signal, sys, time
from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, out, delay):
        self.out, self.delay, self.n, self.seen = out, delay, 0, set()

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # while OUT/needtls exists: the reply of a server that wants STARTTLS first
        if os.path.exists(os.path.join(self.out, "needtls")):
            with open(os.path.join(self.out, "refused"), "a") as f:
                f.write("530\n")
            return "530 5.7.0 Must issue a STARTTLS command first"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local == "perm":
            return "550 5.1.1 no such user"
        if local == "temp":
            return "450 4.2.1 mailbox busy"
        if local.startswith("temp-once"):
            key = ("rcpt", envelope.mail_from, address)
            if key not in self.seen:
                self.seen.add(key)
                return "450 4.2.1 mailbox busy, try again"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode()
        m = re.search(rb"(?im)^message-id:\s*(\S+)", data)
        mid = m.group(1).decode() if m else "-"
        sender = (envelope.mail_from or "").lower()
        if self.delay:
            # a test may act while the final dot waits for its reply: DIR/in-data says when
            open(os.path.join(self.out, "in-data"), "a").close()
            await asyncio.sleep(self.delay)
        if sender.startswith("stall@"):
            await asyncio.sleep(3600)
        if sender.startswith("tempdata-once@") and ("data", mid) not in self.seen:
            self.seen.add(("data", mid))
            return "451 4.3.0 try again later"
        if sender.startswith("permdata@") and os.path.exists(os.path.join(self.out, "reject")):
            return "554 5.6.0 content rejected"
        self.n += 1
        name = "%06d" % self.n
        with open(os.path.join(self.out, name + ".tmp"), "wb") as f:
            f.write(data)
        os.rename(os.path.join(self.out, name + ".tmp"), os.path.join(self.out, name + ".eml"))
        with open(os.path.join(self.out, "log"), "a") as f:
            f.write("%s %s %s %s %s\n" % (name, envelope.mail_from, ",".join(envelope.rcpt_tos), mid,
                                          session.peer[1] if session.peer else "-"))
        return "250 OK queued as %s" % name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--delay", type=float, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    c = Controller(Handler(a.out, a.delay), hostname="127.0.0.1", port=a.port,
                   server_hostname="peer.test", ready_timeout=10)
    c.start()
    open(os.path.join(a.out, "ready"), "w").close()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        while not stop:
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    c.stop()


if __name__ == "__main__":
    main()
