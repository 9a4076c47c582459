"""`spd check`: a config tried online, one row per check."""

from __future__ import annotations

import argparse
import asyncio

from spd.app.check import check_config
from spd.commands.common import config_path
from spd.config.validate import load_config
from spd.core.errors import EXIT_FAILURE
from spd.core.logging import configure_logging
from spd.core.output import Column, print_listing

CHECK_COLUMNS = (Column("TARGET", "target"), Column("CHECK", "check"), Column("RESULT", "result"),
                 Column("DETAIL", "detail"))


def cmd_check(args: argparse.Namespace) -> int:
    config = load_config(config_path(args), environment=True)  # offline problems first (exit 78)
    configure_logging("error", config.log.format)  # the table is the output; retries stay quiet
    rows = [row.as_dict() for row in asyncio.run(check_config(config))]
    print_listing(rows, rows, CHECK_COLUMNS, json_flag=args.json, empty="nothing to check")
    return EXIT_FAILURE if any(row["result"] == "failed" for row in rows) else 0
