"""The outbox sender through the real binary and a real SMTP server
(aiosmtpd, mail_sink.py): the shipped cart-abandonment journey on the
virtual clock delivers exactly one email, parsed with Python's email
package; a SIGKILL between the server's DATA and its 250 reply gives the
same Message-ID again (and only then), counted in a metric; suppressed and
unsubscribed recipients get nothing and the row says why; templates and
suppressions over HTTP.

Run as `python3 test_outbox.py --slow-sink DIR N SECONDS` it is a sink
whose first N messages wait SECONDS before the 250 (stored at once).
"""
import email
import email.policy
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from harness import ROOT, Server, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
SYS_PY = "/usr/bin/python3"
HOUR = 3600


def have_aiosmtpd():
    try:
        subprocess.run([SYS_PY, "-c", "import aiosmtpd"], check=True, capture_output=True,
                       timeout=30)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


class Sink:
    """mail_sink.py (or the slow variant) in a process of its own."""

    def __init__(self, *args, slow=None):
        self.dir = tempfile.mkdtemp(prefix="tandem-sink-")
        if slow:
            cmd = [SYS_PY, os.path.abspath(__file__), "--slow-sink", self.dir, str(slow[0]),
                   str(slow[1])]
        else:
            cmd = [SYS_PY, os.path.join(HERE, "mail_sink.py"), self.dir, *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError("mail sink did not start: " + line + self.proc.stderr.read())
        self.port = int(line.split()[1])

    def messages(self, n=None, timeout=20):
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
                out.append(email.message_from_bytes(fh.read(), policy=email.policy.default))
        return out

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


def server(sink, *extra, data_dir=None):
    return Server("--public-url", "https://t.shop.example", "--smtp",
                  f"smtp://127.0.0.1:{sink.port}", "--smtp-tls", "off", "--mail-from",
                  "news@shop.example", "--mail-from-name", "Shop", "--templates-dir",
                  os.path.join(ROOT, "templates"), *extra, data_dir=data_dir)


def cart_add(srv, ecid, items, email=None, **extra):
    ev = {"type": "cart_add", "ecid": ecid, "items": items, **extra}
    if email:
        ev["email"] = email
    s, b = srv.post("/v1/events", ev)
    assert s == 200 and b["accepted"] == 1, b
    return b


def rows_of(srv, ecid):
    out = []
    for inst in srv.journey_instances("ecid", ecid):
        s, b = srv.get(f"/v1/journeys:outbox?instance={inst['id']}", admin=True)
        assert s == 200, b
        out += b["messages"]
    return out


def wait_row(srv, ecid, status, timeout=20):
    def check():
        rows = [r for r in rows_of(srv, ecid) if r["status"] == status]
        return rows or None
    return wait_until(check, timeout=timeout)


def metric(srv, name):
    s, body = srv.get("/metrics")
    text = body.decode() if isinstance(body, bytes) else body
    total = 0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


COAT = {"id": "C-101", "name": "Winter coat", "price": 189.0, "quantity": 2}
SWEAT = {"id": "S-201", "name": "Sweatshirt", "price": 49.9}


@unittest.skipUnless(have_aiosmtpd(), "needs Debian's python3-aiosmtpd")
class OutboxTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.sink = Sink()
        cls.srv = server(cls.sink).start()
        for item in (COAT, SWEAT):
            s, b = cls.srv.put(f"/v1/entities/{item['id']}", {
                "name": item["name"], "pageUrl": f"https://shop.example/p/{item['id']}",
                "thumbnailUrl": f"https://shop.example/i/{item['id']}.jpg",
                "attributes": {"value": item["price"]}}, admin=True)
            assert s in (200, 201), b
        # the stored template wins over the file: this one links to the shop
        with open(os.path.join(ROOT, "templates", "cart-abandonment.html")) as f:
            html = f.read().replace('context.message.shopUrl ?: "#"',
                                    'context.message.shopUrl ?: "https://shop.example/"')
        with open(os.path.join(ROOT, "templates", "cart-abandonment.json")) as f:
            manifest = json.load(f)
        s, b = cls.srv.put("/v1/templates/cart-abandonment",
                           {"subject": manifest["subject"], "html": html}, admin=True)
        assert s == 200 and b["version"] == 2, b
        cls.srv.apply_journey("cart-abandonment.json")

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        cls.sink.close()
        assert rc == 0, cls.srv.logs()

    def sent_to(self, addr):
        return [m for m in self.sink.messages() if m["To"] and addr in m["To"]]

    def test_cart_abandonment_delivers_one_email(self):
        srv = self.srv
        cart_add(srv, "OB-1", [COAT, SWEAT], email="jane@example.com")
        srv.advance(3 * HOUR + 1)
        rows = wait_row(srv, "OB-1", "sent")
        self.assertTrue(rows, rows_of(srv, "OB-1"))
        wait_until(lambda: self.sent_to("jane@example.com"))
        time.sleep(0.5)  # nothing more may come
        msgs = self.sent_to("jane@example.com")
        self.assertEqual(len(msgs), 1)
        m = msgs[0]
        self.assertEqual(m["Message-ID"], rows[0]["message_id"])
        self.assertIn("Winter coat", str(m["Subject"]))
        self.assertIn("news@shop.example", m["From"])
        html = m.get_body(("html",)).get_content()
        text = m.get_body(("plain",)).get_content()
        self.assertIn("Winter coat", html)
        self.assertIn("Sweatshirt", html)
        self.assertIn("Winter coat", text)
        links = re.findall(r'href="([^"]+)"', html)
        self.assertTrue(any(u.startswith("https://t.shop.example/t/c/") for u in links), links)
        self.assertIn("https://t.shop.example/t/o/", html)
        self.assertIn("https://t.shop.example/t/u/", m["List-Unsubscribe"])
        # more time and more sender rounds send nothing again
        srv.advance(24 * HOUR)
        time.sleep(0.6)
        self.assertEqual(len(self.sent_to("jane@example.com")), 1)
        s, rep = srv.get("/v1/journeys/cart-abandonment/messages", admin=True)
        self.assertEqual(s, 200, rep)
        self.assertGreaterEqual(rep["sent"], 1)

    def test_click_then_purchase_is_attributed(self):
        srv = self.srv
        cart_add(srv, "OB-7", [COAT], email="buyer@example.com")
        srv.advance(3 * HOUR + 1)
        self.assertTrue(wait_row(srv, "OB-7", "sent"), rows_of(srv, "OB-7"))
        msgs = wait_until(lambda: self.sent_to("buyer@example.com"))
        html = msgs[0].get_body(("html",)).get_content()
        click = [u for u in re.findall(r'href="([^"]+)"', html) if "/t/c/" in u][0]
        pixel = re.search(r'src="(https://t\.shop\.example/t/o/[^"]+)"', html).group(1)
        srv.advance(120)  # later than a link scanner would be
        ua = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
                            "Gecko) Chrome/120.0 Safari/537.36"}
        path = lambda u: u[len("https://t.shop.example"):]
        s, _, _ = srv.request("GET", path(pixel), headers=ua, raw=True)
        self.assertEqual(s, 200)
        # the redirect is read, not followed: nothing leaves the machine
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.request("GET", path(click), headers=ua)
        r = conn.getresponse()
        r.read()
        conn.close()
        self.assertEqual(r.status, 302)
        self.assertTrue(r.getheader("Location").startswith("https://shop.example/"))
        srv.advance(HOUR)
        s, b = srv.post("/v1/events", {"type": "purchase", "ecid": "OB-7",
                                       "items": [{"id": "C-101", "price": 189.0, "quantity": 2}],
                                       "order": {"id": "ORD-7", "total": 378.0}})
        self.assertEqual(s, 200, b)
        # the same order again credits nothing more
        s, b = srv.post("/v1/events", {"type": "purchase", "ecid": "OB-7",
                                       "order": {"id": "ORD-7", "total": 378.0}})
        self.assertEqual(s, 200, b)
        s, rep = srv.get("/v1/journeys/cart-abandonment/messages", admin=True)
        self.assertEqual(s, 200, rep)
        self.assertGreaterEqual(rep["opened"], 1, rep)
        self.assertGreaterEqual(rep["clicked"], 1, rep)
        self.assertEqual(rep["converted"], 1, rep)
        self.assertAlmostEqual(rep["revenue"], 378.0)

    def test_suppressed_address_gets_nothing(self):
        srv = self.srv
        s, b = srv.post("/v1/suppressions", {"address": "Blocked@Example.com",
                                             "reason": "complaint"}, admin=True)
        self.assertEqual(s, 201, b)
        self.assertEqual(b["key"], "blocked@example.com")
        cart_add(srv, "OB-2", [COAT], email="blocked@example.com")
        srv.advance(3 * HOUR + 1)
        rows = wait_row(srv, "OB-2", "skipped")
        self.assertTrue(rows, rows_of(srv, "OB-2"))
        self.assertTrue(rows[0]["last_error"].startswith("suppressed"), rows[0])
        self.assertEqual(self.sent_to("blocked@example.com"), [])

    def test_suppressed_domain_gets_nothing(self):
        srv = self.srv
        s, b = srv.post("/v1/suppressions", {"domain": "blocked.example"}, admin=True)
        self.assertEqual(s, 201, b)
        cart_add(srv, "OB-3", [COAT], email="anyone@blocked.example")
        srv.advance(3 * HOUR + 1)
        rows = wait_row(srv, "OB-3", "skipped")
        self.assertTrue(rows, rows_of(srv, "OB-3"))
        self.assertTrue(rows[0]["last_error"].startswith("suppressed"), rows[0])

    def test_unsubscribed_after_queueing_gets_nothing(self):
        srv = self.srv
        cart_add(srv, "OB-4", [COAT], email="leaver@example.com")
        srv.advance(HOUR)
        # consent out after the journey checked it would still stop the send
        s, b = srv.post("/v1/events", {"type": "identify", "ecid": "OB-4",
                                       "consent": {"marketing": "out"}})
        self.assertEqual(s, 200, b)
        srv.advance(2 * HOUR + 1)
        time.sleep(0.5)
        self.assertEqual(self.sent_to("leaver@example.com"), [])

    def test_hard_bounce_fails_and_suppresses(self):
        sink = Sink("--reply", "bounce@=550")
        try:
            with server(sink) as srv:
                srv.apply_journey("cart-abandonment.json")
                cart_add(srv, "OB-5", [COAT], email="bounce@example.com")
                srv.advance(3 * HOUR + 1)
                rows = wait_row(srv, "OB-5", "failed")
                self.assertTrue(rows, rows_of(srv, "OB-5"))
                self.assertTrue(rows[0]["last_error"].startswith("bounced"), rows[0])
                s, b = srv.get("/v1/suppressions", admin=True)
                keys = [x["key"] for x in b["suppressions"]]
                self.assertIn("bounce@example.com", keys)
                s, rep = srv.get("/v1/journeys/cart-abandonment/messages", admin=True)
                self.assertEqual(rep["bounced"], 1, rep)
        finally:
            sink.close()

    def test_suppressions_import_export(self):
        srv = self.srv
        csv = "address,reason\r\nA1@example.org,complaint\r\n@spam.example\r\n"
        s, b = srv.post("/v1/suppressions:import", csv, admin=True)
        self.assertEqual((s, b), (200, {"imported": 2}))
        s, b = srv.post("/v1/suppressions:import", "ok@example.org\nnot an address\n",
                        admin=True)
        self.assertEqual(s, 400, b)
        self.assertEqual(b["error"]["line"], 2)
        s, body = srv.get("/v1/suppressions:export", admin=True)
        text = body.decode() if isinstance(body, bytes) else body
        self.assertIn("a1@example.org,complaint,import,", text)
        self.assertIn("@spam.example,import,import,", text)
        self.assertNotIn("ok@example.org", text)
        s, b = srv.delete("/v1/suppressions/a1@example.org", admin=True)
        self.assertEqual(s, 200, b)
        s, b = srv.delete("/v1/suppressions/a1@example.org", admin=True)
        self.assertEqual(s, 404, b)
        s, b = srv.get("/v1/suppressions", admin=False)
        self.assertEqual(s, 401, b)

    def test_templates_api(self):
        srv = self.srv
        s, b = srv.get("/v1/templates/browse-abandonment", admin=True)
        self.assertEqual(s, 200, b)
        self.assertEqual(b["source"], "file")
        s, b = srv.put("/v1/templates/hello", {"subject": "Hi {{profile.firstName}}",
                                               "html": "<p>{{#if x}}oops</p>"}, admin=True)
        self.assertEqual(s, 400, b)
        self.assertEqual(b["error"]["path"], "/html")
        self.assertEqual(b["error"]["line"], 1)
        self.assertGreater(b["error"]["column"], 0)
        s, b = srv.put("/v1/templates/hello", {"subject": "Hi {{profile.firstName}}",
                                               "html": "<p>Hello {{profile.firstName}}</p>"},
                       admin=True)
        self.assertEqual((s, b["version"]), (201, 1), b)
        s, b = srv.put("/v1/templates/hello", {"subject": "Hey {{profile.firstName}}",
                                               "html": "<p>Hey {{profile.firstName}}</p>"},
                       admin=True)
        self.assertEqual((s, b["version"]), (200, 2), b)
        s, b = srv.post("/v1/templates/hello:preview",
                        {"data": {"profile": {"firstName": "Zo\u00eb"}}}, admin=True)
        self.assertEqual(s, 200, b)
        self.assertEqual(b["subject"], "Hey Zo\u00eb")
        self.assertIn("Hey Zo\u00eb", b["html"])
        self.assertIn("Hey Zo\u00eb", b["text"])
        cart_add(srv, "OB-6", [COAT], email="preview@example.com")
        s, b = srv.post("/v1/templates/cart-abandonment:preview",
                        {"profile": {"ns": "ecid", "id": "OB-6"}}, admin=True)
        self.assertEqual(s, 200, b)
        self.assertIn("report", b)
        s, b = srv.post("/v1/templates/cart-abandonment:preview",
                        {"profile": {"ns": "ecid", "id": "nobody"}}, admin=True)
        self.assertEqual(s, 404, b)
        s, b = srv.delete("/v1/templates/hello", admin=True)
        self.assertEqual(s, 200, b)
        s, b = srv.get("/v1/templates/hello", admin=True)
        self.assertEqual(s, 404, b)


