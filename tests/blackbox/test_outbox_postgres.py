"""The outbox on PostgreSQL: the tests of test_outbox.py (delivery,
attribution, suppressions, templates, frequency caps, quiet hours) again,
with each server on a throwaway cluster (scripts/pg-test.sh) through
--store, then what only a shared database allows: two nodes sending for one
profile at once still respect its frequency cap. Skipped when PostgreSQL
(or the mail sink's aiosmtpd) is not installed."""
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import test_outbox
from harness import ROOT, wait_until
from test_outbox import COAT, HOUR, SWEAT, Sink, cart_add, have_aiosmtpd

HAVE_PG = bool(glob.glob("/usr/lib/postgresql/*/bin"))
RUN = HAVE_PG and have_aiosmtpd()
WHY = "needs PostgreSQL and Debian's python3-aiosmtpd"


def psql_bin():
    found = shutil.which("psql")
    return found or sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))[-1]


def pg_test(cmd, d):
    p = subprocess.run(["sh", os.path.join(ROOT, "scripts", "pg-test.sh"), cmd, d],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"pg-test.sh {cmd}: {p.stderr}")
    return p.stdout.strip()


class Cluster:
    """One throwaway cluster for the module; each server gets a database of
    its own in it, so tests that expect an empty store get one."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tandem-pgm-")
        self.url = pg_test("start", self.dir)
        self.n = 0
        self.urls = []

    def new_db(self):
        self.n += 1
        name = f"t{self.n}"
        self.sql(self.url, f"CREATE DATABASE {name}")
        self.urls.append(self.url.rsplit("/", 1)[0] + "/" + name)
        return self.urls[-1]

    @staticmethod
    def sql(url, q):
        p = subprocess.run([psql_bin(), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", url,
                            "-c", q], check=True, capture_output=True, text=True, timeout=60)
        return p.stdout.strip()

    def close(self):
        pg_test("stop", self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


CLUSTER = None
real_server = test_outbox.server


def pg_server(sink, *extra, data_dir=None):
    """test_outbox's server, on a fresh database of the cluster; a restart
    on the same data_dir (the crash test) keeps its database."""
    key = data_dir or object()
    url = pg_server.urls.get(key) if data_dir else None
    if url is None:
        url = CLUSTER.new_db()
        if data_dir:
            pg_server.urls[key] = url
    return real_server(sink, "--store", url, *extra, data_dir=data_dir)


pg_server.urls = {}


def setUpModule():
    global CLUSTER
    if RUN:
        CLUSTER = Cluster()
        test_outbox.server = pg_server


def tearDownModule():
    test_outbox.server = real_server
    if CLUSTER:
        CLUSTER.close()


@unittest.skipUnless(RUN, WHY)
class OutboxPostgresTest(test_outbox.OutboxTest):

    def test_z_rows_are_in_postgres(self):
        # what the tests above did went through the message tables of the
        # cluster (not a SQLite file by mistake)
        def total(q):
            return sum(int(CLUSTER.sql(u, q)) for u in CLUSTER.urls)
        self.assertGreater(total("SELECT count(*) FROM message_sends"), 0)
        self.assertGreater(total("SELECT count(*) FROM message_templates"), 0)
        self.assertGreater(total("SELECT count(*) FROM message_suppressions"), 0)
        self.assertGreater(total("SELECT count(*) FROM message_attributions"), 0)
        self.assertGreater(total("SELECT count(*) FROM outbox WHERE status = 'sent'"), 0)


@unittest.skipUnless(RUN, WHY)
class RulesPostgresTest(test_outbox.RulesTest):
    pass


@unittest.skipUnless(RUN, WHY)
class CrashPostgresTest(test_outbox.CrashTest):
    pass


@unittest.skipUnless(RUN, WHY)
class TwoNodesPostgresTest(unittest.TestCase):
    """Two nodes on one database send for the same shoppers at once: each
    shopper has two emails due at the same moment and a cap of one a day,
    so whichever node claims them, exactly one goes out per shopper."""
    SHOPPERS = 8

    def test_cap_holds_across_nodes(self):
        sink = Sink()
        url = CLUSTER.new_db()
        nodes = []
        try:
            a = real_server(sink, "--store", url, "--cap", "1/24h").start()
            nodes.append(a)
            b = real_server(sink, "--store", url, "--cap", "1/24h").start()
            nodes.append(b)
            a.apply_journey("cart-abandonment.json")
            addrs = {}
            for i in range(self.SHOPPERS):
                ecid = f"TN-{i}"
                addrs[ecid] = f"two-nodes-{i}@example.com"
                for k in range(2):
                    cart_add(a, ecid, [[COAT], [SWEAT]][k], email=addrs[ecid],
                             cart_id=f"{ecid}-K{k}")
            # both clocks move together (b resumed the time a saved), so the
            # senders of both nodes find the rows due at once
            time.sleep(1.5)
            movers = [threading.Thread(target=n.advance, args=(3 * HOUR + 1,)) for n in nodes]
            for t in movers:
                t.start()
            for t in movers:
                t.join(timeout=60)

            def settled():
                return int(Cluster.sql(url, "SELECT count(*) FROM outbox WHERE "
                                       "status = 'queued' AND last_error LIKE 'capped%'")) \
                    == self.SHOPPERS
            self.assertTrue(wait_until(settled, timeout=30),
                            Cluster.sql(url, "SELECT status, last_error FROM outbox"))
            time.sleep(0.5)
            msgs = sink.messages(self.SHOPPERS)
            per_addr = {}
            for m in msgs:
                per_addr[str(m["To"])] = per_addr.get(str(m["To"]), 0) + 1
            self.assertEqual(len(msgs), self.SHOPPERS, per_addr)
            self.assertTrue(all(n == 1 for n in per_addr.values()), per_addr)
        finally:
            for n in nodes:
                n.stop()
            sink.close()


if __name__ == "__main__":
    unittest.main()
