"""`spd validate`: every problem of a config, offline, and what it would run.

Only the config models, the catalog and the object types are loaded: not the SP-API client,
aiohttp, structlog or jsonschema (unless a job has a body to check), so the answer is quick.
"""

from __future__ import annotations

import argparse
import sys

from spd.commands.common import config_path
from spd.config.validate import validate_config
from spd.core.errors import EXIT_CONFIG
from spd.core.output import Column, print_json, print_table, wants_json
from spd.core.redaction import redact

VALIDATE_COLUMNS = (Column("WHAT", "what"), Column("DETAIL", "detail"))


def cmd_validate(args: argparse.Namespace) -> int:
    validation = validate_config(config_path(args), environment=True)
    file = str(validation.file)
    for problem in validation.problems:  # every problem of the file, one line each
        kind = "" if problem.is_error else "warning: "
        print(f"spd: {kind}{redact(problem.format(file))}", file=sys.stderr)
    config = validation.config
    items = [dict(zip(("what", "detail"), line.split(": ", 1))) for line in config.describe()] if config else []
    if wants_json(args.json):
        print_json({"config": file, "ok": config is not None, "items": items,
                    "problems": [{**p.as_dict(), "message": redact(p.message)} for p in validation.problems]})
    elif config is not None:
        print(f"{file}: ok")
        print_table(items, VALIDATE_COLUMNS)
    return EXIT_CONFIG if config is None else 0
