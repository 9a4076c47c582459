"""Every other pollable operation, served by one generic handler.

Each operation the contract table (spd.catalog.contract) gives time bounds for, and no hand-written module
serves, gets a seeded dataset (spd.sim.data.Dataset) whose objects are shaped by the catalog's
response schema (spd.sim.sample), with the identifier and timestamps where the contract says they
sit. Requests follow Amazon's rules as spd.sim.rules reads them: required parameters (the model's
and the prose's), the created or updated bounds and whether each includes its instant, windows,
reach, the 2-minute rule, page sizes, one marketplace where the parameter takes one, and expiring
next tokens that must come alone, with the same arguments, or with set values, as Amazon says.
Financial events come grouped in one list per event type, as Amazon sends them.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from spd.catalog.model import load_catalog
from spd.catalog.contract_types import MAX_WINDOW
from spd.sim import rules
from spd.sim.common import BAD_INPUT, ApiReject, Call, invalid, iso, parse_time
from spd.sim.data import Dataset, Record, add_version
from spd.sim.rules import SimType, sim_types
from spd.sim.sample import resolve, sample, set_path

FINANCIAL_EVENT_LISTS = ("ShipmentEventList", "RefundEventList", "ServiceFeeEventList",
                         "AdjustmentEventList", "ProductAdsPaymentEventList", "RetrochargeEventList")
DEFAULT_REACH = 90 * 86400.0  # lower bound when a request gives none
OMITTED_SHARE = 0.2  # of an omit-marketplace operation's objects: served only without it
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


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
        data = self.datasets.get(st.name)
        if data is None:
            common = dict(self.common, seed=self.common["seed"] * 1000 + st.index)
            data = Dataset("po", _factory(st, self.cap), count=self.count, **common)
            self.datasets[st.name] = data
        return data

    def render(self, st: SimType, rec: Record, idx: int) -> dict[str, Any]:
        """The object as the API returns it (one financial event, not yet grouped)."""
        key = (st.name, rec.id, idx)
        obj = self._rendered.get(key)
        if obj is None:
            obj = _render(st, rec, idx)
            self._rendered[key] = obj
        return obj


def _factory(st: SimType, cap: int | None) -> Callable[..., Record]:
    updates = "updated" in st.bounds
    lists = [n for n in FINANCIAL_EVENT_LISTS if n in st.lists] or list(st.lists)
    omit = rules.has_omit_rule(st)

    def make(rng: random.Random, t0: int, market: str, ids: set[str]) -> Record:
        while True:
            new = "".join(rng.choices(_ALNUM, k=12))
            if new not in ids:
                ids.add(new)
                break
        attrs: dict[str, Any] = {"list": rng.choice(lists)} if lists else {}
        if omit and rng.random() < OMITTED_SHARE:
            attrs["omitted_only"] = True  # e.g. US MFN transactions: only without marketplaceId
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
    node = resolve(st.op.response_schema, st.op.definitions)
    path = (*st.results_path, rec.attrs["list"]) if st.lists else st.results_path
    for key in path:
        node = resolve((node.get("properties") or {}).get(key), st.op.definitions)
    return node.get("items") or {}


def _render(st: SimType, rec: Record, idx: int) -> dict[str, Any]:
    obj = sample(_schema(st, rec), st.op.definitions, random.Random(f"{st.name}:{rec.id}"))
    if not isinstance(obj, dict):
        obj = {}
    if st.id_field:
        set_path(obj, st.id_field, rec.id)
    for field, value in (("created", rec.created), ("updated", rec.versions[idx].time)):
        path = st.item_field(field)
        if path:
            set_path(obj, path, iso(value))
    for key in ("marketplaceId", "MarketplaceId"):
        if key in obj:
            obj[key] = rec.marketplace
    return obj


# -- requests ---------------------------------------------------------------------------------

@dataclass
class Query:
    """A resolved search: which timestamp, the range and which ends include their instant,
    the marketplaces, the earliest creation time Amazon assumes, whether omitted-only data shows."""

    field: str
    lo: float
    hi: float
    markets: list[str]
    lo_in: bool = True
    hi_in: bool = True
    created_from: float | None = None
    omitted: bool = False
    empty: bool = False


def serve(call: Call, st: SimType) -> dict[str, Any]:
    """One page of a generic type: the first (filters) or a following one (next token)."""
    state = call.state
    token = call.query.get(st.token_param)
    if token:
        ttl = st.token_ttl(state.token_ttl)
        payload = state.codec.decode(token, op=st.name, now=call.now, ttl=ttl, name=st.token_param)
        rules.check_page2(st.token_param, st.page2, call.query, payload["a"])
        query, pos, size = Query(**payload["q"]), tuple(payload["pos"]), payload["n"]
    else:
        query, pos, size = _query(call, st), None, _size(call, st)
    world: GenericWorld = state.generic
    rows, nxt = ([], None) if query.empty else _page(world.dataset(st), query, call.now, pos, size)
    body: dict[str, Any] = {}
    objects = [world.render(st, rec, idx) for rec, idx in rows]
    _put(body, st.results_path, _group(objects, rows) if st.lists else objects)
    if nxt is not None:
        token_payload = {"op": st.name, "iat": call.now, "q": query.__dict__, "pos": list(nxt),
                         "n": size, "a": rules.page2_args(st.token_param, st.page2, call.query)}
        _put(body, st.token_path, state.codec.encode(token_payload))
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


def _size(call: Call, st: SimType) -> int:
    name = st.page_param
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
    q, now = call.query, call.now
    rules.check_required(st, q)
    field, ends = _bound_kind(st, q)
    after, lo_bound = ends["after"]
    before, hi_bound = ends.get("before", (None, None))
    hi = parse_time(before, q[before]) if before and q.get(before) else now
    window = st.limit(MAX_WINDOW)
    lo_default = hi - window.delta.total_seconds() if window else now - DEFAULT_REACH
    lo = parse_time(after, q[after]) if q.get(after) else lo_default
    served = rules.check_range(st, now, lo, hi, after, before, q)
    upper_sent = bool(before and q.get(before))
    return Query(field, lo, min(hi, now), rules.markets(st, q), lo_in=lo_bound.inclusive is True,
                 hi_in=not upper_sent or hi_bound.inclusive is True,
                 created_from=rules.default_reach(st, q, now),
                 omitted=rules.omitted_only(st, q), empty=not served)


def _bound_kind(st: SimType, q: Any) -> tuple[str, dict[str, Any]]:
    given = [(field, ends) for field, ends in sorted(st.bounds.items())
             if any(q.get(param) for param, _ in ends.values())]
    if len(given) > 1:
        raise invalid(BAD_INPUT, "Filter on either the creation or the update time, not both.")
    if given:
        return given[0]
    field = "created" if "created" in st.bounds else "updated"
    return field, st.bounds[field]


def _visible(query: Query, rec: Record, t: int) -> bool:
    """The filters besides the walk's inclusive range: excluded instants, marketplaces,
    Amazon's assumed earliest creation, data served only without the marketplace."""
    if (not query.lo_in and t == query.lo) or (not query.hi_in and t == query.hi):
        return False
    if query.markets and rec.marketplace not in query.markets:
        return False
    if query.created_from is not None and rec.created < query.created_from:
        return False
    return query.omitted or not rec.attrs.get("omitted_only")


