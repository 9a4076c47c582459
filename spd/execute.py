"""`spd exec` (Execute operation) and `spd request` (Make Raw Request); jobs reuse `run_operation`.

Parameters are checked against the catalog before any request (`--no-validate` sends what the
catalog refuses, with a warning, for the day a model is wrong); a required marketplace parameter
left out is filled from the account's `marketplace_ids`; operations Amazon serves only in its
sandbox are refused against production endpoints. `--all-pages` follows the next token as
Amazon says (the token alone, with the same arguments, or with QueryType=NEXT_TOKEN: the object
registry's declarations) or, for operations that page by position, the offset (spd.catalog.contract),
and merges the results into the first page.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import structlog

from spd.catalog import contract
from spd.catalog.model import Catalog, Operation, load_catalog
from spd.client import SpClient
from spd.client.encode import api_error
from spd.catalog.contract_types import OFFSET, Offset
from spd.core.errors import ApiError, UsageError
from spd.catalog.model import MARKETPLACE_PARAMS
from spd.sources.registry import next_page_params
from spd.catalog.params import check_request, parse_pairs

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
    validate: bool = True  # False: send what the catalog refuses (a warning says so)


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


def prepare(catalog: Catalog, req: ExecRequest,
            marketplaces: list[str] | None = None) -> tuple[Operation, dict[str, Any]]:
    """The operation and its typed parameters, checked against the catalog (UsageError).

    With `marketplaces` (the account's), a required marketplace parameter left out is filled from
    them; without, it may stay missing until they are known."""
    op = catalog.operation(req.api, req.operation)
    params = dict(req.params)
    fillable = marketplace_params(op, params)
    if marketplaces is not None:
        params.update(fill_marketplaces(op, fillable, marketplaces))
        fillable = []
    try:
        params = check_request(op, params, req.body, fillable)
    except UsageError as exc:
        if req.validate:
            raise
        print(f"spd: warning: {exc}; sending it anyway (--no-validate)", file=sys.stderr, flush=True)
        params = {k: v for k, v in params.items() if v is not None}
    if req.all_pages:
        check_paging(op, params, req.body)
    return op, params


def marketplace_params(op: Operation, params: dict[str, Any]) -> list[str]:
    """Required marketplace parameters of `op` that `params` leaves out."""
    return [p.name for p in op.params if p.required and p.location == "query"
            and p.name in MARKETPLACE_PARAMS and params.get(p.name) is None]


def fill_marketplaces(op: Operation, names: list[str], ids: list[str]) -> dict[str, Any]:
    """The account's marketplace ids for each missing parameter, shaped as it takes them."""
    out: dict[str, Any] = {}
    for name in names:
        param = op.param(name)
        assert param is not None
        if not ids:
            continue  # the missing parameter is reported as such
        if param.type == "array" and (param.max_items is None or len(ids) <= param.max_items):
            out[name] = list(ids)
        elif len(ids) == 1:
            out[name] = ids[0]
        else:
            raise UsageError(f"{op.name}: parameter {name} takes one marketplace and the account "
                             f"has {len(ids)} ({', '.join(ids)}); choose one with -p {name}=ID")
    return out


def check_paging(op: Operation, params: dict[str, Any], body: Any) -> None:
    """UsageError when `--all-pages` cannot be followed for `op` with these arguments."""
    offset = offset_paging(op)
    if offset is not None:
        if offset.total.startswith("param:") and params.get(offset.total[len("param:"):]) is None:
            name = offset.total[len("param:"):]
            raise UsageError(f"{op.name}: --all-pages needs {name} (how many there are to page "
                             f"through) and {offset.limit.split(':', 1)[1]}")
        if _value(offset.limit, params, body) is None:
            where = offset.limit.replace("query:", "").replace("body:", "the body's ")
            raise UsageError(f"{op.name}: --all-pages needs {where} (the page size)")
        return
    if op.pagination is None:
        raise UsageError(f"{op.name} does not page; remove --all-pages")
    if op.pagination.result_path is None:
        raise UsageError(f"{op.name}: the catalog does not say where its results are, so pages "
                         "cannot be merged; remove --all-pages and follow the next token yourself")


def offset_paging(op: Operation) -> Offset | None:
    """How `op` pages by position, where Amazon says it does (spd.catalog.contract), else None."""
    found = contract.rule(op.name, OFFSET)
    return found.value if found is not None else None


async def run_operation(client: SpClient, account: str, op: Operation, params: dict[str, Any],
                        req: ExecRequest, *, progress: bool = False) -> Any:
    """Calls `op` (every page with `all_pages`); returns the response body, pages merged."""
    first = await _call(client, account, op, params, req)
    if not req.all_pages:
        return first.body
    offset = offset_paging(op)
    if offset is not None:
        return await _offset_pages(client, account, op, params, req, offset, first.body, progress)
    if op.pagination is None:
        return first.body
    pag = op.pagination
    merged = first.body
    results = _get(merged, pag.result_path or ())
    token, page, seen = _get(merged, pag.token_path), 1, set()
    while token:
        if token in seen or page >= MAX_PAGES:
            raise ApiError(f"{op.name}: the next token repeats after page {page}; stopped paging")
        seen.add(token)
        body = (await _call(client, account, op, next_page_params(op, params, token), req)).body
        page += 1
        _merge(results, _get(body, pag.result_path or ()))
        token = _get(body, pag.token_path)
        _progress(progress, page, results)
    _drop(merged, pag.token_path)
    return merged


def _merge(results: Any, more: Any) -> None:
    """Appends a page's results: a list, or an object of lists (financial events by type)."""
    if isinstance(results, list) and isinstance(more, list):
        results.extend(more)
    elif isinstance(results, dict) and isinstance(more, dict):
        for key, values in more.items():
            if isinstance(values, list) and isinstance(results.get(key), list):
                results[key].extend(values)
            elif isinstance(values, list):
                results[key] = values


def _progress(enabled: bool, page: int, results: Any) -> None:
    if not enabled:
        return
    if isinstance(results, dict):
        count = sum(len(v) for v in results.values() if isinstance(v, list))
    else:
        count = len(results) if isinstance(results, list) else 0
    print(f"page {page}: {count} results", file=sys.stderr, flush=True)


async def _offset_pages(client: SpClient, account: str, op: Operation, params: dict[str, Any],
                        req: ExecRequest, offset: Offset, first: Any, progress: bool) -> Any:
    """Pages by position: the offset moves by the page size until the total is reached. With a
    result list the pages merge into the first; without one (label documents) the answer is the
    list of every page's body."""
    pages, body_arg, start = [first], req.body, _value(offset.offset, params, req.body) or 0
    size = _value(offset.limit, params, req.body)
    results = _get(first, tuple(offset.results.split("."))) if offset.results else None
    while size:
        total = _value(offset.total, params, body_arg, pages[-1])
        start += size
        if total is None or start >= total or len(pages) >= MAX_PAGES:
            break
        params, body_arg = _with_value(offset.offset, params, body_arg, start)
        body = (await _call(client, account, op, params, ExecRequest(**{**req.__dict__, "body": body_arg}))).body
        pages.append(body)
        if results is not None:
            _merge(results, _get(body, tuple(offset.results.split("."))))  # type: ignore[union-attr]
        _progress(progress, len(pages), results)
    return first if offset.results else pages


def _value(where: str, params: dict[str, Any], body: Any, response: Any = None) -> Any:
    """An integer at `query:NAME`, `param:NAME`, `body:a.b` or `response:a.b`, or None."""
    kind, _, path = where.partition(":")
    source = {"query": params, "param": params, "body": body, "response": response}[kind]
    value = source.get(path) if kind in ("query", "param") else _get(source, tuple(path.split(".")))
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None


def _with_value(where: str, params: dict[str, Any], body: Any, value: int) -> tuple[dict[str, Any], Any]:
    """Copies of the parameters and body with `value` set at `where`."""
    kind, _, path = where.partition(":")
    if kind == "query":
        return {**params, path: value}, body
    body = orjson.loads(orjson.dumps(body))
    node = body
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return params, body


async def _call(client: SpClient, account: str, op: Operation, params: dict[str, Any],
                req: ExecRequest) -> Any:
    if req.restricted:
        if "restricted" not in inspect.signature(client.call).parameters:
            raise UsageError("--restricted (restricted data tokens) is not supported in this version")
        return await client.call(account, op, params, req.body, restricted=req.restricted)
    return await client.call(account, op, params, req.body)


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


def is_production(acct: Any) -> bool:
    """Whether an account reaches Amazon's production SP-API (not its sandbox, not a simulator)."""
    if acct.endpoint in ("na", "eu", "fe"):
        return True
    host = urlsplit(acct.base_url).hostname or ""
    return host.endswith(".amazon.com") and "sandbox" not in host


def check_sandbox_only(op: Operation, name: str, acct: Any) -> None:
    """UsageError before any request for an operation Amazon serves only in its sandbox."""
    if op.sandbox_only and is_production(acct):
        raise UsageError(f"{op.name} is a sandbox-only operation (x-amzn-api-sandbox-only) and "
                         f"account {name} uses the production endpoint {acct.endpoint}; use an "
                         "account with endpoint sandbox-na, sandbox-eu or sandbox-fe")


async def exec_command(config: Any, req: ExecRequest, account: str | None = None) -> Any:
    """`spd exec`: validates first (no request for bad input), then calls; returns the body."""
    catalog = load_catalog()
    name, acct = config.account_for(account)
    check_sandbox_only(catalog.operation(req.api, req.operation), name, acct)
    op, params = prepare(catalog, req, list(acct.marketplace_ids or ()))
    name, client = _client_for(config, name)
    async with client:
        return await run_operation(client, name, op, params, req,
                                   progress=req.all_pages and sys.stderr.isatty())


def build_exec_request(api: str, operation: str, pairs: list[str], body: str | None,
                       all_pages: bool, restricted: str | None, validate: bool = True) -> ExecRequest:
    """An ExecRequest from command-line text."""
    elements = [e.strip() for e in restricted.split(",") if e.strip()] if restricted else None
    return ExecRequest(api, operation, parse_pairs(pairs), read_body(body), all_pages, elements,
                       validate)


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
