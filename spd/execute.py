"""`spd exec` (Execute operation) and `spd request` (Make Raw Request); jobs reuse `run_operation`.

Parameters are checked against the catalog before any request; `--all-pages` follows the
operation's next token and merges the result arrays into the first page.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from spd.catalog import Catalog, Operation, load_catalog
from spd.client import SpClient
from spd.client.encode import api_error
from spd.errors import ApiError, UsageError
from spd.params import check_request, parse_pairs

log = structlog.get_logger(__name__)

RAW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_PAGES = 100_000  # a server that never stops paging is a bug, not a reason to loop forever


@dataclass
class ExecRequest:
    """What `spd exec` was asked to do (also what a job runs on every interval)."""

    api: str
    operation: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    all_pages: bool = False
    restricted: list[str] | None = None


def read_body(text: str | None) -> Any:
    """`--body JSON` or `--body @file` parsed; None when not given; UsageError when malformed."""
    if text is None:
        return None
    source = "--body"
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--body {text}: cannot read {path}: {exc.strerror or exc}") from None
        source = f"--body @{path}"
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc}") from None


def prepare(catalog: Catalog, req: ExecRequest) -> tuple[Operation, dict[str, Any]]:
    """The operation and its typed parameters, checked against the catalog (UsageError)."""
    op = catalog.operation(req.api, req.operation)
    params = check_request(op, req.params, req.body)
    if req.all_pages and op.pagination is None:
        raise UsageError(f"{op.name} does not page; remove --all-pages")
    if req.all_pages and op.pagination is not None and op.pagination.result_path is None:
        raise UsageError(f"{op.name}: the catalog does not say where its results are, so pages "
                         "cannot be merged; remove --all-pages and follow the next token yourself")
    return op, params


async def run_operation(client: SpClient, account: str, op: Operation, params: dict[str, Any],
                        req: ExecRequest, *, progress: bool = False) -> Any:
    """Calls `op` (every page with `all_pages`); returns the response body, pages merged."""
    first = await _call(client, account, op, params, req)
    if not req.all_pages or op.pagination is None:
        return first.body
    pag = op.pagination
    merged = first.body
    results = _get(merged, pag.result_path or ())
    token, page, seen = _get(merged, pag.token_path), 1, set()
    while token:
        if token in seen or page >= MAX_PAGES:
            raise ApiError(f"{op.name}: the next token repeats after page {page}; stopped paging")
        seen.add(token)
        body = (await _call(client, account, op, _next_params(op, params, token), req)).body
        page += 1
        more = _get(body, pag.result_path or ())
        if isinstance(results, list) and isinstance(more, list):
            results.extend(more)
        token = _get(body, pag.token_path)
        if progress:
            print(f"page {page}: {len(results) if isinstance(results, list) else 0} results",
                  file=sys.stderr, flush=True)
    _drop(merged, pag.token_path)
    return merged


async def _call(client: SpClient, account: str, op: Operation, params: dict[str, Any],
                req: ExecRequest) -> Any:
    if req.restricted:
        if "restricted" not in inspect.signature(client.call).parameters:
            raise UsageError("--restricted (restricted data tokens) is not supported in this version")
        return await client.call(account, op, params, req.body, restricted=req.restricted)
    return await client.call(account, op, params, req.body)


def _next_params(op: Operation, params: dict[str, Any], token: str) -> dict[str, Any]:
    """The next page's parameters: the same ones plus the token, or the token alone (with the
    path parameters and marketplace) where the API wants that, as the object registry declares."""
    assert op.pagination is not None
    alone = _token_alone(op)
    if alone is not None:
        kept = {k: v for k, v in params.items() if k == alone or (
            (p := op.param(k)) is not None and p.location in ("path", "header"))}
        return {**kept, op.pagination.token_param: token}
    return {**params, op.pagination.token_param: token}


def _token_alone(op: Operation) -> str | None:
    """None when the token goes with every parameter, else the marketplace parameter kept with it
    ("" when there is none)."""
    from spd.objects import object_types

    for t in object_types():
        if (t.api, t.operation) == (op.api, op.id) and t.token_alone:
            return t.marketplace_param or ""
    return None


def _get(body: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _drop(body: Any, path: tuple[str, ...]) -> None:
    """Removes the last page's (absent) token so merged output does not look like a first page."""
    parent = _get(body, path[:-1])
    if isinstance(parent, dict) and path:
        parent.pop(path[-1], None)


# --- the commands ----------------------------------------------------------------------------


def _client_for(config: Any, account: str | None) -> tuple[str, SpClient]:
    from spd.runtime import register_config_secrets

    register_config_secrets(config)
    name, acct = config.account_for(account)
    return name, SpClient({name: acct}, load_catalog())


async def exec_command(config: Any, req: ExecRequest, account: str | None = None) -> Any:
    """`spd exec`: validates first (no request for bad input), then calls; returns the body."""
    op, params = prepare(load_catalog(), req)
    name, client = _client_for(config, account)
    async with client:
        return await run_operation(client, name, op, params, req,
                                   progress=req.all_pages and sys.stderr.isatty())


def build_exec_request(api: str, operation: str, pairs: list[str], body: str | None,
                       all_pages: bool, restricted: str | None) -> ExecRequest:
    """An ExecRequest from command-line text."""
    elements = [e.strip() for e in restricted.split(",") if e.strip()] if restricted else None
    return ExecRequest(api, operation, parse_pairs(pairs), read_body(body), all_pages, elements)


def check_raw(method: str, path: str) -> tuple[str, str]:
    """The method upper-cased and the path, or UsageError."""
    method = method.upper()
    if method not in RAW_METHODS:
        raise UsageError(f"method {method!r} is not supported; use one of {', '.join(RAW_METHODS)}")
    if "://" in path or not path.startswith("/"):
        raise UsageError(f"PATH {path!r} must be a path such as /orders/v0/orders (the account's "
                         "endpoint supplies the host)")
    return method, path


async def request_command(config: Any, method: str, path: str, body: Any = None, *,
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
