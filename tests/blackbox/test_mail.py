"""Email that arrives and counts, through the real binary:
(a) `tandem mail send` against a real SMTP server (aiosmtpd, mail_sink.py):
    the message parsed with Python's email package, the DKIM signature
    checked by an independent verifier (Debian's python3-dkim), STARTTLS,
    implicit TLS, AUTH, bounces, connection reuse, rate limits;
(b) the tracking endpoints of a running server: forged tokens never
    redirect, clicks and opens become events, unsubscribe GET changes
    nothing and POST does, once.
"""
import email
import email.policy
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from harness import BIN, Server

HERE = os.path.dirname(os.path.abspath(__file__))
# Debian's python3-dkim and python3-aiosmtpd live in the system Python
SYS_PY = "/usr/bin/python3"
BROWSER_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0 Safari/537.36")

HTML = """<!doctype html><html><head><style>p{margin:0}</style></head><body>
<h1>Your cart is waiting, Zo\u00eb</h1>
<p><a href="https://shop.example/p/SKU-1?utm_source=email&amp;utm_medium=cart"
      data-label="item:SKU-1,slot:1">Winter coat</a> \u2014 59,90\u00a0\u20ac</p>
<p><a href="https://shop.example/cart">Back to your cart</a></p>
<p><a href="mailto:help@shop.example">Help</a></p>
</body></html>
"""

# Verifies DKIM with python3-dkim; the key record comes from a file instead
# of DNS (dnsfunc), so nothing leaves the machine.
DKIM_VERIFY = r"""
import sys, dkim
msg = open(sys.argv[1], "rb").read()
record = open(sys.argv[2], "rb").read().strip()
def dnsfunc(name, timeout=5):
    return record if name == sys.argv[3].encode() else None
d = dkim.DKIM(msg)
ok = d.verify(dnsfunc=dnsfunc)
print("pass" if ok else "fail")
sys.exit(0 if ok else 1)
"""


def have_system_modules():
    try:
        subprocess.run([SYS_PY, "-c", "import dkim, aiosmtpd"], check=True,
                       capture_output=True, timeout=30)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=120)