def clock_ms(srv):
    s, b = srv.get("/v1/admin/clock", admin=True)
    assert s == 200, b
    return b["now_ms"]


def offset_for(now_ms, local_minutes):
    """The UTC offset ("+HH:MM") that makes now_ms about local_minutes past midnight."""
    utc = (now_ms // 60000) % 1440
    off = (local_minutes - utc) % 1440
    if off > 720:
        off -= 1440
    off = max(-14 * 60, min(14 * 60, off))
    sign = "-" if off < 0 else "+"
    return f"{sign}{abs(off) // 60:02d}:{abs(off) % 60:02d}", off


@unittest.skipUnless(have_aiosmtpd(), "needs Debian's python3-aiosmtpd")
class RulesTest(unittest.TestCase):
    """Frequency caps across journeys and quiet hours, each on a server of its own."""

    def setUp(self):
        self.sink = Sink()

    def tearDown(self):
        self.sink.close()

    def two_carts(self, srv, ecid, addr):
        cart_add(srv, ecid, [COAT], email=addr, cart_id=ecid + "-K1")
        cart_add(srv, ecid, [SWEAT], email=addr, cart_id=ecid + "-K2")
        srv.advance(3 * HOUR + 1)

    def test_cap_defers_the_second_email(self):
        with server(self.sink, "--cap", "1/16h") as srv:
            srv.apply_journey("cart-abandonment.json")
            self.two_carts(srv, "CAP-1", "capped@example.com")
            self.assertTrue(wait_row(srv, "CAP-1", "sent"))
            rows = wait_until(lambda: [r for r in rows_of(srv, "CAP-1")
                                       if (r.get("last_error") or "").startswith("capped")])
            self.assertTrue(rows, rows_of(srv, "CAP-1"))
            self.assertEqual(rows[0]["status"], "queued")
            # a deferral is not a send attempt: outbox_max_attempts stays whole
            self.assertEqual(rows[0]["attempts"], 0, rows[0])
            time.sleep(0.5)
            self.assertEqual(len(self.sink.messages()), 1)
            s, rep = srv.get("/v1/journeys/cart-abandonment/messages", admin=True)
            self.assertEqual(rep["deferred_by_reason"], {"capped": 1}, rep)
            srv.advance(16 * HOUR + 60)
            self.assertEqual(len(self.sink.messages(2)), 2)
            self.assertTrue(wait_until(lambda: len(wait_row(srv, "CAP-1", "sent") or []) == 2))
            self.assertEqual([r["attempts"] for r in wait_row(srv, "CAP-1", "sent")], [1, 1])

    def test_unsubscribe_while_deferred_skips_with_the_reason(self):
        with server(self.sink, "--cap", "1/16h") as srv:
            srv.apply_journey("cart-abandonment.json")
            self.two_carts(srv, "CAP-3", "changed@example.com")
            self.assertTrue(wait_row(srv, "CAP-3", "sent"))
            self.assertTrue(wait_until(lambda: [r for r in rows_of(srv, "CAP-3")
                                                if r["status"] == "queued"]))
            # the one-click unsubscribe link of the first email (RFC 8058 POST)
            first = self.sink.messages(1)[0]
            link = re.search(r"<(https://t\.shop\.example/t/u/[^>]+)>",
                             str(first["List-Unsubscribe"]).replace("\n", "").replace(" ", ""))
            s, _, _ = srv.request("POST", link.group(1)[len("https://t.shop.example"):],
                                  "List-Unsubscribe=One-Click", raw=True)
            self.assertEqual(s, 200)
            srv.advance(17 * HOUR)
            rows = wait_row(srv, "CAP-3", "skipped")
            self.assertTrue(rows, rows_of(srv, "CAP-3"))
            self.assertTrue(rows[0]["last_error"].startswith("unsubscribed"), rows[0])
            self.assertEqual(len(self.sink.messages()), 1)

    def test_consent_required(self):
        with server(self.sink, "--consent-required", "yes") as srv:
            srv.apply_journey("cart-abandonment.json")
            cart_add(srv, "CON-1", [COAT], email="unknown@example.com")
            cart_add(srv, "CON-2", [COAT], email="optin@example.com",
                     consent={"marketing": "in"})
            srv.advance(3 * HOUR + 1)
            rows = wait_row(srv, "CON-1", "skipped")
            self.assertTrue(rows, rows_of(srv, "CON-1"))
            self.assertTrue(rows[0]["last_error"].startswith("no_consent"), rows[0])
            self.assertTrue(wait_row(srv, "CON-2", "sent"), rows_of(srv, "CON-2"))
            self.assertEqual(len(self.sink.messages()), 1)

    def test_cap_drop(self):
        with server(self.sink, "--cap", "1/16h:drop") as srv:
            srv.apply_journey("cart-abandonment.json")
            self.two_carts(srv, "CAP-2", "dropped@example.com")
            self.assertTrue(wait_row(srv, "CAP-2", "sent"))
            rows = wait_row(srv, "CAP-2", "skipped")
            self.assertTrue(rows, rows_of(srv, "CAP-2"))
            self.assertTrue(rows[0]["last_error"].startswith("capped"), rows[0])
            srv.advance(20 * HOUR)
            time.sleep(0.5)
            self.assertEqual(len(self.sink.messages()), 1)
            s, rep = srv.get("/v1/journeys/cart-abandonment/messages", admin=True)
            self.assertEqual(rep["skipped_by_reason"], {"capped": 1}, rep)

    def quiet_server(self, *extra):
        """A server whose default time zone puts the send at 23:00 local."""
        srv = server(self.sink, *extra).start()
        tz, off = offset_for(clock_ms(srv) + 3 * HOUR * 1000, 23 * 60)
        srv.stop()
        srv2 = server(self.sink, "--quiet-hours", "21:00-08:00", "--quiet-hours-tz", tz, *extra,
                      data_dir=srv.data_dir).start()
        return srv2

    def test_quiet_hours_hold_until_morning(self):
        srv = self.quiet_server()
        try:
            srv.apply_journey("cart-abandonment.json")
            cart_add(srv, "QH-1", [COAT], email="night@example.com")
            srv.advance(3 * HOUR + 1)
            rows = wait_until(lambda: [r for r in rows_of(srv, "QH-1")
                                       if (r.get("last_error") or "").startswith("quiet_hours")])
            self.assertTrue(rows, rows_of(srv, "QH-1"))
            self.assertEqual(rows[0]["status"], "queued")
            self.assertIn("tz_source=default", rows[0]["last_error"])
            time.sleep(0.5)
            self.assertEqual(self.sink.messages(), [])
            srv.advance(8 * HOUR)  # 07:00 local: still quiet
            time.sleep(0.5)
            self.assertEqual(self.sink.messages(), [])
            srv.advance(2 * HOUR)  # 09:00 local
            self.assertEqual(len(self.sink.messages(1)), 1)
        finally:
            self.assertEqual(srv.stop(), 0, srv.logs())
            shutil.rmtree(srv.data_dir, ignore_errors=True)

    def test_quiet_hours_drop_after_max_hold(self):
        srv = self.quiet_server("--quiet-hold-max-hours", "2")
        try:
            srv.apply_journey("cart-abandonment.json")
            cart_add(srv, "QH-2", [COAT], email="late@example.com")
            srv.advance(3 * HOUR + 1)
            rows = wait_row(srv, "QH-2", "skipped")
            self.assertTrue(rows, rows_of(srv, "QH-2"))
            self.assertTrue(rows[0]["last_error"].startswith("quiet_hours_dropped"), rows[0])
            srv.advance(12 * HOUR)
            time.sleep(0.5)
            self.assertEqual(self.sink.messages(), [])
        finally:
            self.assertEqual(srv.stop(), 0, srv.logs())
            shutil.rmtree(srv.data_dir, ignore_errors=True)

    def test_quiet_hours_journey_time_zone(self):
        with open(os.path.join(ROOT, "journeys", "cart-abandonment.json")) as f:
            doc = json.load(f)
        with server(self.sink, "--quiet-hours", "21:00-08:00") as srv:
            tz, off = offset_for(clock_ms(srv) + 3 * HOUR * 1000, 23 * 60)
            doc["steps"]["email"]["data"]["timezone"] = tz
            srv.apply_journey(doc)
            cart_add(srv, "QH-3", [COAT], email="tz@example.com")
            srv.advance(3 * HOUR + 1)
            rows = wait_until(lambda: [r for r in rows_of(srv, "QH-3")
                                       if (r.get("last_error") or "").startswith("quiet_hours")])
            self.assertTrue(rows, rows_of(srv, "QH-3"))
            self.assertIn("tz_source=journey", rows[0]["last_error"])

    def test_quiet_hours_time_zone_from_events(self):
        """An event's time zone (native attributes.timezone; the Web SDK's
        placeContext.localTimezoneOffset maps to it) is the profile's source
        below an explicit profile attribute."""
        with server(self.sink, "--quiet-hours", "21:00-08:00") as srv:
            tz, off = offset_for(clock_ms(srv) + 3 * HOUR * 1000, 23 * 60)
            srv.apply_journey("cart-abandonment.json")
            cart_add(srv, "QH-4", [COAT], email="evtz@example.com",
                     attributes={"timezone": tz})
            srv.advance(3 * HOUR + 1)
            rows = wait_until(lambda: [r for r in rows_of(srv, "QH-4")
                                       if (r.get("last_error") or "").startswith("quiet_hours")])
            self.assertTrue(rows, rows_of(srv, "QH-4"))
            self.assertIn("tz_source=events", rows[0]["last_error"])


DKIM_VERIFY = r"""
import sys, dkim
msg = open(sys.argv[1], "rb").read()
record = open(sys.argv[2], "rb").read().strip()
def dnsfunc(name, timeout=5):
    return record if name == sys.argv[3].encode() else None
sys.exit(0 if dkim.DKIM(msg).verify(dnsfunc=dnsfunc) else 1)
"""


def have_dkim():
    try:
        subprocess.run([SYS_PY, "-c", "import dkim"], check=True, capture_output=True,
                       timeout=30)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


@unittest.skipUnless(have_aiosmtpd() and have_dkim(),
                     "needs Debian's python3-aiosmtpd and python3-dkim")
class DkimTest(unittest.TestCase):

    def test_journey_email_is_signed(self):
        import base64
        tmp = tempfile.mkdtemp(prefix="tandem-dkim-")
        sink = Sink()
        try:
            key = os.path.join(tmp, "dkim.pem")
            subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True,
                           capture_output=True, timeout=120)
            der = subprocess.run(["openssl", "rsa", "-in", key, "-pubout", "-outform", "DER"],
                                 check=True, capture_output=True, timeout=60).stdout
            record = os.path.join(tmp, "dkim.txt")
            with open(record, "w") as f:
                f.write("v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode())
            with server(sink, "--dkim-domain", "shop.example", "--dkim-selector", "sel1",
                        "--dkim-key", key) as srv:
                srv.apply_journey("cart-abandonment.json")
                cart_add(srv, "DK-1", [COAT], email="signed@example.com")
                srv.advance(3 * HOUR + 1)
                self.assertEqual(len(sink.messages(1)), 1, srv.logs())
            raw = [f for f in os.listdir(sink.dir) if f.endswith(".eml")][0]
            r = subprocess.run([SYS_PY, "-c", DKIM_VERIFY, os.path.join(sink.dir, raw), record,
                                "sel1._domainkey.shop.example."], capture_output=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            sink.close()
            shutil.rmtree(tmp, ignore_errors=True)


@unittest.skipUnless(have_aiosmtpd(), "needs Debian's python3-aiosmtpd")
class CrashTest(unittest.TestCase):

    def test_kill_between_data_and_250_resends_with_the_same_message_id(self):
        sink = Sink(slow=(1, 60))
        data = tempfile.mkdtemp(prefix="tandem-test-")
        try:
            srv = server(sink, "--outbox-lease", "2", "--smtp-timeout", "120",
                         data_dir=data).start()
            srv.apply_journey("cart-abandonment.json")
            cart_add(srv, "CR-1", [COAT, SWEAT], email="crash@example.com")
            srv.advance(3 * HOUR + 1)
            first = sink.messages(1, timeout=30)
            self.assertEqual(len(first), 1, srv.logs())
            srv.kill9()  # the sink holds its 250: the row stays "sending"
            srv = server(sink, "--outbox-lease", "2", data_dir=data).start()
            msgs = sink.messages(2, timeout=30)
            self.assertEqual(len(msgs), 2, srv.logs())
            self.assertEqual(msgs[0]["Message-ID"], msgs[1]["Message-ID"])
            rows = wait_row(srv, "CR-1", "sent")
            self.assertTrue(rows, rows_of(srv, "CR-1"))
            self.assertEqual(rows[0]["message_id"], msgs[0]["Message-ID"])
            self.assertEqual(metric(srv, "tandem_outbox_resent_after_crash_total"), 1)
            time.sleep(3)  # past another lease: nothing more goes out
            self.assertEqual(len(sink.messages()), 2)
            s, rep = srv.get("/v1/journeys/cart-abandonment/messages", admin=True)
            self.assertEqual((rep["sent"], rep["resent_after_crash"]), (1, 1), rep)
            self.assertEqual(srv.stop(), 0, srv.logs())
        finally:
            sink.close()
            shutil.rmtree(data, ignore_errors=True)


def slow_sink(out_dir, n_slow, seconds):
    """mail_sink.py whose first n_slow messages are stored, then answered late."""
    import asyncio
    sys.path.insert(0, HERE)
    import mail_sink
    orig = mail_sink.Handler.handle_DATA
    count = {"n": 0}

    async def handle_DATA(self, server, session, envelope):
        reply = await orig(self, server, session, envelope)
        count["n"] += 1
        if count["n"] <= n_slow:
            await asyncio.sleep(seconds)
        return reply

    mail_sink.Handler.handle_DATA = handle_DATA
    sys.argv = ["mail_sink.py", out_dir]
    mail_sink.main()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--slow-sink":
        slow_sink(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        unittest.main()
