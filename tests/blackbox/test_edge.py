"""The Adobe Edge Network endpoints (what the Web SDK calls), the static web
directory and HTTPS, through the real binary."""
import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import uuid

from harness import Server, free_port

DS = "ds-1111"
ORG = "ABCDEF0123456789@AdobeOrg"
COOKIE = "kndctr_ABCDEF0123456789_AdobeOrg_identity"
CONSENT_COOKIE = "kndctr_ABCDEF0123456789_AdobeOrg_consent"
ORIGIN = "https://shop.example.test"


def encode_cookie(ecid):
    raw = b"\x0a" + bytes([len(ecid)]) + ecid.encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cookie(value):
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    assert raw[0] == 0x0A, raw
    return raw[2:2 + raw[1]].decode()


def handles(body):
    out = {}
    for h in body["handle"]:
        out.setdefault(h["type"], []).extend(h["payload"])
    return out


def xdm_event(event_type, **xdm):
    return {"xdm": dict(eventType=event_type, **xdm)}


def item(sku, price_total=None, quantity=None, name=None):
    it = {"SKU": sku}
    if price_total is not None:
        it["priceTotal"] = price_total
    if quantity is not None:
        it["quantity"] = quantity
    if name:
        it["name"] = name
    return it


class EdgeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.web = tempfile.mkdtemp(prefix="tandem-web-")
        cls.srv = Server("--datastream", f"{DS}={ORG}", "--datastream", "ds-2=OTHER@AdobeOrg",
                         "--cookie-days", "30", "--web-dir", cls.web).start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        shutil.rmtree(cls.web, ignore_errors=True)
        assert rc == 0, cls.srv.logs()

    def edge(self, body, action="interact", config=DS, headers=None, path=None, raw=False):
        """POSTs like alloy does (JSON as text/plain); returns (status, body, headers)."""
        hdrs = {"Content-Type": "text/plain; charset=UTF-8", "Origin": ORIGIN}
        hdrs.update(headers or {})
        q = f"?configId={config}&requestId=req-{uuid.uuid4()}" if config else ""
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.srv.request("POST", (path or f"/ee/v1/{action}") + q, data, headers=hdrs,
                                raw=raw)

    def interact(self, events, **kw):
        body = {"events": events, "query": {"identity": {"fetch": ["ECID"]}},
                "meta": {"state": {"domain": "example.test", "cookiesEnabled": True}}}
        body.update(kw.pop("extra", {}))
        s, b, h = self.edge(body, **kw)
        self.assertEqual(s, 200, b)
        return b, h

    def ecid_of(self, body):
        return handles(body)["identity:result"][0]["id"]

    # -- identity -------------------------------------------------------

    def test_first_contact_mints_ecid_and_cookie(self):
        b, h = self.interact([xdm_event("web.webpagedetails.pageViews")])
        self.assertTrue(b["requestId"].startswith("req-"))
        hs = handles(b)
        ident = hs["identity:result"][0]
        self.assertEqual(ident["namespace"]["code"], "ECID")
        self.assertRegex(ident["id"], r"^[0-9]{38}$")
        store = {e["key"]: e for e in hs["state:store"]}
        self.assertEqual(decode_cookie(store[COOKIE]["value"]), ident["id"])
        self.assertNotIn("=", store[COOKIE]["value"])
        self.assertEqual(store[COOKIE]["maxAge"], 30 * 86400)
        self.assertEqual(hs["personalization:decisions"], [])
        self.assertEqual(h["Access-Control-Allow-Origin"], ORIGIN)
        self.assertEqual(h["Access-Control-Allow-Credentials"], "true")
        s, p = self.srv.profile("ecid", ident["id"])
        self.assertEqual(s, 200, p)
        self.assertEqual(p["counts"], {"page_view": 1})

    def test_two_first_contacts_get_two_ecids(self):
        a, _ = self.interact([xdm_event("web.webpagedetails.pageViews")])
        b, _ = self.interact([xdm_event("web.webpagedetails.pageViews")])
        self.assertNotEqual(self.ecid_of(a), self.ecid_of(b))

    def test_cookie_header_round_trip(self):
        b, _ = self.interact([xdm_event("commerce.productViews", productListItems=[item("V1")],
                                        timestamp="2025-01-01T10:00:00Z")])
        ecid = self.ecid_of(b)
        cookie = handles(b)["state:store"][0]["value"]
        b2, _ = self.interact([xdm_event("commerce.productViews", productListItems=[item("V2")],
                                         timestamp="2025-01-01T10:01:00.250Z")],
                              headers={"Cookie": f"{COOKIE}={cookie}"})
        self.assertEqual(self.ecid_of(b2), ecid)
        s, p = self.srv.profile("ecid", ecid)
        self.assertEqual([i["id"] for i in p["viewed"]], ["V2", "V1"])

    def test_cookie_in_meta_state_entries(self):
        ecid = "12345678901234567890123456789012345678"
        entries = [{"key": "other", "value": "x"},
                   {"key": COOKIE, "value": encode_cookie(ecid)}]
        b, _ = self.interact([xdm_event("web.webpagedetails.pageViews")],
                             extra={"meta": {"state": {"domain": "example.test",
                                                       "cookiesEnabled": True,
                                                       "entries": entries}}})
        self.assertEqual(self.ecid_of(b), ecid)
        # standard base64 with padding, as other writers use, reads the same
        std = base64.b64encode(b"\x0a\x26" + ecid.encode()).decode()
        b, _ = self.interact([xdm_event("web.webpagedetails.pageViews")],
                             headers={"Cookie": f"{COOKIE}={std}"})
        self.assertEqual(self.ecid_of(b), ecid)

    def test_cookie_of_another_org_is_not_read(self):
        ecid = "99999999999999999999999999999999999999"
        other = "kndctr_OTHER_AdobeOrg_identity"
        b, _ = self.interact([xdm_event("web.webpagedetails.pageViews")],
                             headers={"Cookie": f"{other}={encode_cookie(ecid)}"})
        self.assertNotEqual(self.ecid_of(b), ecid)
        b, _ = self.interact([xdm_event("web.webpagedetails.pageViews")], config="ds-2",
                             headers={"Cookie": f"{other}={encode_cookie(ecid)}"})
        self.assertEqual(self.ecid_of(b), ecid)
        self.assertEqual(handles(b)["state:store"][0]["key"], other)

    def test_bad_cookies_are_ignored(self):
        bad = ["!!!", "", "A", "CiY", base64.urlsafe_b64encode(b"\x0a\x7f12").decode(),
               base64.urlsafe_b64encode(b"\x12\x02ab").decode(),
               base64.urlsafe_b64encode(b"\x0a\x03a b").decode(), "Cg" * 600,
               base64.urlsafe_b64encode(b"\x0b\xff\xff").decode()]
        for value in bad:
            b, _ = self.interact([xdm_event("web.webpagedetails.pageViews")],
                                 headers={"Cookie": f"{COOKIE}={value}"},
                                 extra={"meta": {"state": {"entries": [
                                     {"key": COOKIE, "value": value}]}}})
            self.assertRegex(self.ecid_of(b), r"^[0-9]{38}$", value)

    def test_identity_map_ecid_wins(self):
        ecid = "ABC123"
        b, _ = self.interact([xdm_event("web.webpagedetails.pageViews",
                                        identityMap={"ECID": [{"id": ecid}],
                                                     "Email": [{"id": "Map@Example.com"}]})],
                             headers={"Cookie": f"{COOKIE}={encode_cookie('1' * 38)}"})
        self.assertEqual(self.ecid_of(b), ecid)
        s, p = self.srv.profile("ecid", ecid)
        self.assertEqual(p["identities"]["email"], ["map@example.com"])

    def test_identity_acquire(self):
        s, b, _ = self.edge({"query": {"identity": {"fetch": ["ECID"]}}}, "identity/acquire")
        self.assertEqual(s, 200, b)
        hs = handles(b)
        self.assertRegex(hs["identity:result"][0]["id"], r"^[0-9]{38}$")
        self.assertIn("state:store", hs)
        self.assertNotIn("personalization:decisions", hs)

    def test_location_hint_and_v2_paths(self):
        for path in ["/ee/or2/v1/interact", "/ee/v2/interact", "/ee/irl1/v2/interact"]:
            s, b, _ = self.edge({"events": [xdm_event("web.webpagedetails.pageViews")]},
                                path=path)
            self.assertEqual(s, 200, (path, b))
            self.assertIn("identity:result", handles(b))

    # -- events ----------------------------------------------------------

    def test_commerce_events_map_to_native_types(self):
        ecid = "COMMERCE1"
        idm = {"ECID": [{"id": ecid}]}
        b, _ = self.interact([
            xdm_event("commerce.productViews", identityMap=idm,
                      productListItems=[item("COAT", 59.9, 1, "Coat")]),
            xdm_event("commerce.productListAdds", identityMap=idm,
                      commerce={"cart": {"cartID": "CART-1"}},
                      productListItems=[item("COAT", 119.8, 2, "Coat"), item("HAT", 10)]),
            xdm_event("commerce.productListRemovals", identityMap=idm,
                      productListItems=[item("HAT")]),
            xdm_event("commerce.purchases", identityMap=idm,
                      commerce={"order": {"purchaseID": "O-1", "priceTotal": 119.8,
                                          "currencyCode": "eur"}},
                      productListItems=[item("COAT", 119.8, 2)]),
            xdm_event("web.webpagedetails.pageViews", identityMap=idm,
                      web={"webPageDetails": {"URL": "https://shop/x", "name": "x"}}),
            xdm_event("my event/type!", identityMap=idm),
        ])
        self.assertEqual(b["tandem"], {"accepted": 6, "duplicates": 0, "refused": 0})
        s, p = self.srv.profile("ecid", ecid)
        self.assertEqual(p["counts"], {"product_view": 1, "cart_add": 1, "cart_remove": 1,
                                       "purchase": 1, "page_view": 1, "my_event_type_": 1})
        self.assertEqual(p["viewed"][0]["price"], 59.9)
        self.assertEqual(p["cart"], [])
        order = p["purchases"][0]
        self.assertEqual((order["order_id"], order["total"], order["currency"]),
                         ("O-1", 119.8, "EUR"))
        self.assertEqual(order["items"][0]["price"], 59.9)  # priceTotal / quantity
        self.assertEqual(order["items"][0]["quantity"], 2)

    def test_retry_with_same_event_id_is_stored_once(self):
        ev = xdm_event("commerce.productListAdds", _id="evt-retry-1",
                       identityMap={"ECID": [{"id": "RETRY1"}]},
                       productListItems=[item("R", 5, 1)])
        b1, _ = self.interact([ev])
        b2, _ = self.interact([ev])
        self.assertEqual(b1["tandem"]["accepted"], 1)
        self.assertEqual(b2["tandem"]["duplicates"], 1)
        s, p = self.srv.profile("ecid", "RETRY1")
        self.assertEqual(p["cart"][0]["quantity"], 1)

    def test_collect_is_a_beacon(self):
        ecid = "BEACON1"
        s, b, h = self.edge({"events": [xdm_event("web.webinteraction.linkClicks",
                                                  identityMap={"ECID": [{"id": ecid}]})]},
                            "collect", raw=True)
        self.assertEqual(s, 204, b)
        self.assertEqual(b, b"")
        self.assertEqual(h["Access-Control-Allow-Origin"], ORIGIN)
        s, p = self.srv.profile("ecid", ecid)
        self.assertEqual(p["counts"], {"web.webinteraction.linkClicks": 1})

    def test_one_bad_event_is_reported_and_others_kept(self):
        b, _ = self.interact([
            xdm_event("commerce.productViews", productListItems=[item("OK")]),
            xdm_event("commerce.productViews", productListItems=[{"name": "no sku"}]),
        ])
        self.assertEqual(b["tandem"]["accepted"], 1)
        self.assertEqual(b["errors"][0]["report"]["path"], "/events/1/xdm/productListItems/0/SKU")
        self.assertEqual(b["errors"][0]["status"], 400)

    # -- consent -----------------------------------------------------------

    def test_set_consent(self):
        ecid = "CONSENT1"
        body = {"consent": [{"standard": "Adobe", "version": "2.0",
                             "value": {"collect": {"val": "y"},
                                       "marketing": {"email": {"val": "n"}}}}],
                "identityMap": {"ECID": [{"id": ecid}]}}
        s, b, _ = self.edge(body, "privacy/set-consent")
        self.assertEqual(s, 200, b)
        store = {e["key"]: e["value"] for e in handles(b)["state:store"]}
        self.assertEqual(store[CONSENT_COOKIE], "general=in")
        s, p = self.srv.profile("ecid", ecid)
        self.assertEqual(p["consent"]["marketing"]["value"], "out")
        self.assertEqual(p["consent"]["marketing"]["source"], "edge")

    def test_set_consent_general_out(self):
        cookie = encode_cookie("CONSENT2")
        body = {"consent": [{"standard": "Adobe", "version": "1.0", "value": {"general": "out"}}]}
        s, b, _ = self.edge(body, "privacy/set-consent", headers={"Cookie": f"{COOKIE}={cookie}"})
        self.assertEqual(s, 200, b)
        store = {e["key"]: e["value"] for e in handles(b)["state:store"]}
        self.assertEqual(store[CONSENT_COOKIE], "general=out")
        s, p = self.srv.profile("ecid", "CONSENT2")
        self.assertEqual(p["consent"]["marketing"]["value"], "out")

    def test_set_consent_iab_is_accepted(self):
        body = {"consent": [{"standard": "IAB TCF", "version": "2.0", "value": "CO1234",
                             "gdprApplies": True}]}
        s, b, _ = self.edge(body, "privacy/set-consent")
        self.assertEqual(s, 200, b)
        self.assertEqual(b["tandem"]["accepted"], 0)

    # -- refusals ----------------------------------------------------------

    def test_config_id_is_required_and_must_be_known(self):
        body = {"events": [xdm_event("web.webpagedetails.pageViews")]}
        s, b, h = self.edge(body, config=None)
        self.assertEqual(s, 400, b)
        self.assertEqual(b["error"]["path"], "configId")
        self.assertEqual(h["Access-Control-Allow-Origin"], ORIGIN)
        s, b, _ = self.edge(body, config="no-such-datastream")
        self.assertEqual(s, 403, b)
        self.assertIn("datastream", b["error"]["message"])

    def test_bad_bodies(self):
        cases = [
            ("{", 400, ""),
            ("[]", 400, "/"),
            ('{"events": {}}', 400, "/events"),
            ('{"events": [1]}', 400, "/events/0"),
            ('{"events": [{}]}', 400, "/events/0/xdm"),
            ('{"events": [{"xdm": []}]}', 400, "/events/0/xdm"),
            ('{"events": [{"xdm": {"eventType": 7}}]}', 400, "/events/0/xdm/eventType"),
            ('{"events": [{"xdm": {"timestamp": "yesterday"}}]}', 400, "/events/0/xdm/timestamp"),
            ('{"events": [{"xdm": {"productListItems": [{"SKU": "A", "quantity": 0}]}}]}', 400,
             "/events/0/xdm/productListItems/0/quantity"),
            ('{"events": [{"xdm": {"productListItems": [{"SKU": "A", "priceTotal": -1}]}}]}', 400,
             "/events/0/xdm/productListItems/0/priceTotal"),
            ('{"events": [{"xdm": {"commerce": {"order": {"currencyCode": "EURO"}}}}]}', 400,
             "/events/0/xdm/commerce/order/currencyCode"),
            ('{"events": [{"xdm": {"identityMap": {"Email": [{"id": "not-an-email"}]}}}]}', 400,
             "/events/0/xdm/identityMap/Email/0/id"),
            ('{"events": [{"xdm": {"identityMap": {"ECID": [{"id": "a b"}]}}}]}', 400,
             "/events/0/xdm/identityMap/ECID/0/id"),
            ('{"consent": "yes"}', 400, "/consent"),
            ('{"events": [' + ",".join(['{"xdm": {}}'] * 1001) + "]}", 413, "/events"),
        ]
        for body, status, path in cases:
            s, b, h = self.edge(body)
            self.assertEqual(s, status, (body[:80], b))
            self.assertIn("json", h["Content-Type"])
            self.assertEqual(b["error"].get("path", ""), path, body[:80])
        s, b, _ = self.edge("{")
        self.assertEqual((b["error"]["line"], b["error"]["column"]), (1, 1))

    def test_unknown_action_and_wrong_method(self):
        s, b, _ = self.edge({"events": []}, path="/ee/v1/nope")
        self.assertEqual(s, 404, b)
        s, b, _ = self.edge({"events": []}, path="/ee/v3/interact")
        self.assertEqual(s, 404, b)
        s, b, _ = self.srv.request("GET", f"/ee/v1/interact?configId={DS}")
        self.assertEqual(s, 405, b)

    def test_cors_preflight(self):
        s, b, h = self.srv.request("OPTIONS", f"/ee/v1/interact?configId={DS}", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"}, raw=True)
        self.assertEqual(s, 204)
        self.assertEqual(h["Access-Control-Allow-Origin"], ORIGIN)
        self.assertEqual(h["Access-Control-Allow-Credentials"], "true")
        self.assertIn("POST", h["Access-Control-Allow-Methods"])
        self.assertIn("content-type", h["Access-Control-Allow-Headers"].lower())

    # -- static files --------------------------------------------------------

    def raw_get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        c.putrequest("GET", path, skip_accept_encoding=True)
        c.endheaders()
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, r.getheader("Content-Type") or "", body

    def test_static_files(self):
        files = {"index.html": b"<h1>home</h1>", "a/app.js": b"1;", "a/s.css": b"p{}",
                 "i.png": b"\x89PNG", "i.JPG": b"\xff\xd8", "i.svg": b"<svg/>", "d.json": b"{}",
                 "secret.key": b"KEY", ".hidden.html": b"no", "a/.git/config.json": b"{}"}
        for name, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(self.web, name)), exist_ok=True)
            with open(os.path.join(self.web, name), "wb") as f:
                f.write(data)
        outside = tempfile.mkdtemp(prefix="tandem-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        with open(os.path.join(outside, "x.html"), "wb") as f:
            f.write(b"outside")
        os.symlink(os.path.join(outside, "x.html"), os.path.join(self.web, "escape.html"))
        os.symlink(outside, os.path.join(self.web, "dir"))
        os.symlink(os.path.join(self.web, "index.html"), os.path.join(self.web, "inside.html"))
        ok = {"/web/index.html": "text/html", "/web/": "text/html", "/web/a/app.js": "text/javascript",
              "/web/a/s.css": "text/css", "/web/i.png": "image/png", "/web/i.JPG": "image/jpeg",
              "/web/i.svg": "image/svg+xml", "/web/d.json": "application/json",
              "/web/inside.html": "text/html"}
        for path, ctype in ok.items():
            s, t, body = self.raw_get(path)
            self.assertEqual(s, 200, path)
            self.assertTrue(t.startswith(ctype), (path, t))
        self.assertEqual(self.raw_get("/web/a/app.js")[2], b"1;")
        refused = ["/web/secret.key", "/web/.hidden.html", "/web/a/.git/config.json",
                   "/web/../README.md", "/web/a/../index.html", "/web/%2e%2e/README.md",
                   "/web/escape.html", "/web/dir/x.html", "/web//etc/passwd.html",
                   "/web/nope.html", "/web/a", "/web/a/", "/web/a\\app.js", "/web/./index.html",
                   "/web/" + "x" * 300 + ".html"]
        for path in refused:
            s, t, body = self.raw_get(path)
            self.assertEqual(s, 404, path)
            self.assertIn("json", t, path)
            self.assertNotIn(b"outside", body)
            self.assertNotIn(b"KEY", body)


class EdgeTlsTest(unittest.TestCase):
    """HTTPS on --tls-listen (libmicrohttpd with GnuTLS) with a throwaway certificate."""

    def test_https(self):
        d = tempfile.mkdtemp(prefix="tandem-tls-")
        self.addCleanup(shutil.rmtree, d, True)
        key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=edge.tandem.test"],
                       check=True, capture_output=True)
        port = free_port()
        with Server("--tls-listen", f"127.0.0.1:{port}", "--tls-cert", cert, "--tls-key", key,
                    "--datastream", f"{DS}={ORG}"):
            ctx = ssl.create_default_context(cafile=cert)
            ctx.check_hostname = False
            # /healthz answers on the plain port, which starts listening
            # before the TLS one: wait for the TLS port too
            deadline = time.time() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
            body = json.dumps({"events": [xdm_event("web.webpagedetails.pageViews")]})
            c.request("POST", f"/ee/v1/interact?configId={DS}&requestId=r1", body,
                      {"Content-Type": "text/plain", "Origin": ORIGIN})
            r = c.getresponse()
            data = json.loads(r.read())
            self.assertEqual(r.status, 200, data)
            self.assertEqual(r.getheader("Access-Control-Allow-Origin"), ORIGIN)
            self.assertRegex(handles(data)["identity:result"][0]["id"], r"^[0-9]{38}$")
            c.close()

    def test_missing_certificate_stops_start_up(self):
        port = free_port()
        srv = Server("--tls-listen", f"127.0.0.1:{port}", "--tls-cert", "/nonexistent/cert.pem",
                     "--tls-key", "/nonexistent/key.pem")
        with self.assertRaises(RuntimeError) as cm:
            srv.start()
        self.assertIn("cannot read", str(cm.exception))
        srv.stop()
        shutil.rmtree(srv.data_dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
