"""Running one catalog operation, every page of it merged (`spd exec --all-pages`, jobs).

`--all-pages` follows the next token as Amazon says (the token alone, with the same arguments, or
with QueryType=NEXT_TOKEN: the object registry's declarations) or, for operations that page by
position, the offset (spd.catalog.contract), and merges the results into the first page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from spd.catalog.contract_types import Offset
from spd.catalog.model import Operation
from spd.catalog.requests import DEFAULT_MAX_PAGES, ExecRequest, offset_paging, offset_value
from spd.client.http import SpClient
from spd.core.errors import ApiError, SpdError
from spd.core.paths import dig
from spd.sources.registry import next_page_params

PageProgress = Callable[[int, int], None]  # (pages so far, results so far)


class PageCapError(SpdError):
    """`--all-pages` reached `--max-pages` with more pages to fetch (nothing is printed)."""


async def run_operation(client: SpClient, account: str, op: Operation, params: dict[str, Any],
                        req: ExecRequest, *, progress: PageProgress | None = None) -> Any:
    """Calls `op` (every page with `all_pages`); returns the response body, pages merged.
    `progress` hears (pages so far, results so far) after every page."""
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
    results = dig(merged, pag.result_path or ())
    token, page, seen = dig(merged, pag.token_path), 1, set()
    _progress(progress, page, results)
    while token:
        if token in seen:
            raise ApiError(f"{op.name}: the next token repeats after page {page}; stopped paging")
        _check_cap(op, req, page, results)
        seen.add(token)
        body = (await _call(client, account, op, next_page_params(op, params, token), req)).body
        page += 1
        _merge(results, dig(body, pag.result_path or ()))
        token = dig(body, pag.token_path)
        _progress(progress, page, results)
    _drop(merged, pag.token_path)
    return merged


def _check_cap(op: Operation, req: ExecRequest, pages: int, results: Any) -> None:
    """PageCapError when `pages` pages are in and the next would pass `req.max_pages`."""
    if pages >= req.max_pages:
        raise PageCapError(f"{op.name}: stopped after {pages} pages ({count_results(results)} results) "
                           f"with more to fetch; raise --max-pages (default {DEFAULT_MAX_PAGES}) or "
                           "ask for less (a shorter time range, filters)")


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


def count_results(results: Any) -> int:
    """The results merged so far: a list's items, or the items of an object's lists."""
    if isinstance(results, dict):
        return sum(len(v) for v in results.values() if isinstance(v, list))
    return len(results) if isinstance(results, list) else 0


def _progress(progress: PageProgress | None, page: int, results: Any) -> None:
    if progress is not None:
        progress(page, count_results(results))


async def _offset_pages(client: SpClient, account: str, op: Operation, params: dict[str, Any],
                        req: ExecRequest, offset: Offset, first: Any,
                        progress: PageProgress | None) -> Any:
    """Pages by position: the offset moves by the page size until the total is reached. With a
    result list the pages merge into the first; without one (label documents) the answer is the
    list of every page's body."""
    pages, body_arg, start = [first], req.body, offset_value(offset.offset, params, req.body) or 0
    size = offset_value(offset.limit, params, req.body)
    results = dig(first, offset.results) if offset.results else None
    while size:
        total = offset_value(offset.total, params, body_arg, pages[-1])
        start += size
        if total is None or start >= total:
            break
        _check_cap(op, req, len(pages), results if results is not None else pages)
        params, body_arg = _with_value(offset.offset, params, body_arg, start)
        body = (await _call(client, account, op, params, ExecRequest(**{**req.__dict__, "body": body_arg}))).body
        pages.append(body)
        if results is not None and offset.results:
            _merge(results, dig(body, offset.results))
        _progress(progress, len(pages), results)
    return first if offset.results else pages


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
    return await client.call(account, op, params, req.body, restricted=req.restricted or None)


def _drop(body: Any, path: tuple[str, ...]) -> None:
    """Removes the last page's (absent) token so merged output does not look like a first page."""
    parent = dig(body, path[:-1])
    if isinstance(parent, dict) and path:
        parent.pop(path[-1], None)
