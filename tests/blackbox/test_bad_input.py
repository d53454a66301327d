"""Bad input never crashes the server and never damages stored data.

Every malformed request gets a 4xx with a JSON error saying what (code,
message) and where (a JSON pointer "path", or line and column for JSON that
does not parse); the valid events of a batch are kept. The last test checks
that after all of it the server is healthy, the data stored before is
intact, and the database holds exactly the events that were acknowledged.
"""
import http.client
import json
import os
import shutil
import socket
import sqlite3
import unittest

from harness import Server

MAX_BODY = 65536
MAX_EVENTS = 20
MAX_ITEMS = 5


def ev(**fields):
    """A valid event with the given fields changed (None removes one)."""
    e = {"type": "cart_add", "ecid": "BAD-1", "items": [{"id": "SKU-1", "quantity": 1}]}
    for k, v in fields.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


class BadInputTest(unittest.TestCase):
    accepted = 0  # events the server said it stored, over the whole class

    @classmethod
    def setUpClass(cls):
        cls.srv = Server("--max-body", str(MAX_BODY), "--max-events", str(MAX_EVENTS),
                         "--max-items", str(MAX_ITEMS)).start()
        s, body = cls.srv.post("/v1/events", {"events": [
            {"id": "base-1", "type": "cart_add", "ecid": "BASE", "email": "Base@Example.com",
             "items": [{"id": "COAT", "name": "Coat", "price": 59.9, "quantity": 2}]},
            {"id": "base-2", "type": "product_view", "ecid": "BASE", "items": [{"id": "HAT"}]},
            {"id": "base-3", "type": "purchase", "ecid": "BASE", "items": [{"id": "SOCK"}],
             "order": {"id": "O-BASE", "total": 3.5, "currency": "EUR"},
             "consent": {"marketing": "in"}},
        ]})
        assert s == 200 and body["accepted"] == 3, body
        cls.accepted = 3
        s, cls.baseline = cls.srv.profile("ecid", "BASE")
        assert s == 200, cls.baseline

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        logs = cls.srv.logs()[-3000:]
        shutil.rmtree(cls.srv.data_dir, ignore_errors=True)
        assert rc == 0, logs

    def tearDown(self):
        self.assertIsNone(self.srv.proc.poll(), "the server died:\n" + self.srv.logs()[-3000:])

    # -- helpers -----------------------------------------------------------

    def raw(self, method, path, body=b"", headers=None, chunks=None):
        """Sends bytes as they are (or as chunks, without Content-Length).
        Returns (status, parsed JSON body or None, headers)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        try:
            if chunks is None:
                conn.request(method, path, body, headers or {})
            else:
                conn.putrequest(method, path)
                for k, v in (headers or {}).items():
                    conn.putheader(k, v)
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                for c in chunks:
                    conn.send(b"%x\r\n%s\r\n" % (len(c), c))
                conn.send(b"0\r\n\r\n")
            r = conn.getresponse()
            data = r.read()
            ctype = r.headers.get("Content-Type") or ""
            parsed = json.loads(data) if data and "json" in ctype else None
            if parsed is not None and r.status < 300:
                type(self).accepted += parsed.get("accepted", 0)
            return r.status, parsed, r.headers
        finally:
            conn.close()

    def post(self, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        s, b, _ = self.raw("POST", "/v1/events", data,
                           dict({"Content-Type": "application/json"}, **(headers or {})))
        return s, b

    def assertError(self, status, body, want_status, code=None, path=None, reason=None):
        """A JSON error naming the field and the reason."""
        self.assertEqual(status, want_status, body)
        self.assertIsInstance(body, dict, "the error body is not JSON")
        err = body.get("error")
        self.assertIsInstance(err, dict, body)
        self.assertIsInstance(err.get("code"), str, body)
        self.assertTrue(err.get("message"), body)
        if code:
            self.assertEqual(err["code"], code, body)
        if path is not None:
            self.assertEqual(err.get("path"), path, body)
        if reason:
            self.assertIn(reason, err["message"], body)
        return err

    def refused(self, body, path, reason, status=400, code="invalid"):
        s, b = self.post(body)
        err = self.assertError(s, b, status, code, path, reason)
        if "results" in b:  # one event refused: the reply says so for it too
            self.assertEqual((b["accepted"], b["refused"]), (0, 1), b)
            self.assertEqual(b["results"][0]["status"], "refused")
            self.assertEqual(b["results"][0]["error"], err)
        return b

    # -- the request as a whole --------------------------------------------

    def test_malformed_json(self):
        for body in [b'{"type":', b'{"type": "x",}', b"{'type': 'x'}", b"{type: 1}",
                     b'{"type": "x"} trailing', b'{"a": 1}}', b"\xef\xbb\xbf{}", b"nul",
                     b'{"type": "x", "ecid": "E"', b'{"type": tru}']:
            s, b = self.post(body)
            err = self.assertError(s, b, 400, "invalid", reason="malformed JSON")
            self.assertGreaterEqual(err.get("line", 0), 1, body)
            self.assertIn("column", err, body)
        # the position points at the problem
        s, b = self.post(b'{\n  "type": "x",\n  "ecid": "E",,\n}')
        self.assertEqual(self.assertError(s, b, 400)["line"], 3)

    def test_empty_and_non_object_bodies(self):
        s, b = self.post(b"")
        self.assertError(s, b, 400, "invalid", reason="malformed JSON")
        s, b = self.post(b"   \n ")
        self.assertError(s, b, 400, "invalid", reason="malformed JSON")
        for body in [b"[]", b'[{"type": "x", "ecid": "E"}]']:
            self.refused(body, "/", "must be an event object or {\"events\": [...]}")
        for body in [b'"event"', b"42", b"null", b"true"]:
            s, b = self.post(body)
            self.assertError(s, b, 400, "invalid")

    def test_events_wrapper(self):
        self.refused({"events": {}}, "/events", "must be an array")
        self.refused({"events": None}, "/events", "must be an array")
        self.refused({"events": "x"}, "/events", "must be an array")
        self.refused({"events": [ev()], "source": "web"}, "/source", "unknown field")
        # an empty batch: nothing to store, and not a crash
        self.refused({"events": []}, "/events", "at least one event")

    def test_too_many_events(self):
        s, b = self.post({"events": [ev() for _ in range(MAX_EVENTS + 1)]})
        self.assertError(s, b, 413, "too_big", "/events", f"more than {MAX_EVENTS} events")
        s, b = self.post({"events": [ev(id=f"max-{i}") for i in range(MAX_EVENTS)]})
        self.assertEqual((s, b["accepted"]), (200, MAX_EVENTS), b)

    def test_too_many_items(self):
        items = [{"id": f"S{i}"} for i in range(MAX_ITEMS + 1)]
        self.refused(ev(items=items), "/items", f"more than {MAX_ITEMS} items", 413, "too_big")
        s, b = self.post({"events": [ev(), ev(items=items)]})
        self.assertEqual(s, 200, b)
        self.assertEqual(b["results"][1]["error"]["code"], "too_big")
        self.assertEqual(b["results"][1]["error"]["path"], "/events/1/items")

    def test_oversized_body_with_content_length(self):
        big = json.dumps(ev(attributes={"pad": "x" * MAX_BODY})).encode()
        s, b, _ = self.raw("POST", "/v1/events", big, {"Content-Type": "application/json"})
        self.assertError(s, b, 413, "too_big", reason=f"larger than {MAX_BODY} bytes")
        # exactly at the limit is read (and then judged on its content)
        body = b'{"type":"x","ecid":"E","attributes":{"p":"'
        body += b"y" * (MAX_BODY - len(body) - 3) + b'"}}'
        self.assertEqual(len(body), MAX_BODY)
        s, b = self.post(body)
        self.assertError(s, b, 413, "too_big", "/attributes", "larger than 16384 bytes")

    def test_oversized_body_chunked(self):
        chunk = b"x" * 8192
        s, b, _ = self.raw("POST", "/v1/events", headers={"Content-Type": "application/json"},
                           chunks=[b'{"type":"x","ecid":"E","attributes":{"p":"'] +
                           [chunk] * (MAX_BODY // len(chunk) + 1) + [b'"}}'])
        self.assertError(s, b, 413, "too_big", reason=f"larger than {MAX_BODY} bytes")
        # a small chunked body is fine
        s, b, _ = self.raw("POST", "/v1/events", headers={"Content-Type": "application/json"},
                           chunks=[b'{"type":"page_view",', b'"ecid":"CHUNKED"}'])
        self.assertEqual(s, 200, b)
        self.assertEqual(b["accepted"], 1)

    def test_huge_content_length_refused_before_the_body(self):
        """A Content-Length far over the limit gets its 413 at once: the server
        neither waits for nor invites ("100 Continue") a body it will refuse."""
        for expect in (False, True):
            with self.subTest(expect_100_continue=expect):
                sock = socket.create_connection(("127.0.0.1", self.srv.port), timeout=2)
                try:
                    sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: t\r\n"
                                 b"Content-Type: application/json\r\n"
                                 b"Content-Length: 1000000000000\r\n" +
                                 (b"Expect: 100-continue\r\n" if expect else b"") + b"\r\n")
                    try:
                        head = sock.recv(200)
                    except socket.timeout:
                        head = b"(nothing within 2 s)"
                finally:
                    sock.close()
                self.assertTrue(head.startswith(b"HTTP/1.1 413"), head)

    def test_invalid_utf8(self):
        for raw in [b"\xff", b"\xc3", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
                    b"\xc0\xaf"]:
            s, b = self.post(b'{"type":"page_view","ecid":"E' + raw + b'"}')
            err = self.assertError(s, b, 400, "invalid", reason="malformed JSON")
            self.assertIn("column", err)
        s, b = self.post(b'{"type":"page_view","ecid":"\\ud800"}')
        self.assertError(s, b, 400, "invalid", reason="malformed JSON")

    def test_nul_bytes(self):
        s, b = self.post(b'{"type":"page_view","ecid":"E\x00F"}')
        self.assertError(s, b, 400, "invalid", reason="malformed JSON")
        s, b = self.post(b'{"type":"page_view","ecid":"E\\u0000F"}')
        self.assertError(s, b, 400, "invalid", reason="malformed JSON")
        s, b = self.post(b'{"type":"page_view","ecid":"E"}\x00')
        self.assertError(s, b, 400, "invalid", reason="malformed JSON")

    def test_huge_numbers(self):
        for num in [b"1e400", b"-1e400", b"99999999999999999999999", b"-99999999999999999999999"]:
            s, b = self.post(b'{"type":"cart_add","ecid":"E","items":[{"id":"a","price":' +
                             num + b'}]}')
            self.assertError(s, b, 400, "invalid", reason="malformed JSON")
            s, b = self.post(b'{"type":"cart_add","ecid":"E","items":[{"id":"a","quantity":' +
                             num + b'}]}')
            self.assertError(s, b, 400, "invalid", reason="malformed JSON")
        self.refused(ev(items=[{"id": "a", "price": 1e13}]), "/items/0/price", "must be between")
        self.refused(ev(items=[{"id": "a", "quantity": 10 ** 7}]), "/items/0/quantity",
                     "from 1 to 1000000")
        self.refused(ev(ts=2 ** 62), "/ts", "more than a day in the future")
        self.refused(ev(ts=-(2 ** 62)), "/ts", "before the year 2000")

    def test_deep_nesting(self):
        # deeper than the parser goes, within the body limit
        deep = b"[" * 30000 + b"]" * 30000
        s, b = self.post(b'{"type":"x","ecid":"E","attributes":{"a":' + deep + b"}}")
        self.assertError(s, b, 400, "invalid", reason="malformed JSON")
        s, b = self.post(b"[" * 60000)
        self.assertError(s, b, 400, "invalid", reason="malformed JSON")
        s, b = self.post(b'{"a":' * 10000 + b"1" + b"}" * 10000)
        self.assertError(s, b, 400, "invalid", reason="malformed JSON")

    # -- each field ----------------------------------------------------------

    def test_missing_type_and_identities(self):
        self.refused(ev(type=None), "/type", "missing required field")
        self.refused(ev(type=""), "/type", "must not be empty")
        self.refused(ev(type="cart add"), "/type", "may only contain letters")
        self.refused(ev(ecid=None), "/", "needs at least one identity")
        self.refused({"type": "page_view", "cart_id": "K"}, "/", "needs at least one identity")
        self.refused(ev(ecid=""), "/ecid", "must not be empty")

    def test_wrong_types_for_each_field(self):
        cases = [
            ("type", 1, "/type", "must be a string"),
            ("id", 5.5, "/id", "must be a string"),
            ("ecid", [], "/ecid", "must be a string"),
            ("email", {}, "/email", "must be a string"),
            ("email", "not-an-email", "/email", "not an email address"),
            ("customer_id", True, "/customer_id", "must be a string"),
            ("cart_id", 1.5, "/cart_id", "must be a string"),
            ("ts", True, "/ts", "must be an RFC 3339 string or epoch milliseconds"),
            ("ts", "yesterday", "/ts", "not an RFC 3339 time"),
            ("ts", "2025-02-29T10:00:00Z", "/ts", "not an RFC 3339 time"),
            ("items", {}, "/items", "must be an array"),
            ("items", ["SKU-1"], "/items/0", "must be an object"),
            ("items", [{"id": []}], "/items/0/id", "must be a string"),
            ("items", [{"name": "x"}], "/items/0/id", "missing required field"),
            ("items", [{"id": "a", "name": 1}], "/items/0/name", "must be a string"),
            ("items", [{"id": "a", "category": {}}], "/items/0/category", "must be a string"),
            ("items", [{"id": "a", "price": "9.90"}], "/items/0/price", "must be a number"),
            ("items", [{"id": "a", "price": -1}], "/items/0/price", "must be between"),
            ("items", [{"id": "a", "quantity": "2"}], "/items/0/quantity", "must be an integer"),
            ("items", [{"id": "a", "quantity": 0}], "/items/0/quantity", "from 1 to 1000000"),
            ("items", [{"id": "a", "quantity": -3}], "/items/0/quantity", "from 1 to 1000000"),
            ("items", [{"id": "a", "quantity": 1.5}], "/items/0/quantity", "must be an integer"),
            ("order", [], "/order", "must be an object"),
            ("order", {"id": []}, "/order/id", "must be a string"),
            ("order", {"total": "12"}, "/order/total", "must be a number"),
            ("order", {"currency": 978}, "/order/currency", "must be a string"),
            ("order", {"currency": "EURO"}, "/order/currency", "longer than 3 bytes"),
            ("order", {"currency": "E1R"}, "/order/currency", "ISO 4217"),
            ("consent", "in", "/consent", "must be an object"),
            ("consent", {"marketing": 1}, "/consent/marketing", "must be \"in\", \"out\""),
            ("consent", {"marketing": "maybe"}, "/consent/marketing", "must be \"in\""),
            ("consent", {"sms": "in"}, "/consent/sms", "unknown consent"),
            ("attributes", [], "/attributes", "must be an object"),
            ("attributes", "x", "/attributes", "must be an object"),
        ]
        for field, value, path, reason in cases:
            with self.subTest(field=field, value=value):
                self.refused(ev(**{field: value}), path, reason)

    def test_unknown_fields(self):
        self.refused(ev(sku="x"), "/sku", "unknown field \"sku\"")
        self.refused(ev(Type="x"), "/Type", "unknown field")
        self.refused(ev(items=[{"id": "a", "sku": "b"}]), "/items/0/sku", "unknown field")
        self.refused(ev(items=[{"id": "a"}, {"id": "b", "qty": 2}]), "/items/1/qty",
                     "unknown field")
        self.refused(ev(order={"id": "O", "tax": 1}), "/order/tax", "unknown field \"tax\"")
        # keys with "/" and "~" are escaped in the pointer (RFC 6901)
        self.refused(ev(**{"a/b~c": 1}), "/a~1b~0c", "unknown field")
        # free-form data is welcome under "attributes"
        s, b = self.post(ev(id="attrs-ok", attributes={"sku": "x", "nested": {"a": [1, None]}}))
        self.assertEqual((s, b["accepted"]), (200, 1), b)

    def test_attributes_too_big(self):
        self.refused(ev(attributes={"pad": "x" * 20000}), "/attributes",
                     "larger than 16384 bytes", 413, "too_big")

    def test_duplicate_keys(self):
        s, b = self.post(b'{"type":"page_view","type":"cart_add","ecid":"E"}')
        self.assertError(s, b, 400, "invalid", reason="duplicate object key")

    def test_batch_paths_and_valid_events_kept(self):
        events = [ev(id="keep-0", ecid="KEEP"), ev(id="keep-1", ecid="KEEP"),
                  ev(id="keep-2", ecid="KEEP", items=[{"id": "B"}]),
                  ev(id="bad-3", ecid="KEEP", items=[{"id": "a", "price": "cheap"}]),
                  ev(id="keep-4", ecid="KEEP", type="product_view"),
                  ev(id="bad-5", ecid="KEEP", **{"a/b": 1}),
                  7,
                  ev(id="bad-7", ecid="KEEP", order={"currency": "XX"}),
                  ev(id="bad-8", ecid="KEEP", items=[{"id": "a"}, {"id": "b", "quantity": 0}])]
        s, b = self.post({"events": events})
        self.assertEqual(s, 200, b)
        self.assertEqual((b["accepted"], b["refused"]), (4, 5), b)
        self.assertNotIn("error", b)
        paths = {r["index"]: r["error"]["path"] for r in b["results"] if r["status"] == "refused"}
        self.assertEqual(paths, {3: "/events/3/items/0/price", 5: "/events/5/a~1b",
                                 6: "/events/6", 7: "/events/7/order/currency",
                                 8: "/events/8/items/1/quantity"})
        for r in b["results"]:
            if r["status"] == "refused":
                self.assertEqual(r["error"]["code"], "invalid")
                self.assertTrue(r["error"]["message"])
            else:
                self.assertGreater(r["seq"], 0)
        s, p = self.srv.profile("ecid", "KEEP")
        self.assertEqual(s, 200, p)
        self.assertEqual(p["counts"], {"cart_add": 3, "product_view": 1})
        self.assertEqual(sorted((i["id"], i["quantity"]) for i in p["cart"]),
                         [("B", 1), ("SKU-1", 2)])
        # a batch where every event is refused reports the first error on top
        s, b = self.post({"events": [ev(ecid=None), ev(type=7)]})
        err = self.assertError(s, b, 400, "invalid", "/events/0", "needs at least one identity")
        self.assertEqual(b["results"][1]["error"]["path"], "/events/1/type")
        self.assertEqual(b["results"][0]["error"], err)

    # -- the HTTP surface ------------------------------------------------------

    def test_content_types(self):
        # the body decides: JSON sent as text/plain (as sendBeacon does) is taken
        s, b = self.post(ev(id="ctype-plain", type="page_view", items=None),
                         {"Content-Type": "text/plain;charset=UTF-8"})
        self.assertEqual((s, b["accepted"]), (200, 1), b)
        s, b, _ = self.raw("POST", "/v1/events", json.dumps(ev(id="ctype-none")).encode())
        self.assertEqual((s, b["accepted"]), (200, 1), b)
        # and a body that is not JSON is refused whatever it claims to be
        s, b, _ = self.raw("POST", "/v1/events", b"type=page_view&ecid=E",
                           {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertError(s, b, 400, "invalid", reason="malformed JSON")
        s, b, _ = self.raw("POST", "/v1/events",
                           b'--XX\r\nContent-Disposition: form-data; name="type"\r\n\r\nx\r\n--XX--\r\n',
                           {"Content-Type": "multipart/form-data; boundary=XX"})
        self.assertError(s, b, 400, "invalid", reason="malformed JSON")
        s, b, _ = self.raw("POST", "/v1/events", b"<event type='x'/>",
                           {"Content-Type": "application/xml"})
        self.assertError(s, b, 400, "invalid", reason="malformed JSON")

    def test_unknown_routes(self):
        for method, path in [("GET", "/"), ("GET", "/nope"), ("POST", "/v1/event"),
                             ("POST", "/v1/events/1"), ("GET", "/v1/profiles/ecid"),
                             ("GET", "/v1/profiles/ecid/a/b"), ("GET", "/healthz/x"),
                             ("GET", "/%00"), ("GET", "/" + "a" * 4000),
                             ("GET", "/v1/admin/clock:advancex")]:
            with self.subTest(method=method, path=path[:40]):
                s, b, h = self.raw(method, path)
                self.assertError(s, b, 404, "not_found")
                self.assertIn("application/json", h["Content-Type"])

    def test_wrong_methods(self):
        for method, path in [("GET", "/v1/events"), ("PUT", "/v1/events"),
                             ("DELETE", "/v1/events"), ("PATCH", "/v1/events"),
                             ("POST", "/healthz"), ("DELETE", "/metrics"),
                             ("POST", "/v1/profiles/ecid/x"), ("GET", "/v1/admin/clock:advance"),
                             ("BREW", "/v1/events")]:
            with self.subTest(method=method, path=path):
                s, b, h = self.raw(method, path, b"{}" if method != "GET" else b"")
                err = self.assertError(s, b, 405)
                self.assertIn(method, err["message"])
                self.assertIn("application/json", h["Content-Type"])

    def test_405_carries_allow_header(self):
        """RFC 9110 15.5.6: a 405 response must list the allowed methods in Allow."""
        s, _, h = self.raw("GET", "/v1/events")
        self.assertEqual(s, 405)
        self.assertIn("POST", h.get("Allow") or "", "405 without an Allow header")

    def test_preflight_is_not_an_error(self):
        s, _, h = self.raw("OPTIONS", "/v1/events", headers={
            "Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
        self.assertEqual(s, 204)
        self.assertEqual(h["Access-Control-Allow-Origin"], "https://shop.example")

    def test_bad_profile_requests(self):
        s, b = self.srv.get("/v1/profiles/phone/123", admin=True)
        self.assertError(s, b, 400, "invalid", "ns", "unknown identity namespace")
        s, b = self.srv.get("/v1/profiles/ecid/%FF%FE", admin=True)
        self.assertError(s, b, 404, "not_found")
        s, b = self.srv.get("/v1/profiles/ecid/" + "x" * 3000, admin=True)
        self.assertError(s, b, 404, "not_found")

    def test_bad_clock_advance(self):
        for body in [b"", b"{", b"[]", b'{"seconds": "60"}', b'{"seconds": -1}',
                     b'{"seconds": 1e300}', b'{"seconds": null}', b'{"minutes": 5}']:
            with self.subTest(body=body):
                s, b, _ = self.raw("POST", "/v1/admin/clock:advance", body,
                                   {"Authorization": "Bearer test-admin-key-0123456789"})
                self.assertError(s, b, 400, "invalid", "/seconds")

    # -- and after all that --------------------------------------------------

    def test_zz_still_healthy_and_data_intact(self):
        """Runs last (unittest sorts by name)."""
        s, h = self.srv.get("/healthz")
        self.assertEqual(s, 200, h)
        self.assertEqual(h["status"], "ok")
        s, p = self.srv.profile("ecid", "BASE")
        self.assertEqual((s, p), (200, self.baseline))
        s, p = self.srv.profile("email", "base@example.com")
        self.assertEqual((s, p), (200, self.baseline))
        # the store holds exactly the events that were acknowledged, all whole
        self.assertEqual(h["events"], type(self).accepted)
        db = sqlite3.connect(f"file:{os.path.join(self.srv.data_dir, 'tandem.db')}?mode=ro",
                             uri=True)
        try:
            self.assertEqual(db.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
            docs = db.execute("SELECT doc FROM events").fetchall()
        finally:
            db.close()
        self.assertEqual(len(docs), type(self).accepted)
        for (doc,) in docs:
            self.assertIsInstance(json.loads(doc), dict)
        # and it still takes events
        s, b = self.post(ev(id="after-all"))
        self.assertEqual((s, b["accepted"]), (200, 1), b)


if __name__ == "__main__":
    unittest.main()
