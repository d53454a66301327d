"""`tandem demo` through the real binary: the catalogue and history made from
the click log, the demo's JSON and pictures, its own SMTP catcher receiving
a journey's email (sent by the real outbox over SMTP) and the mailbox
listing it; bad requests get clear 4xx; `tandem serve` has no /demo/.
"""
import os
import struct
import tempfile
import unittest

from harness import ROOT, Server, free_port, wait_until


def demo(*args, data_dir=None):
    return Server("--tls-listen", f"127.0.0.1:{free_port()}", "--demo-wait", "60",
                  "--demo-smtp-listen", f"127.0.0.1:{free_port()}", *args,
                  command="demo", data_dir=data_dir, start_timeout=240)


class DemoTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = tempfile.mkdtemp(prefix="tandem-demo-")
        cls.srv = demo(data_dir=cls.data).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, cls.srv.logs()

    def test_catalogue_from_the_click_log(self):
        s, cats = self.srv.get("/demo/api/categories")
        self.assertEqual(s, 200, cats)
        names = [c["id"] for c in cats["categories"]]
        self.assertIn("Coats", names)
        self.assertEqual(sum(c["count"] for c in cats["categories"]), 2933)
        s, page = self.srv.get("/demo/api/products?category=Coats&limit=5")
        self.assertEqual(s, 200, page)
        self.assertEqual(len(page["items"]), 5)
        item = page["items"][0]
        self.assertRegex(item["id"], r"^[0-9]+$")  # the log's real item ids
        self.assertIn("Coats", item["categoryId"])
        self.assertTrue(item["thumbnailUrl"].endswith(f"/demo/img/{item['id']}.png"))
        self.assertIn("Generated", item["message"])
        s, nxt = self.srv.get(f"/demo/api/products?category=Coats&limit=5&cursor={page['next']}")
        self.assertEqual(s, 200)
        self.assertNotEqual(nxt["items"][0]["id"], item["id"])
        s, one = self.srv.get(f"/demo/api/products/{item['id']}")
        self.assertEqual((s, one["name"]), (200, item["name"]))

    def test_history_feeds_recommendations(self):
        s, page = self.srv.get("/demo/api/products?limit=1")
        s, b = self.srv.post("/v1/recommendations", {"criteria": "viewed-also-viewed",
                                                     "key": page["items"][0]["id"]}, admin=True)
        self.assertEqual(s, 200, b)
        self.assertGreater(len(b["items"]), 0, b)
        s, b = self.srv.get("/v1/designs", admin=True)
        self.assertEqual(s, 200, b)
        for name in ("viewed-also-viewed", "recommended-for-you", "bought-also-bought"):
            self.assertIn(name, str(b))

    def test_pictures(self):
        s, page = self.srv.get("/demo/api/products?limit=2")
        a, b = page["items"]
        s, png, h = self.srv.request("GET", f"/demo/img/{a['id']}.png", raw=True)
        self.assertEqual(s, 200)
        self.assertEqual(h["Content-Type"], "image/png")
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        w, hgt = struct.unpack(">II", png[16:24])
        self.assertEqual((w, hgt), (480, 480))
        s, png2, _ = self.srv.request("GET", f"/demo/img/{a['id']}.png", raw=True)
        self.assertEqual(png, png2)  # deterministic
        s, png3, _ = self.srv.request("GET", f"/demo/img/{b['id']}.png", raw=True)
        self.assertNotEqual(png, png3)
        for bad in ("/demo/img/nope.png", "/demo/img/123", f"/demo/img/{a['id']}.gif"):
            s, body = self.srv.get(bad)
            self.assertEqual(s, 404, bad)
            self.assertIn("error", body)

    def test_bad_requests(self):
        for path in ("/demo/api/products?limit=0", "/demo/api/products?limit=x",
                     "/demo/api/products?cursor=-1"):
            s, b = self.srv.get(path)
            self.assertEqual(s, 400, path)
            self.assertIn("error", b)
        for path in ("/demo/api/products/nope", "/demo/api/mailbox/../admin.key",
                     "/demo/api/mailbox/x1", "/demo/..%2Fadmin.key", "/demo/.hidden"):
            s, b = self.srv.get(path)
            self.assertEqual(s, 404, path)
        s, b = self.srv.post("/demo/api/clock:advance", {"seconds": -5})
        self.assertEqual(s, 400, b)

    def test_config_for_the_pages(self):
        s, c = self.srv.get("/demo/api/config")
        self.assertEqual(s, 200, c)
        self.assertTrue(c["datastreamId"] and c["orgId"].endswith("@AdobeOrg"), c)
        self.assertRegex(c["edgeDomain"], r"^localhost:[0-9]+$")
        self.assertEqual((c["clock"], c["waitSeconds"]), ("virtual", 60))
        self.assertEqual(sorted(c["journeys"]), ["browse-abandonment", "cart-abandonment"])

    def test_journey_email_reaches_the_catcher_and_the_mailbox(self):
        srv = self.srv
        s, page = srv.get("/demo/api/products?category=Coats&limit=1")
        coat = page["items"][0]
        s, b = srv.post("/v1/events", {"type": "cart_add", "ecid": "demo-t1",
                                       "email": "demo.t1@example.com", "cart_id": "K-demo-t1",
                                       "items": [{"id": coat["id"], "name": coat["name"],
                                                  "price": coat["value"]}]})
        self.assertEqual(s, 200, b)
        srv.advance(61)
        box = os.path.join(self.data, "mailbox")

        def arrived():
            s, m = srv.get("/demo/api/mailbox")
            hits = [x for x in m["messages"] if "demo.t1@example.com" in (x["to"] or "")]
            return hits or None
        hits = wait_until(arrived, timeout=30)
        msg = hits[0]
        self.assertTrue(os.path.exists(os.path.join(box, msg["id"] + ".eml")))
        s, raw, h = srv.request("GET", f"/demo/api/mailbox/{msg['id']}", raw=True)
        self.assertEqual(s, 200)
        self.assertTrue(h["Content-Type"].startswith("text/plain"))
        self.assertIn(b"Message-ID:", raw)
        self.assertIn(b"multipart/alternative", raw)
        s, j = srv.get("/demo/api/journeys")
        rep = {x["id"]: x["report"] for x in j["journeys"]}
        self.assertIn("cart-abandonment", rep)
        self.assertGreaterEqual(rep["cart-abandonment"]["entries"]["entered"], 1, rep)
        self.assertGreaterEqual(rep["cart-abandonment"]["messages"]["sent"], 1, rep)

    def test_pages_and_web_sdk_are_served(self):
        for path, kind in (("/demo/", "text/html"), ("/demo/mailbox", "text/html"),
                           ("/demo/alloy.js", "text/javascript")):
            s, body, h = self.srv.request("GET", path, raw=True)
            self.assertEqual(s, 200, path)
            self.assertTrue(h["Content-Type"].startswith(kind), (path, h["Content-Type"]))


class NotADemoTest(unittest.TestCase):
    def test_serve_has_no_demo_routes(self):
        with Server() as srv:
            for path in ("/demo/", "/demo/api/config", "/demo/api/mailbox", "/demo/img/1.png"):
                s, b = srv.get(path)
                self.assertEqual(s, 404, path)
                self.assertIn("tandem demo", b["error"]["message"])

    def test_bad_dataset_is_refused_with_advice(self):
        srv = demo("--demo-dataset", os.path.join(ROOT, "README.md"))
        with self.assertRaises(RuntimeError) as ctx:
            srv.start()
        self.assertIn("demo-dataset", str(ctx.exception))


if __name__ == "__main__":
    unittest.main()
