"""The `spd` command line: parses arguments, then hands them to spd.commands.

Every `SpdError` becomes one line on stderr and its exit code; nothing here holds logic, and
nothing beyond spd.core is imported before the arguments are known to be good.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from spd.core.errors import EXIT_FAILURE, SpdError, UsageError, describe_error
from spd.core.redaction import debug_enabled, redact
from spd.core.replica import publish_replica_id

DEFAULT_CONFIG = "/etc/spd/spd.yaml"
# `--json`: what it chooses (JSON rather than a table) is spd.core.output's; here for `--help`, which
# must not load orjson and dataclasses for one line of text
JSON_HELP = "print JSON (the default when stdout is not a terminal)"


class _Version(argparse.Action):
    """`--version`: the installed version, looked up only when asked (importlib.metadata costs
    ~30 ms that every other command would pay)."""

    def __init__(self, option_strings: list[str], dest: str, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit", **kw)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from spd import __version__  # lazy: see the class docstring

        print(f"spd {__version__}")
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree of DESIGN.md §2."""
    parser = _Parser(prog="spd", description="Selling Partner Daemon: keeps your systems in sync with Amazon SP-API.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, handler: str, help: str, config: bool = False, output: bool = False,
                **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, **kw)
        p.set_defaults(handler=handler, json=False)
        if config:
            p.add_argument("-c", "--config", help=f"config file (default: $SPD_CONFIG, then {DEFAULT_CONFIG})")
        if output:  # the same flag on every command that lists (spd.core.output)
            p.add_argument("--json", action="store_true", help=JSON_HELP)
        return p

    command("run", "run", "run every poller and job until SIGTERM/SIGINT", config=True)
    p = command("once", "once", "run pollers until they caught up with now - lag, then exit", config=True)
    p.add_argument("pollers", nargs="*", metavar="POLLER", help="only these pollers (default: all)")
    p.add_argument("--from", dest="backfill_from", metavar="WHEN",
                   help="backfill from WHEN (a date = midnight UTC, or a time with a zone) as a "
                   "series of its own: the pollers' watermarks do not move")
    p.add_argument("--until", dest="backfill_until", metavar="WHEN",
                   help="end of the backfill (default, or `now`: open-ended, up to now - lag; the same "
                   "command run again resumes it and carries it on to the new now)")
    p = command("demo", "demo", "run the daemon against the built-in simulator (no credentials needed)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--push", action="store_true",
                   help="also read pushed ORDER_CHANGE notifications (moto's SQS on loopback; needs moto[server])")
    command("validate", "validate", "check a config and print what would run", config=True, output=True)
    command("check", "check", "try a config online: LWA and one SP-API call per account, a probe "
            "per webhook and Kafka emitter", config=True, output=True)
    command("status", "status", "one row per poller: state, watermark, lag, next run, last error",
            config=True, output=True)
    p = command("reset", "reset", "move a poller's watermark (default: to its start_time)", config=True)
    p.add_argument("poller", metavar="POLLER")
    p.add_argument("--to", metavar="WHEN", help="new watermark: a date (2026-11-29 = midnight UTC) or an ISO 8601 time with a zone")
    p.add_argument("--forget-backfills", action="store_true",
                   help="instead: remove the state rows of the poller's complete backfills (`spd once --from`), "
                   "or of those named by --backfill; the poller's watermark stays")
    p.add_argument("--backfill", action="append", metavar="FROM..UNTIL",
                   help="with --forget-backfills: a backfill to remove, complete or not, as `spd status` "
                   "shows it (2026-11-01T00:00:00Z..2026-11-02T00:00:00Z, or ..now); repeatable")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p = command("objects", "objects", "list pollable object types, or describe one", output=True)
    p.add_argument("type", nargs="*", metavar="TYPE", help="API OPERATION or API.OPERATION (or an alias)")
    p.add_argument("--schema", action="store_true", help="print the JSON Schema of the emitted data")
    p = command("ops", "ops", "list APIs, operations, or one operation", output=True)
    p.add_argument("api", nargs="?", metavar="API", help="an API, or API.OPERATION")
    p.add_argument("operation", nargs="?", metavar="OPERATION")
    p.add_argument("--schema", action="store_true", help="print the request body's JSON Schema")
    _add_api_commands(command)
    p = command("subscribe", "subscribe", "create (or --list, --delete) a subscription's SQS "
                "destination and notification subscriptions", config=True, output=True)
    p.add_argument("subscription", nargs="?", metavar="SUBSCRIPTION", help="a name under subscriptions:")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--list", action="store_true", help="show destinations and subscriptions")
    action.add_argument("--delete", action="store_true", help="remove the subscriptions, then the destination")
    # The simulator parses its own options (`spd sim --help`).
    command("sim", "sim", "run the SP-API simulator in the foreground", add_help=False)
    models = sub.add_parser("models", help="manage the operation catalog")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", parser_class=_Parser)
    msub.required = True
    p = msub.add_parser("build", help="regenerate models/ from Amazon's model files")
    p.set_defaults(handler="models_build")
    p.add_argument("--from", dest="source", required=True, metavar="DIR", help="a checkout of selling-partner-api-models")
    p.add_argument("--to", metavar="DIR", help="output directory (default: the package's models/)")
    return parser


