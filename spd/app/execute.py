"""`spd exec` (Execute operation) and `spd request` (Make Raw Request).

The request is checked against the catalog first (spd.catalog.requests), operations Amazon serves
only in its sandbox are refused against production endpoints (spd.config.checks), and the call
with every page goes through spd.pipeline.operations, which scheduled jobs use too.
"""

from __future__ import annotations

import sys
from typing import Any

from spd.catalog.model import load_catalog
from spd.catalog.requests import ExecRequest, check_raw, prepare
from spd.client.encode import api_error
from spd.client.http import SpClient
from spd.config.checks import check_sandbox_only
from spd.config.model import Config
from spd.config.secrets import register_config_secrets
from spd.pipeline.operations import run_operation


def _client_for(config: Config, account: str | None) -> tuple[str, SpClient]:
    register_config_secrets(config)
    name, acct = config.account_for(account)
    return name, SpClient({name: acct}, load_catalog())


async def exec_command(config: Config, req: ExecRequest, account: str | None = None) -> Any:
    """`spd exec`: validates first (no request for bad input), then calls; returns the body."""
    catalog = load_catalog()
    name, acct = config.account_for(account)
    check_sandbox_only(catalog.operation(req.api, req.operation), name, acct)
    op, params = prepare(catalog, req, list(acct.marketplace_ids or ()))
    name, client = _client_for(config, name)
    async with client:
        return await run_operation(client, name, op, params, req,
                                   progress=req.all_pages and sys.stderr.isatty())


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
