"""docs/api.md documents every route of the server: each entry of
td_api_routes[] in src/api/routes.c needs a heading "METHOD /path" (exactly
as routes.c writes it) and a row in the contents table, and every endpoint
heading of the reference names a route that exists. So a route added
without docs, or removed with its docs left behind, fails the suite.

Routes under /demo/ exist only in `tandem demo`: each needs a row
"| METHOD | /path |" in the reference's "Demo-only routes" table.

Needs no server: it reads the two files."""
import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROUTES_C = os.path.join(ROOT, "src", "api", "routes.c")
API_MD = os.path.join(ROOT, "docs", "api.md")

DEMO_PREFIX = "/demo/"
DEMO_SECTION = "## Demo-only routes"
METHODS = r"(?:GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS|\*)"


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def parse_routes(text):
    """(method, pattern) of each entry of td_api_routes[], in table order."""
    # comments out first: a route commented out is no route
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    m = re.search(r"td_api_routes\s*\[\s*\]\s*=\s*\{(.*?)\n\s*\}\s*;", text, re.S)
    if m is None:
        raise AssertionError("td_api_routes[] not found in src/api/routes.c")
    return re.findall(r'\{\s*"([A-Z*]+)"\s*,\s*"(/[^"]*)"', m.group(1))


def endpoint_regex(method, path):
    """Matches "METHOD /path" and not a longer path that starts with it
    ("GET /v1/entities" must not be satisfied by "GET /v1/entities/{id}")."""
    return re.compile(r"(?<![\w/])" + re.escape(method + " " + path) + r"(?![\w/{}:.~%-])")


def headings(md):
    return [line for line in md.splitlines() if re.match(r"#{1,6} ", line)]


def contents_rows(md):
    """(method, path) of the rows of the contents table: | METHOD | /path | ..."""
    return set(re.findall(r"^\| (" + METHODS + r") \| (/[^ |]*) \|", md, re.M))


def missing_headings(routes, md):
    hs = headings(md)
    return [
        f"{m} {p}"
        for m, p in routes
        if not p.startswith(DEMO_PREFIX)
        and not any(endpoint_regex(m, p).search(h) for h in hs)
    ]


def missing_rows(routes, md):
    rows = contents_rows(md)
    return [f"{m} {p}" for m, p in routes if not p.startswith(DEMO_PREFIX) and (m, p) not in rows]


def stale_headings(routes, md):
    """Level-3 headings "### METHOD /path" name endpoints; each must be a route.
    (Sub-paths of a prefix route, like the Edge actions, are level 4.)"""
    known = {f"{m} {p}" for m, p in routes}
    out = []
    for h in headings(md):
        m = re.match(r"### (" + METHODS + r") (/\S*)", h)
        if m and f"{m.group(1)} {m.group(2)}" not in known:
            out.append(h)
    return out


class ApiDocsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.routes = parse_routes(read(ROUTES_C))
        cls.md = read(API_MD)

    def test_routes_are_parsed(self):
        """The parser sees the table (else every other test would pass on nothing)."""
        self.assertIn(("POST", "/v1/events"), self.routes)
        self.assertIn(("GET", "/healthz"), self.routes)
        self.assertGreaterEqual(len(self.routes), 40, self.routes)

    def test_every_route_has_a_heading(self):
        missing = missing_headings(self.routes, self.md)
        self.assertEqual(
            missing, [], "routes in src/api/routes.c without a heading in docs/api.md"
        )

    def test_every_route_is_in_the_contents_table(self):
        missing = missing_rows(self.routes, self.md)
        self.assertEqual(missing, [], "routes missing from the contents table of docs/api.md")

    def test_no_heading_names_a_route_that_is_gone(self):
        self.assertEqual(stale_headings(self.routes, self.md), [])

    def test_demo_routes_are_in_their_table(self):
        demo = [(m, p) for m, p in self.routes if p.startswith(DEMO_PREFIX)]
        if demo:
            self.assertIn(DEMO_SECTION, self.md)
            section = self.md[self.md.index(DEMO_SECTION):]
            missing = [f"{m} {p}" for m, p in demo if f"| {m} | {p} |" not in section]
            self.assertEqual(missing, [], "demo routes missing from docs/api.md")

    def test_the_checks_catch_an_undocumented_route(self):
        """The checks fail on a route whose heading is gone, and are not fooled
        by a longer path that starts with it."""
        md = "\n".join(
            line for line in self.md.splitlines() if line.rstrip() != "### GET /v1/entities"
        )
        self.assertEqual(missing_headings(self.routes, md), ["GET /v1/entities"])
        extra = [("PATCH", "/v1/entities/{id}")]
        self.assertEqual(missing_headings(extra, self.md), ["PATCH /v1/entities/{id}"])
        self.assertEqual(missing_rows(extra, self.md), ["PATCH /v1/entities/{id}"])
        self.assertEqual(
            stale_headings([r for r in self.routes if r != ("GET", "/healthz")], self.md),
            ["### GET /healthz"],
        )


if __name__ == "__main__":
    unittest.main()
