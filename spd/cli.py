"""The `spd` command line: parses arguments, then calls the functions the daemon uses.

Every `SpdError` becomes one line on stderr and its exit code; nothing here holds logic.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import orjson

from spd import __version__
from spd.core.errors import EXIT_FAILURE, SpdError, UsageError, describe_error
from spd.core.redaction import debug_enabled, redact, redact_data

DEFAULT_CONFIG = "/etc/spd/spd.yaml"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def print_json(value: Any) -> None:
    """Prints JSON to stdout, indented when a person is reading."""
    option = orjson.OPT_INDENT_2 if sys.stdout.isatty() else 0
    sys.stdout.buffer.write(orjson.dumps(value, option=option | orjson.OPT_NON_STR_KEYS) + b"\n")
    sys.stdout.flush()


def config_path(args: argparse.Namespace) -> Path:
    """`-c`, else $SPD_CONFIG, else /etc/spd/spd.yaml."""
    return Path(args.config or os.environ.get("SPD_CONFIG") or DEFAULT_CONFIG)


def load(args: argparse.Namespace):  # -> Config
    from spd.config.model import load_config

    return load_config(config_path(args))


# --- command handlers --------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from spd.daemon import run_daemon

    return run_daemon(config_path(args))


def cmd_once(args: argparse.Namespace) -> int:
    from spd.once import run_once

    return run_once(config_path(args), args.pollers)


def cmd_demo(args: argparse.Namespace) -> int:
    from spd.demo import run_demo

    return run_demo(seconds=args.seconds)


def cmd_validate(args: argparse.Namespace) -> int:
    from spd.catalog.model import load_catalog
    from spd.runtime import check_config

    config = load(args)
    check_config(config, load_catalog())
    print(f"{config.path}: ok")
    for line in config.describe():
        print(f"  {line}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from spd.status import collect_status, format_status

    rows = collect_status(load(args))
    if args.json:
        print_json(rows)
    else:
        for line in format_status(rows):
            print(line)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    from spd.status import reset_poller

    config = load(args)
    if not args.yes:
        confirm_reset(args.poller, args.to)
    print(reset_poller(config, args.poller, args.to))
    return 0


def confirm_reset(poller: str, to: str | None) -> None:
    """Asks before moving a watermark; without a terminal, `--yes` is required."""
    target = to or "its start_time"
    if not sys.stdin.isatty():
        raise UsageError(f"reset of poller {poller} needs confirmation: add --yes")
    answer = input(f"Move the watermark of poller {poller} to {target}? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("reset cancelled")


def cmd_objects(args: argparse.Namespace) -> int:
    from spd.sources import describe as objects
    from spd.sources.reports import registry

    if args.schema:
        if not args.type:
            raise UsageError("spd objects --schema needs an object type")
        print_json(objects.object_schema(args.type))
    elif args.type:
        described = objects.describe_object_type(args.type)
        if described["kind"] == "report":  # what Amazon documents of the report type
            described["report"] = registry.describe_report_spec(registry.report_spec(
                described["name"][len(registry.REPORT_PREFIX):]))
        print_json(described)
    else:
        print_json(objects.list_object_types() + registry.list_report_types())
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    from spd.catalog import ops
    from spd.catalog.model import load_catalog

    catalog = load_catalog()
    if args.api is None:
        print_json(ops.list_apis(catalog))
    elif args.operation is None:
        print_json(ops.list_operations(catalog, args.api))
    elif args.schema:
        print_json(ops.operation_schema(catalog, args.api, args.operation))
    else:
        print_json(ops.describe_operation(catalog, args.api, args.operation))
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    from spd.catalog.model import load_catalog
    from spd.execute import build_exec_request, exec_command, prepare

    req = build_exec_request(args.api, args.operation, args.params, args.body, args.all_pages,
                             args.restricted, validate=not args.no_validate)
    if req.validate:
        prepare(load_catalog(), req)  # bad parameters are reported before a config is needed
    return _api_output(lambda config: exec_command(config, req, args.account), args)


def cmd_request(args: argparse.Namespace) -> int:
    from spd.execute import check_raw, read_body, request_command

    check_raw(args.method, args.path)
    body = read_body(args.body)
    return _api_output(lambda config: request_command(
        config, args.method, args.path, body, allow_404=args.allow_404, account=args.account), args)


def _api_output(call: Callable[[Any], Any], args: argparse.Namespace) -> int:
    """Runs an exec/request coroutine: JSON on stdout, or Amazon's error JSON on stderr (exit 1)."""
    from spd.core.errors import ApiError

    from spd.core.logging import configure_logging

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


def cmd_sim(args: argparse.Namespace) -> int:
    from spd.sim.cli import main as sim_main

    return sim_main(args.sim_args)


