"""`spd status` and `spd reset`: what the pollers' state says, moving a watermark, and
forgetting a poller's backfills."""

from __future__ import annotations

import argparse
import asyncio
import sys

from spd.app.status import (SUBSCRIPTION_COLUMNS, ResetPlan, collect_status, plan_reset, reset_poller,
                            status_columns, status_table)
from spd.app.backfill_rows import BACKFILL, OPEN_END, range_text
from spd.app.forget import forget_backfills, plan_forget
from spd.commands.common import load, parse_when
from spd.core.errors import UsageError
from spd.core.logging import configure_logging
from spd.core.output import print_listing, print_table, wants_json


def cmd_status(args: argparse.Namespace) -> int:
    rows = asyncio.run(collect_status(load(args)))
    subscriptions = [r for r in rows if "subscription" in r]
    if wants_json(args.json) or not subscriptions:
        print_listing(rows, status_table(rows), status_columns(rows), json_flag=args.json,
                      empty="no pollers configured")
        return 0
    if len(subscriptions) < len(rows):
        print_table(status_table(rows), status_columns(rows))
    print_table(subscriptions, SUBSCRIPTION_COLUMNS)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    if args.forget_backfills:
        return forget(args)
    if args.backfill:
        raise UsageError("--backfill names the backfills to remove: add --forget-backfills")
    config = load(args)
    configure_logging(config.log.level, config.log.format)  # stderr: stdout says what moved
    plan = plan_reset(config, args.poller, args.to)
    if not args.yes:
        confirm_reset(plan)
    print(reset_poller(config, plan))
    return 0


def confirm_reset(plan: ResetPlan) -> None:
    """Asks before moving a watermark, showing where it is and where it goes."""
    confirm("reset", plan.poller, "move the", plan.describe())


def confirm(action: str, poller: str, verb: str, change: str) -> None:
    """Asks `Poller P: verb change? [y/N]`; without a terminal, `--yes` is required."""
    if not sys.stdin.isatty():
        raise UsageError(f"{action} of poller {poller} needs confirmation: add --yes ({change})")
    answer = input(f"Poller {poller}: {verb} {change}? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError(f"{action} cancelled")


def forget(args: argparse.Namespace) -> int:
    """`spd reset POLLER --forget-backfills [--backfill RANGE]...`: asks as a reset does."""
    if args.to is not None:
        raise UsageError("--to moves the poller's watermark and --forget-backfills removes its "
                         "backfills: use one at a time")
    ranges = None if args.backfill is None else [named_range(args.poller, r) for r in args.backfill]
    config = load(args)
    configure_logging(config.log.level, config.log.format)
    plan = plan_forget(config, args.poller, ranges)
    if not plan.chosen:
        print(plan.nothing_to_do())
        return 0
    if not args.yes:
        confirm("forgetting backfills", plan.poller, "forget", plan.describe())
    for line in forget_backfills(config, plan):
        print(line)
    return 0


def named_range(poller: str, text: str) -> str:
    """A `--backfill` value as its rows spell the range: `FROM..UNTIL` as `spd status` shows it
    (or the row's whole name, copied from there), or in the forms `spd once --from/--until`
    takes (`2026-11-01..2026-11-02`, `2026-11-01..now`)."""
    span = text.strip().removeprefix(f"{poller}{BACKFILL}").partition("@")[0]
    start, dots, until = span.partition("..")
    if not dots or not start:
        raise UsageError(f"--backfill {text}: not a range; write FROM..UNTIL as `spd status` shows it, "
                         f"such as 2026-11-01T00:00:00Z..2026-11-02T00:00:00Z or 2026-11-01..now")
    end = None if until in (OPEN_END, "") else parse_when("--backfill", until)
    return range_text(parse_when("--backfill", start), end)
