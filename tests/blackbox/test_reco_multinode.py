"""Recommendations on two nodes that share one PostgreSQL: each node's model
learns the events the other stores (the reco follower, reco_follow_ms), and
counts every event once.

A throwaway cluster (scripts/pg-test.sh), two real nodes on it. Co-views
sent to node A only show up in node B's VIEWED_CF answer within seconds;
views sent to both nodes at once (many writers, so seqs commit out of
order) give both nodes the same MOST_VIEWED ranking and scores, equal to
what the test sent; and each node's follower fed exactly the events the
other node stored (tandem_reco_follow_events_total), none of its own.
A node started later rebuilds from the table and follows from there; with
reco_follow_ms = 0 a node learns nothing from the other.
Criteria, CUSTOM lists and designs written or deleted on one node are
answered (or refused) by the other within a few polls; a node that finds
another holding the rebuild lock waits for it before it rebuilds and serves.
Skipped when PostgreSQL is not installed."""
import concurrent.futures
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from harness import ROOT, Server, wait_until

HAVE_PG = bool(glob.glob("/usr/lib/postgresql/*/bin"))

ITEMS = ["C-1", "C-2", "C-3", "S-1", "S-2", "H-1", "H-2", "B-1"]
CF = {"criteriaGroup": "ITEM", "type": "VIEWED_CF", "similarityFallback": False,
      "backupDisabled": True}
POP = {"criteriaGroup": "POPULARITY", "type": "MOST_VIEWED", "backupDisabled": True}


def pg_test(cmd, d):
    p = subprocess.run(["sh", os.path.join(ROOT, "scripts", "pg-test.sh"), cmd, d],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"pg-test.sh {cmd}: {p.stderr}")
    return p.stdout.strip()


def metric(srv, name):
    s, body = srv.get("/metrics")
    assert s == 200, body
    text = body.decode() if isinstance(body, bytes) else body
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return int(float(line.split()[-1]))
    return 0