def _add_api_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """`spd exec` and `spd request`: one SP-API call, printed as JSON."""
    p = command("exec", "exec", "execute one SP-API operation and print its JSON response", config=True,
                output=True)
    p.add_argument("api", metavar="API", help="an API, or API.OPERATION")
    p.add_argument("operation", nargs="?", metavar="OPERATION")
    p.add_argument("-p", "--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter (repeat it; arrays take a,b or repeated -p)")
    p.add_argument("--body", metavar="JSON|@FILE", help="the request body")
    p.add_argument("--all-pages", action="store_true", help="follow next tokens and merge the results")
    p.add_argument("--max-pages", type=int, metavar="N",
                   help="with --all-pages: stop with an error rather than fetch more than N pages (default 1000)")
    p.add_argument("--restricted", metavar="ELEMENTS", help="use a restricted data token for these data elements (comma-separated)")
    p.add_argument("--no-validate", action="store_true",
                   help="send the request even where the catalog refuses it (a warning says why)")
    p.add_argument("--account", metavar="NAME", help="account (default: the only or the default one)")
    p = command("request", "request", "send a raw SP-API request and print status, headers and body", config=True)
    p.add_argument("method", metavar="METHOD", help="GET, POST, PUT, PATCH or DELETE")
    p.add_argument("path", metavar="PATH", help="path with optional ?query, e.g. /sellers/v1/marketplaceParticipations")
    p.add_argument("--body", metavar="JSON|@FILE", help="the request body")
    p.add_argument("--allow-404", action="store_true", help="a 404 is an answer, not an error")
    p.add_argument("--account", metavar="NAME", help="account (default: the only or the default one)")


def split_operation(args: argparse.Namespace) -> None:
    """`API.OPERATION` in one word means `API OPERATION` (`ops`, `exec`, `objects`)."""
    if args.command in ("ops", "exec") and args.api and args.operation is None and "." in args.api:
        args.api, _, args.operation = args.api.partition(".")
    if args.command == "exec" and not args.operation:
        raise UsageError("spd exec needs an operation: API OPERATION or API.OPERATION "
                         "(see `spd ops API`)")
    if args.command == "objects":
        if len(args.type) > 2:
            raise UsageError("spd objects takes one type: API OPERATION or API.OPERATION")
        args.type = ".".join(args.type) or None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `spd` console script."""
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if args.command == "sim":
            args.sim_args = extra
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        split_operation(args)
        if "config" in args:
            args.config = args.config or os.environ.get("SPD_CONFIG") or DEFAULT_CONFIG
            publish_replica_id()  # `${SPD_REPLICA_ID}` in the config names this replica
        # spd's config models use no pydantic plugins, and looking for some reads the metadata of
        # every installed package when the first model is built (30-60 ms); a user's setting wins.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
        from spd import commands  # after parsing: `spd --help` and usage errors load nothing else

        return commands.handler(args.handler)(args)
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
            import traceback  # lazy: only a bug at debug level pays for it (~4 ms of every start)

            traceback.print_exception(exc, file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
