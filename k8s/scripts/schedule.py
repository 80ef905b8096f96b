#!/usr/bin/env python3
"""Sets the reconciler CronJob's interval: `just schedule 1m`.

Turns an interval (`90s`, `5m`, `2h`, `1d`, or bare seconds as in
RECONCILIATION_INTERVAL) into a cron schedule that fires exactly that often,
and writes k8s/base/reconciler-schedule.yaml, a kustomize patch that sets
together what must agree with the period:

- `schedule`;
- `startingDeadlineSeconds`: how late a tick may still start (10..60 s);
- the Job's `activeDeadlineSeconds`: below the period, so a hung pass never
  overlaps the next tick;
- DBAAS_LEASE_TTL_SECONDS: above the longest pass, so a live pass keeps its
  Lease, yet below the period, so a pass that died holding it does not
  block the next tick.

Cron fires on wall-clock boundaries, so only intervals that divide the
minute, hour or day evenly repeat at a constant period: a minute count must
divide 60, an hour count must divide 24. Anything else (45s, 7m, 90m, 5h)
is rejected with the nearest intervals that work.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PATCH = Path(__file__).resolve().parent.parent / "base" / "reconciler-schedule.yaml"

MINUTE_STEPS = [m for m in range(1, 61) if 60 % m == 0]  # 1 2 3 4 5 6 10 12 15 20 30 60
HOUR_STEPS = [h for h in range(1, 25) if 24 % h == 0]  # 1 2 3 4 6 8 12 24
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
WEEK = 7 * 86400


class IntervalError(ValueError):
    """An interval that cannot be parsed or that cron cannot express."""


@dataclass(frozen=True)
class Schedule:
    seconds: int
    cron: str
    starting_deadline_seconds: int
    active_deadline_seconds: int
    lease_ttl_seconds: int


def parse_interval(text: str) -> int:
    """Seconds in `text`: `300`, `300s`, `5m`, `2h` or `1d`."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text.lower())
    if not m:
        raise IntervalError(
            f"{text!r} is not an interval: use a whole number with an optional unit, "
            "e.g. 300 (seconds, as RECONCILIATION_INTERVAL), 90s, 5m, 2h, 1d"
        )
    seconds = int(m.group(1)) * UNITS[m.group(2) or "s"]
    if seconds <= 0:
        raise IntervalError(f"{text!r}: the interval must be positive")
    return seconds


def _human(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def cron_for(seconds: int) -> str:
    """The cron expression that fires every `seconds`, or IntervalError."""
    label = _human(seconds)
    if seconds < 60:
        raise IntervalError(f"{label}: cron cannot run more often than once a minute; use 1m or more")
    if seconds % 60:
        raise IntervalError(
            f"{label}: cron counts whole minutes; the nearest intervals are {_nearest_seconds(seconds)}"
        )
    minutes = seconds // 60
    if minutes < 60:
        if 60 % minutes:
            raise IntervalError(
                f"{label}: a minute interval must divide 60 evenly "
                f"({', '.join(map(str, MINUTE_STEPS[:-1]))} minutes) for cron to repeat it "
                f"at a constant period; the nearest are {_nearest_seconds(seconds)}"
            )
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if minutes % 60:
        raise IntervalError(
            f"{label}: above an hour, the interval must be whole hours dividing 24 "
            f"({', '.join(map(str, HOUR_STEPS))} hours); the nearest are "
            f"{_nearest_seconds(seconds)}"
        )
    hours = minutes // 60
    if hours < 24:
        if 24 % hours:
            raise IntervalError(
                f"{label}: an hour interval must divide 24 evenly "
                f"({', '.join(map(str, HOUR_STEPS))} hours) for cron to repeat it at a "
                f"constant period; the nearest are {_nearest_seconds(seconds)}"
            )
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    if seconds == 86400:
        return "0 0 * * *"
    if seconds == WEEK:
        return "0 0 * * 0"
    raise IntervalError(
        f"{label}: beyond a day cron can only repeat daily (1d) or weekly (7d): "
        "day-of-month steps restart at every month's end"
    )


def _nearest_seconds(seconds: int) -> str:
    steps = sorted({m * 60 for m in MINUTE_STEPS} | {h * 3600 for h in HOUR_STEPS} | {WEEK})
    below = [s for s in steps if s < seconds]
    above = [s for s in steps if s > seconds]
    return " or ".join(_human(s) for s in ([below[-1]] if below else []) + ([above[0]] if above else []))


def schedule_for(seconds: int) -> Schedule:
    cron = cron_for(seconds)
    # A tick may start this late: a fifth of the period, 10 s to 60 s.
    starting = max(10, min(60, seconds // 5))
    # A pass is cut off at 80% of the period (10 minutes at most: a pass
    # makes a fixed number of LIST calls and should take seconds).
    active = min(seconds * 4 // 5, 600)
    # The Lease outlives the longest pass by 10 s, and stays below the period.
    lease = min(active + 10, seconds - 1)
    return Schedule(seconds, cron, starting, active, lease)


def render_patch(s: Schedule, invoked_as: str) -> str:
    return f"""\
# Written by `just schedule {invoked_as}` (k8s/scripts/schedule.py): a pass
# every {_human(s.seconds)} ({s.seconds} s). Change it with that recipe, not by hand: the
# deadlines and the Lease TTL below are derived from the period.
apiVersion: batch/v1
kind: CronJob
metadata:
  name: dbaas-reconciler
  namespace: dbaas
spec:
  schedule: "{s.cron}"
  startingDeadlineSeconds: {s.starting_deadline_seconds}
  jobTemplate:
    spec:
      activeDeadlineSeconds: {s.active_deadline_seconds}
      template:
        spec:
          containers:
            - name: reconciler
              env:
                - name: DBAAS_LEASE_TTL_SECONDS
                  value: "{s.lease_ttl_seconds}"
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("interval", help="e.g. 1m, 5m, 2h, 1d, or seconds (RECONCILIATION_INTERVAL)")
    parser.add_argument("--patch-file", type=Path, default=DEFAULT_PATCH, help="kustomize patch to write")
    parser.add_argument("--dry-run", action="store_true", help="print the patch, write nothing")
    args = parser.parse_args(argv)
    try:
        s = schedule_for(parse_interval(args.interval))
    except IntervalError as e:
        print(f"schedule: {e}", file=sys.stderr)
        return 2
    text = render_patch(s, args.interval.strip())
    if args.dry_run:
        sys.stdout.write(text)
        return 0
    tmp = args.patch_file.with_name(args.patch_file.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(args.patch_file)
    print(
        f"reconciler: every {_human(s.seconds)} = cron {s.cron!r}; activeDeadlineSeconds "
        f"{s.active_deadline_seconds}, startingDeadlineSeconds {s.starting_deadline_seconds}, "
        f"lease TTL {s.lease_ttl_seconds} s -> {args.patch_file}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
