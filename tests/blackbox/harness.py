"""Starts the real tandem binary on a free port with a fresh data directory
and talks to it over HTTP (python3 standard library only).

    with Server() as srv:
        status, body = srv.post("/v1/events", {"type": "page_view", "ecid": "E1"})
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(os.environ.get("TANDEM_BIN", os.path.join(ROOT, "tandem")))
ADMIN_KEY = "test-admin-key-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One tandem serve (or demo) process, run from the source tree. data_dir
    survives restarts of the same object."""

    def __init__(self, *args, data_dir=None, env=None, clock="virtual", command="serve",
                 start_timeout=20):
        self.args = list(args)
        self.command = command
        self.start_timeout = start_timeout
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="tandem-test-")
        self.env = dict(os.environ, **(env or {}))
        self.clock = clock
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.data_dir, "server.log")

    def start(self):
        self.port = free_port()
        cmd = [BIN, self.command, "--listen", f"127.0.0.1:{self.port}", "--data", self.data_dir,
               "--admin-key", ADMIN_KEY, "--clock", self.clock] + self.args
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=self.env,
                                     cwd=ROOT)
        deadline = time.time() + self.start_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise RuntimeError(f"tandem exited with {self.proc.returncode}:\n{self.logs()}")
            try:
                if self.get("/healthz")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("tandem did not become healthy:\n" + self.logs())

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self):
        """SIGTERM and wait; returns the exit status (sanitizer findings make it non-zero)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        rc = self.stop()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if rc != 0 and exc[0] is None:
            raise AssertionError(f"tandem exited with status {rc}")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, method, path, body=None, headers=None, admin=False, raw=False, timeout=30):
        """Returns (status, parsed JSON or raw bytes, response headers)."""
        data = body
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            data = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(data, str):
            data = data.encode()
        if admin:
            hdrs["Authorization"] = f"Bearer {ADMIN_KEY}"
        req = urllib.request.Request(self.url(path), data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, payload, rh = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, payload, rh = e.code, e.read(), e.headers
        if not raw and payload and "json" in (rh.get("Content-Type") or ""):
            payload = json.loads(payload)
        return status, payload, rh

    def get(self, path, **kw):
        s, b, _ = self.request("GET", path, **kw)
        return s, b

    def post(self, path, body=None, **kw):
        s, b, _ = self.request("POST", path, body, **kw)
        return s, b

    def profile(self, ns, ident):
        return self.get(f"/v1/profiles/{ns}/{urllib.request.quote(ident, safe='')}", admin=True)

    def advance(self, seconds):
        return self.post("/v1/admin/clock:advance", {"seconds": seconds}, admin=True)

    # --- journeys -----------------------------------------------------------

    def put(self, path, body=None, **kw):
        s, b, _ = self.request("PUT", path, body, **kw)
        return s, b

    def delete(self, path, **kw):
        s, b, _ = self.request("DELETE", path, **kw)
        return s, b

    def apply_journey(self, doc, publish=True):
        """PUT a journey definition (a dict, or a file name under journeys/) and publish it."""
        if isinstance(doc, str):
            with open(os.path.join(ROOT, "journeys", doc)) as f:
                doc = json.load(f)
        s, b = self.put(f"/v1/journeys/{doc['id']}", doc, admin=True)
        if s not in (200, 201):
            raise AssertionError(f"PUT journey {doc['id']}: {s} {b}")
        if publish:
            s, b = self.post(f"/v1/journeys/{doc['id']}:publish", admin=True)
            if s != 200:
                raise AssertionError(f"publish {doc['id']}: {s} {b}")
        return b

    def journey_instances(self, ns, ident):
        s, b = self.get(f"/v1/profiles/{ns}/{urllib.request.quote(ident, safe='')}/journeys",
                        admin=True)
        return b.get("instances", []) if s == 200 else []


def wait_until(fn, timeout=15, interval=0.05):
    """Calls fn until it returns something true (returned) or timeout seconds pass (None)."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(interval)