def _page(data: Dataset, query: Query, now: float, pos: tuple[Any, ...] | None, size: int
          ) -> tuple[list[tuple[Record, int]], tuple[int, str] | None]:
    """Up to `size` rows after the keyset position `pos`, and the next position (or None)."""
    data.ensure(now)
    created = query.field == "created"
    walk = data.walk_created if created else data.walk_updated
    rows: list[tuple[Record, int]] = []
    for rec, idx in walk(now, query.lo, query.hi, pos):
        if not _visible(query, rec, rec.created if created else rec.versions[idx].time):
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
    """Every version of the type in [lo, hi] by now; with data, the object as spd emits it
    (a financial event flattened with its `eventType`)."""
    st = sim_types()[name]
    world: GenericWorld = state.generic
    data = world.dataset(st)
    now = state.now()
    data.ensure(now)
    rows = data.ground_truth(field, lo, hi, now)
    if markets:
        rows = [r for r in rows if r["marketplace_id"] in markets]
    for row in rows:
        rec = data.by_id[row["id"]]
        row["omitted_only"] = bool(rec.attrs.get("omitted_only"))
        if with_data:
            obj = world.render(st, rec, row["version"])
            row["data"] = _as_emitted_event(rec.attrs["list"], obj) if st.lists else obj
        for key in ("version_time", "visible_at", "superseded_at"):
            if row[key] is not None:
                row[key] = iso(row[key])
    return rows


def _as_emitted_event(list_name: str, event: dict[str, Any]) -> dict[str, Any]:
    """A financial event as spd emits it: its list's name without `List` as `eventType`. Stated
    here, not taken from spd's hooks, so that a test compares two independent readings."""
    return {**event, "eventType": list_name.removesuffix("List")}


__all__ = ["ApiReject", "GenericWorld", "ground_truth", "operations", "sim_types", "usage_plans"]