class Sink:
    """mail_sink.py in a process of its own."""

    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="tandem-sink-")
        self.proc = subprocess.Popen([SYS_PY, os.path.join(HERE, "mail_sink.py"), self.dir,
                                      *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError("mail sink did not start: " + line + self.proc.stderr.read())
        self.port = int(line.split()[1])

    def messages(self, n=None, timeout=20):
        """The messages received, in order; waits for n of them."""
        deadline = time.time() + timeout
        while True:
            names = sorted((f for f in os.listdir(self.dir) if f.endswith(".eml")),
                           key=lambda f: int(f.split(".")[0]))
            if n is None or len(names) >= n or time.time() > deadline:
                break
            time.sleep(0.05)
        out = []
        for f in names:
            with open(os.path.join(self.dir, f), "rb") as fh:
                raw = fh.read()
            with open(os.path.join(self.dir, f[:-4] + ".json")) as fh:
                env = json.load(fh)
            out.append((raw, env))
        return out

    def connections(self):
        with open(os.path.join(self.dir, "connections")) as f:
            return int(f.read() or 0)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(have_system_modules(), "needs python3-dkim and python3-aiosmtpd (make deps-test)")
class MailTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tandem-mail-")
        t = cls.tmp
        cls.key = os.path.join(t, "dkim.pem")
        openssl("genrsa", "-out", cls.key, "2048")
        pub_der = subprocess.run(["openssl", "rsa", "-in", cls.key, "-pubout", "-outform", "DER"],
                                 check=True, capture_output=True, timeout=60).stdout
        import base64
        cls.record = os.path.join(t, "dkim.txt")
        with open(cls.record, "w") as f:
            f.write("v=DKIM1; k=rsa; p=" + base64.b64encode(pub_der).decode())
        # a certificate for 127.0.0.1, which is its own CA
        cls.cert = os.path.join(t, "cert.pem")
        cls.cert_key = os.path.join(t, "cert.key")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", cls.cert_key,
                "-out", cls.cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1")
        cls.html = os.path.join(t, "mail.html")
        with open(cls.html, "w", encoding="utf-8") as f:
            f.write(HTML)
        cls.secret = os.path.join(t, "track.secret")
        with open(cls.secret, "w") as f:
            f.write("a test tracking secret, 32 bytes or more\n")
        cls.password = os.path.join(t, "smtp.password")
        with open(cls.password, "w") as f:
            f.write("s3cret-pw\n")
        cls.data = os.path.join(t, "data")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def send(self, *args, smtp=None, to="jane@example.com", subject="Your cart is waiting, Zo\u00eb",
             extra_env=None, timeout=120):
        cmd = [BIN, "mail", "send", "--to", to, "--subject", subject, "--html", self.html,
               "--mail-from", "news@shop.example", "--mail-from-name", "Shop \u00e9t\u00e9",
               "--dkim-domain", "shop.example", "--dkim-selector", "sel1",
               "--dkim-key", self.key, "--public-url", "https://t.shop.example",
               "--track-secret-file", self.secret, "--data", self.data, *args]
        if smtp:
            cmd += ["--smtp", smtp]
        env = dict(os.environ, **(extra_env or {}))
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)

    def dkim_verify(self, raw):
        path = os.path.join(self.tmp, "verify.eml")
        with open(path, "wb") as f:
            f.write(raw)
        r = subprocess.run([SYS_PY, "-c", DKIM_VERIFY, path, self.record,
                            "sel1._domainkey.shop.example."], capture_output=True, text=True,
                           timeout=60)
        return r.stdout.strip() == "pass"

    # ---- (a) sending ---------------------------------------------------

    def test_message_arrives_parses_and_verifies(self):
        sink = Sink()
        try:
            r = self.send("--smtp-tls", "off", "--list-id", "cart.shop.example",
                          "--list-name", "Cart reminders", smtp=f"smtp://127.0.0.1:{sink.port}")
            self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
            self.assertRegex(r.stdout, r" accepted 250 connects=1 ")
            (raw, env), = sink.messages(1)
        finally:
            sink.close()
        self.assertEqual(env["mail_from"], "news@shop.example")
        self.assertEqual(env["rcpt_tos"], ["jane@example.com"])
        self.assertNotIn(b"\n", raw.replace(b"\r\n", b""), "bare LF in the message")
        self.assertTrue(raw.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;"))
        # an independent parser
        m = email.message_from_bytes(raw, policy=email.policy.default)
        self.assertEqual(str(m["Subject"]), "Your cart is waiting, Zo\u00eb")
        self.assertEqual(m["From"].addresses[0].display_name, "Shop \u00e9t\u00e9")
        self.assertEqual(m["From"].addresses[0].addr_spec, "news@shop.example")
        self.assertEqual(m["To"].addresses[0].addr_spec, "jane@example.com")
        self.assertRegex(m["Message-ID"], r"^<tandem\.cli\.[0-9a-f]{16}@shop\.example>$")
        self.assertEqual(str(m["List-Id"]), "Cart reminders <cart.shop.example>")
        self.assertEqual(m["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click")
        self.assertRegex(str(m["List-Unsubscribe"]),
                         r"^<https://t\.shop\.example/t/u/[A-Za-z0-9_-]+>$")
        self.assertEqual(m.get_content_type(), "multipart/alternative")
        parts = [p.get_content_type() for p in m.iter_parts()]
        self.assertEqual(parts, ["text/plain", "text/html"])
        html = m.get_body(("html",)).get_content()
        text = m.get_body(("plain",)).get_content()
        self.assertIn("Your cart is waiting, Zo\u00eb", html)
        self.assertIn("59,90\u00a0\u20ac", html)
        self.assertIn("Your cart is waiting, Zo\u00eb", text)
        # links tracked, mailto left alone, pixel added
        self.assertEqual(len(re.findall(r'href="https://t\.shop\.example/t/c/', html)), 2)
        self.assertIn('href="mailto:help@shop.example"', html)
        self.assertRegex(html, r'<img src="https://t\.shop\.example/t/o/[A-Za-z0-9_-]+"')
        self.assertIn("https://t.shop.example/t/c/", text)
        for p in m.iter_parts():
            self.assertEqual(p["Content-Transfer-Encoding"], "quoted-printable")
        head, body = raw.split(b"\r\n\r\n", 1)
        for line in head.split(b"\r\n"):
            # folded within 78, but for a single token that cannot be split (a URL)
            self.assertTrue(len(line) <= 78 or len(line.split(b" ")[-1]) > 70, line)
        for line in body.split(b"\r\n"):
            self.assertLessEqual(len(line), 76, line)
        # the independent verifier accepts the signature ...
        self.assertTrue(self.dkim_verify(raw))
        # ... and catches a changed subject, body or unsubscribe header
        self.assertFalse(self.dkim_verify(raw.replace(b"Subject: Your", b"Subject: Our", 1)))
        self.assertFalse(self.dkim_verify(raw.replace(b"Back to your cart", b"Back to our cart")))
        self.assertFalse(self.dkim_verify(raw.replace(b"List-Unsubscribe-Post:",
                                                      b"List-Unsubscribe-Post: x", 1)))
        # and the signature covers what RFC 8058 asks
        sig = email.message_from_bytes(raw)["DKIM-Signature"].replace("\r\n", "").replace("\t", "")
        h = re.search(r";h=([^;]+);", sig.replace(" ", "")).group(1).lower().split(":")
        for name in ("from", "subject", "list-unsubscribe", "list-unsubscribe-post", "to",
                     "date", "message-id"):
            self.assertIn(name, h)

    def test_print_is_deterministic_per_message_id(self):
        args = ("--print", "--message-id", "tandem.7.email@shop.example", "--smtp-tls", "off")
        r1 = self.send(*args)
        self.assertEqual(r1.returncode, 0, r1.stderr)
        m = email.message_from_string(r1.stdout, policy=email.policy.default)
        self.assertEqual(m["Message-ID"], "<tandem.7.email@shop.example>")
        boundary = m.get_boundary()
        r2 = self.send(*args)
        self.assertEqual(email.message_from_string(r2.stdout).get_boundary(), boundary)
        # journey attribution: the Message-ID of (instance, step)
        r3 = self.send("--print", "--instance", "42", "--step", "email_1", "--journey", "cart")
        self.assertIn("Message-ID: <tandem.42.email_1@shop.example>", r3.stdout)

    def test_starttls_and_auth(self):
        sink = Sink("--tls", self.cert, self.cert_key, "--auth", "shop:s3cret-pw")
        try:
            url = f"smtp://127.0.0.1:{sink.port}"
            common = ("--smtp-tls", "require", "--smtp-ca-file", self.cert, "--smtp-user", "shop")
            r = self.send(*common, "--smtp-password-file", self.password, smtp=url)
            self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
            (raw, env), = sink.messages(1)
            self.assertTrue(env["tls"])
            self.assertTrue(env["auth"])
            self.assertTrue(self.dkim_verify(raw))
            # a wrong password is a connection failure (retry later), not a bounce
            bad = os.path.join(self.tmp, "bad.password")
            with open(bad, "w") as f:
                f.write("nope\n")
            r = self.send(*common, "--smtp-password-file", bad, smtp=url)
            self.assertEqual(r.returncode, 4, r.stdout)
            self.assertRegex(r.stdout, r" connfail 535 ")
            self.assertNotIn("nope", r.stdout + r.stderr)
            # a certificate we do not trust: refused, nothing sent
            r = self.send("--smtp-tls", "require", "--smtp-user", "shop",
                          "--smtp-password-file", self.password, smtp=url)
            self.assertEqual(r.returncode, 4, r.stdout)
            self.assertIn(" connfail ", r.stdout)
            self.assertEqual(len(sink.messages()), 1)
        finally:
            sink.close()

    def test_credentials_never_in_clear(self):
        # a server that offers AUTH without STARTTLS: with a user set, "try"
        # means "require", so nothing is sent
        sink = Sink("--auth", "shop:s3cret-pw")
        try:
            r = self.send("--smtp-user", "shop", "--smtp-password-file", self.password,
                          smtp=f"smtp://127.0.0.1:{sink.port}")
            self.assertEqual(r.returncode, 4, r.stdout)
            self.assertIn(" connfail ", r.stdout)
            self.assertEqual(sink.messages(), [])
        finally:
            sink.close()

    def test_smtps(self):
        sink = Sink("--tls", self.cert, self.cert_key, "--implicit-tls")
        try:
            r = self.send("--smtp-ca-file", self.cert, smtp=f"smtps://127.0.0.1:{sink.port}")
            self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
            (raw, env), = sink.messages(1)
            self.assertTrue(env["tls"])
            self.assertTrue(self.dkim_verify(raw))
        finally:
            sink.close()

    def test_outcomes(self):
        sink = Sink("--reply", "bounce@=550", "--reply", "later@=451")
        try:
            url = f"smtp://127.0.0.1:{sink.port}"
            r = self.send("--smtp-tls", "off", smtp=url, to="bounce@example.com")
            self.assertEqual(r.returncode, 3, r.stdout)
            self.assertRegex(r.stdout, r" permfail 550 connects=1 550 mailbox unavailable")
            r = self.send("--smtp-tls", "off", smtp=url, to="later@example.com")
            self.assertEqual(r.returncode, 4, r.stdout)
            self.assertRegex(r.stdout, r" tempfail 451 connects=1 451 try again later")
            self.assertEqual(sink.messages(), [])
        finally:
            sink.close()
        # nothing listens there any more
        r = self.send("--smtp-tls", "off", "--smtp-timeout", "5", smtp=url)
        self.assertEqual(r.returncode, 4, r.stdout)
        self.assertRegex(r.stdout, r" connfail 0 connects=0 ")

    def test_connections_reused_by_concurrent_senders(self):
        sink = Sink()
        try:
            r = self.send("--smtp-tls", "off", "--count", "8", "--smtp-senders", "2",
                          smtp=f"smtp://127.0.0.1:{sink.port}")
            self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
            lines = r.stdout.splitlines()
            self.assertEqual(len(lines), 8)
            self.assertTrue(all(" accepted 250 " in line for line in lines), lines)
            msgs = sink.messages(8)
            self.assertEqual(len(msgs), 8)
            ids = {email.message_from_bytes(raw)["Message-ID"] for raw, _ in msgs}
            self.assertEqual(len(ids), 8)
            # two senders, two connections, each kept for its next messages
            self.assertEqual(sink.connections(), 2)
            self.assertEqual(sum(int(re.search(r"connects=(\d+)", x).group(1)) for x in lines), 2)
            for raw, _ in msgs[:2]:
                self.assertTrue(self.dkim_verify(raw))
        finally:
            sink.close()

    def test_rate_limit(self):
        sink = Sink()
        try:
            # 60 a minute to one domain: one now, then one a second
            t0 = time.monotonic()
            r = self.send("--smtp-tls", "off", "--count", "3", "--smtp-domain-rate", "60",
                          smtp=f"smtp://127.0.0.1:{sink.port}")
            elapsed = time.monotonic() - t0
            self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
            self.assertEqual(len(sink.messages(3)), 3)
            self.assertGreaterEqual(elapsed, 1.9)
        finally:
            sink.close()

    def test_bad_settings(self):
        r = self.send("--print", "--dkim-key", os.path.join(self.tmp, "missing.pem"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("dkim key", r.stderr)
        r = self.send("--smtp-tls", "off")  # no smtp
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("set smtp", r.stderr)
        r = subprocess.run([BIN, "mail", "send", "--to", "x@y.example"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        r = self.send("--print", to="not an address")
        self.assertNotEqual(r.returncode, 0)

    # ---- (b) tracking --------------------------------------------------

    def links_of(self, to="shopper@example.com"):
        """Sends nothing: builds a message with --print and returns its
        click, open and unsubscribe URLs."""
        r = self.send("--print", "--journey", "cart-abandonment", "--instance", "9",
                      "--step", "email", to=to)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = email.message_from_string(r.stdout, policy=email.policy.default)
        html = m.get_body(("html",)).get_content()
        clicks = re.findall(r'href="https://t\.shop\.example(/t/c/[A-Za-z0-9_-]+)"', html)
        opens = re.findall(r'src="https://t\.shop\.example(/t/o/[A-Za-z0-9_-]+)"', html)
        unsub = re.search(r"<https://t\.shop\.example(/t/u/[A-Za-z0-9_-]+)>",
                          str(m["List-Unsubscribe"])).group(1)
        return clicks, opens[0], unsub

    def events(self, srv, type_):
        db = sqlite3.connect(f"file:{os.path.join(srv.data_dir, 'tandem.db')}?mode=ro",
                             uri=True, timeout=10)
        try:
            rows = db.execute("SELECT doc FROM events WHERE type = ? ORDER BY seq",
                              (type_,)).fetchall()
        finally:
            db.close()
        return [json.loads(r[0]) for r in rows]

    def no_redirect(self, srv, path, method="GET", ua=BROWSER_UA):
        class NoRedirect(urllib.request.HTTPErrorProcessor):
            def http_response(self, request, response):
                return response
        opener = urllib.request.build_opener(NoRedirect)
        req = urllib.request.Request(srv.url(path), method=method,
                                     data=b"List-Unsubscribe=One-Click" if method == "POST" else None,
                                     headers={"User-Agent": ua})
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()

    def test_tracking_endpoints(self):
        clicks, open_path, unsub = self.links_of()
        with Server("--track-secret-file", self.secret) as srv:
            if not os.path.exists(os.path.join(srv.data_dir, "tandem.db")):
                self.skipTest("events are not in DATA/tandem.db")
            # forged, altered and mismatched tokens: 404, never a redirect
            for bad in ("/t/c/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                        "/t/c/" + "x" * 7000,
                        clicks[0][:-2] + ("AA" if not clicks[0].endswith("AA") else "BB"),
                        "/t/c/" + open_path[5:],
                        "/t/c/" + unsub[5:]):
                status, headers, _ = self.no_redirect(srv, bad)
                self.assertIn(status, (400, 404), bad)
                self.assertIsNone(headers.get("Location"))
            # a click right after sending, by a script: redirected, flagged bot
            status, headers, _ = self.no_redirect(srv, clicks[0], ua="python-requests/2.31")
            self.assertEqual(status, 302)
            self.assertEqual(headers["Location"],
                             "https://shop.example/p/SKU-1?utm_source=email&utm_medium=cart")
            # a person, a minute later
            self.assertEqual(srv.advance(60)[0], 200)
            status, headers, _ = self.no_redirect(srv, clicks[1])
            self.assertEqual(status, 302)
            self.assertEqual(headers["Location"], "https://shop.example/cart")
            s, p = srv.profile("email", "shopper@example.com")
            self.assertEqual(s, 200, p)
            self.assertEqual(p["counts"].get("email_click"), 2)
            ev = self.events(srv, "email_click")
            self.assertEqual(ev[0]["attributes"]["label"], "item:SKU-1,slot:1")
            self.assertEqual(ev[0]["attributes"]["link"], 1)
            self.assertTrue(ev[0]["attributes"]["bot"])
            self.assertEqual(ev[0]["attributes"]["journey"], "cart-abandonment")
            self.assertEqual(ev[0]["attributes"]["instance"], 9)
            self.assertEqual(ev[0]["attributes"]["step"], "email")
            self.assertEqual(ev[0]["attributes"]["message_id"], "tandem.9.email@shop.example")
            self.assertEqual(ev[1]["attributes"]["label"], "link:2")
            self.assertFalse(ev[1]["attributes"]["bot"])
            self.assertEqual(ev[1]["attributes"]["agent"], "human")
            self.assertEqual(ev[1]["source"], "track")
            # link checkers HEAD: still answered, flagged
            status, headers, _ = self.no_redirect(srv, clicks[1], method="HEAD")
            self.assertEqual(status, 302)
            ev = self.events(srv, "email_click")
            self.assertEqual(len(ev), 3)
            self.assertEqual(ev[2]["attributes"]["agent_reason"], "HEAD request")
            # the open pixel; Apple's privacy proxy is flagged as a proxy
            status, headers, body = self.no_redirect(srv, open_path)
            self.assertEqual(status, 200)
            self.assertEqual(headers["Content-Type"], "image/gif")
            self.assertTrue(body.startswith(b"GIF89a"))
            self.assertIn("no-store", headers["Cache-Control"])
            self.no_redirect(srv, open_path, ua="Mozilla/5.0")
            opens = self.events(srv, "email_open")
            self.assertEqual([o["attributes"]["agent"] for o in opens], ["human", "proxy"])
            status, _, _ = self.no_redirect(srv, "/t/o/" + clicks[0][5:])
            self.assertEqual(status, 404)

            # unsubscribe: GET is a page and changes nothing (link scanners)
            status, headers, body = self.no_redirect(srv, unsub)
            self.assertEqual(status, 200)
            self.assertIn(b'<form method="post">', body)
            self.assertIn(b"s***@example.com", body)
            self.assertNotIn(b"shopper@", body)
            s, p = srv.profile("email", "shopper@example.com")
            self.assertNotEqual(p["consent"].get("marketing", {}).get("value"), "out")
            self.assertEqual(self.events(srv, "unsubscribe"), [])
            # POST (RFC 8058 one-click) unsubscribes at once ...
            status, _, body = self.no_redirect(srv, unsub, method="POST")
            self.assertEqual(status, 200, body)
            s, p = srv.profile("email", "shopper@example.com")
            self.assertEqual(p["consent"]["marketing"]["value"], "out")
            self.assertEqual(p["consent"]["marketing"]["source"], "track")
            # ... and again is the same: one event
            status, _, _ = self.no_redirect(srv, unsub, method="POST")
            self.assertEqual(status, 200)
            self.assertEqual(len(self.events(srv, "unsubscribe")), 1)
            # a forged unsubscribe does nothing
            status, _, _ = self.no_redirect(srv, unsub[:-3] + "AAA", method="POST")
            self.assertEqual(status, 404)
            # after opting in again, the same link unsubscribes again
            s, _ = srv.post("/v1/events", {"type": "identify", "email": "shopper@example.com",
                                           "consent": {"marketing": "in"}})
            self.assertEqual(s, 200)
            status, _, _ = self.no_redirect(srv, unsub, method="POST")
            self.assertEqual(status, 200)
            s, p = srv.profile("email", "shopper@example.com")
            self.assertEqual(p["consent"]["marketing"]["value"], "out")
            self.assertEqual(len(self.events(srv, "unsubscribe")), 2)

    def test_tracking_secret_generated_once(self):
        with Server() as srv:
            # no secret configured: one is made in the data directory ...
            status, _, _ = self.no_redirect(srv, "/t/o/AAAA")
            self.assertEqual(status, 404)
            path = os.path.join(srv.data_dir, "track.key")
            self.assertTrue(os.path.exists(path))
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            # ... and `tandem mail` with the same data directory signs with it
            r = subprocess.run([BIN, "mail", "send", "--print", "--to", "a@example.com",
                                "--subject", "s", "--html", self.html, "--mail-from",
                                "news@shop.example", "--public-url", "https://t.shop.example",
                                "--data", srv.data_dir], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            html = email.message_from_string(r.stdout, policy=email.policy.default) \
                .get_body(("html",)).get_content()
            click = re.search(r'href="https://t\.shop\.example(/t/c/[^"]+)"', html).group(1)
            status, headers, _ = self.no_redirect(srv, click)
            self.assertEqual(status, 302)


if __name__ == "__main__":
    unittest.main()