def cmd_models_build(args: argparse.Namespace) -> int:
    from spd.catalog.build import build_catalog, default_models_dir

    dest = Path(args.to) if args.to else default_models_dir()
    report = build_catalog(Path(args.source), dest)
    print(report)
    return 0


# --- parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree of DESIGN.md §2."""
    parser = _Parser(prog="spd", description="Selling Partner Daemon: keeps your systems in sync with Amazon SP-API.")
    parser.add_argument("--version", action="version", version=f"spd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, handler: Callable[[argparse.Namespace], int], help: str, config: bool = False, **kw: Any):
        p = sub.add_parser(name, help=help, description=help, **kw)
        p.set_defaults(handler=handler)
        if config:
            p.add_argument("-c", "--config", help=f"config file (default: $SPD_CONFIG, then {DEFAULT_CONFIG})")
        return p

    command("run", cmd_run, "run every poller and job until SIGTERM/SIGINT", config=True)
    p = command("once", cmd_once, "run pollers until they caught up with now - lag, then exit", config=True)
    p.add_argument("pollers", nargs="*", metavar="POLLER", help="only these pollers (default: all)")
    p = command("demo", cmd_demo, "run the daemon against the built-in simulator (no credentials needed)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: until Ctrl-C)")
    command("validate", cmd_validate, "check a config and print what would run", config=True)
    p = command("status", cmd_status, "one line per poller: watermark, last run, last error, objects", config=True)
    p.add_argument("--json", action="store_true", help="print JSON")
    p = command("reset", cmd_reset, "move a poller's watermark (default: to its start_time)", config=True)
    p.add_argument("poller", metavar="POLLER")
    p.add_argument("--to", metavar="ISO8601", help="new watermark, with a time zone")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p = command("objects", cmd_objects, "list pollable object types, or describe one")
    p.add_argument("type", nargs="?", metavar="TYPE")
    p.add_argument("--schema", action="store_true", help="print the JSON Schema of the emitted data")
    p = command("ops", cmd_ops, "list APIs, operations, or one operation")
    p.add_argument("api", nargs="?", metavar="API")
    p.add_argument("operation", nargs="?", metavar="OPERATION")
    p.add_argument("--schema", action="store_true", help="print the request body's JSON Schema")
    p = command("exec", cmd_exec, "execute one SP-API operation and print its JSON response", config=True)
    p.add_argument("api", metavar="API")
    p.add_argument("operation", metavar="OPERATION")
    p.add_argument("-p", "--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter (repeat it; arrays take a,b or repeated -p)")
    p.add_argument("--body", metavar="JSON|@FILE", help="the request body")
    p.add_argument("--all-pages", action="store_true", help="follow next tokens and merge the results")
    p.add_argument("--restricted", metavar="ELEMENTS", help="use a restricted data token for these data elements (comma-separated)")
    p.add_argument("--no-validate", action="store_true",
                   help="send the request even where the catalog refuses it (a warning says why)")
    p.add_argument("--account", metavar="NAME", help="account (default: the only or the default one)")
    p = command("request", cmd_request, "send a raw SP-API request and print status, headers and body", config=True)
    p.add_argument("method", metavar="METHOD", help="GET, POST, PUT, PATCH or DELETE")
    p.add_argument("path", metavar="PATH", help="path with optional ?query, e.g. /sellers/v1/marketplaceParticipations")
    p.add_argument("--body", metavar="JSON|@FILE", help="the request body")
    p.add_argument("--allow-404", action="store_true", help="a 404 is an answer, not an error")
    p.add_argument("--account", metavar="NAME", help="account (default: the only or the default one)")
    # The simulator parses its own options (`spd sim --help`).
    command("sim", cmd_sim, "run the SP-API simulator in the foreground", add_help=False)
    models = sub.add_parser("models", help="manage the operation catalog")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", parser_class=_Parser)
    msub.required = True
    p = msub.add_parser("build", help="regenerate models/ from Amazon's model files")
    p.set_defaults(handler=cmd_models_build)
    p.add_argument("--from", dest="source", required=True, metavar="DIR", help="a checkout of selling-partner-api-models")
    p.add_argument("--to", metavar="DIR", help="output directory (default: the package's models/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `spd` console script."""
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if args.command == "sim":
            args.sim_args = extra
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return args.handler(args)
    except SpdError as exc:
        print(f"spd: {redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`spd ops | head`): silence the flush at interpreter exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as exc:  # a bug in spd: one line; the traceback only at debug level
        print(f"spd: {redact(describe_error(exc))}", file=sys.stderr)
        if debug_enabled():
            traceback.print_exception(exc, file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
