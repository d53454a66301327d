"""Recommendations through the real binary: criteria CRUD and validation
errors, behaviour recorded now changing the next request, a new catalog item
recommendable at once through SIMILARITY, filters and exclusions, backups,
and the shipped cart-abandonment journey's recommend step returning real
items."""
import json
import unittest

from harness import Server, wait_until

HOUR = 3600

COATS = [
    ("C-101", "Red wool winter coat", "Men:Coats", 189.0),
    ("C-102", "Black wool winter coat", "Men:Coats", 229.0),
    ("C-103", "Green rain jacket", "Men:Coats", 99.0),
    ("S-201", "Grey cotton sweatshirt", "Men:Tops", 49.9),
    ("S-202", "Blue cotton sweatshirt", "Men:Tops", 45.0),
    ("H-301", "Wool beanie hat", "Accessories", 19.0),
]


def view(srv, ecid, *ids, kind="product_view"):
    s, b = srv.post("/v1/events", {"type": kind, "ecid": ecid,
                                   "items": [{"id": i} for i in ids]})
    assert s == 200 and b["accepted"] == 1, b


class RecommendationsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server("--public-url", "https://shop.example",
                         "--recs-key", "recs-key-0123456789abcdef").start()
        for ident, name, cat, price in COATS:
            s, b = cls.srv.put(f"/v1/entities/{ident}",
                               {"name": name, "categories": [cat],
                                "attributes": {"value": price, "brand": "Acme",
                                               "inventory": 10}},
                               admin=True)
            assert s in (200, 201), b

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.logs()

    def reco(self, body, status=200):
        s, b = self.srv.post("/v1/recommendations", body, admin=True)
        self.assertEqual(s, status, b)
        return b

    def ids(self, body):
        return [i["id"] for i in self.reco(body)["items"]]

    def test_criteria_crud_and_errors(self):
        srv = self.srv
        doc = {"name": "People who viewed this", "criteriaGroup": "ITEM", "type": "VIEWED_CF",
               "key": "CURRENT_ITEM", "daysCount": 30}
        s, b = srv.put("/v1/criteria/crud-1", doc)
        self.assertEqual(s, 401, b)
        s, b = srv.put("/v1/criteria/crud-1", doc, admin=True)
        self.assertEqual(s, 201, b)
        self.assertEqual(b["id"], "crud-1")
        s, b = srv.put("/v1/criteria/crud-1", doc, admin=True)
        self.assertEqual(s, 200, b)
        s, b = srv.get("/v1/criteria/crud-1", admin=True)
        self.assertEqual((s, b["type"]), (200, "VIEWED_CF"), b)
        s, b = srv.get("/v1/criteria", admin=True)
        ids = [c["id"] for c in b["criteria"]]
        self.assertIn("crud-1", ids)
        self.assertIn("bought-also-bought", ids)  # seeded for the shipped journey
        s, b = srv.put("/v1/criteria/bad", dict(doc, type="NOPE"), admin=True)
        self.assertEqual(s, 400, b)
        self.assertEqual(b["error"]["path"], "/type", b)
        bad_rule = dict(doc, inclusionRules=[{"attribute": "brand", "operation": "sortOf",
                                              "values": ["x"]}])
        s, b = srv.put("/v1/criteria/bad", bad_rule, admin=True)
        self.assertEqual(s, 400, b)
        self.assertEqual(b["error"]["path"], "/inclusionRules/0/operation", b)
        s, b = srv.put("/v1/criteria/bad", dict(doc, id="other"), admin=True)
        self.assertEqual((s, b["error"]["path"]), (400, "/id"), b)
        s, b = srv.put("/v1/criteria/bad", "{not json", admin=True)
        self.assertEqual(s, 400, b)
        s, b = srv.delete("/v1/criteria/crud-1", admin=True)
        self.assertEqual(s, 204, b)
        s, b = srv.get("/v1/criteria/crud-1", admin=True)
        self.assertEqual(s, 404, b)
        # a request naming an unknown criteria, or an inline one with an error
        b = self.reco({"criteria": "nope", "key": "C-101"}, status=404)
        b = self.reco({"criteria": {"criteriaGroup": "ITEM", "type": "X"}, "key": "C-101"},
                      status=400)
        self.assertEqual(b["error"]["path"], "/criteria/type", b)
        self.reco({"criteria": "bought-also-bought", "count": 0}, status=400)
        b = self.reco({"criteria": "bought-also-bought", "email": 7}, status=400)
        self.assertEqual(b["error"]["path"], "/email", b)
        b = self.reco({"criteria": "bought-also-bought", "cart": "C-101", "exclude": [1]},
                      status=400)
        self.assertEqual(b["error"]["path"], "/exclude", b)
        self.reco([1, 2], status=400)
        s, b = self.srv.post("/v1/recommendations", {"criteria": "bought-also-bought"})
        self.assertEqual(s, 401, b)
        s, b = self.srv.post("/v1/recommendations", "{bad", headers={"Authorization": "Bearer x"})
        self.assertEqual(s, 401, b)
        # a recs_key opens recommendations and nothing else
        recs = {"Authorization": "Bearer recs-key-0123456789abcdef"}
        s, b = self.srv.post("/v1/recommendations", {"criteria": "bought-also-bought"},
                             headers=recs)
        self.assertEqual(s, 200, b)
        s, b = self.srv.get("/v1/recommendations?criteria=bought-also-bought", headers=recs)
        self.assertEqual(s, 200, b)
        s, b = self.srv.get("/v1/criteria", headers=recs)
        self.assertEqual(s, 401, b)

    def test_coview_changes_the_next_request(self):
        srv = self.srv
        s, b = srv.put("/v1/criteria/pdp", {"criteriaGroup": "ITEM", "type": "VIEWED_CF",
                                            "similarityFallback": False,
                                            "backupDisabled": True}, admin=True)
        self.assertEqual(s, 201, b)
        for v in ("N1", "N2", "N3", "N4"):  # visitors who viewed something else
            view(srv, v, "C-103")
        for v in ("V1", "V2", "V3"):
            view(srv, v, "C-102")
            view(srv, v, "S-201")
        req = {"criteria": "pdp", "key": "C-102", "count": 3}
        first = wait_until(lambda: self.ids(req) or None)
        self.assertEqual(first[0], "S-201", first)
        # H-301 viewed with C-102 by more visitors now: the next request shows it
        for v in ("V4", "V5", "V6", "V7", "V8"):
            view(srv, v, "C-102")
            view(srv, v, "H-301")
        after = wait_until(lambda: (lambda r: r if r and r[0] == "H-301" else None)(self.ids(req)))
        self.assertEqual(after[0], "H-301", after)
        body = self.reco(req)
        top = body["items"][0]
        self.assertEqual(top["name"], "Wool beanie hat")
        self.assertEqual(top["categories"], ["Accessories"])
        self.assertEqual(top["value"], 19.0)
        self.assertIn("score", top)
        self.assertIn("VIEWED_CF", top["reason"])
        self.assertEqual(body["criteria"], "pdp")
        self.assertFalse(body["backup"])
        # exclusions and the GET form
        self.assertNotIn("H-301", self.ids(dict(req, exclude=["H-301"])))
        s, b = srv.get("/v1/recommendations?criteria=pdp&key=C-102&count=3&exclude=H-301",
                       admin=True)
        self.assertEqual(s, 200, b)
        self.assertNotIn("H-301", [i["id"] for i in b["items"]])
        # a price filter
        cheap = dict(req, criteria={"criteriaGroup": "ITEM", "type": "VIEWED_CF",
                                    "priceRange": {"max": 30}, "backupDisabled": True,
                                    "similarityFallback": False})
        self.assertEqual(self.ids(cheap), ["H-301"])

    def test_profile_attribute_keys_the_criteria(self):
        srv = self.srv
        for v in ("PA1", "PA2", "PA3"):
            view(srv, v, "C-101")
            view(srv, v, "S-202")
        crit = {"criteriaGroup": "PROFILEATTRIBUTE", "type": "VIEWED_CF",
                "keyAttribute": "heroItem", "backupDisabled": True,
                "similarityFallback": False}
        req = {"criteria": crit, "count": 3, "profile": {"heroItem": "C-101"}}
        got = wait_until(lambda: self.ids(req) or None)
        self.assertEqual(got[0], "S-202", got)
        # without the attribute there is no key, so nothing (backups are off)
        self.assertEqual(self.ids({"criteria": crit, "count": 3}), [])
        s, b = srv.post("/v1/recommendations", {"criteria": crit, "profile": ["x"]}, admin=True)
        self.assertEqual(s, 400, b)
        self.assertEqual(b["error"]["path"], "/profile")

    def test_new_item_is_similar_at_once(self):
        srv = self.srv
        crit = {"criteriaGroup": "ITEM", "type": "SIMILARITY", "backupDisabled": True}
        s, b = srv.put("/v1/entities/C-999", {"name": "Navy wool winter coat",
                                              "categories": ["Men:Coats"],
                                              "attributes": {"value": 199.0, "brand": "Acme"}},
                       admin=True)
        self.assertEqual(s, 201, b)
        got = self.ids({"criteria": crit, "key": "C-101", "count": 3})
        self.assertIn("C-999", got)
        got = self.ids({"criteria": crit, "key": "C-999", "count": 3})
        self.assertIn("C-101", got[:2])
        # an inclusion rule: only items of another category
        other = dict(crit, inclusionRules=[{"attribute": "categoryId", "operation": "notEquals",
                                            "values": ["Men:Coats"]}])
        self.assertFalse(set(self.ids({"criteria": other, "key": "C-101"})) &
                         {"C-102", "C-103", "C-999"})

    def test_backups_when_the_key_has_no_behaviour(self):
        crit = {"criteriaGroup": "ITEM", "type": "VIEWED_CF", "similarityFallback": False}
        body = self.reco({"criteria": crit, "key": "C-103", "count": 2})
        if body["items"]:
            self.assertTrue(body["backup"], body)
        nob = self.reco({"criteria": dict(crit, backupDisabled=True), "key": "C-103"})
        self.assertEqual(nob["items"], [])

    def test_journey_recommend_step_returns_real_items(self):
        srv = self.srv
        srv.apply_journey("cart-abandonment.json")
        # shoppers who bought the coat also bought the sweatshirt
        for v in ("B1", "B2", "B3"):
            s, b = srv.post("/v1/events", {"type": "purchase", "ecid": v,
                                           "items": [{"id": "C-101", "price": 189.0},
                                                     {"id": "S-202", "price": 45.0}],
                                           "order": {"id": f"O-{v}", "total": 234.0}})
            self.assertEqual(s, 200, b)
        s, b = srv.post("/v1/events", {"type": "cart_add", "ecid": "J-1",
                                       "email": "jr@example.com",
                                       "items": [{"id": "C-101", "price": 189.0}]})
        self.assertEqual(s, 200, b)
        srv.advance(3 * HOUR + 1)

        def done():
            rows = [i for i in srv.journey_instances("ecid", "J-1")
                    if i["state"] == "ended" and i["journey"] == "cart-abandonment"]
            return rows or None
        rows = wait_until(done)
        s, inst = srv.get(f"/v1/journeys/cart-abandonment/instances/{rows[0]['id']}",
                          admin=True)
        self.assertEqual(s, 200, inst)
        also = inst["actions"]["recs"]
        self.assertEqual(also["status"], "ok", also)
        ids = [i["id"] for i in also["items"]]
        self.assertEqual(ids[0], "S-202", also)
        self.assertNotIn("C-101", ids)
        self.assertEqual(also["items"][0]["name"], "Blue cotton sweatshirt")
        self.assertEqual([i["id"] for i in inst["actions"]["cart"]["items"]], ["C-101"])


