"""Configuration and the command line, through the real binary: help output,
precedence (defaults < config file < environment < flags), refusal of bad
settings at start-up, the virtual clock and its persistence, /healthz, and
/metrics in the Prometheus text format."""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import ADMIN_KEY, BIN, Server, wait_until


def run(*args, env=None, timeout=30):
    """Runs tandem with args; returns (exit status, stdout, stderr)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    e.update(env or {})
    p = subprocess.run([BIN, *args], capture_output=True, text=True, env=e, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def settings():
    """(name, flag, env) of every setting, from the generated reference."""
    rc, out, _ = run("config", "--markdown")
    assert rc == 0
    rows = re.findall(r"^\| `([a-z_]+)` \| `(--[a-z-]+)` \| `(TANDEM_[A-Z_]+)` \|", out, re.M)
    assert len(rows) >= 20, out
    return rows


class CliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tandem-cli-")

    def test_committed_reference_matches_the_table(self):
        """docs/configuration.md is generated; regenerate it when a setting changes:
        ./tandem config --markdown > docs/configuration.md"""
        rc, out, _ = run("config", "--markdown")
        self.assertEqual(rc, 0)
        docs = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "configuration.md")
        with open(docs, encoding="utf-8") as f:
            self.assertEqual(f.read(), out, "docs/configuration.md is stale")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_help(self):
        rc, out, _ = run("--help")
        self.assertEqual(rc, 0)
        for cmd in ("serve", "demo", "config", "version"):
            self.assertRegex(out, rf"\n  {cmd} ")
        rc, out, err = run()
        self.assertEqual(rc, 2)
        self.assertIn("usage: tandem", err)
        rc, _, err = run("frobnicate")
        self.assertEqual(rc, 2)
        self.assertIn("unknown command \"frobnicate\"", err)
        rc, out, _ = run("version")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^tandem \d+\.\d+\.\d+")

    def test_serve_help_lists_every_option(self):
        rc, out, _ = run("serve", "--help")
        self.assertEqual(rc, 0)
        self.assertIn("usage: tandem serve", out)
        for name, flag, env in settings():
            with self.subTest(setting=name):
                self.assertRegex(out, rf"\n  {re.escape(flag)} +\S")
                self.assertIn(f"env {env}, default ", out)
        rc, out2, _ = run("serve", "-h")
        self.assertEqual((rc, out2), (0, out))

    def test_reference_names_each_setting_three_ways(self):
        for name, flag, env in settings():
            self.assertEqual(flag, "--" + name.replace("_", "-"))
            self.assertEqual(env, "TANDEM_" + name.upper())

    def refused(self, args, *needles, env=None):
        """tandem serve must stop at start-up, non-zero, naming the setting."""
        data = os.path.join(self.tmp, "data")
        t0 = time.time()
        rc, out, err = run("serve", "--listen", "127.0.0.1:0", "--data", data, *args, env=env)
        self.assertNotEqual(rc, 0, (args, out, err))
        self.assertLess(time.time() - t0, 15)
        for n in needles:
            self.assertIn(n, err, (args, err))
        # the same verdict from "tandem config check"
        if "--listen" not in args:
            rc2, _, err2 = run("config", "check", *args, env=env)
            self.assertEqual(rc2, 1, (args, err2))
            for n in needles:
                self.assertIn(n, err2, (args, err2))
        return err

    def test_bad_values_are_refused_at_start_up(self):
        self.refused(["--max-body", "12x"], "max_body", "12x")
        self.refused(["--max-body", "100"], "max_body", "between")
        self.refused(["--clock", "weird"], "clock", "weird", "real|virtual")
        self.refused(["--threads", "-2"], "threads")
        self.refused(["--log-level", "loud"], "log_level")
        self.refused(["--nope", "1"], "--nope")
        self.refused(["--max-events"], "max_events", "needs a value")
        self.refused(["extra"], "unexpected argument")
        self.refused(["--datastream", "no-org"], "datastream", "CONFIGID=ORGID")
        self.refused(["--tls-listen", "127.0.0.1:0"], "tls_listen", "tls_cert")
        self.refused([], "TANDEM_MAX_ITEMS", "max_items", env={"TANDEM_MAX_ITEMS": "0"})
        self.refused([], "TANDEM_SYNC", env={"TANDEM_SYNC": "sometimes"})

    def test_bad_config_file_is_refused_with_file_and_line(self):
        path = os.path.join(self.tmp, "tandem.conf")
        with open(path, "w") as f:
            f.write("# settings\nmax_events = 10\nmax_body = lots\n")
        self.refused(["--config", path], f"{path}:3:", "max_body", "lots")
        with open(path, "w") as f:
            f.write("max_events = 10\n\nno equals sign here\n")
        self.refused(["--config", path], f"{path}:3:", "name = value")
        with open(path, "w") as f:
            f.write("colour = blue\n")
        self.refused(["--config", path], f"{path}:1:", "colour")
        self.refused(["--config", os.path.join(self.tmp, "missing.conf")], "missing.conf")
        self.refused([], "missing.conf",
                     env={"TANDEM_CONFIG": os.path.join(self.tmp, "missing.conf")})

    def test_bad_listen_address_error_names_the_setting(self):
        """'"nonsense" is not HOST:PORT' alone does not say which setting."""
        self.refused(["--listen", "nonsense"], "nonsense", "listen")

    def test_busy_port_is_refused(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            self.refused(["--listen", f"127.0.0.1:{port}"], "127.0.0.1:%d" % port)

    def test_unusable_data_dir(self):
        blocker = os.path.join(self.tmp, "file")
        open(blocker, "w").close()
        rc, _, err = run("serve", "--listen", "127.0.0.1:0", "--data",
                         os.path.join(blocker, "sub"), "--admin-key", ADMIN_KEY)
        self.assertNotEqual(rc, 0)
        self.assertIn(os.path.join(blocker, "sub"), err)


class PrecedenceTest(unittest.TestCase):
    """max_events comes from each layer in turn; a batch one over it gets 413."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tandem-prec-")
        self.conf = os.path.join(self.tmp, "tandem.conf")
        with open(self.conf, "w") as f:
            f.write("# the harness's flags (listen, data, admin key, clock) must win\n"
                    "listen = 127.0.0.1:1\n"
                    "clock = real\n"
                    "admin_key = key-from-file-0123456789\n"
                    "max_events = 5\n"
                    "max_items = 5\n"
                    "viewed_max = 5\n")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def limit(self, srv, n_max):
        s, b = srv.post("/v1/events", {"events": [
            {"type": "page_view", "ecid": "P"} for _ in range(n_max + 1)]})
        self.assertEqual(s, 413, b)
        self.assertIn(f"more than {n_max} events", b["error"]["message"])
        s, b = srv.post("/v1/events", {"events": [
            {"type": "page_view", "ecid": "P"} for _ in range(n_max)]})
        self.assertEqual(s, 200, b)

    def items_limit(self, srv, n_max):
        s, b = srv.post("/v1/events", {"type": "cart_add", "ecid": "P",
                                       "items": [{"id": str(i)} for i in range(n_max + 1)]})
        self.assertEqual(s, 413, b)
        self.assertIn(f"more than {n_max} items", b["error"]["message"])

    def test_defaults_file_env_flags(self):
        with Server() as srv:
            self.limit(srv, 1000)
        with Server("--config", self.conf) as srv:
            self.limit(srv, 5)  # file over default
            self.items_limit(srv, 5)
            s, clock = srv.get("/v1/admin/clock", admin=True)
            self.assertEqual((s, clock["mode"]), (200, "virtual"))  # flag over file
            s, _ = srv.get("/v1/admin/clock", headers={
                "Authorization": "Bearer key-from-file-0123456789"})
            self.assertEqual(s, 401)  # a list from flags replaces the file's
        env = {"TANDEM_MAX_EVENTS": "7", "TANDEM_MAX_ITEMS": "7", "TANDEM_CONFIG": self.conf}
        with Server(env=env) as srv:
            self.limit(srv, 7)  # environment over file
            self.items_limit(srv, 7)
        with Server("--max-events", "9", env=env) as srv:
            self.limit(srv, 9)  # flag over environment
            self.items_limit(srv, 7)
        with Server("--max-events=9", "--max_items", "3", env=env) as srv:
            self.limit(srv, 9)  # --name=value and underscores work too
            self.items_limit(srv, 3)


