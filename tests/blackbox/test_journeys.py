"""Journeys through the real binary on a virtual clock: the two shipped
journeys end to end up to the outbox row, exits during a wait, re-entry,
entity keys, pause/resume/stop, versions, reports, validation errors, the
CLI, and custom HTTP actions against a small local HTTP server."""
import copy
import http.server
import json
import os
import subprocess
import threading
import time
import unittest

from harness import ADMIN_KEY, BIN, ROOT, Server, wait_until

HOUR = 3600


def ended(srv, ns, ident, journey=None, n=1):
    """Waits until the profile has n ended instances (of journey); returns them."""
    def check():
        rows = [i for i in srv.journey_instances(ns, ident)
                if i["state"] == "ended" and (journey is None or i["journey"] == journey)]
        return rows if len(rows) >= n else None
    return wait_until(check)


def instance(srv, journey, iid):
    s, b = srv.get(f"/v1/journeys/{journey}/instances/{iid}", admin=True)
    assert s == 200, b
    return b


def outbox(srv, iid):
    s, b = srv.get(f"/v1/journeys:outbox?instance={iid}", admin=True)
    assert s == 200, b
    return b["messages"]


def cart_add(srv, ecid, items, email=None, **extra):
    ev = {"type": "cart_add", "ecid": ecid, "items": items, **extra}
    if email:
        ev["email"] = email
    s, b = srv.post("/v1/events", ev)
    assert s == 200 and b["accepted"] == 1, b
    return b


