"""What each `spd` command does, once spd.cli has parsed its arguments: load, call, print.

The commands that run the daemon, the demo or the simulator import them when they run, so that
`spd validate`, `ops` or `objects` never load APScheduler, Prometheus or the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from spd.app.backfill import Backfill
from spd.app.check import check_config
from spd.app.execute import exec_command, request_command
from spd.app.once import run_once
from spd.app.status import (SUBSCRIPTION_COLUMNS, ResetPlan, collect_status, plan_reset, reset_poller,
                            status_columns, status_table)
from spd.app.subscribe import SUBSCRIBE_COLUMNS, list_subscriptions, subscribe, unsubscribe
from spd.catalog import ops
from spd.catalog.build import build_catalog, default_models_dir
from spd.catalog.model import load_catalog
from spd.catalog.requests import build_exec_request, check_raw, prepare, read_body
from spd.config.model import Config
from spd.config.validate import load_config, validate_config
from spd.core.errors import EXIT_CONFIG, EXIT_FAILURE, ApiError, UsageError
from spd.core.logging import configure_logging
from spd.core.times import format_ts, parse_instant, utcnow
from spd.core.output import Column, print_json, print_listing, print_table, wants_json
from spd.core.redaction import redact, redact_data
from spd.sources import describe
from spd.sources.reports import registry

API_COLUMNS = (Column("API", "id"), Column("VERSION", "version"),
               Column("OPERATIONS", "operations", "right"), Column("TITLE", "title"))
OPERATION_COLUMNS = (Column("OPERATION", "id"), Column("METHOD", "method"), Column("PATH", "path"),
                     Column("RATE", "rate", "right"), Column("BURST", "burst", "right"))
OBJECT_COLUMNS = (Column("TYPE", "name"), Column("KIND", lambda r: r.get("report_kind") or "operation"),
                  Column("SUPPORTED", "supported"),
                  Column("TIMESTAMPS", lambda r: r.get("timestamp_fields") or r.get("format")),
                  Column("NOTES", lambda r: r.get("only") if "only" in r else _report_note(r)))
VALIDATE_COLUMNS = (Column("WHAT", "what"), Column("DETAIL", "detail"))
CHECK_COLUMNS = (Column("TARGET", "target"), Column("CHECK", "check"), Column("RESULT", "result"),
                 Column("DETAIL", "detail"))


def _report_note(row: dict[str, Any]) -> str | None:
    """A report type's required options, or that it cannot be requested."""
    if not row.get("requestable"):
        return "not requestable"
    required = row.get("required_options")
    return f"needs {', '.join(required)}" if required else None


def config_path(args: argparse.Namespace) -> Path:
    """The config file: `-c`, else $SPD_CONFIG, else /etc/spd/spd.yaml (spd.cli fills it in)."""
    return Path(args.config)


def load(args: argparse.Namespace) -> Config:
    """The config `-c` (or $SPD_CONFIG, or the default) names, loaded and validated."""
    return load_config(config_path(args))


# --- command handlers --------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from spd.app.daemon import run_daemon  # APScheduler and Prometheus, for `spd run` only

    return run_daemon(config_path(args))


def cmd_once(args: argparse.Namespace) -> int:
    return run_once(config_path(args), args.pollers, backfill_range(args))


def backfill_range(args: argparse.Namespace) -> Backfill | None:
    """`--from T1 [--until T2]`: the range of a bounded backfill, or None for a normal run."""
    if args.backfill_from is None:
        if args.backfill_until is not None:
            raise UsageError("--until needs --from: a backfill runs from --from to --until")
        return None
    start, until = (parse_when(option, value) for option, value in
                    (("--from", args.backfill_from), ("--until", args.backfill_until or "now")))
    if until <= start:
        raise UsageError(f"--until {format_ts(until)} is not after --from {format_ts(start)}")
    return Backfill(start, until)


def parse_when(option: str, value: str) -> datetime:
    """A command-line time: a date (midnight UTC), a timestamp with a zone, or `now`."""
    if value == "now":
        return utcnow()
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}; a date such as 2026-11-29 means midnight UTC") from None


def cmd_demo(args: argparse.Namespace) -> int:
    from spd.demo import run_demo  # the simulator and the daemon, for `spd demo` only

    return run_demo(seconds=args.seconds, push=args.push)


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


