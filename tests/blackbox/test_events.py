"""The native event API and the profiles it builds, through the real binary."""
import unittest

from harness import Server


class EventsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server().start()

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.logs()

    def test_cart_then_purchase_clears_cart(self):
        s, body = self.srv.post("/v1/events", {"events": [
            {"type": "cart_add", "ecid": "C1", "items": [
                {"id": "COAT", "name": "Coat", "price": 59.9, "quantity": 2},
                {"id": "SWEAT", "price": 19.5}]},
            {"type": "purchase", "ecid": "C1", "items": [{"id": "COAT"}],
             "order": {"id": "O1", "total": 119.8, "currency": "EUR"}},
        ]})
        self.assertEqual(s, 200, body)
        self.assertEqual(body["accepted"], 2)
        s, p = self.srv.profile("ecid", "C1")
        self.assertEqual(s, 200)
        self.assertEqual([i["id"] for i in p["cart"]], ["SWEAT"])
        self.assertEqual(p["purchases"][0]["order_id"], "O1")
        self.assertEqual(p["purchases"][0]["total"], 119.8)

    def test_refused_event_is_reported_and_others_kept(self):
        s, body = self.srv.post("/v1/events", {"events": [
            {"type": "page_view", "ecid": "R1"},
            {"type": "page_view"},
        ]})
        self.assertEqual(s, 200)
        self.assertEqual(body["results"][1]["status"], "refused")
        self.assertEqual(body["results"][1]["error"]["path"], "/events/1")

    def test_profiles_need_admin_key(self):
        s, body = self.srv.get("/v1/profiles/ecid/C1")
        self.assertEqual(s, 401)
        self.assertEqual(body["error"]["code"], "unauthorized")


if __name__ == "__main__":
    unittest.main()