class ShippedJourneysTest(unittest.TestCase):
    """cart-abandonment and browse-abandonment as shipped in journeys/."""

    @classmethod
    def setUpClass(cls):
        cls.srv = Server("--public-url", "https://shop.example").start()
        cls.srv.apply_journey("cart-abandonment.json")
        cls.srv.apply_journey("browse-abandonment.json")

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.logs()

    def test_cart_abandonment_queues_the_email(self):
        srv = self.srv
        cart_add(srv, "CA-1", [{"id": "C-101", "name": "Winter coat", "price": 189.0, "quantity": 2},
                               {"id": "S-201", "name": "Sweatshirt", "price": 49.9}],
                 email="jane@example.com")
        rows = srv.journey_instances("ecid", "CA-1")
        cart = [r for r in rows if r["journey"] == "cart-abandonment"]
        self.assertEqual(len(cart), 1, rows)
        self.assertEqual(cart[0]["state"], "waiting")  # entered in the event's transaction
        self.assertEqual(cart[0]["step"], "wait")
        srv.advance(3 * HOUR + 1)
        done = ended(srv, "ecid", "CA-1", "cart-abandonment")
        self.assertTrue(done, srv.journey_instances("ecid", "CA-1"))
        inst = instance(srv, "cart-abandonment", done[0]["id"])
        self.assertEqual((inst["outcome"], inst["reason"]), ("completed", "emailed"), inst)
        steps = [h["step"] for h in inst["history"]]
        self.assertEqual(steps, ["", "wait", "wait", "check", "cart_items", "also_bought", "email",
                                 "done"])
        # the recommendation was frozen into the instance
        self.assertEqual([i["id"] for i in inst["actions"]["cart"]["items"]], ["C-101", "S-201"])
        msgs = outbox(srv, inst["id"])
        self.assertEqual(len(msgs), 1)
        m = msgs[0]
        self.assertEqual(m["status"], "queued")
        self.assertEqual(m["recipient"], "jane@example.com")
        self.assertEqual(m["template"], "cart-abandonment")
        self.assertEqual(m["step"], "email")
        self.assertEqual(m["journey"], "cart-abandonment")
        self.assertTrue(m["message_id"].startswith(f"<j{inst['id']}.email."), m)
        self.assertTrue(m["message_id"].endswith("@shop.example>"), m)
        data = m["data"]
        self.assertEqual([i["id"] for i in data["data"]["cart"]], ["C-101", "S-201"])
        self.assertEqual(data["profile"]["email"], "jane@example.com")
        self.assertEqual(data["context"]["journey"]["event"]["type"], "cart_add")
        self.assertIn("cart", data["context"]["journey"]["actions"])

    def test_purchase_during_the_wait_exits_at_once(self):
        srv = self.srv
        cart_add(srv, "CA-2", [{"id": "C-102", "price": 229.0}], email="bob@example.com")
        srv.advance(HOUR)
        s, b = srv.post("/v1/events", {"type": "purchase", "ecid": "CA-2",
                                       "items": [{"id": "C-102", "price": 229.0}],
                                       "order": {"id": "O-2", "total": 229.0}})
        self.assertEqual(s, 200, b)
        # no clock move needed: the exit is in the purchase's own transaction
        rows = [r for r in srv.journey_instances("ecid", "CA-2")
                if r["journey"] == "cart-abandonment"]
        self.assertEqual(rows[0]["state"], "ended", rows)
        self.assertEqual((rows[0]["outcome"], rows[0]["reason"]), ("exited", "purchased"))
        srv.advance(3 * HOUR)
        time.sleep(0.3)
        self.assertEqual(outbox(srv, rows[0]["id"]), [])
        inst = instance(srv, "cart-abandonment", rows[0]["id"])
        self.assertEqual(inst["history"][-1]["outcome"], "exited")
        self.assertEqual(inst["history"][-1]["step"], "wait")

    def test_skips_say_why(self):
        srv = self.srv
        cart_add(srv, "CA-3", [{"id": "A-301"}])  # no email known
        cart_add(srv, "CA-4", [{"id": "A-302"}], email="out@example.com",
                 consent={"marketing": "out"})
        srv.advance(3 * HOUR + 1)
        for ecid, reason in (("CA-3", "no_email"), ("CA-4", "consent_refused")):
            rows = ended(srv, "ecid", ecid, "cart-abandonment")
            self.assertTrue(rows, ecid)
            self.assertEqual(rows[0]["reason"], reason)
            self.assertEqual(outbox(srv, rows[0]["id"]), [])
        s, rep = srv.get("/v1/journeys/cart-abandonment/report", admin=True)
        check = [st for st in rep["steps"] if st["step"] == "check"][0]
        self.assertGreaterEqual(check["branches"]["no_email"], 1)
        self.assertGreaterEqual(check["branches"]["consent_refused"], 1)

    def test_one_instance_per_cart(self):
        srv = self.srv
        cart_add(srv, "CA-5", [{"id": "C-101"}], email="carts@example.com", cart_id="K-1")
        cart_add(srv, "CA-5", [{"id": "S-201"}], cart_id="K-2")
        cart_add(srv, "CA-5", [{"id": "S-202"}], cart_id="K-1")  # K-1 is running: no new one
        rows = [r for r in srv.journey_instances("ecid", "CA-5")
                if r["journey"] == "cart-abandonment"]
        self.assertEqual(sorted(r["entry_key"] for r in rows), ["k:K-1", "k:K-2"])
        srv.post("/v1/events", {"type": "purchase", "ecid": "CA-5", "cart_id": "K-2",
                                "items": [{"id": "S-201"}]})
        rows = {r["entry_key"]: r for r in srv.journey_instances("ecid", "CA-5")
                if r["journey"] == "cart-abandonment"}
        self.assertEqual(rows["k:K-2"]["state"], "ended")
        self.assertEqual(rows["k:K-1"]["state"], "waiting")
        s, rep = srv.get("/v1/journeys/cart-abandonment/report", admin=True)
        self.assertGreaterEqual(rep["entries"]["refused"].get("running", 0), 1)

    def test_browse_abandonment_reminds_of_viewed_minus_purchased(self):
        srv = self.srv
        srv.post("/v1/events", {"type": "purchase", "ecid": "BA-1", "email": "viewer@example.com",
                                "items": [{"id": "B-2"}]})
        for item in ("B-1", "B-2", "B-3"):
            s, b = srv.post("/v1/events", {"type": "product_view", "ecid": "BA-1",
                                           "items": [{"id": item, "name": f"Item {item}"}]})
            self.assertEqual(s, 200, b)
        rows = [r for r in srv.journey_instances("ecid", "BA-1")
                if r["journey"] == "browse-abandonment"]
        self.assertEqual(len(rows), 1, rows)  # later views while running do not enter again
        srv.advance(HOUR + 1)
        done = ended(srv, "ecid", "BA-1", "browse-abandonment")
        self.assertTrue(done)
        self.assertEqual(done[0]["reason"], "emailed")
        msgs = outbox(srv, done[0]["id"])
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0]["template"], "browse-abandonment")
        viewed = [i["id"] for i in msgs[0]["data"]["data"]["viewed"]]
        self.assertEqual(sorted(viewed), ["B-1", "B-3"])  # B-2 was bought

    def test_browse_abandonment_exits_on_cart_add(self):
        srv = self.srv
        srv.post("/v1/events", {"type": "product_view", "ecid": "BA-2", "email": "v2@example.com",
                                "items": [{"id": "B-9"}]})
        cart_add(srv, "BA-2", [{"id": "B-9"}])
        rows = {r["journey"]: r for r in srv.journey_instances("ecid", "BA-2")}
        self.assertEqual(rows["browse-abandonment"]["state"], "ended")
        self.assertEqual(rows["browse-abandonment"]["reason"], "added_to_cart")
        self.assertEqual(rows["cart-abandonment"]["state"], "waiting")

    def test_report_counts_every_step(self):
        s, rep = self.srv.get("/v1/journeys/cart-abandonment/report", admin=True)
        self.assertEqual(s, 200, rep)
        self.assertEqual(rep["status"], "live")
        names = [st["step"] for st in rep["steps"]]
        self.assertEqual(names[:3], ["wait", "check", "cart_items"])
        wait = rep["steps"][0]
        # everyone who entered is waiting, passed, or exited at the wait
        self.assertEqual(wait["entered"],
                         wait["waiting"] + wait["passed"] + sum(wait["exited"].values()))
        self.assertEqual(rep["entries"]["entered"], wait["entered"])
        s, b = self.srv.get("/v1/journeys/cart-abandonment/report")
        self.assertEqual(s, 401)


