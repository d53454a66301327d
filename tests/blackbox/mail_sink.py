"""A real SMTP server for the mail tests (Debian's python3-aiosmtpd; run it
with /usr/bin/python3, which sees Debian's python3-* packages).

    /usr/bin/python3 mail_sink.py DIR [--tls CERT KEY] [--implicit-tls]
                                      [--auth USER:PASSWORD]
                                      [--reply SUBSTRING=CODE ...]

Listens on a free port of 127.0.0.1 and prints "PORT <n>" once ready.
Each accepted message goes to DIR/<n>.eml, its envelope to DIR/<n>.json;
DIR/connections counts the SMTP connections opened. --reply makes RCPT TO
of an address containing SUBSTRING fail with CODE (e.g. bounce@=550).
--tls offers STARTTLS (and requires it); --implicit-tls speaks TLS from the
start (smtps); --auth requires AUTH with these credentials.
"""
import argparse
import json
import os
import ssl
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult


class Handler:
    def __init__(self, out_dir, replies):
        self.out_dir = out_dir
        self.replies = replies
        self.n = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        for sub, code in self.replies:
            if sub in address:
                text = "mailbox unavailable" if code >= 500 else "try again later"
                return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.n += 1
            n = self.n
        base = os.path.join(self.out_dir, str(n))
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        with open(base + ".json", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                       "peer": str(session.peer),
                       "tls": (session.ssl is not None
                               or server.transport.get_extra_info("ssl_object") is not None),
                       "auth": bool(session.authenticated)}, f)
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 Message accepted for delivery"


class CountingController(Controller):
    """Counts connections: aiosmtpd makes one SMTP protocol object each."""

    def __init__(self, *args, out_dir, **kw):
        self.out_dir = out_dir
        self.connections = 0
        self.baseline = None  # start() makes a connection of its own to check readiness
        super().__init__(*args, **kw)

    def factory(self):
        self.connections += 1
        if self.baseline is not None:
            with open(os.path.join(self.out_dir, "connections"), "w") as f:
                f.write(str(self.connections - self.baseline))
        return super().factory()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--implicit-tls", action="store_true")
    ap.add_argument("--auth")
    ap.add_argument("--reply", action="append", default=[])
    args = ap.parse_args()

    replies = []
    for r in args.reply:
        sub, code = r.rsplit("=", 1)
        replies.append((sub, int(code)))
    kw = {}
    ctx = None
    if args.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
    if ctx and args.implicit_tls:
        kw["ssl_context"] = ctx
    elif ctx:
        kw["tls_context"] = ctx
        kw["require_starttls"] = True
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (auth_data.login.decode() == user and auth_data.password.decode() == password)
            return AuthResult(success=ok, handled=False)

        kw["authenticator"] = authenticator
        kw["auth_required"] = True
        kw["auth_require_tls"] = ctx is not None
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(os.path.join(args.dir, "connections"), "w") as f:
        f.write("0")
    ctl = CountingController(Handler(args.dir, replies), hostname="127.0.0.1", port=port,
                             out_dir=args.dir, **kw)
    ctl.start()
    ctl.baseline = ctl.connections
    print(f"PORT {port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        ctl.stop()


if __name__ == "__main__":
    sys.exit(main())
