"""`spd status` and `spd reset`: what the pollers' state says, and moving a watermark."""

from __future__ import annotations

import argparse
import asyncio
import sys

from spd.app.status import (SUBSCRIPTION_COLUMNS, ResetPlan, collect_status, plan_reset, reset_poller,
                            status_columns, status_table)
from spd.commands.common import load
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
    config = load(args)
    configure_logging(config.log.level, config.log.format)  # stderr: stdout says what moved
    plan = plan_reset(config, args.poller, args.to)
    if not args.yes:
        confirm_reset(plan)
    print(reset_poller(config, plan))
    return 0


def confirm_reset(plan: ResetPlan) -> None:
    """Asks before moving a watermark, showing where it is and where it goes; without a
    terminal, `--yes` is required."""
    if not sys.stdin.isatty():
        raise UsageError(f"reset of poller {plan.poller} needs confirmation: add --yes "
                         f"({plan.describe()})")
    answer = input(f"Poller {plan.poller}: move the {plan.describe()}? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("reset cancelled")
