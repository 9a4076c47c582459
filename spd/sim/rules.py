"""What the simulator knows of each generically served operation, and its parameter checks.

Everything comes from Amazon: the structure from the catalog (generated from the models: the
parameters, `required`, schema maxima, the next token and where results sit), the prose from the
reviewed contract table (`spd.catalog.contract`: the time bounds and what each includes, windows, reach,
the 2-minute rule, page sizes the prose gives, what a next-page request carries). Never from
spd's object registry (`spd.sources.registry`): a wrong declaration there must meet Amazon's rules here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from spd.catalog import contract
from spd.catalog.model import Operation, load_catalog
from spd.catalog.contract_types import (DEFAULT_REACH, ID, LAG, MAX_AGE, MAX_WINDOW, OMIT_MARKETPLACE,
                                PAGE_SIZE, REQUIRES, SAME_MARKETPLACE, TOKEN_TTL, Bound, Limit,
                                Page2, Requires)
from spd.sim.common import BAD_INPUT, invalid, parse_time, query_list
from spd.sim.sample import resolve

# Served by their own modules (orders.py, vendor.py).
HAND_WRITTEN = frozenset({"ordersV0.getOrders", "orders_2026-01-01.searchOrders",
                          "vendorOrders.getPurchaseOrders"})
# How Amazon names marketplace parameters; which of an operation's it has is the catalog's.
MARKETPLACE_NAMES = ("MarketplaceIds", "marketplaceIds", "MarketplaceId", "marketplaceId")
FIXED_PAGE = 50  # page size of operations without a page-size parameter
DEFAULT_LIMIT = timedelta(0)


@dataclass(frozen=True)
class SimType:
    """One generically served operation: its catalog entry and Amazon's rules for it."""

    name: str
    op: Operation
    index: int
    bounds: dict[str, dict[str, tuple[str, Bound]]]  # field -> end -> (param, Bound)
    id_field: str | None
    page_param: str | None
    page_max: int
    market_param: str | None
    single_market: bool
    page2: Page2
    lists: tuple[str, ...]  # results hold one list per kind (financial events), else ()

    @property
    def route(self) -> str:
        return self.op.path

    @property
    def token_param(self) -> str:
        return self.op.pagination.token_param  # type: ignore[union-attr]

    @property
    def token_path(self) -> tuple[str, ...]:
        return self.op.pagination.token_path  # type: ignore[union-attr]

    @property
    def results_path(self) -> tuple[str, ...]:
        return self.op.pagination.result_path  # type: ignore[union-attr, return-value]

    def item_field(self, field: str) -> str | None:
        """The result item's field a `created`/`updated` bound compares (first of fallbacks)."""
        ends = self.bounds.get(field) or {}
        for _, bound in ends.values():
            spec = bound.item_field
            return spec[0] if isinstance(spec, tuple) else spec
        return None

    def limit(self, kind: str, param: str | None = None) -> Limit | None:
        for r in contract.rules_for(self.name, kind):
            if (param is None or r.where == param) and isinstance(r.value, Limit):
                return r.value
        return None

    def token_ttl(self, default: float) -> float:
        found = contract.rule(self.name, TOKEN_TTL)
        return found.value.total_seconds() if found else default


@functools.lru_cache(maxsize=1)
def sim_types() -> dict[str, SimType]:
    """Every operation the contract gives time bounds for, but those served by hand."""
    cat = load_catalog()
    out: dict[str, SimType] = {}
    for index, name in enumerate(contract.operations()):
        ends = contract.bounds(name)
        if not ends or name in HAND_WRITTEN:
            continue
        op = cat.operation(*name.split(".", 1))
        page_param, page_max = _page_size(name, op)
        market = next((p for p in MARKETPLACE_NAMES if op.param(p) is not None), None)
        param = op.param(market) if market else None
        out[name] = SimType(
            name, op, index, ends, _id(name), page_param, page_max, market,
            param is not None and (param.type != "array" or param.max_items == 1),
            contract.page2(name), _lists(op))
    return out


def _id(name: str) -> str | None:
    found = contract.rule(name, ID)
    return found.value if found else None


def _page_size(name: str, op: Operation) -> tuple[str | None, int]:
    found = contract.rule(name, PAGE_SIZE)
    if found is None:
        return None, FIXED_PAGE
    param = op.param(str(found.where))
    maximum = found.value if found.value is not None else (param.maximum if param else None)
    return found.where, int(maximum or FIXED_PAGE)


def _lists(op: Operation) -> tuple[str, ...]:
    """The list names of a result object made of lists (one per event type), else ()."""
    node: Any = op.response_schema
    for key in op.pagination.result_path or ():  # type: ignore[union-attr]
        node = (resolve(node, op.definitions).get("properties") or {}).get(key)
    node = resolve(node, op.definitions)
    if node.get("type") == "array":
        return ()
    return tuple(sorted(name for name, sub in (node.get("properties") or {}).items()
                        if resolve(sub, op.definitions).get("type") == "array"))


# -- checks of a first-page request -------------------------------------------------------------


