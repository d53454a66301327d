"""Two Tandem nodes on one PostgreSQL run journeys safely together.

A throwaway cluster (scripts/pg-test.sh), two real nodes on it, both on a
virtual clock: the second node starts after the first and resumes the time
the first saved in the shared meta table, and the test always advances both
by the same amount, so they agree. The shipped cart-abandonment journey is
published on one node only; the other picks it up by itself (its runner
polls the journeys table). Events for the same shoppers go to both nodes at
once, some sent twice with the same id (a client retry landing on the other
node); the instances wait three hours; one node's clock moves, it starts
working, and it is SIGKILLed; then the other node's clock moves and it
takes over what the dead one held (its open transactions died with its
connections). At the end: every acknowledged event is stored exactly once,
every cart has exactly one instance, every instance ended exactly once with
the right outcome, counters match, and there is exactly one outbox row per
emailed instance with a unique Message-ID. Both nodes send through one real
SMTP server (mail_sink.py, when Debian's python3-aiosmtpd is installed): every
email arrives there exactly once across both nodes, also those the killed
node had claimed (a short outbox lease lets the survivor take them over); the
only second copy allowed is one the survivor counts as resent after a crash
(killed between the end of DATA and the server's 250).

The journey tests of test_journeys.py run again on the same kind of cluster,
each server on a fresh database, so both backends keep the same behaviour.
Skipped when PostgreSQL is not installed."""
import concurrent.futures
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import itertools
import unittest

import test_journeys
from harness import ROOT, Server, wait_until
from test_outbox import Sink, have_aiosmtpd

HAVE_PG = bool(glob.glob("/usr/lib/postgresql/*/bin"))
HAVE_SMTPD = have_aiosmtpd()
HOUR = 3600
CARTS = 60  # shoppers, one cart each
SENDS = 3   # cart_add events per shopper on each node


def pg_test(cmd, d):
    p = subprocess.run(["sh", os.path.join(ROOT, "scripts", "pg-test.sh"), cmd, d],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"pg-test.sh {cmd}: {p.stderr}")
    return p.stdout.strip()


def psql_bin():
    return sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))[-1]


