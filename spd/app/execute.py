"""`spd exec` (Execute operation) and `spd request` (Make Raw Request).

The request is checked against the catalog first (spd.catalog.requests), operations Amazon serves
only in its sandbox are refused against production endpoints (spd.config.checks), and the call
with every page goes through spd.pipeline.operations, which scheduled jobs use too.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from spd.app.progress import LiveProgress
from spd.catalog.model import Operation, load_catalog
from spd.catalog.requests import ExecRequest, check_raw, prepare
from spd.client.encode import api_error
from spd.client.http import SpClient
from spd.client.policy import ONE_SHOT
from spd.config.checks import check_sandbox_only
from spd.config.model import Config
from spd.config.secrets import register_config_secrets
from spd.core.logging import configure_logging
from spd.core.output import Column, is_terminal, print_table
from spd.pipeline.operations import run_operation


def _client_for(config: Config, account: str | None) -> tuple[str, SpClient]:
    register_config_secrets(config)
    name, acct = config.account_for(account)
    # a person is waiting: an endpoint that cannot be reached is reported within seconds
    return name, SpClient({name: acct}, load_catalog(), retry=ONE_SHOT)


async def exec_command(config: Config, req: ExecRequest, account: str | None = None, *,
                       summary: bool = True) -> Any:
    """`spd exec`: validates first (no request for bad input), then calls; returns the body.
    `--all-pages` on a terminal shows live progress and then, with `summary`, a table of it."""
    catalog = load_catalog()
    name, acct = config.account_for(account)
    check_sandbox_only(catalog.operation(req.api, req.operation), name, acct)
    op, params = prepare(catalog, req, list(acct.marketplace_ids or ()))
    name, client = _client_for(config, name)
    async with client:
        if not (req.all_pages and is_terminal(sys.stderr)):
            return await run_operation(client, name, op, params, req)
        return await all_pages_with_progress(config, client, name, op, params, req, summary)


async def all_pages_with_progress(config: Config, client: SpClient, account: str, op: Operation,
                                  params: dict[str, Any], req: ExecRequest, summary: bool) -> Any:
    """Every page under live progress lines (pages, results, quota waits), then a summary table
    on stderr: stdout keeps the merged response alone."""
    started, seen = time.monotonic(), {"pages": 0, "results": 0}
    try:
        with LiveProgress(client.quota_waits) as live:
            configure_logging(*_log_settings(config))  # log lines go above the live lines
            show = live.exec_page(op.name)

            def hear(pages: int, results: int) -> None:
                seen.update(pages=pages, results=results)
                show(pages, results)

            body = await run_operation(client, account, op, params, req, progress=hear)
    finally:
        configure_logging(*_log_settings(config))
    if summary:
        print_table([{"operation": op.name, **seen, "seconds": round(time.monotonic() - started, 1)}],
                    SUMMARY_COLUMNS, stream=sys.stderr)
    return body


SUMMARY_COLUMNS = (Column("OPERATION", "operation"), Column("PAGES", "pages", "right"),
                   Column("RESULTS", "results", "right"), Column("SECONDS", "seconds", "right"))


def _log_settings(config: Config) -> tuple[str, str | None]:
    """exec's logging: warnings (retries) and worse, unless debug or error is asked for."""
    level = config.log.level if config.log.level in ("debug", "error") else "warning"
    return level, config.log.format


async def request_command(config: Config, method: str, path: str, body: Any = None, *,
                          allow_404: bool = False, account: str | None = None) -> dict[str, Any]:
    """`spd request`: {"statusCode", "headers", "body"}; ApiError on 4xx/5xx (404 only without
    `allow_404`)."""
    method, path = check_raw(method, path)
    name, client = _client_for(config, account)
    async with client:
        resp = await client.raw(name, method, path, body=body, raise_errors=False)
    if resp.status >= 400 and not (resp.status == 404 and allow_404):
        raise api_error(f"{method} {path.partition('?')[0]}", resp)
    return {"statusCode": resp.status, "headers": resp.headers, "body": resp.body}