def cmd_check(args: argparse.Namespace) -> int:
    config = load_config(config_path(args), environment=True)  # offline problems first (exit 78)
    configure_logging("error", config.log.format)  # the table is the output; retries stay quiet
    rows = [row.as_dict() for row in asyncio.run(check_config(config))]
    print_listing(rows, rows, CHECK_COLUMNS, json_flag=args.json, empty="nothing to check")
    return EXIT_FAILURE if any(row["result"] == "failed" for row in rows) else 0


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


def cmd_objects(args: argparse.Namespace) -> int:
    if args.schema:
        if not args.type:
            raise UsageError("spd objects --schema needs an object type")
        print_json(describe.object_schema(args.type))
    elif args.type:
        described = describe.describe_object_type(args.type)
        if described["kind"] == "report":  # what Amazon documents of the report type
            described["report"] = registry.describe_report_spec(registry.report_spec(
                described["name"][len(registry.REPORT_PREFIX):]))
        print_json(described)
    else:
        types = describe.list_object_types() + registry.list_report_types()
        print_listing(types, types, OBJECT_COLUMNS, json_flag=args.json)
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    if args.api is None:
        apis = ops.list_apis(catalog)
        print_listing(apis, apis, API_COLUMNS, json_flag=args.json)
    elif args.operation is None:
        operations = ops.list_operations(catalog, args.api)
        print_listing(operations, operations, OPERATION_COLUMNS, json_flag=args.json)
    elif args.schema:
        print_json(ops.operation_schema(catalog, args.api, args.operation))
    else:
        print_json(ops.describe_operation(catalog, args.api, args.operation))
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    req = build_exec_request(args.api, args.operation, args.params, args.body, args.all_pages,
                             args.restricted, validate=not args.no_validate)
    if req.validate:
        prepare(load_catalog(), req)  # bad parameters are reported before a config is needed
    return _api_output(lambda config: exec_command(config, req, args.account, summary=not args.json),
                       args)


def cmd_request(args: argparse.Namespace) -> int:
    check_raw(args.method, args.path)
    body = read_body(args.body)
    return _api_output(lambda config: request_command(
        config, args.method, args.path, body, allow_404=args.allow_404, account=args.account), args)


def _api_output(call: Callable[[Config], Coroutine[Any, Any, Any]], args: argparse.Namespace) -> int:
    """Runs an exec/request coroutine: JSON on stdout, or Amazon's error JSON on stderr (exit 1)."""
    config = load(args)
    # stdout is the answer and stderr the error JSON: only warnings (retries) join them
    configure_logging(config.log.level if config.log.level in ("debug", "error") else "warning",
                      config.log.format)
    try:
        result = asyncio.run(call(config))
    except ApiError as exc:  # what Amazon said, without any token a server echoed back
        sys.stderr.buffer.write(orjson.dumps(redact_data(exc.error_json())) + b"\n")
        sys.stderr.flush()
        return EXIT_FAILURE
    if result is not None:
        print_json(result)
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    config = load(args)
    configure_logging("warning", config.log.format)  # stdout is the table; retries still warn
    if args.list:
        work = list_subscriptions(config, args.subscription)
    elif args.delete:
        work = unsubscribe(config, args.subscription)
    else:
        work = subscribe(config, args.subscription)
    try:
        rows = asyncio.run(work)
    except ApiError as exc:
        sys.stderr.buffer.write(orjson.dumps(redact_data(exc.error_json())) + b"\n")
        sys.stderr.flush()
        return EXIT_FAILURE
    print_listing(rows, rows, SUBSCRIBE_COLUMNS, json_flag=args.json, empty="nothing")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from spd.sim.cli import main as sim_main  # the simulator's aiohttp server, for `spd sim` only

    return sim_main(args.sim_args)


def cmd_models_build(args: argparse.Namespace) -> int:
    dest = Path(args.to) if args.to else default_models_dir()
    report = build_catalog(Path(args.source), dest)
    print(report)
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "once": cmd_once, "demo": cmd_demo, "validate": cmd_validate, "check": cmd_check,
    "status": cmd_status, "reset": cmd_reset, "objects": cmd_objects, "ops": cmd_ops,
    "exec": cmd_exec, "request": cmd_request, "subscribe": cmd_subscribe, "sim": cmd_sim, "models_build": cmd_models_build,
}
