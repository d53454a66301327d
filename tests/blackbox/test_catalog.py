"""The catalog through the real binary: feeds imported over HTTP in every
format and read back, paging, single-entity writes, expiry on the virtual
clock, errors with line and column, and `tandem import catalog` picked up
by a running server."""
import os
import subprocess
import time
import unittest
import urllib.parse

from harness import BIN, ROOT, Server

DATA = os.path.join(ROOT, "tests", "data", "catalog")


def read(name):
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


class CatalogTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = Server().start()

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0, cls.srv.logs()

    def imp(self, body, fmt, **params):
        q = urllib.parse.urlencode(dict(format=fmt, **params))
        return self.srv.post(f"/v1/entities:import?{q}", body, admin=True)

    def entity(self, ident):
        return self.srv.get(f"/v1/entities/{urllib.parse.quote(ident, safe='')}", admin=True)

    def page_all(self, **query):
        ids, cursor = [], None
        for _ in range(100):
            q = dict(query, limit=7)
            if cursor:
                q["cursor"] = cursor
            s, body = self.srv.get("/v1/entities?" + urllib.parse.urlencode(q), admin=True)
            self.assertEqual(s, 200, body)
            ids += [e["id"] for e in body["entities"]]
            cursor = body["next_cursor"]
            if not cursor:
                return ids
        self.fail("paging does not end")

    def test_1_target_csv_over_http(self):
        s, r = self.imp(read("sample.csv"), "target-csv")
        self.assertEqual(s, 200, r)
        self.assertEqual((r["rows"], r["rejected"]), (60, 0))
        self.assertEqual(r["inserted"] + r["updated"] + r["unchanged"], 60)
        first = read("sample.csv").decode().splitlines()[4].split(",")
        s, e = self.entity(first[0])
        self.assertEqual(s, 200, e)
        self.assertEqual(e["name"], first[1])
        self.assertIn("(generated)", e["name"])
        self.assertTrue(e["attributes"]["value"] > 0)
        self.assertIsInstance(e["attributes"]["sizes"], list)
        self.assertFalse(e["expired"])
        category = e["categories"][0]
        ids = self.page_all(category=category)
        self.assertIn(first[0], ids)
        self.assertEqual(len(ids), len(set(ids)))
        for i in ids[:5]:
            self.assertIn(category, self.entity(i)[1]["categories"])
        everything = self.page_all()
        self.assertGreaterEqual(len(everything), 60)
        brand = e["attributes"]["brand"]
        by_brand = self.page_all(brand=brand, category=category)
        self.assertIn(first[0], by_brand)

    def test_2_google_and_json_feeds(self):
        for name, fmt in (("sample.xml", "google-xml"), ("sample.tsv", "google-tsv"),
                          ("sample.json", "json")):
            s, r = self.imp(read(name), fmt)
            self.assertEqual(s, 200, (name, r))
            self.assertEqual(r["rejected"], 0, r)
            self.assertEqual(r["rows"], 20)
        s, e = self.entity("4020")
        self.assertEqual(s, 200)
        self.assertEqual(e["attributes"]["currency"], "EUR")

    def test_3_rejected_rows_have_line_and_column(self):
        feed = ("## RECSentity.id,entity.name,entity.value\n"
                "BB-1,Good,10\n"
                "BB-2,Bad price,\"12,99 EUR\"\n"
                "BB-3,\"Caf\xe9\"\n").encode("latin-1")
        s, r = self.imp(feed, "target-csv")
        self.assertEqual(s, 200, r)
        self.assertEqual((r["inserted"], r["rejected"]), (1, 2))
        err = r["errors"][0]
        self.assertEqual((err["line"], err["column"], err["path"]), (3, 3, "entity.value"))
        self.assertIn("dot", err["message"])
        self.assertEqual(r["errors"][1]["line"], 4)
        # a feed that cannot be read at all: 400, nothing imported
        s, r = self.imp(b"BB-9,no header\n", "target-csv")
        self.assertEqual(s, 400)
        self.assertEqual(r["error"]["line"], 1)
        self.assertEqual(self.entity("BB-9")[0], 404)
        s, r = self.imp(b"<rss><channel><item>", "google-xml")
        self.assertEqual(s, 400)
        self.assertIn("XML", r["error"]["message"])
        s, r = self.imp(b"x", "yaml")
        self.assertEqual(s, 400)

    def test_4_put_get_delete(self):
        s, e = self.srv.request("PUT", "/v1/entities/PUT-1", {
            "name": "Hat", "categories": ["Acc:Hats"],
            "attributes": {"value": 19.9, "inventory": 3, "sizes": ["S", "M"]}}, admin=True)[:2]
        self.assertEqual(s, 201, e)
        self.assertEqual(e["attributes"]["sizes"], ["S", "M"])
        # a GET body can be PUT back as it is
        s, again = self.srv.request("PUT", "/v1/entities/PUT-1", e, admin=True)[:2]
        self.assertEqual(s, 200, again)
        s, r = self.srv.request("PUT", "/v1/entities/PUT-1", {"id": "OTHER"}, admin=True)[:2]
        self.assertEqual(s, 400)
        s, r = self.srv.request("PUT", "/v1/entities/PUT-1", {"attributes": {"value": "12,99"}},
                                admin=True)[:2]
        self.assertEqual(s, 400)
        self.assertEqual(r["error"]["path"], "/attributes/value")
        self.assertEqual(self.srv.request("DELETE", "/v1/entities/PUT-1", admin=True)[0], 204)
        self.assertEqual(self.entity("PUT-1")[0], 404)
        self.assertEqual(self.srv.request("DELETE", "/v1/entities/PUT-1", admin=True)[0], 404)

    def test_5_admin_key_required(self):
        self.assertEqual(self.srv.get("/v1/entities/4020")[0], 401)
        self.assertEqual(self.srv.get("/v1/entities")[0], 401)
        s, _ = self.srv.post("/v1/entities:import?format=json", {"entities": []})
        self.assertEqual(s, 401)

    def test_6_cli_import_reaches_running_server(self):
        path = os.path.join(self.srv.data_dir, "cli.csv")
        with open(path, "w") as f:
            f.write("entity.id,entity.name,entity.categoryId\nCLI-1,From the CLI,Cli\n"
                    "CLI-2,Bad,Cli,extra,fields\n")
        p = subprocess.run([BIN, "import", "catalog", path, "--data", self.srv.data_dir, "--quiet"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("1 inserted", p.stdout)
        self.assertIn("cli.csv:3:4:", p.stderr)
        deadline = time.time() + 10
        while self.entity("CLI-1")[0] != 200 and time.time() < deadline:
            time.sleep(0.2)
        s, e = self.entity("CLI-1")
        self.assertEqual(s, 200)
        self.assertEqual(e["name"], "From the CLI")

    def test_7_replace_and_expiry(self):
        s, r = self.imp(b'{"entities":[{"id":"R-1"},{"id":"R-2"}]}', "json", environment="9")
        self.assertEqual(s, 200, r)
        s, r = self.imp(b'{"entities":[{"id":"R-2","name":"kept"}]}', "json", mode="replace",
                        environment="9", missing="out-of-stock")
        self.assertEqual(s, 200, r)
        self.assertEqual(r["out_of_stock"], 1)
        self.assertEqual(self.entity("R-1")[1]["attributes"]["inventory"], 0)
        self.assertEqual(self.entity("4020")[0], 200)  # other environments untouched
        s, r = self.imp(b'{"entities":[{"id":"R-2"}]}', "json", mode="replace", environment="9")
        self.assertEqual(r["deleted"], 1)
        self.assertEqual(self.entity("R-1")[0], 404)
        # 62 days on, everything expires: visible, excluded on request, purged on request
        self.assertEqual(self.srv.advance(62 * 24 * 3600)[0], 200)
        s, e = self.entity("R-2")
        self.assertTrue(e["expired"])
        s, body = self.srv.get("/v1/entities?expired=exclude", admin=True)
        self.assertEqual(body["count"], 0)
        self.assertEqual(self.srv.request("DELETE", "/v1/entities", admin=True)[0], 400)
        s, r = self.srv.request("DELETE", "/v1/entities?expired=true", admin=True)[:2]
        self.assertEqual(s, 200, r)
        self.assertGreater(r["deleted"], 60)
        self.assertEqual(self.entity("R-2")[0], 404)


if __name__ == "__main__":
    unittest.main()
