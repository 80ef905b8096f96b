"""Tests of schedule.py: `python3 -m unittest discover -s k8s/scripts`
(tests/deploy runs them under `cargo test`)."""

import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import schedule  # noqa: E402
from schedule import IntervalError, cron_for, parse_interval, schedule_for  # noqa: E402

SCRIPT = Path(__file__).resolve().parent / "schedule.py"


class ParseInterval(unittest.TestCase):
    def test_units(self):
        self.assertEqual(parse_interval("300"), 300)  # RECONCILIATION_INTERVAL style
        self.assertEqual(parse_interval("90s"), 90)
        self.assertEqual(parse_interval("5m"), 300)
        self.assertEqual(parse_interval("2h"), 7200)
        self.assertEqual(parse_interval("1d"), 86400)
        self.assertEqual(parse_interval(" 10M "), 600)

    def test_rejects_garbage(self):
        for text in ["", "m", "5 minutes", "-5m", "1.5m", "5w", "0", "0m"]:
            with self.subTest(text=text), self.assertRaises(IntervalError):
                parse_interval(text)


class CronFor(unittest.TestCase):
    def test_expressible(self):
        cases = {
            60: "* * * * *",
            120: "*/2 * * * *",
            300: "*/5 * * * *",
            600: "*/10 * * * *",
            900: "*/15 * * * *",
            1800: "*/30 * * * *",
            3600: "0 * * * *",
            7200: "0 */2 * * *",
            6 * 3600: "0 */6 * * *",
            12 * 3600: "0 */12 * * *",
            86400: "0 0 * * *",
            7 * 86400: "0 0 * * 0",
        }
        for seconds, cron in cases.items():
            with self.subTest(seconds=seconds):
                self.assertEqual(cron_for(seconds), cron)

    def test_every_minute_step_divides_the_hour(self):
        for minutes in range(1, 60):
            with self.subTest(minutes=minutes):
                if 60 % minutes == 0:
                    self.assertTrue(cron_for(minutes * 60).endswith("* * * *"))
                else:
                    with self.assertRaisesRegex(IntervalError, "divide 60"):
                        cron_for(minutes * 60)

    def test_every_hour_step_divides_the_day(self):
        for hours in range(1, 24):
            with self.subTest(hours=hours):
                if 24 % hours == 0:
                    cron_for(hours * 3600)
                else:
                    with self.assertRaisesRegex(IntervalError, "divide 24"):
                        cron_for(hours * 3600)

    def test_inexpressible_with_clear_errors(self):
        cases = {
            1: "more often than once a minute",
            59: "more often than once a minute",
            61: "whole minutes; the nearest intervals are 1m or 2m",
            90: "whole minutes",
            7 * 60: "nearest are 6m or 10m",
            45 * 60: "nearest are 30m or 1h",
            90 * 60: "must be whole hours dividing 24",
            5 * 3600: "nearest are 4h or 6h",
            25 * 3600: "daily (1d) or weekly (7d)",
            2 * 86400: "daily (1d) or weekly (7d)",
        }
        for seconds, message in cases.items():
            with self.subTest(seconds=seconds):
                with self.assertRaises(IntervalError) as ctx:
                    cron_for(seconds)
                self.assertIn(message, str(ctx.exception))


class Deadlines(unittest.TestCase):
    def test_default_matches_the_base_cronjob(self):
        s = schedule_for(300)
        self.assertEqual((s.starting_deadline_seconds, s.active_deadline_seconds, s.lease_ttl_seconds), (60, 240, 250))

    def test_invariants_for_every_expressible_interval(self):
        steps = [m * 60 for m in schedule.MINUTE_STEPS] + [h * 3600 for h in schedule.HOUR_STEPS] + [schedule.WEEK]
        for seconds in steps:
            with self.subTest(seconds=seconds):
                s = schedule_for(seconds)
                self.assertGreaterEqual(s.starting_deadline_seconds, 10)
                self.assertLess(s.starting_deadline_seconds, seconds)
                self.assertLess(s.active_deadline_seconds, seconds)
                self.assertGreater(s.lease_ttl_seconds, s.active_deadline_seconds)
                self.assertLess(s.lease_ttl_seconds, seconds)


class Cli(unittest.TestCase):
    def run_script(self, *args):
        return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)

    def test_writes_the_patch(self):
        with tempfile.TemporaryDirectory() as d:
            patch = Path(d) / "reconciler-schedule.yaml"
            patch.write_text("old")
            r = self.run_script("1m", "--patch-file", str(patch))
            self.assertEqual(r.returncode, 0, r.stderr)
            text = patch.read_text()
            self.assertIn('schedule: "* * * * *"', text)
            self.assertIn("startingDeadlineSeconds: 12", text)
            self.assertIn("activeDeadlineSeconds: 48", text)
            self.assertIn('value: "58"', text)
            self.assertIn("kind: CronJob", text)
            self.assertIn("name: dbaas-reconciler", text)
            self.assertIn("cron '* * * * *'", r.stdout)

    def test_rejection_leaves_the_patch_alone(self):
        with tempfile.TemporaryDirectory() as d:
            patch = Path(d) / "reconciler-schedule.yaml"
            patch.write_text("old")
            r = self.run_script("7m", "--patch-file", str(patch))
            self.assertEqual(r.returncode, 2)
            self.assertIn("7m: a minute interval must divide 60", r.stderr)
            self.assertEqual(patch.read_text(), "old")

    def test_checked_in_patch_is_what_the_recipe_writes(self):
        # Whatever interval was last set with `just schedule`, the file is
        # exactly the script's output for it (nobody edited it by hand).
        text = schedule.DEFAULT_PATCH.read_text()
        m = re.match(r"# Written by `just schedule (\S+)`", text)
        self.assertIsNotNone(m, "k8s/base/reconciler-schedule.yaml lost its header")
        interval = m.group(1)
        self.assertEqual(text, schedule.render_patch(schedule_for(parse_interval(interval)), interval))


if __name__ == "__main__":
    unittest.main()