class DeliveryAndEdgeTest(unittest.TestCase):
    """Target's Delivery API and Edge decision scopes mapped to designs."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server("--datastream", "ds-1=ORG@AdobeOrg").start()
        for ident, name, cat, price in COATS:
            s, b = cls.srv.put(f"/v1/entities/{ident}", {"name": name, "categories": [cat],
                                                        "attributes": {"value": price}},
                               admin=True)
            assert s in (200, 201), b
        s, b = cls.srv.put("/v1/criteria/similar", {"criteriaGroup": "ITEM", "type": "SIMILARITY",
                                                    "backupDisabled": True}, admin=True)
        assert s == 201, b

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.logs()

    def test_designs_crud(self):
        srv = self.srv
        s, b = srv.put("/v1/designs/pdp", {"criteria": "similar", "count": 2}, admin=True)
        self.assertEqual(s, 201, b)
        s, b = srv.put("/v1/designs/bad", {"criteria": "nope"}, admin=True)
        self.assertEqual((s, b["error"]["path"]), (400, "/criteria"), b)
        s, b = srv.put("/v1/designs/bad", {"criteria": "similar", "count": 0}, admin=True)
        self.assertEqual((s, b["error"]["path"]), (400, "/count"), b)
        s, b = srv.put("/v1/designs/bad", {"criteria": "similar", "colour": 1}, admin=True)
        self.assertEqual(s, 400, b)
        s, b = srv.get("/v1/designs", admin=True)
        self.assertIn("pdp", [d["name"] for d in b["designs"]])
        s, b = srv.put("/v1/designs/tmp", {"criteria": "similar"}, admin=True)
        self.assertEqual(s, 201, b)
        self.assertEqual(srv.delete("/v1/designs/tmp", admin=True)[0], 204)
        self.assertEqual(srv.get("/v1/designs/tmp", admin=True)[0], 404)

    def test_delivery_api_shape(self):
        srv = self.srv
        s, b = srv.put("/v1/designs/pdp-recs", {"criteria": "similar", "count": 2}, admin=True)
        self.assertIn(s, (200, 201), b)
        body = {"requestId": "r-1", "context": {"channel": "web"},
                "execute": {"mboxes": [
                    {"index": 0, "name": "pdp-recs",
                     "parameters": {"entity.id": "C-101", "excludedIds": "C-102"}},
                    {"index": 1, "name": "pdp-recs",
                     "parameters": {"entity.id": "C-101", "entity.value": "not a number"}},
                    {"index": 2, "name": "unknown"}]},
                "prefetch": {"mboxes": [{"index": 0, "name": "similar",
                                         "parameters": {"entity.id": "C-102"}}]}}
        s, b = srv.post("/rest/v1/delivery?client=acme&sessionId=s-1", body)
        self.assertEqual(s, 200, b)
        self.assertEqual((b["status"], b["requestId"], b["client"]), (200, "r-1", "acme"))
        self.assertRegex(b["id"]["tntId"], r"^[0-9a-f]{32}$")
        self.assertNotIn("edgeHost", b)
        m0, m1, m2 = b["execute"]["mboxes"]
        opt = m0["options"][0]
        self.assertEqual(opt["type"], "json")
        ids = [i["id"] for i in opt["content"]["items"]]
        self.assertNotIn("C-102", ids)
        self.assertNotIn("C-101", ids)
        self.assertEqual(len(ids), 2, ids)
        self.assertIn("error", m1)  # one bad mbox: reported inside a 200
        self.assertEqual(m2["options"], [])
        pre = b["prefetch"]["mboxes"][0]  # a criteria id used as the mbox name
        self.assertTrue(pre["options"][0]["eventToken"])
        self.assertEqual(pre["options"][0]["content"]["criteria"], "similar")
        # the same tntId comes back; entity.* parameters reached the catalog
        body = {"id": {"tntId": b["id"]["tntId"]},
                "execute": {"mboxes": [{"index": 0, "name": "pdp-recs",
                                        "parameters": {"entity.id": "N-1",
                                                       "entity.name": "Grey wool winter coat",
                                                       "entity.categoryId": "Men:Coats"}}]},
                "notifications": [{"id": "n1", "type": "display"}]}
        s, b2 = srv.post("/rest/v1/delivery?client=acme&sessionId=s-1", body)
        self.assertEqual(s, 200, b2)
        self.assertEqual(b2["id"]["tntId"], b["id"]["tntId"])
        self.assertEqual(b2["notifications"], [{"id": "n1"}])
        s, e = srv.get("/v1/entities/N-1", admin=True)
        self.assertEqual((s, e["name"]), (200, "Grey wool winter coat"), e)
        s, b3 = srv.post("/rest/v1/delivery?client=acme", "{bad")
        self.assertEqual(s, 400, b3)

    def test_delivery_nasty_input(self):
        srv = self.srv
        bodies = [
            {}, [], "x", {"id": {"tntId": 5}, "execute": []},
            {"id": {"tntId": "t" * 5000, "customerIds": [None, 3]}},
            {"execute": {"mboxes": [1, None, {"name": 5}, {"index": "a", "name": "similar",
                                                          "parameters": {"entity.id": ""}}]}},
            {"execute": {"mboxes": [{"name": "similar", "parameters": {"entity.id": "C-101",
                                                                      "cartIds": ",,,",
                                                                      "excludedIds": 7,
                                                                      "n": [1], "m": None}}]}},
            {"prefetch": {"mboxes": [{"name": "similar",
                                      "parameters": {f"p{i}": "v" for i in range(300)}}]}},
            {"execute": {"mboxes": [{"name": "similar", "index": i} for i in range(80)]}},
            {"execute": {"mboxes": [{"name": "similar",
                                     "profileParameters": {"a": {"b": 1}, "c": 2.5}}]}},
            {"notifications": [1, {"id": 3}, {"id": "x"}]},
        ]
        for body in bodies:
            s, b = srv.post("/rest/v1/delivery?client=acme", body)
            self.assertIn(s, (200, 400), (body, b))
            if isinstance(body, dict):
                self.assertEqual(s, 200, (body, b))
        s, b = srv.get("/healthz")
        self.assertEqual(s, 200)

    def test_edge_decision_scopes(self):
        srv = self.srv
        s, b = srv.put("/v1/designs/edge-recs", {"criteria": "similar"}, admin=True)
        self.assertIn(s, (200, 201), b)
        body = {"events": [{"xdm": {"eventType": "commerce.productViews",
                                    "productListItems": [{"SKU": "C-101"}]},
                            "query": {"personalization": {"decisionScopes":
                                                          ["edge-recs", "not-a-design"]}}}],
                "query": {"identity": {"fetch": ["ECID"]}}}
        s, b, _ = srv.request("POST", "/ee/v1/interact?configId=ds-1&requestId=x-1",
                              json.dumps(body), headers={"Content-Type": "text/plain"})
        self.assertEqual(s, 200, b)
        props = [p for h in b["handle"] if h["type"] == "personalization:decisions"
                 for p in h["payload"]]
        self.assertEqual([p["scope"] for p in props], ["edge-recs"], props)
        item = props[0]["items"][0]
        self.assertEqual(item["schema"], "https://ns.adobe.com/personalization/json-content-item")
        ids = [i["id"] for i in item["data"]["content"]["items"]]
        self.assertTrue(ids and "C-101" not in ids, ids)


class RebuildTest(unittest.TestCase):
    def test_model_is_rebuilt_from_stored_events_at_start(self):
        import tempfile, shutil
        d = tempfile.mkdtemp(prefix="tandem-reco-")
        crit = {"criteriaGroup": "ITEM", "type": "VIEWED_CF", "similarityFallback": False,
                "backupDisabled": True}
        try:
            srv = Server(data_dir=d).start()
            for ident, name, cat, price in COATS:
                s, b = srv.put(f"/v1/entities/{ident}", {"name": name, "categories": [cat]},
                               admin=True)
                self.assertIn(s, (200, 201), b)
            for v in ("N1", "N2", "N3"):
                view(srv, v, "C-103")
            for v in ("V1", "V2", "V3"):
                view(srv, v, "C-101")
                view(srv, v, "S-202")
            s, before = srv.post("/v1/recommendations", {"criteria": crit, "key": "C-101"},
                                 admin=True)
            self.assertEqual(s, 200, before)
            # criteria and CUSTOM lists are stored too
            s, b = srv.put("/v1/criteria/picked", {"criteriaGroup": "CUSTOM",
                                                   "customId": "picked",
                                                   "backupDisabled": True}, admin=True)
            self.assertEqual(s, 201, b)
            s, b = srv.put("/v1/criteria/picked/custom", "## RECS\nkey,recs\nC-101,H-301,S-201\n",
                           admin=True, headers={"Content-Type": "text/csv"})
            self.assertEqual((s, b.get("keys")), (200, 1), b)
            s, b = srv.put("/v1/criteria/bad/custom", 'C-101,"unterminated\n', admin=True,
                           headers={"Content-Type": "text/csv"})
            self.assertEqual(s, 400, b)
            self.assertEqual(srv.stop(), 0, srv.logs())
            srv = Server(data_dir=d).start()
            s, b = srv.post("/v1/recommendations", {"criteria": "picked", "key": "C-101"},
                            admin=True)
            self.assertEqual(s, 200, b)
            self.assertEqual([i["id"] for i in b["items"]], ["H-301", "S-201"])
            s, after = srv.post("/v1/recommendations", {"criteria": crit, "key": "C-101"},
                                admin=True)
            self.assertEqual(s, 200, after)
            self.assertEqual([i["id"] for i in after["items"]],
                             [i["id"] for i in before["items"]])
            self.assertEqual(after["items"][0]["id"], "S-202")
            self.assertIn("model built", srv.logs())
            self.assertEqual(srv.stop(), 0, srv.logs())
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