LIFE = {
    "id": "life",
    "name": "Lifecycle test",
    "entry": {"event": "signup"},
    "reentry": {"allowed": True, "wait": "1h"},
    "steps": {
        "wait": {"type": "wait", "duration": "1h", "next": "mail"},
        "mail": {"type": "email", "template": "welcome-v1", "data": {"v": 1}, "next": "end"},
        "end": {"type": "end"},
    },
}


def signup(srv, ecid, email=None):
    ev = {"type": "signup", "ecid": ecid, "email": email or f"{ecid.lower()}@example.com"}
    s, b = srv.post("/v1/events", ev)
    assert s == 200, b


class LifecycleTest(unittest.TestCase):
    def setUp(self):
        self.srv = Server().start()

    def tearDown(self):
        assert self.srv.stop() == 0, self.srv.logs()

    def test_new_version_serves_new_entries_old_ones_finish_on_theirs(self):
        srv = self.srv
        srv.apply_journey(LIFE)
        signup(srv, "V-1")
        v2 = copy.deepcopy(LIFE)
        v2["steps"]["wait"]["duration"] = "2h"
        v2["steps"]["mail"]["template"] = "welcome-v2"
        s, b = srv.put("/v1/journeys/life", v2, admin=True)
        self.assertEqual((s, b["version"], b["changed"]), (200, 2, True), b)
        signup(srv, "V-2")  # not yet published: still version 1
        s, b = srv.post("/v1/journeys/life:publish", admin=True)
        self.assertEqual(b["live_version"], 2)
        signup(srv, "V-3")
        versions = {e: srv.journey_instances("ecid", e)[0]["version"] for e in ("V-1", "V-2", "V-3")}
        self.assertEqual(versions, {"V-1": 1, "V-2": 1, "V-3": 2})
        srv.advance(HOUR + 1)
        self.assertTrue(ended(srv, "ecid", "V-2"))
        self.assertEqual(srv.journey_instances("ecid", "V-3")[0]["state"], "waiting")
        self.assertEqual(outbox(srv, srv.journey_instances("ecid", "V-1")[0]["id"])[0]["template"],
                         "welcome-v1")
        srv.advance(HOUR)
        done = ended(srv, "ecid", "V-3")
        self.assertEqual(outbox(srv, done[0]["id"])[0]["template"], "welcome-v2")
        # the same document again is no new version
        s, b = srv.put("/v1/journeys/life", v2, admin=True)
        self.assertEqual((b["version"], b["changed"]), (2, False))
        s, b = srv.get("/v1/journeys/life?version=1", admin=True)
        self.assertEqual(b["definition"]["steps"]["mail"]["template"], "welcome-v1")

    def test_pause_keeps_instances_waiting_and_resume_runs_them(self):
        srv = self.srv
        srv.apply_journey(LIFE)
        signup(srv, "P-1")
        s, b = srv.post("/v1/journeys/life:pause", admin=True)
        self.assertEqual((s, b["status"]), (200, "paused"), b)
        signup(srv, "P-2")  # no entries while paused
        self.assertEqual(srv.journey_instances("ecid", "P-2"), [])
        srv.advance(2 * HOUR)
        time.sleep(0.5)
        row = srv.journey_instances("ecid", "P-1")[0]
        self.assertEqual(row["state"], "paused")
        s, b = srv.post("/v1/journeys/life:pause", admin=True)
        self.assertEqual(s, 409)
        s, b = srv.post("/v1/journeys/life:resume", admin=True)
        self.assertEqual(b["status"], "live")
        self.assertTrue(ended(srv, "ecid", "P-1"))
        signup(srv, "P-2")
        self.assertEqual(len(srv.journey_instances("ecid", "P-2")), 1)

    def test_stop_ends_instances_and_delete_needs_it(self):
        srv = self.srv
        srv.apply_journey(LIFE)
        for e in ("S-1", "S-2"):
            signup(srv, e)
        s, b = srv.delete("/v1/journeys/life", admin=True)
        self.assertEqual(s, 409, b)
        s, b = srv.post("/v1/journeys/life:stop", admin=True)
        self.assertEqual((s, b["stopped_instances"]), (200, 2), b)
        row = srv.journey_instances("ecid", "S-1")[0]
        self.assertEqual((row["state"], row["outcome"]), ("ended", "stopped"))
        s, rep = srv.get("/v1/journeys/life/report", admin=True)
        self.assertEqual(rep["steps"][0]["exited"]["stopped"], 2)
        srv.advance(2 * HOUR)
        time.sleep(0.3)
        self.assertEqual(outbox(srv, row["id"]), [])
        s, b = srv.delete("/v1/journeys/life", admin=True)
        self.assertEqual(s, 200, b)
        self.assertEqual(srv.get("/v1/journeys/life", admin=True)[0], 404)

    def test_reentry_rules(self):
        srv = self.srv
        short = copy.deepcopy(LIFE)
        short["steps"]["wait"]["duration"] = "10m"
        srv.apply_journey(short)
        signup(srv, "R-1")
        signup(srv, "R-1")  # running: refused
        self.assertEqual(len(srv.journey_instances("ecid", "R-1")), 1)
        srv.advance(11 * 60)
        self.assertTrue(ended(srv, "ecid", "R-1"))
        signup(srv, "R-1")  # 11 minutes after the entry: the 1h re-entry wait refuses it
        self.assertEqual(len(srv.journey_instances("ecid", "R-1")), 1)
        srv.advance(HOUR)
        signup(srv, "R-1")
        self.assertEqual(len(srv.journey_instances("ecid", "R-1")), 2)
        s, rep = srv.get("/v1/journeys/life/report", admin=True)
        self.assertEqual(rep["entries"]["refused"], {"running": 1, "reentry_wait": 1})

        never = copy.deepcopy(short)
        never["id"] = "never"
        never["reentry"] = "never"
        srv.apply_journey(never)
        signup(srv, "R-2")
        srv.advance(11 * 60)
        self.assertTrue(ended(srv, "ecid", "R-2", "never"))
        srv.advance(10 * 24 * HOUR)
        signup(srv, "R-2")
        self.assertEqual(len([i for i in srv.journey_instances("ecid", "R-2")
                              if i["journey"] == "never"]), 1)

    def test_wait_for_event_update_profile_and_split(self):
        srv = self.srv
        doc = {
            "id": "order-follow-up", "entry": {"event": "signup"},
            "steps": {
                "buy": {"type": "wait_for_event", "event": "purchase",
                        "when": "trigger.order.total >= 50", "timeout": "2d",
                        "next": "vip", "timeout_next": "nudge"},
                "vip": {"type": "update_profile", "set": {"vip": True, "first_order":
                                                           "{{ trigger.order.id }}"},
                        "next": "ab"},
                "ab": {"type": "condition", "split": [{"name": "a", "percent": 50, "next": "end"},
                                                      {"name": "b", "percent": 50, "next": "end"}]},
                "nudge": {"type": "end", "reason": "no_order"},
                "end": {"type": "end", "reason": "ordered"},
            },
        }
        srv.apply_journey(doc)
        signup(srv, "W-1")
        signup(srv, "W-2")
        srv.post("/v1/events", {"type": "purchase", "ecid": "W-1", "order": {"id": "small",
                                                                             "total": 5}})
        self.assertEqual(srv.journey_instances("ecid", "W-1")[0]["state"], "waiting")
        srv.post("/v1/events", {"type": "purchase", "ecid": "W-1", "order": {"id": "O-9",
                                                                             "total": 80}})
        done = ended(srv, "ecid", "W-1")
        self.assertEqual(done[0]["reason"], "ordered")
        inst = instance(srv, "order-follow-up", done[0]["id"])
        self.assertIn("event", [h["outcome"] for h in inst["history"]])
        branch = [h["reason"] for h in inst["history"] if h["step"] == "ab"][0]
        self.assertIn(branch, ("a", "b"))
        # profile attributes written by the journey are visible to expressions
        check = {"id": "attr-check", "entry": {"event": "ping", "when": "profile.attributes.vip"},
                 "steps": {"end": {"type": "end", "reason": "{{x}}"}}}
        srv.apply_journey(check)
        srv.post("/v1/events", {"type": "ping", "ecid": "W-1"})
        srv.post("/v1/events", {"type": "ping", "ecid": "W-2"})
        self.assertEqual([i["journey"] for i in srv.journey_instances("ecid", "W-1")
                          if i["journey"] == "attr-check"], ["attr-check"])
        self.assertEqual([i for i in srv.journey_instances("ecid", "W-2")
                          if i["journey"] == "attr-check"], [])
        srv.advance(2 * 24 * HOUR + 1)
        done = ended(srv, "ecid", "W-2", "order-follow-up")
        self.assertEqual(done[0]["reason"], "no_order")

    def test_jump_enters_another_journey(self):
        srv = self.srv
        target = {"id": "target", "entry": {"event": "never_sent"},
                  "steps": {"w": {"type": "wait", "duration": "1h", "next": "e"},
                            "e": {"type": "end", "reason": "arrived"}}}
        source = {"id": "source", "entry": {"event": "signup"},
                  "steps": {"j": {"type": "jump", "journey": "target", "next": "e"},
                            "e": {"type": "end", "reason": "jumped"}}}
        srv.apply_journey(target)
        srv.apply_journey(source)
        signup(srv, "J-1")
        def both():
            rows = srv.journey_instances("ecid", "J-1")
            return {i["journey"]: i for i in rows} if len(rows) == 2 else None
        rows = wait_until(both)
        self.assertEqual(rows["source"]["state"], "ended")
        self.assertEqual(rows["target"]["state"], "waiting")
        self.assertEqual(rows["target"]["entry_event"]["type"], "signup")
        srv.advance(HOUR)
        done = ended(srv, "ecid", "J-1", "target")
        self.assertEqual(done[0]["reason"], "arrived")

    def test_invalid_definitions_name_every_error(self):
        srv = self.srv
        bad = {"id": "life", "entry": {"event": "signup", "when": "count(event.items) >"},
               "steps": {"w": {"type": "wait", "duration": "soon", "next": "x"},
                         "m": {"type": "email", "next": "w"}}}
        s, b = srv.put("/v1/journeys/life", bad, admin=True)
        self.assertEqual(s, 400, b)
        paths = {e["path"] for e in b["error"]["errors"]}
        self.assertTrue({"/entry/when", "/steps/w/duration", "/steps/w/next",
                         "/steps/m/template"} <= paths, paths)
        col = [e for e in b["error"]["errors"] if e["path"] == "/entry/when"][0]
        self.assertEqual(col["column"], 21)
        s, b = srv.put("/v1/journeys/other", LIFE, admin=True)
        self.assertEqual(s, 400)
        self.assertEqual(b["error"]["path"], "/id")
        s, b = srv.request("PUT", "/v1/journeys/life", "{\n\"id\": \"life\",\n}", admin=True)[:2]
        self.assertEqual(s, 400)
        self.assertEqual(b["error"]["line"], 3)
        s, b = srv.post("/v1/journeys/nope:publish", admin=True)
        self.assertEqual(s, 404)
        s, b = srv.put("/v1/journeys/life", LIFE)
        self.assertEqual(s, 401)

    def test_cli(self):
        srv = self.srv
        env = dict(os.environ, TANDEM_SERVER=srv.url(""), TANDEM_ADMIN_KEY=ADMIN_KEY)
        path = os.path.join(ROOT, "journeys", "cart-abandonment.json")

        def run(*args):
            return subprocess.run([BIN, "journey", *args], env=env, capture_output=True,
                                  text=True, timeout=60)
        r = run("apply", path, "--publish")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("version 1 published", r.stdout)
        r = run("list")
        self.assertIn("cart-abandonment", r.stdout)
        self.assertIn("live", r.stdout)
        r = run("pause", "cart-abandonment")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("paused", r.stdout)
        r = run("report", "cart-abandonment")
        self.assertEqual(json.loads(r.stdout)["status"], "paused")
        r = run("show", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: tandem journey show", r.stdout)
        r = run("stop", "nope")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no journey", r.stderr)
        bad = os.path.join(srv.data_dir, "bad.json")
        with open(bad, "w") as f:
            json.dump({"id": "x", "entry": {}, "steps": {}}, f)
        r = run("validate", bad)
        self.assertEqual(r.returncode, 1)
        self.assertIn("/entry/event", r.stderr)
        r = run("apply", bad)
        self.assertEqual(r.returncode, 1)
        self.assertIn("/steps", r.stderr)
        r = subprocess.run([BIN, "journey", "list"], env=dict(env, TANDEM_ADMIN_KEY="wrong-key"),
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("401", r.stderr)


class Remote(http.server.BaseHTTPRequestHandler):
    """A small HTTP server for custom actions: records requests, answers by path."""
    calls = []
    flaky = {"n": 0}

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller gave up (a timeout test)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        Remote.calls.append({"method": self.command, "path": self.path,
                             "headers": dict(self.headers), "body": body.decode()})
        path = self.path.split("?")[0]
        if path.startswith("/ok"):
            self.reply(200, {"items": [{"id": "R-1"}, {"id": "R-2"}], "secret": "dropped",
                             "count": 2})
        elif path.startswith("/flaky"):
            Remote.flaky["n"] += 1
            if Remote.flaky["n"] < 3:
                self.reply(503, {"error": "busy"})
            else:
                self.reply(200, {"items": []})
        elif path.startswith("/missing"):
            self.reply(404, {"error": "no such user"})
        elif path.startswith("/slow"):
            time.sleep(2.5)
            self.reply(200, {"items": []})
        elif path.startswith("/badshape"):
            self.reply(200, {"items": "not a list"})
        else:
            self.reply(500, {})

    do_GET = do_POST = do_PUT = handle_any


def action_journey(jid, url, **extra):
    action = {"method": "POST", "url": url, "headers": {"X-Profile": "{{ profile.ecid }}",
                                                         "X-Const": "yes"},
              "query": {"cart": "{{ ids(event.items) }}"},
              "body": {"ecid": "{{ profile.ecid }}", "items": "{{ ids(event.items) }}"},
              "timeout": "1s", "response": {"items": "array", "count": "integer"}}
    action.update(extra)
    return {
        "id": jid, "entry": {"event": "cart_add"},
        "actions": {"remote": action},
        "steps": {
            "call": {"type": "action", "action": "remote", "as": "res", "next": "check"},
            "check": {"type": "condition",
                      "branches": [{"name": "ok", "when": "actions.res.status == \"http_200\"",
                                    "next": "good"}],
                      "else": "bad"},
            "good": {"type": "end", "reason": "ok"},
            "bad": {"type": "end", "reason": "failed"},
        },
    }


class ActionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.remote = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Remote)
        cls.remote_port = cls.remote.server_address[1]
        threading.Thread(target=cls.remote.serve_forever, daemon=True).start()
        cls.srv = Server("--action-auth", "remote=bearer:s3cret-token",
                         "--action-auth", f"tandem=bearer:{ADMIN_KEY}").start()

    @classmethod
    def tearDownClass(cls):
        cls.remote.shutdown()
        assert cls.srv.stop() == 0, cls.srv.logs()

    def base(self, path):
        return f"http://127.0.0.1:{self.remote_port}{path}"

    def run_action(self, jid, ecid, url, **extra):
        self.srv.apply_journey(action_journey(jid, url, **extra))
        cart_add(self.srv, ecid, [{"id": "C-1"}, {"id": "C-2"}])
        done = ended(self.srv, "ecid", ecid, jid)
        self.assertTrue(done, self.srv.journey_instances("ecid", ecid))
        return instance(self.srv, jid, done[0]["id"])

    def test_call_with_auth_templates_and_declared_shape(self):
        Remote.calls.clear()
        inst = self.run_action("act-ok", "AC-1", self.base("/ok/{{ profile.ecid }}"),
                               auth="remote")
        res = inst["actions"]["res"]
        self.assertEqual(res["status"], "http_200", res)
        self.assertEqual(res["attempts"], 1)
        self.assertEqual([i["id"] for i in res["items"]], ["R-1", "R-2"])
        self.assertNotIn("secret", res["response"])  # only declared fields are kept
        self.assertEqual(inst["reason"], "ok")
        call = [c for c in Remote.calls if c["path"].startswith("/ok/")][0]
        self.assertEqual(call["path"], "/ok/AC-1?cart=%5B%22C-1%22%2C%22C-2%22%5D")
        self.assertEqual(call["headers"]["Authorization"], "Bearer s3cret-token")
        self.assertEqual(call["headers"]["X-Profile"], "AC-1")
        self.assertEqual(call["headers"]["X-Const"], "yes")
        self.assertEqual(json.loads(call["body"]), {"ecid": "AC-1", "items": ["C-1", "C-2"]})

    def test_retries_with_back_off(self):
        Remote.flaky["n"] = 0
        inst = self.run_action("act-flaky", "AC-2", self.base("/flaky"))
        self.assertEqual(inst["actions"]["res"]["status"], "http_200")
        self.assertEqual(inst["actions"]["res"]["attempts"], 3)

    def test_no_retry_on_404_and_condition_branches_on_failure(self):
        inst = self.run_action("act-404", "AC-3", self.base("/missing"))
        res = inst["actions"]["res"]
        self.assertEqual((res["status"], res["attempts"], res["ok"]), ("http_404", 1, False))
        self.assertEqual(inst["reason"], "failed")

    def test_timeout_and_bad_shape(self):
        inst = self.run_action("act-slow", "AC-4", self.base("/slow"), retries=0)
        self.assertEqual(inst["actions"]["res"]["status"], "timedout")
        self.assertEqual(len([c for c in Remote.calls if c["path"].startswith("/slow")]), 1)
        self.assertEqual(inst["reason"], "failed")
        inst = self.run_action("act-shape", "AC-5", self.base("/badshape"))
        self.assertEqual(inst["actions"]["res"]["status"], "invalid_response")

    def test_cap_per_host(self):
        jid = "act-cap"
        self.srv.apply_journey(action_journey(jid, self.base("/ok/cap"), cap_per_minute=1))
        cart_add(self.srv, "AC-6", [{"id": "C-1"}])
        cart_add(self.srv, "AC-7", [{"id": "C-1"}])
        statuses = sorted(instance(self.srv, jid, ended(self.srv, "ecid", e, jid)[0]["id"])
                          ["actions"]["res"]["status"] for e in ("AC-6", "AC-7"))
        self.assertEqual(statuses, ["capped", "http_200"])

    def test_unknown_credential_is_refused(self):
        doc = action_journey("act-noauth", self.base("/ok"), auth="nobody")
        s, b = self.srv.put("/v1/journeys/act-noauth", doc, admin=True)
        self.assertEqual(s, 400, b)
        self.assertEqual(b["error"]["errors"][0]["path"], "/actions/remote/auth")

    def test_calls_tandem_itself(self):
        """A real Tandem endpoint: the recommendations API when it is there, else profiles."""
        s, _ = self.srv.post("/v1/recommendations", {"criteria": "x", "ecid": "AC-8"}, admin=True)
        if s == 404:
            url = self.srv.url("/v1/profiles/ecid/{{ profile.ecid }}")
            method, shape = "GET", {"cart": "array", "identities": "object"}
        else:
            url = self.srv.url("/v1/recommendations")
            method, shape = "POST", {"items": "array"}
        doc = action_journey("act-self", url, auth="tandem", method=method, response=shape)
        if method == "GET":
            del doc["actions"]["remote"]["body"]
        self.srv.apply_journey(doc)
        cart_add(self.srv, "AC-8", [{"id": "C-1"}])
        done = ended(self.srv, "ecid", "AC-8", "act-self")
        res = instance(self.srv, "act-self", done[0]["id"])["actions"]["res"]
        self.assertEqual(res["status"], "http_200", res)
        if method == "GET":
            self.assertEqual([i["id"] for i in res["cart"]], ["C-1"])


if __name__ == "__main__":
    unittest.main()