class OnPostgres:
    """Mixed into a test class of test_journeys: its servers run on a throwaway
    cluster, each on a database of its own."""
    @classmethod
    def setUpClass(cls):
        cls.pg_dir = tempfile.mkdtemp(prefix="tandem-pgj-")
        cls.pg_url = pg_test("start", cls.pg_dir)
        cls.saved_server = test_journeys.Server
        names = itertools.count()

        def server(*args, **kw):
            db = f"j{next(names)}"
            subprocess.run([psql_bin(), cls.pg_url, "-X", "-q", "-c", f"CREATE DATABASE {db}"],
                           check=True, capture_output=True, timeout=60)
            return Server(*args, "--store", cls.pg_url.rsplit("/", 1)[0] + "/" + db, **kw)
        test_journeys.Server = server
        try:
            super().setUpClass()
        except Exception:
            cls.tearDownPg()
            raise

    @classmethod
    def tearDownPg(cls):
        test_journeys.Server = cls.saved_server
        pg_test("stop", cls.pg_dir)
        shutil.rmtree(cls.pg_dir, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.tearDownPg()


@unittest.skipUnless(HAVE_PG, "PostgreSQL is not installed")
class ShippedJourneysOnPostgres(OnPostgres, test_journeys.ShippedJourneysTest):
    pass


@unittest.skipUnless(HAVE_PG, "PostgreSQL is not installed")
class LifecycleOnPostgres(OnPostgres, test_journeys.LifecycleTest):
    pass


@unittest.skipUnless(HAVE_PG, "PostgreSQL is not installed")
class ActionsOnPostgres(OnPostgres, test_journeys.ActionsTest):
    pass


@unittest.skipUnless(HAVE_PG, "PostgreSQL is not installed")
class MultiNodeTest(unittest.TestCase):
    def setUp(self):
        self.pg_dir = tempfile.mkdtemp(prefix="tandem-pgm-")
        self.url = pg_test("start", self.pg_dir)
        self.psql_bin = psql_bin()
        self.nodes = []
        self.sink = Sink() if HAVE_SMTPD else None

    def tearDown(self):
        try:
            for n in self.nodes:
                if n.proc and n.proc.poll() is None:
                    rc = n.stop()
                    self.assertEqual(rc, 0, n.logs())
                shutil.rmtree(n.data_dir, ignore_errors=True)
        finally:
            if self.sink:
                self.sink.close()
            pg_test("stop", self.pg_dir)
            shutil.rmtree(self.pg_dir, ignore_errors=True)

    def sql(self, q):
        p = subprocess.run([self.psql_bin, self.url, "-X", "-At", "-F", "|", "-c", q],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return [line.split("|") for line in p.stdout.splitlines() if line]

    def node(self):
        mail = []
        if self.sink:
            # a lease of seconds: what the killed node claimed goes out soon
            mail = ["--smtp", f"smtp://127.0.0.1:{self.sink.port}", "--smtp-tls", "off",
                    "--mail-from", "news@shop.example", "--outbox-lease", "4",
                    "--smtp-timeout", "3"]
        srv = Server("--store", self.url, "--public-url", "https://shop.example",
                     "--journey-batch", "4", *mail).start()
        self.nodes.append(srv)
        return srv

    @staticmethod
    def metric(srv, name):
        s, body = srv.get("/metrics")
        text = body.decode() if isinstance(body, bytes) else body
        for line in text.splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[-1]))
        return 0

    def clock(self, srv):
        s, b = srv.get("/v1/admin/clock", admin=True)
        self.assertEqual(s, 200, b)
        return b["now_ms"]

    def test_two_nodes_share_journeys(self):
        a = self.node()
        b = self.node()
        # b resumed the virtual time a saved: one clock for both
        self.assertEqual(self.clock(a), self.clock(b))

        a.apply_journey("cart-abandonment.json")
        # b sees the journey without any call of its own: probe until it enters
        probes = []  # the probes sent before b reloaded do not enter

        def b_enters():
            ecid = f"probe-{len(probes)}"
            probes.append(ecid)
            s, r = b.post("/v1/events", {"type": "cart_add", "ecid": ecid, "id": f"ev-{ecid}",
                                         "email": f"{ecid}@example.com",
                                         "items": [{"id": "P-1", "price": 5.0}]})
            self.assertEqual(s, 200, r)
            return any(i["journey"] == "cart-abandonment" for i in b.journey_instances("ecid", ecid))
        self.assertTrue(wait_until(b_enters, timeout=10, interval=0.3), b.logs())

        # the same shoppers on both nodes at once; some events retried on the other node
        def send(job):
            srv, ev = job
            for _ in range(5):
                s, r = srv.post("/v1/events", ev)
                if s != 503:  # busy: nothing was kept, the client retries
                    break
                time.sleep(0.05)
            # a duplicate (the retry) is acknowledged too: the event is stored
            ok = s == 200 and r.get("accepted", 0) + r.get("duplicates", 0) == 1
            return ev["id"] if ok else None

        # a third of the carts are shared by two devices that are not (yet) one profile: only
        # the entry key (the cart) makes their events meet
        buyers = set(range(0, CARTS, 3))
        shared = set(range(1, CARTS, 3))
        jobs = []
        for i in range(CARTS):
            for k in range(SENDS):
                for name, srv in (("a", a), ("b", b)):
                    who = "tablet" if i in shared and name == "a" else "shopper"
                    ev = {"type": "cart_add", "ecid": f"{who}-{i}", "id": f"add-{i}-{name}{k}",
                          "email": f"{who}{i}@example.com", "cart_id": f"cart-{i}",
                          "items": [{"id": f"P-{i}", "price": 10.0 + i}]}
                    jobs.append((srv, ev))
                    if k == 0:
                        jobs.append((b if srv is a else a, ev))  # the retry, same id
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            acked = [x for x in pool.map(send, jobs) if x]
        self.assertEqual(len(set(acked)), CARTS * SENDS * 2)
        ids = self.sql("SELECT event_id, count(*) FROM events WHERE event_id LIKE 'add-%' "
                       "GROUP BY event_id")
        self.assertEqual(sorted(r[0] for r in ids), sorted(set(acked)))
        self.assertTrue(all(r[1] == "1" for r in ids), ids)

        # one cart, one instance, however many nodes saw its events
        rows = self.sql("SELECT entry_key, count(*) FROM journey_instances "
                        "WHERE entry_key LIKE 'k:cart-%' GROUP BY entry_key")
        self.assertEqual(len(rows), CARTS, rows)
        self.assertTrue(all(r[1] == "1" for r in rows), rows)

        # a third of the shoppers buy during the wait, on either node
        a.advance(HOUR)
        b.advance(HOUR)
        for i in buyers:
            srv = a if i % 2 else b
            s, r = srv.post("/v1/events", {"type": "purchase", "ecid": f"shopper-{i}",
                                           "id": f"buy-{i}", "cart_id": f"cart-{i}",
                                           "items": [{"id": f"P-{i}", "price": 10.0 + i}],
                                           "order": {"id": f"O-{i}", "total": 10.0 + i}})
            self.assertEqual(s, 200, r)

        # a's clock moves first: it starts on the due instances and dies mid-way
        a.advance(2 * HOUR + 1)
        time.sleep(0.02)
        a.kill9()
        b.advance(2 * HOUR + 1)

        def all_ended():
            r = self.sql("SELECT count(*) FROM journey_instances WHERE ended_ms IS NULL")
            return r[0][0] == "0"
        self.assertTrue(wait_until(all_ended, timeout=30, interval=0.2), b.logs())

        total = CARTS + 1  # the probe that entered
        inst = self.sql("SELECT id, entry_key, outcome, reason, history FROM journey_instances")
        self.assertEqual(len(inst), total, inst)
        for iid, key, outcome, reason, history in inst:
            steps = [h["step"] for h in json.loads("[" + history[1:] + "]")]
            buyer = key.startswith("k:cart-") and int(key[7:]) in buyers
            if buyer:
                self.assertEqual((outcome, reason), ("exited", "purchased"), (key, steps))
            else:
                self.assertEqual((outcome, reason), ("completed", "emailed"), (key, steps))
                # each step ran once: no replay of a step after the crash
                self.assertEqual(steps, ["", "wait", "wait", "check", "cart_items",
                                         "also_bought", "email", "done"], key)

        # exactly one outbox row per emailed instance, each with its own Message-ID
        emailed = {r[0] for r in inst if r[2] == "completed"}
        ob = self.sql("SELECT instance_id, step, message_id FROM outbox")
        self.assertEqual(sorted(r[0] for r in ob), sorted(emailed))
        self.assertTrue(all(r[1] == "email" for r in ob), ob)
        self.assertEqual(len({r[2] for r in ob}), len(ob), ob)

        # the report counters were written exactly once, in the same transactions
        counts = dict((f"{r[0]}/{r[1]}", int(r[2])) for r in self.sql(
            "SELECT step, kind, sum(n) FROM (SELECT * FROM journey_counters UNION ALL "
            "SELECT * FROM journey_counter_log) c WHERE journey_id = 'cart-abandonment' "
            "AND reason = '' AND step IN ('', 'email') AND kind = 'entered' GROUP BY step, kind"))
        self.assertEqual(counts.get("/entered"), total, counts)
        self.assertEqual(counts.get("email/entered"), len(emailed), counts)

        if self.sink is None:
            return
        # every email reached the SMTP server exactly once, whichever node sent it
        def all_sent():
            return self.sql("SELECT count(*) FROM outbox WHERE status <> 'sent'")[0][0] == "0"
        self.assertTrue(wait_until(all_sent, timeout=60, interval=0.2),
                        (self.sql("SELECT status, last_error, count(*) FROM outbox "
                                  "GROUP BY 1, 2"), b.logs()))
        sent = {r[0].strip("<>"): r[1]
                for r in self.sql("SELECT message_id, recipient FROM outbox")}
        time.sleep(1)  # a second copy would have arrived by now
        got = {}
        for m in self.sink.messages(len(sent), timeout=30):
            mid = str(m["Message-ID"]).strip().strip("<>")
            got.setdefault(mid, []).append(str(m["To"]))
        self.assertEqual(set(got), set(sent))
        for mid, to in got.items():
            self.assertTrue(all(sent[mid] in t for t in to), (mid, to, sent[mid]))
        # a second copy only of a message the dead node had handed to the server
        # without seeing its 250: b counts those when it sends them again
        twice = sorted(mid for mid, to in got.items() if len(to) > 1)
        resent = self.metric(b, "tandem_outbox_resent_after_crash_total")
        self.assertTrue(all(len(got[mid]) == 2 for mid in twice), got)
        self.assertLessEqual(len(twice), resent, (twice, resent))


if __name__ == "__main__":
    unittest.main()
