"""Every other pollable object type, served by one generic handler.

Each type the registry declares (spd.objects) and no hand-written module serves gets a seeded
dataset (spd.sim.data.Dataset) whose objects are shaped by the catalog's response schema
(spd.sim.sample), with the id and both timestamps where the registry says they sit. Requests
follow Amazon's rules as the models and guides state them: required parameters, the created or
updated bound pair, the maximum window, how far back the API reaches, the 2-minute rule where it
applies, page-size limits, one marketplace where the parameter takes one, and expiring next
tokens (30 seconds for getInventorySummaries) that must be sent alone where Amazon says so.
Financial events come grouped in one list per event type, as Amazon sends them.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from spd.catalog import Operation, load_catalog
from spd.object_hooks import flatten
from spd.objects import ObjectType, item_schema, object_types
from spd.sim.common import BAD_INPUT, ApiReject, Call, invalid, iso, parse_time, query_list
from spd.sim.data import Dataset, Record, add_version
from spd.sim.sample import resolve, sample, set_path

# Served by their own modules (orders.py, vendor.py).
HAND_WRITTEN = frozenset({"ordersV0.getOrders", "orders_2026-01-01.searchOrders",
                          "vendorOrders.getPurchaseOrders"})
FINANCIAL_EVENT_LISTS = ("ShipmentEventList", "RefundEventList", "ServiceFeeEventList",
                         "AdjustmentEventList", "ProductAdsPaymentEventList", "RetrochargeEventList")
DEFAULT_REACH = 90 * 86400.0  # lower bound when a request gives none
FIXED_PAGE = 50  # page size of types without a page-size parameter
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


@dataclass(frozen=True)
class SimType:
    """One generically served type: its registry entry, catalog operation and page limits."""

    ot: ObjectType
    op: Operation
    index: int
    page_max: int

    @property
    def route(self) -> str:
        return self.op.path


@functools.lru_cache(maxsize=1)
def sim_types() -> dict[str, SimType]:
    """Every supported registry type not served by a hand-written module, by name."""
    cat = load_catalog()
    out: dict[str, SimType] = {}
    for index, ot in enumerate(object_types()):
        if ot.supported and ot.kind == "operation" and ot.name not in HAND_WRITTEN:
            op = cat.operation(ot.api, ot.operation)
            out[ot.name] = SimType(ot, op, index, _page_max(ot, op))
    return out


def _page_max(ot: ObjectType, op: Operation) -> int:
    param = op.param(ot.page_size_param) if ot.page_size_param else None
    if param is None:
        return FIXED_PAGE
    return int(param.maximum) if param.maximum is not None else (ot.page_size_max or 100)


def usage_plans() -> dict[str, tuple[float, int]]:
    """The catalog's rate and burst of every generic type (and of getOrderItems, which
    `include: [items]` calls) that has a Usage Plan."""
    ops = [t.op for t in sim_types().values()]
    ops.append(load_catalog().operation("ordersV0", "getOrderItems"))
    return {op.name: (op.rate, op.burst) for op in ops
            if op.rate is not None and op.burst is not None}


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


def operations() -> dict[str, tuple[str, str, Handler]]:
    """Route entries for app.OPERATIONS: name -> (method, path, handler)."""
    def make(name: str) -> Handler:
        async def handler(call: Call) -> dict[str, Any]:
            return serve(call, sim_types()[name])
        return handler

    return {name: (t.op.method, t.route, make(name)) for name, t in sim_types().items()}


# -- data -------------------------------------------------------------------------------------

class GenericWorld:
    """The datasets of the generic types, built on first use."""

    def __init__(self, settings: Any, common: dict[str, Any]) -> None:
        self.count = getattr(settings, "objects_per_type", 300)
        self.common = common
        self.cap = None if common["live_from"] is not None else common["end"]
        self.datasets: dict[str, Dataset] = {}
        self._rendered: dict[tuple[str, str, int], dict[str, Any]] = {}

    def dataset(self, st: SimType) -> Dataset:
        """The type's dataset (seeded by the simulator's seed and the type)."""
        data = self.datasets.get(st.ot.name)
        if data is None:
            common = dict(self.common, seed=self.common["seed"] * 1000 + st.index)
            data = Dataset("po", _factory(st, self.cap), count=self.count, **common)
            self.datasets[st.ot.name] = data
        return data

    def render(self, st: SimType, rec: Record, idx: int) -> dict[str, Any]:
        """The object as the API returns it (one financial event, not yet flattened)."""
        key = (st.ot.name, rec.id, idx)
        obj = self._rendered.get(key)
        if obj is None:
            obj = _render(st, rec, idx)
            self._rendered[key] = obj
        return obj


def _factory(st: SimType, cap: int | None) -> Callable[..., Record]:
    updates = bool(st.ot.updated_bounds)

    def make(rng: random.Random, t0: int, market: str, ids: set[str]) -> Record:
        while True:
            new = "".join(rng.choices(_ALNUM, k=12))
            if new not in ids:
                ids.add(new)
                break
        attrs = {"list": rng.choice(FINANCIAL_EVENT_LISTS)} if st.ot.flatten else {}
        versions: list[Any] = []
        add_version(versions, rng, t0, 0, "CREATED")
        t = t0
        for _ in range(rng.randint(0, 2) if updates else 0):
            t += rng.randint(600, 3 * 86400)
            if cap is not None and t >= cap:
                break
            add_version(versions, rng, t, 0, "UPDATED")
        return Record(new, t0, market, attrs, versions)

    return make


def _schema(st: SimType, rec: Record) -> Any:
    if st.ot.flatten:  # the element schema of the record's own event list
        node = resolve(st.op.response_schema, st.op.definitions)
        for key in (*st.ot.results_path, rec.attrs["list"]):
            node = resolve((node.get("properties") or {}).get(key), st.op.definitions)
        return node.get("items") or {}
    return item_schema(st.op, st.ot.results_path) or {}


def _render(st: SimType, rec: Record, idx: int) -> dict[str, Any]:
    ot = st.ot
    obj = sample(_schema(st, rec), st.op.definitions, random.Random(f"{ot.name}:{rec.id}"))
    if not isinstance(obj, dict):
        obj = {}
    if ot.id_field:
        set_path(obj, ot.id_field, rec.id)
    for spec, value in ((ot.created_field, rec.created), (ot.updated_field, rec.versions[idx].time)):
        path = spec[0] if isinstance(spec, tuple) else spec
        if path:
            set_path(obj, path, iso(value))
    for key in ("marketplaceId", "MarketplaceId"):
        if key in obj:
            obj[key] = rec.marketplace
    return obj


# -- requests ---------------------------------------------------------------------------------

@dataclass
class Query:
    """A resolved search: which timestamp, the inclusive range, the marketplaces."""

    field: str
    lo: float
    hi: float
    markets: list[str]


def serve(call: Call, st: SimType) -> dict[str, Any]:
    """One page of a generic type: the first (filters) or a following one (next token)."""
    ot, state = st.ot, call.state
    token = call.query.get(ot.token_param)
    if token:
        ttl = ot.token_ttl.total_seconds() if ot.token_ttl else state.token_ttl
        payload = state.codec.decode(token, op=ot.name, now=call.now, ttl=ttl, name=ot.token_param)
        _check_token_request(call, st, payload)
        query, pos, size = Query(**payload["q"]), tuple(payload["pos"]), payload["n"]
    else:
        query, pos, size = _query(call, st), None, _size(call, st)
    world: GenericWorld = state.generic
    rows, nxt = _page(world.dataset(st), query, call.now, pos, size)
    body: dict[str, Any] = {}
    objects = [world.render(st, rec, idx) for rec, idx in rows]
    _put(body, ot.results_path, _group(objects, rows) if ot.flatten else objects)
    if nxt is not None:
        token_payload = {"op": ot.name, "iat": call.now, "q": query.__dict__, "pos": list(nxt),
                         "n": size, "a": _bound_args(call, st)}
        _put(body, ot.token_path, state.codec.encode(token_payload))
    return body


def _group(objects: list[dict[str, Any]], rows: list[tuple[Record, int]]) -> dict[str, Any]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for obj, (rec, _idx) in zip(objects, rows):
        grouped.setdefault(rec.attrs["list"], []).append(obj)
    return grouped


def _put(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = body
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def _bound_names(st: SimType) -> list[str]:
    return [n for b in (st.ot.created_bounds, st.ot.updated_bounds) if b for n in b if n]


def _bound_args(call: Call, st: SimType) -> dict[str, str]:
    return {n: call.query[n] for n in _bound_names(st) if n in call.query}


def _check_token_request(call: Call, st: SimType, payload: dict[str, Any]) -> None:
    """A next token alone where Amazon wants it alone, else with the same arguments."""
    ot, q = st.ot, call.query
    for name, value in ot.token_params:
        if q.get(name) != value:
            raise invalid(BAD_INPUT, f"{name} must be {value} when {ot.token_param} is given.")
    if ot.token_alone:
        extra = [n for n in _bound_names(st) if n in q]
        if extra:
            raise invalid(BAD_INPUT, f"{ot.token_param} must be the only parameter; got {extra}.")
    elif _bound_args(call, st) != payload.get("a", {}):
        raise invalid(BAD_INPUT, f"Send {ot.token_param} with the same arguments as the request "
                                 "that produced it.")


def _size(call: Call, st: SimType) -> int:
    name = st.ot.page_size_param
    raw = call.query.get(name) if name else None
    if raw is None or raw == "":
        return st.page_max if name is None else min(10, st.page_max)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= st.page_max:
        raise invalid(BAD_INPUT, f"{name} must be an integer from 1 to {st.page_max}; got {raw!r}.")
    return value


def _query(call: Call, st: SimType) -> Query:
    ot, op, q, now = st.ot, st.op, call.query, call.now
    missing = [p.name for p in op.params if p.required and p.location == "query"
               and p.name != ot.token_param and not q.get(p.name)]
    if missing:
        raise invalid(BAD_INPUT, f"Missing required parameter(s): {', '.join(missing)}.")
    for name, value in ot.fixed_params:
        if value != "{marketplace}" and q.get(name) not in (None, value):
            raise invalid(BAD_INPUT, f"{name} must be {value}.")
    kind, (after_name, before_name) = _bound_kind(st, q)
    hi = parse_time(before_name, q[before_name]) if before_name and q.get(before_name) else now
    lo_default = hi - ot.max_window.total_seconds() if ot.max_window else now - DEFAULT_REACH
    lo = parse_time(after_name, q[after_name]) if q.get(after_name) else lo_default
    _check_range(st, now, lo, hi, after_name, before_name if q.get(before_name or "") else None)
    return Query(kind, lo, min(hi, now), _markets(st, q))


def _bound_kind(st: SimType, q: Any) -> tuple[str, tuple[str, str | None]]:
    given = [(kind, b) for kind, b in (("created", st.ot.created_bounds), ("updated", st.ot.updated_bounds))
             if b and any(n and q.get(n) for n in b)]
    if len(given) > 1:
        raise invalid(BAD_INPUT, "Filter on either the creation or the update time, not both.")
    if given:
        return given[0]
    kind = "created" if st.ot.created_bounds else "updated"
    return kind, (st.ot.created_bounds or st.ot.updated_bounds)  # type: ignore[return-value]


def _check_range(st: SimType, now: float, lo: float, hi: float, after: str, before: str | None) -> None:
    ot = st.ot
    if before and ot.lag and hi > now - ot.lag.total_seconds():
        raise invalid(BAD_INPUT, f"{before} must be more than {ot.lag.total_seconds() / 60:g} "
                                 "minutes before the time of the request.")
    if lo > hi:
        raise invalid(BAD_INPUT, f"{after} must be earlier than {before or 'now'}.")
    if ot.max_window and hi - lo > ot.max_window.total_seconds():
        raise invalid(BAD_INPUT, f"The range between {after} and {before} must not exceed "
                                 f"{ot.max_window.total_seconds() / 86400:g} days.")
    if ot.max_age and lo < now - ot.max_age.total_seconds():
        raise invalid(BAD_INPUT, f"{after} must be no earlier than "
                                 f"{ot.max_age.total_seconds() / 86400:g} days before the request.")


def _markets(st: SimType, q: Any) -> list[str]:
    name = st.ot.marketplace_param
    if not name:
        return []
    markets = query_list(q, name)
    if st.ot.single_marketplace and len(markets) > 1:
        raise invalid(BAD_INPUT, f"{name} takes exactly one marketplace id; got {len(markets)}.")
    for fixed, value in st.ot.fixed_params:  # granularityId names the marketplace too
        if value == "{marketplace}" and q.get(fixed) and markets and q[fixed] != markets[0]:
            raise invalid(BAD_INPUT, f"{fixed} must be the marketplace of {name}.")
    return markets


def _page(data: Dataset, query: Query, now: float, pos: tuple[Any, ...] | None, size: int
          ) -> tuple[list[tuple[Record, int]], tuple[int, str] | None]:
    """Up to `size` rows after the keyset position `pos`, and the next position (or None)."""
    data.ensure(now)
    created = query.field == "created"
    walk = data.walk_created if created else data.walk_updated
    rows: list[tuple[Record, int]] = []
    for rec, idx in walk(now, query.lo, query.hi, pos):  # type: ignore[arg-type]
        if query.markets and rec.marketplace not in query.markets:
            continue
        rows.append((rec, idx))
        if len(rows) > size:
            break
    if len(rows) <= size:
        return rows, None
    rec, idx = rows[size - 1]
    return rows[:size], (rec.created if created else rec.versions[idx].time, rec.id)


# -- ground truth (/_sim/objects) -------------------------------------------------------------

def ground_truth(state: Any, name: str, field: str, lo: float, hi: float, markets: set[str],
                 with_data: bool) -> list[dict[str, Any]]:
    """Every version of the type in [lo, hi] by now, with the object as spd emits it."""
    st = sim_types()[name]
    world: GenericWorld = state.generic
    data = world.dataset(st)
    now = state.now()
    data.ensure(now)
    rows = data.ground_truth(field, lo, hi, now)
    if markets:
        rows = [r for r in rows if r["marketplace_id"] in markets]
    for row in rows:
        if with_data:
            obj = world.render(st, data.by_id[row["id"]], row["version"])
            row["data"] = flatten(st.ot.flatten, {data.by_id[row["id"]].attrs["list"]: [obj]})[0] \
                if st.ot.flatten else obj
        for key in ("version_time", "visible_at", "superseded_at"):
            if row[key] is not None:
                row[key] = iso(row[key])
    return rows


__all__ = ["ApiReject", "GenericWorld", "ground_truth", "operations", "sim_types", "usage_plans"]