class ClockTest(unittest.TestCase):
    def test_virtual_clock_moves_only_when_told_and_survives_restarts(self):
        data = tempfile.mkdtemp(prefix="tandem-clock-")
        srv = Server(data_dir=data)
        try:
            srv.start()
            s, c0 = srv.get("/v1/admin/clock", admin=True)
            self.assertEqual(s, 200, c0)
            self.assertEqual(c0["mode"], "virtual")
            self.assertLess(abs(c0["now_ms"] - time.time() * 1000), 60000)  # starts at now
            self.assertTrue(c0["now"].endswith("Z"))
            time.sleep(0.05)
            s, c1 = srv.get("/v1/admin/clock", admin=True)
            self.assertEqual(c1["now_ms"], c0["now_ms"])  # it does not tick
            s, c2 = srv.advance(3 * 3600)
            self.assertEqual(s, 200, c2)
            self.assertEqual(c2["now_ms"], c0["now_ms"] + 3 * 3600 * 1000)
            s, c3 = srv.advance(0.25)
            self.assertEqual(c3["now_ms"], c2["now_ms"] + 250)
            s, c4 = srv.advance(0)
            self.assertEqual(c4["now_ms"], c3["now_ms"])
            # events without a time get the virtual one
            s, b = srv.post("/v1/events", {"type": "page_view", "ecid": "CLOCK-1"})
            self.assertEqual(s, 200, b)
            s, p = srv.profile("ecid", "CLOCK-1")
            self.assertEqual(p["last_activity"], c4["now"])
            # a clean restart resumes from the saved time
            self.assertEqual(srv.stop(), 0)
            srv.start()
            s, c5 = srv.get("/v1/admin/clock", admin=True)
            self.assertEqual(c5["now_ms"], c4["now_ms"])
            # and so does one after SIGKILL: the advance was saved before its reply
            s, c6 = srv.advance(60)
            srv.kill9()
            srv.start()
            s, c7 = srv.get("/v1/admin/clock", admin=True)
            self.assertEqual(c7["now_ms"], c6["now_ms"])
            # refusals
            for body in [{"seconds": -1}, {"seconds": "1"}, {}, {"seconds": 1e12}]:
                s, b = srv.post("/v1/admin/clock:advance", body, admin=True)
                self.assertEqual(s, 400, (body, b))
                self.assertEqual(b["error"]["path"], "/seconds")
            s, c8 = srv.get("/v1/admin/clock", admin=True)
            self.assertEqual(c8["now_ms"], c7["now_ms"])
        finally:
            srv.stop()
            shutil.rmtree(data, ignore_errors=True)

    def test_real_clock(self):
        with Server(clock="real") as srv:
            s, c = srv.get("/v1/admin/clock", admin=True)
            self.assertEqual((s, c["mode"]), (200, "real"))
            self.assertLess(abs(c["now_ms"] - time.time() * 1000), 5000)
            s, b = srv.advance(60)
            self.assertEqual(s, 409, b)
            self.assertIn("--clock virtual", b["error"]["message"])