@unittest.skipUnless(HAVE_PG, "PostgreSQL is not installed")
class RecoFollowTest(unittest.TestCase):
    def setUp(self):
        self.pg_dir = tempfile.mkdtemp(prefix="tandem-pgr-")
        self.url = pg_test("start", self.pg_dir)
        self.nodes = []

    def tearDown(self):
        try:
            for n in self.nodes:
                if n.proc and n.proc.poll() is None:
                    self.assertEqual(n.stop(), 0, n.logs())
                shutil.rmtree(n.data_dir, ignore_errors=True)
        finally:
            pg_test("stop", self.pg_dir)
            shutil.rmtree(self.pg_dir, ignore_errors=True)

    def node(self, *extra):
        srv = Server("--store", self.url, "--reco-follow-ms", "200", *extra).start()
        self.nodes.append(srv)
        return srv

    def view(self, srv, ecid, item):
        s, b = srv.post("/v1/events", {"type": "product_view", "ecid": ecid,
                                       "items": [{"id": item}]})
        self.assertEqual((s, b.get("accepted")), (200, 1), b)

    def reco(self, srv, crit, **req):
        s, b = srv.post("/v1/recommendations", dict(req, criteria=crit, count=20), admin=True)
        self.assertEqual(s, 200, b)
        return [(i["id"], i.get("score")) for i in b["items"]]

    def test_nodes_learn_each_others_events_once(self):
        a = self.node()
        b = self.node()
        for ident in ITEMS + ["L-1", "L-2"]:  # the catalog is shared too; b picks it up by polling
            s, r = a.put(f"/v1/entities/{ident}", {"name": ident, "categories": ["All"]},
                         admin=True)
            self.assertIn(s, (200, 201), r)

        # co-views on a only: b answers with them (the other shoppers give
        # the co-occurrence its contrast)
        for v in range(4):
            self.view(a, f"nv-{v}", "S-2")
        for v in range(4):
            self.view(a, f"cv-{v}", "C-1")
            self.view(a, f"cv-{v}", "S-1")
        for v in range(2):
            self.view(a, f"cw-{v}", "C-1")
            self.view(a, f"cw-{v}", "H-1")
        on_a = self.reco(a, CF, key="C-1")
        self.assertEqual([i for i, _ in on_a], ["S-1", "H-1"], on_a)
        got = wait_until(lambda: (lambda r: r if r == on_a else None)(self.reco(b, CF, key="C-1")),
                         timeout=10, interval=0.2)
        self.assertEqual(got, on_a, b.logs())

        # many shoppers on both nodes at once: 8 writer threads per node, so
        # seqs commit out of order and the follower has gaps to wait for
        sent = {}
        jobs = []
        for v in range(120):
            srv = a if v % 2 else b
            for k in range(1 + v % 4):
                item = ITEMS[(v + 3 * k) % len(ITEMS)]
                jobs.append((srv, f"pop-{v}", item))
                sent.setdefault(item, set()).add(f"pop-{v}")
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            list(pool.map(lambda j: self.view(*j), jobs))

        # what the test sent: viewers per item (one session each), plus the
        # co-view shoppers above
        for v in range(4):
            sent.setdefault("S-2", set()).add(f"nv-{v}")
            sent.setdefault("C-1", set()).add(f"cv-{v}")
            sent.setdefault("S-1", set()).add(f"cv-{v}")
        for v in range(2):
            sent["C-1"].add(f"cw-{v}")
            sent.setdefault("H-1", set()).add(f"cw-{v}")
        want = sorted(((i, len(v)) for i, v in sent.items()), key=lambda x: (-x[1], x[0]))

        def caught_up(srv):
            def check():
                # popularity lists are cached for a second of the (virtual) clock
                self.assertEqual(srv.advance(2)[0], 200)
                r = self.reco(srv, POP)
                got = sorted(r, key=lambda x: (-x[1], x[0]))
                return r if got == [(i, float(n)) for i, n in want] else None
            return check
        pop_a = wait_until(caught_up(a), timeout=15, interval=0.2)
        pop_b = wait_until(caught_up(b), timeout=15, interval=0.2)
        self.assertIsNotNone(pop_a, (self.reco(a, POP), self.reco(b, POP), want,
                                     metric(a, "tandem_reco_follow_events_total"),
                                     metric(b, "tandem_reco_follow_events_total"), a.logs()))
        self.assertIsNotNone(pop_b, (self.reco(b, POP), want, b.logs()))
        self.assertEqual(sorted(pop_a), sorted(pop_b))  # ties come in any order

        # each follower fed exactly what the other node stored: nothing twice
        stored_by_a = 16 + sum(1 for srv, _, _ in jobs if srv is a)
        stored_by_b = sum(1 for srv, _, _ in jobs if srv is b)
        self.assertTrue(wait_until(
            lambda: metric(b, "tandem_reco_follow_events_total") == stored_by_a, timeout=10),
            (metric(b, "tandem_reco_follow_events_total"), stored_by_a))
        self.assertTrue(wait_until(
            lambda: metric(a, "tandem_reco_follow_events_total") == stored_by_b, timeout=10),
            (metric(a, "tandem_reco_follow_events_total"), stored_by_b))

        # a third node started now rebuilds from the table, then follows a
        c = self.node()
        self.assertEqual(sorted(self.reco(c, POP)), sorted(pop_a))
        for v in range(3):
            self.view(a, f"late-{v}", "L-1")
            self.view(a, f"late-{v}", "L-2")
        want_cf = self.reco(a, CF, key="L-1")
        self.assertEqual([i for i, _ in want_cf], ["L-2"], want_cf)

        def c_has_it():
            self.assertEqual(c.advance(2)[0], 200)  # answers are cached for a second
            r = self.reco(c, CF, key="L-1")
            return r if r == want_cf else None
        got = wait_until(c_has_it, timeout=10, interval=0.2)
        self.assertEqual(got, want_cf, c.logs())
        self.assertEqual(metric(c, "tandem_reco_follow_events_total"), 6)

    def test_event_committed_late_is_learnt(self):
        """A transaction that took its seq before others committed, and
        commits after the followers read past it."""
        a = self.node()
        b = self.node()
        for ident in ("Z-1", "Z-2"):
            s, r = a.put(f"/v1/entities/{ident}", {"name": ident, "categories": ["All"]},
                         admin=True)
            self.assertIn(s, (200, 201), r)
        s, clock = a.get("/v1/admin/clock", admin=True)
        self.assertEqual(s, 200, clock)
        now = clock["now_ms"]
        psql = subprocess.Popen(
            [sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))[-1], self.url, "-X", "-q", "-At",
             "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        try:
            doc = '{"type":"product_view","ecid":"held","items":[{"id":"Z-1"}]}'
            psql.stdin.write("BEGIN;\n"
                             "INSERT INTO events (type, profile_id, ts_ms, received_ms, doc) "
                             f"VALUES ('product_view', 999999, {now}, {now}, '{doc}') "
                             "RETURNING seq;\n")
            psql.stdin.flush()
            held = int(psql.stdout.readline())
            for v in range(3):
                self.view(a, f"after-{v}", "Z-2")
            # both followers read past the held seq: a's skips its own events
            self.assertTrue(wait_until(
                lambda: metric(b, "tandem_reco_follow_events_total") == 3, timeout=10))
            time.sleep(0.5)
            psql.stdin.write("COMMIT;\n")
            psql.stdin.close()
            self.assertEqual(psql.wait(timeout=30), 0, psql.stderr.read())
        finally:
            if psql.poll() is None:
                psql.kill()
                psql.wait()
            for fh in (psql.stdin, psql.stdout, psql.stderr):
                fh.close()
        self.assertGreater(held, 0)
        self.assertTrue(wait_until(lambda: b.get("/v1/entities/Z-1", admin=True)[0] == 200,
                                   timeout=10), b.logs())
        for srv, n in ((a, 1), (b, 4)):
            self.assertTrue(wait_until(
                lambda: metric(srv, "tandem_reco_follow_events_total") == n, timeout=10),
                (metric(srv, "tandem_reco_follow_events_total"), n))
            self.assertEqual(metric(srv, "tandem_reco_follow_late_total"), 1)
            self.assertEqual(srv.advance(2)[0], 200)  # popularity is cached for a second
            self.assertEqual(sorted(self.reco(srv, POP)), [("Z-1", 1.0), ("Z-2", 3.0)])

    def test_follow_off(self):
        a = self.node()
        b = self.node("--reco-follow-ms", "0")
        for ident in ("C-1", "S-1", "S-2"):
            s, r = a.put(f"/v1/entities/{ident}", {"name": ident, "categories": ["All"]},
                         admin=True)
            self.assertIn(s, (200, 201), r)
        self.assertTrue(wait_until(lambda: b.get("/v1/entities/S-1", admin=True)[0] == 200,
                                   timeout=10))
        for v in range(3):
            self.view(a, f"n-{v}", "S-2")
            self.view(a, f"v-{v}", "C-1")
            self.view(a, f"v-{v}", "S-1")
        self.assertEqual([i for i, _ in self.reco(a, CF, key="C-1")], ["S-1"])
        wait_until(lambda: False, timeout=1)  # five polls of a follower, were it on
        self.assertEqual(self.reco(b, CF, key="C-1"), [])
        self.assertEqual(metric(b, "tandem_reco_follow_events_total"), 0)

    def delivery(self, srv, mbox, **params):
        body = {"execute": {"mboxes": [{"index": 0, "name": mbox, "parameters": params}]}}
        s, b = srv.post("/rest/v1/delivery?client=acme&sessionId=s-1", body)
        self.assertEqual(s, 200, b)
        opts = b["execute"]["mboxes"][0]["options"]
        return [i["id"] for i in opts[0]["content"]["items"]] if opts else None

    def test_documents_reach_the_other_node(self):
        a = self.node()
        b = self.node()
        for ident in ("X-1", "X-2", "X-3"):
            s, r = a.put(f"/v1/entities/{ident}", {"name": ident, "categories": ["All"]},
                         admin=True)
            self.assertIn(s, (200, 201), r)
        for item, viewers in (("X-1", 3), ("X-2", 2), ("X-3", 1)):
            for v in range(viewers):
                self.view(a, f"d-{item}-{v}", item)
        self.assertTrue(wait_until(
            lambda: metric(b, "tandem_reco_follow_events_total") == 6, timeout=10))
        self.assertEqual(b.advance(2)[0], 200)  # popularity is cached for a second

        def rec_b(crit, **req):
            s, r = b.post("/v1/recommendations", dict(req, criteria=crit), admin=True)
            return s, [i["id"] for i in r.get("items", [])]

        # unknown on b, then written on a: b answers with it within a few polls
        self.assertEqual(rec_b("top")[0], 404)
        self.assertIsNone(self.delivery(b, "home-top"))
        s, r = a.put("/v1/criteria/top", POP, admin=True)
        self.assertEqual(s, 201, r)
        s, r = a.put("/v1/designs/home-top", {"criteria": "top", "count": 2}, admin=True)
        self.assertEqual(s, 201, r)
        t0 = time.time()
        self.assertEqual(wait_until(lambda: self.delivery(b, "home-top"), timeout=10,
                                    interval=0.05), ["X-1", "X-2"], b.logs())
        took = time.time() - t0
        self.assertLess(took, 3.0)
        self.assertEqual(rec_b("top"), (200, ["X-1", "X-2", "X-3"]))
        s, r = b.get("/v1/designs/home-top", admin=True)
        self.assertEqual((s, r.get("count")), (200, 2), r)

        # a change on a replaces b's copy; CUSTOM lists travel too
        s, r = a.put("/v1/designs/home-top", {"criteria": "top", "count": 1}, admin=True)
        self.assertEqual(s, 200, r)
        self.assertEqual(wait_until(
            lambda: (lambda ids: ids if ids == ["X-1"] else None)(self.delivery(b, "home-top")),
            timeout=10), ["X-1"])
        s, r = a.put("/v1/criteria/picked", {"criteriaGroup": "CUSTOM", "customId": "picked",
                                             "backupDisabled": True}, admin=True)
        self.assertEqual(s, 201, r)
        s, r = a.put("/v1/criteria/picked/custom", "## RECS\nkey,recs\nX-1,X-3,X-2\n",
                     admin=True, headers={"Content-Type": "text/csv"})
        self.assertEqual((s, r.get("keys")), (200, 1), r)
        self.assertEqual(wait_until(
            lambda: (lambda x: x if x[1] else None)(rec_b("picked", key="X-1")), timeout=10),
            (200, ["X-3", "X-2"]), b.logs())

        # deleted on a: b refuses them within a few polls
        self.assertEqual(a.delete("/v1/designs/home-top", admin=True)[0], 204)
        self.assertEqual(a.delete("/v1/criteria/top", admin=True)[0], 204)
        self.assertTrue(wait_until(lambda: self.delivery(b, "home-top") is None and
                                   rec_b("top")[0] == 404, timeout=10), b.logs())
        self.assertEqual(b.get("/v1/designs/home-top", admin=True)[0], 404)
        self.assertEqual(b.get("/v1/criteria/top", admin=True)[0], 404)
        # written on b now: a has it, and b's own write stays visible on b
        s, r = b.put("/v1/criteria/top", POP, admin=True)
        self.assertEqual(s, 201, r)
        self.assertEqual(b.get("/v1/criteria/top", admin=True)[0], 200)
        self.assertTrue(wait_until(lambda: a.get("/v1/criteria/top", admin=True)[0] == 200,
                                   timeout=10))
        wait_until(lambda: False, timeout=1)  # several polls of both followers
        self.assertEqual(b.get("/v1/criteria/top", admin=True)[0], 200)
        self.assertGreater(metric(b, "tandem_reco_docs_reloads_total"), 0)

    def test_rebuild_waits_for_the_lock(self):
        """Nodes rebuild their models one at a time: with the lock held by
        someone else (here psql, as a node mid-rebuild would), a starting
        node waits, and serves only once it had its turn."""
        a = self.node()
        s, r = a.put("/v1/entities/Q-1", {"name": "Q-1", "categories": ["All"]}, admin=True)
        self.assertEqual(s, 201, r)
        self.view(a, "r-1", "Q-1")
        psql = subprocess.Popen(
            [sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))[-1], self.url, "-X", "-q", "-At",
             "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        started = []
        try:
            # a gave the lock back after its rebuild: psql gets it at once
            psql.stdin.write("SELECT pg_try_advisory_lock(29796, 5);\n")
            psql.stdin.flush()
            self.assertEqual(psql.stdout.readline().strip(), "t")
            b = Server("--store", self.url, "--reco-follow-ms", "200", start_timeout=30)
            self.nodes.append(b)
            th = threading.Thread(target=lambda: started.append(b.start()))
            th.start()
            self.assertTrue(wait_until(
                lambda: os.path.exists(b.log_path) and
                "waiting for another node's model rebuild" in b.logs(), timeout=10))
            time.sleep(1)
            self.assertEqual(started, [])
            self.assertNotIn("model built", b.logs())
            psql.stdin.write("SELECT pg_advisory_unlock(29796, 5);\n")
            psql.stdin.flush()
            self.assertEqual(psql.stdout.readline().strip(), "t")
            th.join(timeout=30)
            self.assertEqual(started, [b], b.logs())
            self.assertIn("rebuild lock taken", b.logs())
            self.assertEqual(b.advance(2)[0], 200)
            self.assertEqual(self.reco(b, POP), [("Q-1", 1.0)])
            # and b gave it back too
            psql.stdin.write("SELECT pg_try_advisory_lock(29796, 5);\n")
            psql.stdin.flush()
            self.assertEqual(psql.stdout.readline().strip(), "t")
            psql.stdin.close()
            self.assertEqual(psql.wait(timeout=30), 0, psql.stderr.read())
        finally:
            if psql.poll() is None:
                psql.kill()
                psql.wait()
            for fh in (psql.stdin, psql.stdout, psql.stderr):
                if not fh.closed:
                    fh.close()


if __name__ == "__main__":
    unittest.main()
