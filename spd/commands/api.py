"""`spd exec`, `spd request` and `spd subscribe`: SP-API calls, printed as JSON or a table."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import orjson

from spd.app.execute import exec_command, request_command
from spd.app.subscribe import SUBSCRIBE_COLUMNS, list_subscriptions, subscribe, unsubscribe
from spd.catalog.model import load_catalog
from spd.catalog.requests import build_exec_request, check_raw, prepare, read_body
from spd.commands.common import load
from spd.config.model import Config
from spd.core.errors import EXIT_FAILURE, ApiError
from spd.core.logging import configure_logging
from spd.core.output import print_json, print_listing
from spd.core.redaction import redact_data


def cmd_exec(args: argparse.Namespace) -> int:
    req = build_exec_request(args.api, args.operation, args.params, args.body, args.all_pages,
                             args.restricted, validate=not args.no_validate, max_pages=args.max_pages)
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
    """Runs an exec/request coroutine: JSON on stdout, or Amazon's error JSON on stderr (exit 1),
    or one line when Amazon could not be reached (exit 1)."""
    config = load(args)
    # stdout is the answer and stderr the error JSON: only warnings (retries) join them
    configure_logging(config.log.level if config.log.level in ("debug", "error") else "warning",
                      config.log.format)
    try:
        result = asyncio.run(call(config))
    except ApiError as exc:
        return _api_error(exc)
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
        return _api_error(exc)
    print_listing(rows, rows, SUBSCRIBE_COLUMNS, json_flag=args.json, empty="nothing")
    return 0


def _api_error(exc: ApiError) -> int:
    """What Amazon said, on stderr, without any token a server echoed back; exit 1. Without an
    answer of Amazon's (connection refused, no such host, a timeout: spd.client.encode.describe
    words them) it is one plain line like any SpdError (spd.cli), exit 1."""
    if not exc.answered:
        raise exc
    sys.stderr.buffer.write(orjson.dumps(redact_data(exc.error_json())) + b"\n")
    sys.stderr.flush()
    return EXIT_FAILURE