# One sample line: name, optional {labels}, value (Prometheus text format 0.0.4).
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
                    r'(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*,?)?\})?'
                    r' ([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|Inf|NaN))( -?[0-9]+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels)): value}, checking the syntax on the way."""
    samples, types, seen_families, last_family = {}, {}, set(), None
    for n, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$", line)
            assert m, f"line {n}: bad comment: {line!r}"
            if m.group(1) == "TYPE":
                assert m.group(3) in ("counter", "gauge", "histogram", "summary", "untyped"), line
                assert m.group(2) not in types, f"line {n}: second TYPE for {m.group(2)}"
                assert m.group(2) not in seen_families, f"line {n}: TYPE after samples"
                types[m.group(2)] = m.group(3)
            continue
        m = SAMPLE.match(line)
        assert m, f"line {n}: not a sample: {line!r}"
        name = m.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name) if re.sub(
            r"_(bucket|sum|count)$", "", name) in types else name
        if family != last_family:
            assert family not in seen_families, f"line {n}: {family} is not grouped"
            seen_families.add(family)
            last_family = family
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        key = (name, labels)
        assert key not in samples, f"line {n}: repeated sample {line!r}"
        samples[key] = float(m.group(3).replace("Inf", "inf"))
    return samples, types


class MetricsTest(unittest.TestCase):
    def test_healthz(self):
        with Server() as srv:
            s, b = srv.get("/healthz")
            self.assertEqual(s, 200)
            self.assertEqual(b, {"status": "ok", "store": "sqlite", "events": 0})
            srv.post("/v1/events", {"type": "page_view", "ecid": "H"})
            self.assertEqual(srv.get("/healthz")[1]["events"], 1)
            s, _, h = srv.request("HEAD", "/healthz")
            self.assertEqual(s, 200)

    def test_metrics_in_prometheus_text_format(self):
        with Server() as srv:
            srv.post("/v1/events", {"events": [{"type": "page_view", "ecid": "M"},
                                               {"type": "page_view"}]})
            srv.post("/v1/events", {"id": "m-1", "type": "page_view", "ecid": "M"})
            srv.post("/v1/events", {"id": "m-1", "type": "page_view", "ecid": "M"})
            srv.post("/v1/events", b"{bad json")
            srv.get("/nope")
            srv.get("/v1/profiles/ecid/M")
            # a request is counted when libmicrohttpd reports it complete, just
            # after its reply went out: the last one may still be on its way
            def scrape():
                s, raw, h = srv.request("GET", "/metrics", raw=True)
                done = b'route="GET /v1/profiles/{ns}/{id}",status="401"' in raw
                return (s, raw, h) if done else None
            s, raw, h = wait_until(scrape, timeout=10) or srv.request("GET", "/metrics", raw=True)
            self.assertEqual(s, 200)
            self.assertTrue(h["Content-Type"].startswith("text/plain"), h["Content-Type"])
            self.assertIn("version=0.0.4", h["Content-Type"])
            text = raw.decode("utf-8")
            self.assertTrue(text.endswith("\n"))
            samples, types = parse_metrics(text)

        def value(name, **labels):
            return samples.get((name, frozenset(labels.items())))

        # requests by route and status
        self.assertEqual(types.get("tandem_http_requests_total"), "counter")
        self.assertEqual(value("tandem_http_requests_total", route="POST /v1/events",
                               status="200"), 3)
        self.assertEqual(value("tandem_http_requests_total", route="POST /v1/events",
                               status="400"), 1)
        self.assertEqual(value("tandem_http_requests_total", route="- unmatched",
                               status="404"), 1)
        self.assertEqual(value("tandem_http_requests_total",
                               route="GET /v1/profiles/{ns}/{id}", status="401"), 1)
        # events accepted, duplicate, refused
        self.assertEqual(types.get("tandem_events_total"), "counter")
        self.assertEqual(value("tandem_events_total", source="native", result="accepted"), 2)
        self.assertEqual(value("tandem_events_total", source="native", result="duplicate"), 1)
        self.assertEqual(value("tandem_events_total", source="native", result="refused"), 2)
        # latency histograms: request, group commit, store commit
        for hist in ("tandem_http_request_seconds", "tandem_ingest_commit_seconds",
                     "tandem_store_commit_seconds"):
            with self.subTest(histogram=hist):
                self.assertEqual(types.get(hist), "histogram")
                series = {}
                for (name, labels), v in samples.items():
                    if name == hist + "_bucket":
                        rest = frozenset(kv for kv in labels if kv[0] != "le")
                        le = dict(labels)["le"]
                        series.setdefault(rest, []).append((float(le.replace("Inf", "inf")), v))
                self.assertTrue(series, f"no {hist} samples")
                for rest, buckets in series.items():
                    buckets.sort()
                    counts = [c for _, c in buckets]
                    self.assertEqual(counts, sorted(counts), "buckets must be cumulative")
                    self.assertEqual(buckets[-1][0], float("inf"))
                    self.assertEqual(samples[(hist + "_count", rest)], buckets[-1][1])
                    self.assertGreaterEqual(samples[(hist + "_sum", rest)], 0)
                    self.assertGreater(buckets[-1][1], 0)


if __name__ == "__main__":
    unittest.main()
