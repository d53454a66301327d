"""Kill -9 the real server again and again while shoppers enter the cart
abandonment journey and the runner moves instances through their steps;
then check that no acknowledged entry was lost, no step ran twice, and
every instance queued exactly one email (one outbox row per instance and
email step)."""
import random
import threading
import time
import unittest

from harness import Server, wait_until

ROUNDS = 10
PER_REQUEST = 20
MAX_PER_ROUND = 100
STEPS = ["", "wait", "wait", "check", "cart_items", "also_bought", "email", "done"]


class Poster(threading.Thread):
    """Posts cart_add events for new shoppers until stopped; keeps the
    ECIDs whose request was acknowledged."""

    def __init__(self, srv, prefix, acked):
        super().__init__(daemon=True)
        self.srv, self.prefix, self.acked = srv, prefix, acked
        self.stop = threading.Event()

    def run(self):
        n = 0
        while not self.stop.is_set() and n < MAX_PER_ROUND:
            batch = [f"{self.prefix}-{n + i}" for i in range(PER_REQUEST)]
            events = [{"type": "cart_add", "ecid": e, "email": f"{e.lower()}@example.com",
                       "items": [{"id": "C-101", "price": 189.0}, {"id": "S-201", "price": 49.9}]}
                      for e in batch]
            n += PER_REQUEST
            try:
                s, b = self.srv.post("/v1/events", {"events": events}, timeout=10)
            except OSError:
                return  # the server was killed: this request is not acknowledged
            if s == 200 and b.get("accepted") == len(events):
                self.acked.extend(batch)
            time.sleep(0.01)


def steps_run(srv):
    s, text = srv.get("/metrics")
    text = text.decode() if isinstance(text, bytes) else text
    for line in text.splitlines():
        if line.startswith("tandem_journey_steps_total"):
            return int(float(line.split()[-1]))
    return 0


class JourneyCrashTest(unittest.TestCase):
    def test_sigkill_between_steps_loses_nothing_and_repeats_nothing(self):
        rnd = random.Random(20261128)
        # small runner transactions: more commits, so more places to be killed between
        srv = Server("--journey-batch", "10").start()
        acked = []
        interrupted = 0
        try:
            srv.apply_journey("cart-abandonment.json")
            for rnd_no in range(ROUNDS):
                poster = Poster(srv, f"K{rnd_no}", acked)
                poster.start()
                time.sleep(rnd.uniform(0.05, 0.3))
                # instances entered three hours of virtual time ago fall due now
                srv.advance(3600)
                time.sleep(rnd.uniform(0.0, 0.08))
                srv.kill9()
                poster.stop.set()
                poster.join()
                srv.start()
                # the clock did not move since: steps run now were left over by the kill
                time.sleep(0.3)
                if steps_run(srv) > 0:
                    interrupted += 1
            srv.advance(4 * 3600)

            def all_ended():
                s, rep = srv.get("/v1/journeys/cart-abandonment/report", admin=True)
                return rep if s == 200 and rep["running"] == 0 else None
            rep = wait_until(all_ended, timeout=60)
            self.assertIsNotNone(rep, "instances still running after the last advance")
            self.assertGreater(len(acked), 100)
            # the kills did land while instances were being moved
            print(f"\n  {interrupted} of {ROUNDS} kills left due work behind; "
                  f"{len(acked)} acknowledged entries", flush=True)
            self.assertGreater(interrupted, 0)

            seen_messages = set()
            for ecid in acked:
                rows = [r for r in srv.journey_instances("ecid", ecid)
                        if r["journey"] == "cart-abandonment"]
                self.assertEqual(len(rows), 1, f"{ecid}: {rows}")  # not lost, not entered twice
                s, inst = srv.get(f"/v1/journeys/cart-abandonment/instances/{rows[0]['id']}",
                                  admin=True)
                self.assertEqual((inst["outcome"], inst["reason"]), ("completed", "emailed"),
                                 inst)
                self.assertEqual([h["step"] for h in inst["history"]], STEPS,
                                 f"{ecid}: a step ran twice or was skipped: {inst['history']}")
                s, out = srv.get(f"/v1/journeys:outbox?instance={inst['id']}", admin=True)
                self.assertEqual(len(out["messages"]), 1, out)
                m = out["messages"][0]
                self.assertEqual(m["step"], "email")
                self.assertNotIn(m["message_id"], seen_messages)
                seen_messages.add(m["message_id"])
            # every instance the store holds (acknowledged or not) queued one email
            self.assertEqual(rep["entries"]["entered"], rep["ended"]["completed"])
            email = [st for st in rep["steps"] if st["step"] == "email"][0]
            self.assertEqual(email["queued"], rep["entries"]["entered"])
            self.assertEqual(rep["entries"]["refused"], {})
        finally:
            rc = srv.stop()
        self.assertEqual(rc, 0, srv.logs()[-3000:])


if __name__ == "__main__":
    unittest.main()
