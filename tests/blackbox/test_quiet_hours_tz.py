"""Quiet hours in a named time zone through the real binary and a real SMTP
server (aiosmtpd): the virtual clock is moved to the nights of Paris's
daylight saving changes of 2027, and the held email must leave at 08:00
Paris wall time of that morning (an hour off from what the offset of the
evening before gives). An unknown quiet_hours_tz stops the start, naming
the setting; a named zone in a profile or an event is used too."""
import datetime
import os
import subprocess
import tempfile
import time
import unittest

from harness import BIN, ROOT, wait_until
from test_outbox import COAT, HOUR, Sink, cart_add, clock_ms, have_aiosmtpd, rows_of, server

PARIS = "/usr/share/zoneinfo/Europe/Paris"


def utc_ms(text):
    return int(datetime.datetime.fromisoformat(text).replace(
        tzinfo=datetime.timezone.utc).timestamp() * 1000)


def move_to(srv, when_ms):
    """Advances the virtual clock to when_ms (it only moves forward)."""
    now = clock_ms(srv)
    assert when_ms >= now, (when_ms, now)
    s, b = srv.advance((when_ms - now) / 1000.0)
    assert s == 200, b
    return clock_ms(srv)


def quiet_holds(srv):
    """How many times the outbox held a message for quiet hours."""
    s, body = srv.get("/metrics")
    text = body.decode() if isinstance(body, bytes) else body
    want = 'tandem_outbox_messages_total{outcome="deferred",reason="quiet_hours"} '
    return sum(int(float(line[len(want):])) for line in text.splitlines()
               if line.startswith(want))


def held_rows(srv, ecid):
    return [r for r in rows_of(srv, ecid) if (r.get("last_error") or "").startswith("quiet_hours")]


@unittest.skipUnless(have_aiosmtpd(), "needs Debian's python3-aiosmtpd")
@unittest.skipUnless(os.path.exists(PARIS), "needs the system's zoneinfo (tzdata)")
class NamedZoneTest(unittest.TestCase):

    def setUp(self):
        self.sink = Sink()

    def tearDown(self):
        self.sink.close()

    def held_until(self, evening, sent_after, ecid, *extra, source="default", profile_tz=None):
        """A cart abandoned at `evening` (UTC), mailed 3 hours later in the
        quiet window 21:00-08:00 Paris time, must leave at `sent_after`
        (UTC), not a minute before, and be held only once (a hold to the
        wrong instant in autumn shows as a second hold)."""
        with server(self.sink, "--quiet-hours", "21:00-08:00", *extra) as srv:
            srv.apply_journey("cart-abandonment.json")
            move_to(srv, utc_ms(evening))
            kw = {"attributes": {"timezone": profile_tz}} if profile_tz else {}
            cart_add(srv, ecid, [COAT], email=ecid.lower() + "@example.com", **kw)
            srv.advance(3 * HOUR + 1)
            rows = wait_until(lambda: held_rows(srv, ecid))
            self.assertTrue(rows, rows_of(srv, ecid))
            self.assertEqual(rows[0]["status"], "queued", rows[0])
            self.assertIn("tz=Europe/Paris", rows[0]["last_error"])
            self.assertIn("tz_source=" + source, rows[0]["last_error"])
            open_ms = utc_ms(sent_after)
            move_to(srv, open_ms - 60 * 1000)  # a minute before: still held
            time.sleep(1.0)
            self.assertEqual(len(self.sink.messages()), 0, rows_of(srv, ecid))
            move_to(srv, open_ms + 1000)
            self.assertEqual(len(self.sink.messages(1)), 1, rows_of(srv, ecid))
            # held once, to the right time: not woken early and held again
            self.assertTrue(wait_until(lambda: [r for r in rows_of(srv, ecid)
                                                if r["status"] == "sent"]))
            self.assertEqual(quiet_holds(srv), 1)

    def test_spring_forward(self):
        # 22:00 CET on 27 March 2027; 08:00 is summer time (+02:00) on the 28th
        self.held_until("2027-03-27T21:00:00", "2027-03-28T06:00:00", "QTZ-1",
                        "--quiet-hours-tz", "Europe/Paris")

    def test_fall_back(self):
        # 22:00 CEST on 30 October 2027; 08:00 is winter time (+01:00) on the 31st
        self.held_until("2027-10-30T20:00:00", "2027-10-31T07:00:00", "QTZ-2",
                        "--quiet-hours-tz", "Europe/Paris")

    def test_event_zone_name(self):
        # the server's default is UTC; the shopper's event says Paris
        self.held_until("2027-03-27T21:00:00", "2027-03-28T06:00:00", "QTZ-3",
                        source="events", profile_tz="Europe/Paris")


class StartCheckTest(unittest.TestCase):

    def test_unknown_zone_is_refused_at_start(self):
        with tempfile.TemporaryDirectory(prefix="tandem-test-") as data:
            p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--data", data,
                                "--clock", "virtual", "--quiet-hours", "21:00-08:00",
                                "--quiet-hours-tz", "Mars/Olympus_Mons"],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("quiet_hours_tz", p.stderr)
        self.assertIn("Mars/Olympus_Mons", p.stderr)

    def test_path_like_zone_is_refused_at_start(self):
        with tempfile.TemporaryDirectory(prefix="tandem-test-") as data:
            p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--data", data,
                                "--clock", "virtual", "--quiet-hours-tz", "../../etc/passwd"],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("quiet_hours_tz", p.stderr)


if __name__ == "__main__":
    unittest.main()
