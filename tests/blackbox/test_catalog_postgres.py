"""The catalog on PostgreSQL: every test of test_catalog.py again, with the
server on a throwaway cluster (scripts/pg-test.sh) through --store, then
what only a shared database allows: a second node loading a catalog larger
than one fetch batch, and two nodes writing at once, each ending up with
every entity the other wrote. Skipped when PostgreSQL is not installed."""
import glob
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import test_catalog
from harness import BIN, ROOT, Server

HAVE_PG = bool(glob.glob("/usr/lib/postgresql/*/bin"))
POLL = ["--catalog-poll-ms", "100"]


def pg_test(cmd, d):
    p = subprocess.run(["sh", os.path.join(ROOT, "scripts", "pg-test.sh"), cmd, d],
                       capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"pg-test.sh {cmd}: {p.stderr}")
    return p.stdout.strip()


def page_ids(srv, **query):
    ids, cursor = [], None
    for _ in range(1000):
        q = dict(query, limit=1000)
        if cursor:
            q["cursor"] = cursor
        s, body = srv.get("/v1/entities?" + urllib.parse.urlencode(q), admin=True)
        assert s == 200, body
        ids += [e["id"] for e in body["entities"]]
        cursor = body["next_cursor"]
        if not cursor:
            return ids
    raise AssertionError("paging does not end")


def wait_for(pred, seconds=10):
    deadline = time.time() + seconds
    while not pred() and time.time() < deadline:
        time.sleep(0.1)
    return pred()


@unittest.skipUnless(HAVE_PG, "PostgreSQL is not installed")
class CatalogPostgresTest(test_catalog.CatalogTest):
    @classmethod
    def setUpClass(cls):
        cls.pg_dir = tempfile.mkdtemp(prefix="tandem-pgc-")
        cls.store = pg_test("start", cls.pg_dir)
        try:
            cls.srv = Server("--store", cls.store, *POLL).start()
        except Exception:
            pg_test("stop", cls.pg_dir)
            shutil.rmtree(cls.pg_dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.srv.stop()
            shutil.rmtree(cls.srv.data_dir, ignore_errors=True)
            assert rc == 0, cls.srv.logs()
        finally:
            pg_test("stop", cls.pg_dir)
            shutil.rmtree(cls.pg_dir, ignore_errors=True)

    def test_6_cli_import_reaches_running_server(self):
        path = os.path.join(self.srv.data_dir, "cli.csv")
        with open(path, "w") as f:
            f.write("entity.id,entity.name,entity.categoryId\nCLI-1,From the CLI,Cli\n"
                    "CLI-2,Bad,Cli,extra,fields\n")
        p = subprocess.run([BIN, "import", "catalog", path, "--data", self.srv.data_dir,
                            "--store", self.store, "--quiet"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("1 inserted", p.stdout)
        self.assertIn("cli.csv:3:4:", p.stderr)
        self.assertTrue(wait_for(lambda: self.entity("CLI-1")[0] == 200))
        self.assertEqual(self.entity("CLI-1")[1]["name"], "From the CLI")

    def test_8_second_node_loads_everything(self):
        # more rows than one fetch of the store's scan
        n = 2500
        feed = {"entities": [{"id": f"BIG-{i}", "name": f"Item {i}", "categories": ["Big"],
                              "attributes": {"value": i + 0.25, "sizes": ["S"]}}
                             for i in range(n)]}
        s, r = self.imp(json.dumps(feed).encode(), "json")
        self.assertEqual(s, 200, r)
        self.assertEqual(r["inserted"], n)
        with Server("--store", self.store, *POLL) as other:
            ids = page_ids(other, category="Big")
            self.assertEqual(sorted(ids), sorted(f"BIG-{i}" for i in range(n)))
            s, e = other.get("/v1/entities/BIG-7", admin=True)
            self.assertEqual(s, 200, e)
            self.assertEqual((e["name"], e["attributes"]["value"]), ("Item 7", 7.25))
            # the second node writes; the first picks it up from the store
            s, _ = other.request("PUT", "/v1/entities/BIG-7", {"name": "Renamed"},
                                 admin=True)[:2]
            self.assertEqual(s, 200)
            self.assertEqual(other.request("DELETE", "/v1/entities/BIG-8", admin=True)[0], 204)
            self.assertTrue(wait_for(lambda: self.entity("BIG-7")[1].get("name") == "Renamed"))
            self.assertTrue(wait_for(lambda: self.entity("BIG-8")[0] == 404))

    def test_9_two_nodes_write_at_once(self):
        per_thread = 25
        with Server("--store", self.store, *POLL) as other:
            nodes = {"a": self.srv, "b": other}
            failures = []

            def writer(name, t):
                srv = nodes[name]
                for i in range(per_thread):
                    s, b = srv.request("PUT", f"/v1/entities/W-{name}{t}-{i}",
                                       {"name": "w", "categories": ["Writers"]}, admin=True)[:2]
                    if s != 201:
                        failures.append((name, t, i, s, b))

            threads = [threading.Thread(target=writer, args=(name, t))
                       for name in nodes for t in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            self.assertEqual(failures, [])
            want = sorted(f"W-{name}{t}-{i}" for name in nodes for t in range(2)
                          for i in range(per_thread))
            for name, srv in nodes.items():
                self.assertTrue(wait_for(lambda: sorted(page_ids(srv, category="Writers")) == want),
                                f"node {name} misses writes of the other")


if __name__ == "__main__":
    unittest.main()
