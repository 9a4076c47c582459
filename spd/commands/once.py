"""`spd once`: run the pollers until they caught up, or a bounded backfill (`--from`/`--until`)."""

from __future__ import annotations

import argparse
from spd.app.backfill import Backfill
from spd.app.once import run_once
from spd.commands.common import config_path, parse_when
from spd.core.errors import UsageError
from spd.core.times import format_ts, utcnow


def cmd_once(args: argparse.Namespace) -> int:
    return run_once(config_path(args), args.pollers, backfill_range(args))


def backfill_range(args: argparse.Namespace) -> Backfill | None:
    """`--from T1 [--until T2]`: the range of a backfill, or None for a normal run. Without
    --until, or with `--until now`, it is open-ended (`T1..now`), the same series on every run:
    an instant taken from the clock would start a new one each time (spd.app.backfill)."""
    if args.backfill_from is None:
        if args.backfill_until is not None:
            raise UsageError("--until needs --from: a backfill runs from --from to --until")
        return None
    start = parse_when("--from", args.backfill_from)
    if args.backfill_until in (None, "now"):
        if start >= utcnow():
            raise UsageError(f"--from {format_ts(start)} is not before now")
        return Backfill(start, None)
    until = parse_when("--until", args.backfill_until)
    if until <= start:
        raise UsageError(f"--until {format_ts(until)} is not after --from {format_ts(start)}")
    return Backfill(start, until)
