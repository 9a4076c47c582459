"""Next-page conformance mode (`SimSettings(pager=True)`, `spd sim --pager`).

Every operation of the catalog that pages answers with two pages of one sample result each, and
its second request must carry what Amazon says (spd.catalog.contract): the token as the only parameter,
with set values (QueryType=NEXT_TOKEN), or with the same arguments (the default; the body
counts as an argument). Operations that page by position must move the offset by the page size
and stop at the total. A refused second page is a 400 like Amazon's; `/_sim/stats` counts the
second pages accepted (`page2_ok`), so a test can tell a follow-up from a stop.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from spd.catalog import contract
from spd.catalog.model import Operation, load_catalog
from spd.catalog.contract_types import OFFSET, Offset
from spd.sim.common import ApiReject, invalid, query_list
from spd.sim.limits import UNLIMITED_RATE
from spd.sim.rules import check_page2, page2_args
from spd.sim.sample import resolve, sample
from spd.sim.success import success_status

Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


def paged_operations() -> list[Operation]:
    """Every catalog operation that pages by token or, where the contract says so, by offset."""
    return [op for op in load_catalog().operations()
            if op.pagination is not None or contract.rule(op.name, OFFSET) is not None]


def add_pager_routes(app: web.Application, state: Any) -> None:
    """One route per paged operation, answered by the pager."""
    for op in paged_operations():
        app.router.add_route(op.method, op.path, _endpoint(op, state))


def _endpoint(op: Operation, state: Any) -> Endpoint:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        stats = state.stats.setdefault(op.name, Counter())
        stats["requests"] += 1
        headers = {"x-amzn-RequestId": str(uuid.uuid4()), "x-amzn-RateLimit-Limit": UNLIMITED_RATE}
        try:
            state._authorize(request)
            raw = await request.read()
            body = orjson.loads(raw) if raw else None
            offset = contract.rule(op.name, OFFSET)
            if offset is not None:
                answer = _offset_page(op, offset.value, request.query, body, stats)
            else:
                answer = _token_page(op, state, request.query, body, stats)
        except ApiReject as exc:
            stats["client_errors"] += 1
            return web.json_response(exc.body(), status=exc.status, headers=headers)
        return web.Response(body=orjson.dumps(answer), status=success_status(op.name), headers=headers,
                            content_type="application/json")

    return endpoint


def _args(op: Operation, query: Any, body: Any) -> list[list[str]]:
    """What a same-arguments next page must repeat: the query (token aside) and the body."""
    mode = contract.page2(op.name)
    args = [list(a) for a in page2_args(op.pagination.token_param, mode, query)]  # type: ignore[union-attr]
    if body is not None:
        args.append(["<body>", orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()])
    return args


def _token_page(op: Operation, state: Any, query: Any, body: Any, stats: Counter[str]) -> dict[str, Any]:
    pag = op.pagination
    assert pag is not None and pag.result_path is not None
    token = query.get(pag.token_param)
    answer: dict[str, Any] = {}
    if not token:
        _put(answer, pag.result_path, _results(op, pag.result_path, 1))
        payload = {"op": op.name, "iat": state.now(), "a": _args(op, query, body)}
        _put(answer, pag.token_path, state.codec.encode(payload))
        return answer
    payload = state.codec.decode(token, op=op.name, now=state.now(), ttl=state.token_ttl,
                                 name=pag.token_param)
    mode = contract.page2(op.name)
    check_page2(pag.token_param, mode, query, [a for a in payload["a"] if a[0] != "<body>"])
    if mode.mode == "same" and [a for a in payload["a"] if a[0] == "<body>"] != \
            [a for a in _args(op, query, body) if a[0] == "<body>"]:
        raise invalid(details="Send the next token with the same request body.")
    stats["page2_ok"] += 1
    _put(answer, pag.result_path, _results(op, pag.result_path, 2))
    return answer


def _offset_page(op: Operation, rule: Offset, query: Any, body: Any, stats: Counter[str]) -> Any:
    """A page at an offset: the offset must be a multiple of the page size below the total."""
    start, size = _int(rule.offset, query, body), _int(rule.limit, query, body)
    total = (_int(rule.total, query, body) if rule.total.startswith("param:") else (size or 1) + 1) or 0
    if size is None or size < 1 or start is None or start % size or start >= total:
        raise invalid(details=f"{rule.offset} must be a multiple of {rule.limit} below {total}; "
                              f"got {start}")
    if start:
        stats["page2_ok"] += 1
    if rule.results is None:  # a document per page (labels)
        return {"payload": {"DownloadURL": f"https://labels.example/{op.id}?start={start}"}}
    answer: dict[str, Any] = {}
    _put(answer, tuple(rule.results.split(".")), _results(op, tuple(rule.results.split(".")), start + 1))
    _put(answer, tuple(rule.total.split(":", 1)[1].split(".")), total)
    return answer


def _int(where: str, query: Any, body: Any) -> int | None:
    kind, _, path = where.partition(":")
    if kind in ("query", "param"):
        values = query_list(query, path)
        value: Any = values[0] if values else None
    else:
        value = body
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None


def _results(op: Operation, path: tuple[str, ...], seed: int) -> Any:
    """One sample result: in a list, or in the first list of an object of lists."""
    node = resolve(op.response_schema, op.definitions)
    for key in path:
        node = resolve((node.get("properties") or {}).get(key), op.definitions)
    rng = random.Random(f"{op.name}:{seed}")
    if node.get("type") == "array":
        return [sample(node.get("items") or {}, op.definitions, rng)]
    lists = sorted(n for n, s in (node.get("properties") or {}).items()
                   if resolve(s, op.definitions).get("type") == "array")
    items = resolve(node["properties"][lists[0]], op.definitions).get("items") or {}
    return {lists[0]: [sample(items, op.definitions, rng)]}


def _put(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = body
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
