"""Durability: a 2xx reply to an event means it is on disk.

Several client threads post single events and 100-event batches with unique
idempotency keys; the server is killed with SIGKILL in the middle of the
load; it restarts on the same data directory, and every event id that got a
2xx before the kill must be stored exactly once (checked in the SQLite file
and through the API). A retry of an acknowledged event is answered
"duplicate" and not stored again. Several rounds, one of them with
--sync normal (which must survive a process crash too).
"""
import http.client
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import unittest

from harness import Server

THREADS = 4
BATCH = 100
ROUNDS = 3


class Client(threading.Thread):
    """Posts events until the server goes away; remembers what was acknowledged."""

    def __init__(self, port, rnd, tid):
        super().__init__(daemon=True)
        self.port, self.rnd, self.tid = port, rnd, tid
        self.ecid = f"DUR-{rnd}-{tid}"
        self.acked = set()  # event ids answered accepted or duplicate with a 2xx
        self.sent = 0
        self.n = 0
        self.unexpected = []

    def next_id(self):
        self.n += 1
        return f"r{self.rnd}-t{self.tid}-{self.n}"

    def event(self, type_):
        ev = {"id": self.next_id(), "type": type_, "ecid": self.ecid}
        if type_ == "cart_add":
            ev["items"] = [{"id": f"SKU-{self.n % 7}", "price": 9.5, "quantity": 1}]
        return ev

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        i = 0
        try:
            while True:
                i += 1
                if i % 2:
                    events = [self.event("page_view")]
                    body = events[0]
                else:
                    events = [self.event("cart_add") for _ in range(BATCH)]
                    body = {"events": events}
                self.sent += len(events)
                conn.request("POST", "/v1/events", json.dumps(body),
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                payload = resp.read()
                if not 200 <= resp.status < 300:
                    self.unexpected.append((resp.status, payload[:200]))
                    continue
                reply = json.loads(payload)
                for r in reply["results"]:
                    if r["status"] in ("accepted", "duplicate"):
                        self.acked.add(events[r["index"]]["id"])
                    else:
                        self.unexpected.append(r)
        except (OSError, http.client.HTTPException, ValueError):
            pass  # the server was killed: whatever was not answered is not acknowledged
        finally:
            conn.close()


def stored_ids(data_dir):
    """event_id -> number of rows, read from the SQLite file without writing to it."""
    db = sqlite3.connect(f"file:{os.path.join(data_dir, 'tandem.db')}?mode=ro", uri=True,
                         timeout=30)
    try:
        return dict(db.execute("SELECT event_id, count(*) FROM events "
                               "WHERE event_id IS NOT NULL GROUP BY event_id"))
    finally:
        db.close()


class DurabilityTest(unittest.TestCase):
    def setUp(self):
        self.data_dir = tempfile.mkdtemp(prefix="tandem-durability-")
        self.srv = Server(data_dir=self.data_dir)

    def tearDown(self):
        rc = self.srv.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.assertEqual(rc, 0, "tandem exited with a failure status")

    def run_round(self, rnd):
        """Starts the load, kills the server in the middle of it, returns the clients."""
        clients = [Client(self.srv.port, rnd, t) for t in range(THREADS)]
        for c in clients:
            c.start()
        # wait until every thread had answers, then a little more, then kill
        deadline = time.time() + 20
        while time.time() < deadline and not all(c.acked for c in clients):
            time.sleep(0.05)
        time.sleep(random.uniform(0.8, 2.0))  # kill at a different point each round
        self.srv.kill9()
        for c in clients:
            c.join(timeout=30)
            self.assertFalse(c.is_alive(), "a client thread hangs after the kill")
        for c in clients:
            self.assertEqual(c.unexpected, [], f"round {rnd} thread {c.tid}")
            self.assertTrue(c.acked, f"round {rnd} thread {c.tid} got no reply before the kill")
        return clients

    def check_stored(self, acked, clients_by_round):
        stored = stored_ids(self.data_dir)
        lost = [i for i in acked if i not in stored]
        self.assertEqual(lost[:10], [], f"{len(lost)} acknowledged events lost")
        twice = {i: n for i, n in stored.items() if n != 1}
        self.assertEqual(twice, {}, "events stored more than once")
        # through the API: each client's profile counts exactly what is stored for it
        for rnd, clients in clients_by_round.items():
            for c in clients:
                s, p = self.srv.profile("ecid", c.ecid)
                self.assertEqual(s, 200, p)
                prefix = f"r{rnd}-t{c.tid}-"
                in_db = sum(1 for i in stored if i.startswith(prefix))
                self.assertEqual(sum(p["counts"].values()), in_db, c.ecid)
                self.assertGreaterEqual(in_db, len(c.acked), c.ecid)
        s, h = self.srv.get("/healthz")
        self.assertEqual(s, 200)
        self.assertEqual(h["events"], len(stored))
        return stored

    def test_acknowledged_events_survive_kill9(self):
        acked = set()
        clients_by_round = {}
        for rnd in range(ROUNDS):
            # one round with synchronous=NORMAL: it must survive a process crash too
            self.srv.args = ["--sync", "normal"] if rnd == 1 else []
            self.srv.start()  # after a kill: recovery on the same data directory
            if rnd:
                self.check_stored(acked, clients_by_round)
            clients = self.run_round(rnd)
            clients_by_round[rnd] = clients
            for c in clients:
                acked |= c.acked
            sent = sum(c.sent for c in clients)
            got = sum(len(c.acked) for c in clients)
            print(f"\n  round {rnd}: {got} events acknowledged, {sent - got} unanswered at the kill",
                  file=sys.stderr, end="")
        self.srv.args = []
        self.srv.start()
        stored = self.check_stored(acked, clients_by_round)
        self.assertGreater(len(acked), 100)

        # a retry of acknowledged events, alone and in a batch, is a duplicate
        sample = sorted(acked)[:BATCH + 1]
        s, body = self.srv.post("/v1/events", {"id": sample[0], "type": "page_view",
                                               "ecid": "DUR-RETRY"})
        self.assertEqual(s, 200, body)
        self.assertEqual(body["duplicates"], 1)
        self.assertEqual(body["results"][0]["status"], "duplicate")
        self.assertGreater(body["results"][0]["seq"], 0)
        s, body = self.srv.post("/v1/events", {"events": [
            {"id": i, "type": "page_view", "ecid": "DUR-RETRY"} for i in sample[1:]]})
        self.assertEqual(s, 200, body)
        self.assertEqual((body["accepted"], body["duplicates"]), (0, BATCH))
        self.assertEqual(stored_ids(self.data_dir), stored)
        s, h = self.srv.get("/healthz")
        self.assertEqual(h["events"], len(stored))

    def test_duplicate_in_flight_batch_and_after_restart(self):
        """The same id twice in one batch, and again after a restart: stored once."""
        self.srv.start()
        ev = {"id": "dup-1", "type": "cart_add", "ecid": "DUP",
              "items": [{"id": "A", "quantity": 2}]}
        s, body = self.srv.post("/v1/events", {"events": [ev, ev]})
        self.assertEqual(s, 200, body)
        self.assertEqual([r["status"] for r in body["results"]], ["accepted", "duplicate"])
        self.assertEqual(body["results"][0]["seq"], body["results"][1]["seq"])
        self.srv.kill9()
        self.srv.start()
        s, body = self.srv.post("/v1/events", ev)
        self.assertEqual(s, 200, body)
        self.assertEqual(body["results"][0]["status"], "duplicate")
        s, p = self.srv.profile("ecid", "DUP")
        self.assertEqual(p["counts"], {"cart_add": 1})
        # the duplicate did not add to the cart again
        self.assertEqual([(i["id"], i["quantity"]) for i in p["cart"]], [("A", 2)])
        self.assertEqual(stored_ids(self.data_dir), {"dup-1": 1})


if __name__ == "__main__":
    unittest.main()