def check_required(st: SimType, q: Mapping[str, str]) -> None:
    """The model's required parameters, and what the prose requires on a first page."""
    missing = [p.name for p in st.op.params if p.required and p.location == "query"
               and p.name != st.token_param and not q.get(p.name)]
    if missing:
        raise invalid(BAD_INPUT, f"Missing required parameter(s): {', '.join(missing)}.")
    for r in contract.rules_for(st.name, REQUIRES):
        _check_requires(r.value, q, r.quote)


def _check_requires(req: Requires, q: Mapping[str, str], quote: str) -> None:
    def sent(cond: str) -> bool:
        name, eq, value = cond.partition("=")
        return bool(q.get(name)) and (not eq or q.get(name) == value)

    if req.when and not any(sent(c) for c in req.when):
        return
    present = [n for n in req.need if sent(n)]
    if (req.any_of and not present) or (not req.any_of and len(present) < len(req.need)):
        raise invalid(BAD_INPUT, quote)


def check_range(st: SimType, now: float, lo: float, hi: float, after: str, before: str | None,
                q: Mapping[str, str]) -> bool:
    """The 2-minute rules, the maximum window and reach; False: Amazon answers empty."""
    for param in (after, before):
        lag = st.limit(LAG, param) if param and q.get(param) else None
        value = lo if param == after else hi
        if lag is not None and value > now - lag.delta.total_seconds():
            raise invalid(BAD_INPUT, f"{param} must be more than {lag.delta.total_seconds() / 60:g} "
                                     "minutes before the time of the request.")
    if lo > hi:
        raise invalid(BAD_INPUT, f"{after} must be earlier than {before or 'now'}.")
    window = st.limit(MAX_WINDOW)
    if window is not None and before and q.get(before) and hi - lo > window.delta.total_seconds():
        if window.beyond == "empty":
            return False
        raise invalid(BAD_INPUT, f"The range between {after} and {before} must not exceed "
                                 f"{window.delta.total_seconds() / 86400:g} days.")
    reach = st.limit(MAX_AGE)
    if reach is not None and lo < now - reach.delta.total_seconds():
        raise invalid(BAD_INPUT, f"{after} must be no earlier than "
                                 f"{reach.delta.total_seconds() / 86400:g} days before the request.")
    return True


def default_reach(st: SimType, q: Mapping[str, str], now: float) -> float | None:
    """The earliest creation time Amazon assumes when a parameter is left out (or None)."""
    found = contract.rule(st.name, DEFAULT_REACH)
    if found is None or q.get(found.value[0]):
        return None
    reach: timedelta = found.value[1]
    return now - reach.total_seconds()


def markets(st: SimType, q: Any) -> list[str]:
    """The marketplaces asked for; one only where the parameter takes one."""
    if not st.market_param:
        return []
    ids = query_list(q, st.market_param)
    if st.single_market and len(ids) > 1:
        raise invalid(BAD_INPUT, f"{st.market_param} takes exactly one marketplace id; got {len(ids)}.")
    same = contract.rule(st.name, SAME_MARKETPLACE)
    if same is not None and q.get(same.value) and ids and q[same.value] != ids[0]:
        raise invalid(BAD_INPUT, f"{same.value} must be the marketplace of {st.market_param}.")
    return ids


def omitted_only(st: SimType, q: Mapping[str, str]) -> bool:
    """Whether the data Amazon serves only without a parameter is served (it was left out)."""
    found = contract.rule(st.name, OMIT_MARKETPLACE)
    return found is not None and not q.get(found.value)


def has_omit_rule(st: SimType) -> bool:
    return contract.rule(st.name, OMIT_MARKETPLACE) is not None


def time_param(name: str, q: Mapping[str, str]) -> float | None:
    return parse_time(name, q[name]) if q.get(name) else None


# -- checks of a next-page request ------------------------------------------------------------


def page2_args(token_param: str, mode: Page2, q: Any) -> list[tuple[str, str]]:
    """The arguments a next-page request must repeat: every query parameter but the token and
    those Amazon lets change, normalized (arrays as sorted values)."""
    skip = {token_param, *mode.except_}
    out = []
    for name in sorted(set(q.keys()) - skip):
        values = sorted(query_list(q, name)) if len(q.getall(name)) > 1 or "," in q[name] else [q[name]]
        out.append((name, ",".join(values)))
    return out


def check_page2(token: str, mode: Page2, q: Any, first: list[list[str]]) -> None:
    """A next token sent as Amazon says: alone, with the same arguments, or with set values."""
    for name, value in mode.set:
        if q.get(name) != value:
            raise invalid(BAD_INPUT, f"{name} must be {value} when {token} is given.")
    if mode.mode == "only":
        extra = sorted(set(q.keys()) - {token})
        if extra:
            raise invalid(BAD_INPUT, f"{token} must be the only parameter; got {extra}.")
    elif mode.mode == "same" and [list(a) for a in page2_args(token, mode, q)] != [list(a) for a in first]:
        raise invalid(BAD_INPUT, f"Send {token} with the same arguments as the request that "
                                 "produced it.")
