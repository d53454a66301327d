"""Profiles through the real server: identity linking and merging, cart
semantics, recently viewed, purchases, consent, counts, and who may read
them (GET /v1/profiles/{ecid|email|customer}/{id}, admin key)."""
import shutil
import time
import unittest
import urllib.request

from harness import ADMIN_KEY, Server

VIEWED_MAX = 3


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


class ProfilesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server("--viewed-max", str(VIEWED_MAX)).start()
        s, clock = cls.srv.get("/v1/admin/clock", admin=True)
        assert s == 200, clock
        cls.now_ms = clock["now_ms"]

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        logs = cls.srv.logs()[-3000:]
        shutil.rmtree(cls.srv.data_dir, ignore_errors=True)
        assert rc == 0, logs

    def send(self, *events):
        """Posts events (one batch) and expects all of them accepted."""
        body = events[0] if len(events) == 1 else {"events": list(events)}
        s, b = self.srv.post("/v1/events", body)
        self.assertEqual(s, 200, b)
        self.assertEqual(b["accepted"], len(events), b)
        return b

    def profile(self, ns, ident):
        s, p = self.srv.profile(ns, ident)
        self.assertEqual(s, 200, p)
        return p

    def ts(self, minutes_ago):
        """An event time relative to the server's (virtual) now, as RFC 3339."""
        return iso(self.now_ms - int(minutes_ago * 60000))

    @staticmethod
    def cart(p):
        return sorted((i["id"], i["quantity"]) for i in p["cart"])

    # -- identities ------------------------------------------------------------

    def test_event_with_ecid_and_email_links_them(self):
        self.send({"type": "page_view", "ecid": "LINK-E1", "email": "Link.One@Example.COM"})
        by_ecid = self.profile("ecid", "LINK-E1")
        by_email = self.profile("email", "link.one@example.com")
        self.assertEqual(by_ecid, by_email)
        self.assertEqual(by_ecid["identities"]["ecid"], ["LINK-E1"])
        self.assertEqual(by_ecid["identities"]["email"], ["link.one@example.com"])
        self.assertEqual(by_ecid["identities"]["customer"], [])
        # the email is looked up as stored: lower case
        s, _ = self.srv.profile("email", "Link.One@Example.COM")
        self.assertEqual(s, 404)

    def test_two_devices_logging_in_merge_and_carts_add_up(self):
        # two anonymous visitors (a phone and a laptop), each with a cart
        self.send({"type": "cart_add", "ecid": "PHONE", "ts": self.ts(30),
                   "items": [{"id": "COAT", "name": "Winter coat", "price": 59.9},
                             {"id": "SWEAT", "price": 19.5}]})
        self.send({"type": "cart_add", "ecid": "LAPTOP", "ts": self.ts(20),
                   "items": [{"id": "COAT", "quantity": 2}, {"id": "HAT"}]})
        phone_id = self.profile("ecid", "PHONE")["id"]
        laptop_id = self.profile("ecid", "LAPTOP")["id"]
        self.assertNotEqual(phone_id, laptop_id)
        # both log in with the same email
        self.send({"type": "identify", "ecid": "PHONE", "email": "jane@example.com",
                   "ts": self.ts(10)})
        self.assertEqual(self.profile("email", "jane@example.com")["id"], phone_id)
        self.send({"type": "identify", "ecid": "LAPTOP", "email": "JANE@example.com",
                   "ts": self.ts(5)})
        p = self.profile("ecid", "LAPTOP")
        self.assertEqual(p["id"], phone_id)  # merged into the oldest profile
        self.assertEqual(p, self.profile("ecid", "PHONE"))
        self.assertEqual(p, self.profile("email", "jane@example.com"))
        self.assertEqual(sorted(p["identities"]["ecid"]), ["LAPTOP", "PHONE"])
        self.assertEqual(p["identities"]["email"], ["jane@example.com"])
        self.assertEqual(self.cart(p), [("COAT", 3), ("HAT", 1), ("SWEAT", 1)])
        coat = next(i for i in p["cart"] if i["id"] == "COAT")
        self.assertEqual((coat["name"], coat["price"]), ("Winter coat", 59.9))
        self.assertEqual(p["counts"], {"cart_add": 2, "identify": 2})
        # one event naming both merges nothing more and keeps the cart
        self.send({"type": "page_view", "ecid": "LAPTOP", "email": "jane@example.com"})
        p2 = self.profile("ecid", "PHONE")
        self.assertEqual(self.cart(p2), [("COAT", 3), ("HAT", 1), ("SWEAT", 1)])
        self.assertEqual(p2["counts"]["page_view"], 1)

    def test_one_event_with_two_known_identities_merges(self):
        self.send({"type": "cart_add", "ecid": "M-A", "items": [{"id": "X"}]})
        self.send({"type": "cart_add", "email": "m-b@example.com", "items": [{"id": "X"}]})
        self.send({"type": "page_view", "ecid": "M-A", "email": "m-b@example.com"})
        a, b = self.profile("ecid", "M-A"), self.profile("email", "m-b@example.com")
        self.assertEqual(a, b)
        self.assertEqual(self.cart(a), [("X", 2)])

    def test_customer_namespace(self):
        self.send({"type": "identify", "customer_id": "C-42", "email": "cust@example.com"})
        p = self.profile("customer", "C-42")
        self.assertEqual(p["identities"]["customer"], ["C-42"])
        self.assertEqual(p, self.profile("email", "cust@example.com"))
        self.send({"type": "page_view", "customer_id": 4711})  # numbers are ids too
        self.assertEqual(self.profile("customer", "4711")["identities"]["customer"], ["4711"])
        # ids with reserved URL characters, percent-encoded in the path
        self.send({"type": "page_view", "customer_id": "b c?d#e%f&g+h"})
        self.assertEqual(self.profile("customer", "b c?d#e%f&g+h")["identities"]["customer"],
                         ["b c?d#e%f&g+h"])

    def test_ids_with_a_slash_can_be_looked_up(self):
        """Customer ids may hold "/"; sent as %2F it must not split the path."""
        self.send({"type": "page_view", "customer_id": "org/123"})
        self.assertEqual(self.profile("customer", "org/123")["identities"]["customer"],
                         ["org/123"])

    def test_duplicate_event_changes_no_identity(self):
        """profile.h: a repeated event id changes nothing, not even identities."""
        self.send({"id": "dup-ident", "type": "page_view", "ecid": "DUP-A"})
        s, b = self.srv.post("/v1/events", {"id": "dup-ident", "type": "page_view",
                                            "ecid": "DUP-B", "email": "dup-a@example.com"})
        self.assertEqual((s, b["duplicates"]), (200, 1), b)
        self.assertEqual(self.profile("ecid", "DUP-A")["identities"]["email"], [])
        s, p = self.srv.profile("ecid", "DUP-B")
        self.assertEqual(s, 404, p)

    # -- cart --------------------------------------------------------------------

    def test_cart_add_and_remove(self):
        self.send({"type": "cart_add", "ecid": "CART-1", "ts": self.ts(10),
                   "items": [{"id": "A", "quantity": 3, "price": 5, "name": "Apple",
                              "category": "Fruit"},
                             {"id": "B"}, {"id": "C", "quantity": 2}]})
        p = self.profile("ecid", "CART-1")
        self.assertEqual(self.cart(p), [("A", 3), ("B", 1), ("C", 2)])
        a = next(i for i in p["cart"] if i["id"] == "A")
        self.assertEqual((a["name"], a["price"], a["category"]), ("Apple", 5, "Fruit"))
        self.assertEqual(a["added"], self.ts(10))
        # with a quantity: lowered; without: the line goes
        self.send({"type": "cart_remove", "ecid": "CART-1",
                   "items": [{"id": "A", "quantity": 1}, {"id": "B"}]})
        self.assertEqual(self.cart(self.profile("ecid", "CART-1")), [("A", 2), ("C", 2)])
        # lowering to zero or below removes the line; unknown items are ignored
        self.send({"type": "cart_remove", "ecid": "CART-1",
                   "items": [{"id": "A", "quantity": 5}, {"id": "C", "quantity": 2},
                             {"id": "NOT-IN-CART"}]})
        self.assertEqual(self.cart(self.profile("ecid", "CART-1")), [])
        # a remove for someone new creates an empty profile, not an error
        self.send({"type": "cart_remove", "ecid": "CART-NEW", "items": [{"id": "A"}]})
        self.assertEqual(self.profile("ecid", "CART-NEW")["cart"], [])

    def test_purchase_takes_bought_items_out_of_the_cart(self):
        self.send({"type": "cart_add", "ecid": "BUY-1",
                   "items": [{"id": "COAT", "quantity": 2}, {"id": "SWEAT"}, {"id": "HAT"}]})
        self.send({"type": "purchase", "ecid": "BUY-1", "ts": self.ts(3),
                   "items": [{"id": "COAT", "quantity": 1, "price": 59.9}, {"id": "SOCKS"}],
                   "order": {"id": "O-1", "total": 64.4, "currency": "eur"}})
        p = self.profile("ecid", "BUY-1")
        # bought items leave the cart whole, whatever the quantity bought
        self.assertEqual(self.cart(p), [("HAT", 1), ("SWEAT", 1)])
        self.assertEqual(len(p["purchases"]), 1)
        o = p["purchases"][0]
        self.assertEqual((o["order_id"], o["total"], o["currency"], o["ts"]),
                         ("O-1", 64.4, "EUR", self.ts(3)))
        self.assertEqual([(i["id"], i["quantity"]) for i in o["items"]],
                         [("COAT", 1), ("SOCKS", 1)])
        self.assertEqual(o["items"][0]["price"], 59.9)

    def test_purchase_without_items_clears_the_cart(self):
        self.send({"type": "cart_add", "ecid": "BUY-2", "items": [{"id": "A"}, {"id": "B"}]})
        self.send({"type": "purchase", "ecid": "BUY-2", "ts": self.ts(2),
                   "order": {"id": "O-2", "total": 10}})
        self.send({"type": "purchase", "ecid": "BUY-2", "ts": self.ts(1)})
        p = self.profile("ecid", "BUY-2")
        self.assertEqual(p["cart"], [])
        self.assertEqual([o.get("order_id") for o in p["purchases"]], [None, "O-2"])  # newest first
        self.assertEqual(p["purchases"][0]["items"], [])
        self.assertNotIn("total", p["purchases"][0])

    # -- recently viewed ---------------------------------------------------------

    def test_viewed_newest_first_and_bounded(self):
        for n in range(5):
            self.send({"type": "product_view", "ecid": "VIEW-1", "ts": self.ts(50 - n),
                       "items": [{"id": f"P{n}", "name": f"Product {n}", "price": n + 0.5}]})
        p = self.profile("ecid", "VIEW-1")
        self.assertEqual([i["id"] for i in p["viewed"]], ["P4", "P3", "P2"])
        self.assertEqual(p["viewed"][0]["ts"], self.ts(46))
        self.assertEqual((p["viewed"][0]["name"], p["viewed"][0]["price"]), ("Product 4", 4.5))
        self.assertNotIn("quantity", p["viewed"][0])
        # viewing one again brings it to the front; an older view does not
        self.send({"type": "product_view", "ecid": "VIEW-1", "ts": self.ts(40),
                   "items": [{"id": "P2"}]})
        self.send({"type": "product_view", "ecid": "VIEW-1", "ts": self.ts(60),
                   "items": [{"id": "P3"}]})
        p = self.profile("ecid", "VIEW-1")
        self.assertEqual([i["id"] for i in p["viewed"]], ["P2", "P4", "P3"])
        self.assertEqual(p["viewed"][0]["name"], "Product 2")  # details kept
        # only product views count as views
        self.send({"type": "cart_add", "ecid": "VIEW-1", "items": [{"id": "Q"}]})
        self.assertEqual([i["id"] for i in self.profile("ecid", "VIEW-1")["viewed"]],
                         ["P2", "P4", "P3"])

    def test_viewed_max_holds_for_items_viewed_together(self):
        """Items of one event share its time (and, on a virtual clock, so do
        events without "ts"); --viewed-max must hold all the same."""
        self.send({"type": "product_view", "ecid": "VIEW-2",
                   "items": [{"id": f"T{n}"} for n in range(5)]})
        self.send({"type": "product_view", "ecid": "VIEW-2", "items": [{"id": "U"}]})
        viewed = self.profile("ecid", "VIEW-2")["viewed"]
        self.assertEqual(len(viewed), VIEWED_MAX, viewed)

    def test_viewed_max_holds_after_a_merge(self):
        for who in ("VM-A", "VM-B"):
            for n in range(VIEWED_MAX):
                self.send({"type": "product_view", "ecid": who, "ts": self.ts(30 - n),
                           "items": [{"id": f"{who}-{n}"}]})
        self.send({"type": "identify", "ecid": "VM-A", "email": "vm@example.com"})
        self.send({"type": "identify", "ecid": "VM-B", "email": "vm@example.com"})
        viewed = self.profile("email", "vm@example.com")["viewed"]
        self.assertLessEqual(len(viewed), VIEWED_MAX, [v["id"] for v in viewed])

    # -- consent -----------------------------------------------------------------

    def test_consent_in_and_out_with_time_and_source(self):
        self.assertEqual(self.profile_after({"type": "page_view", "ecid": "CONS-1"})["consent"],
                         {})
        self.send({"type": "identify", "ecid": "CONS-1", "ts": self.ts(30),
                   "consent": {"marketing": "in"}})
        c = self.profile("ecid", "CONS-1")["consent"]
        self.assertEqual(c, {"marketing": {"value": "in", "ts": self.ts(30), "source": "native"}})
        self.send({"type": "page_view", "ecid": "CONS-1", "ts": self.ts(20),
                   "consent": {"marketing": "n"}})
        c = self.profile("ecid", "CONS-1")["consent"]["marketing"]
        self.assertEqual((c["value"], c["ts"]), ("out", self.ts(20)))
        # a statement older than the one we hold does not override it
        self.send({"type": "identify", "ecid": "CONS-1", "ts": self.ts(25),
                   "consent": {"marketing": True}})
        c = self.profile("ecid", "CONS-1")["consent"]["marketing"]
        self.assertEqual((c["value"], c["ts"]), ("out", self.ts(20)))
        self.send({"type": "identify", "ecid": "CONS-1", "ts": self.ts(1),
                   "consent": {"marketing": "y"}})
        self.assertEqual(self.profile("ecid", "CONS-1")["consent"]["marketing"]["value"], "in")

    def profile_after(self, event):
        self.send(event)
        return self.profile("ecid", event["ecid"])

    # -- counts, times ---------------------------------------------------------------

    def test_counts_by_type_and_activity_times(self):
        self.send({"type": "page_view", "ecid": "CNT-1", "ts": self.ts(9)},
                  {"type": "page_view", "ecid": "CNT-1", "ts": self.ts(8)},
                  {"type": "newsletter.signup", "ecid": "CNT-1", "ts": self.ts(3)},
                  {"type": "product_view", "ecid": "CNT-1", "ts": self.ts(7),
                   "items": [{"id": "A"}]})
        p = self.profile("ecid", "CNT-1")
        self.assertEqual(p["counts"], {"page_view": 2, "newsletter.signup": 1, "product_view": 1})
        self.assertEqual(p["last_activity"], self.ts(3))
        self.assertIn("created", p)
        self.assertIsInstance(p["id"], int)

    # -- who may read ------------------------------------------------------------------

    def test_unknown_namespace_and_id(self):
        s, b = self.srv.get("/v1/profiles/phone/123", admin=True)
        self.assertEqual(s, 400, b)
        self.assertEqual((b["error"]["code"], b["error"]["path"]), ("invalid", "ns"))
        self.assertIn("phone", b["error"]["message"])
        s, b = self.srv.profile("ecid", "NEVER-SEEN")
        self.assertEqual(s, 404, b)
        self.assertEqual((b["error"]["code"], b["error"]["path"]), ("not_found", "id"))

    def test_admin_key_required(self):
        self.send({"type": "page_view", "ecid": "AUTH-1"})
        path = "/v1/profiles/ecid/AUTH-1"
        for headers in [{}, {"Authorization": "Bearer wrong-key"},
                        {"Authorization": f"Bearer {ADMIN_KEY}x"},
                        {"Authorization": f"Bearer {ADMIN_KEY[:-1]}"},
                        {"Authorization": f"Basic {ADMIN_KEY}"},
                        {"Authorization": f"bearer{ADMIN_KEY}"},
                        {"Authorization": "Bearer "},
                        {"X-Admin-Key": ADMIN_KEY}]:
            with self.subTest(headers=headers):
                s, b, h = self.srv.request("GET", path, headers=headers)
                self.assertEqual(s, 401, b)
                self.assertEqual(b["error"]["code"], "unauthorized")
                self.assertEqual(h.get("WWW-Authenticate"), "Bearer")
                self.assertNotIn("AUTH-1", str(b))  # nothing of the profile leaks
        s, b, _ = self.srv.request("GET", path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        self.assertEqual(s, 200, b)
        # the other admin endpoints too
        for method, p in [("GET", "/v1/admin/clock"), ("POST", "/v1/admin/clock:advance")]:
            s, b, _ = self.srv.request(method, p, body={"seconds": 1} if method == "POST" else None)
            self.assertEqual(s, 401, (p, b))

    def test_url_escaped_ids(self):
        self.send({"type": "page_view", "ecid": "ESC 1/2", "email": "a+b@example.com"})
        s, p = self.srv.get("/v1/profiles/email/" + urllib.request.quote("a+b@example.com"),
                            admin=True)
        self.assertEqual(s, 200, p)
        self.assertEqual(p["identities"]["ecid"], ["ESC 1/2"])


if __name__ == "__main__":
    unittest.main()
