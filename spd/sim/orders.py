"""Orders v0 getOrders and Orders 2026-01-01 searchOrders, with Amazon's parameter rules."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from multidict import MultiMapping

from spd.sim.common import (
    BAD_INPUT,
    LAG_MESSAGE,
    Call,
    check_enum,
    floor_second,
    invalid,
    iso,
    parse_time,
    query_int,
    query_list,
)
from spd.sim.data import MARKETPLACES, Dataset, Record
from spd.sim.render import V0_TO_2026, render_2026, render_v0

GET_ORDERS = "ordersV0.getOrders"
SEARCH_ORDERS = "orders_2026-01-01.searchOrders"
V0_NAMES = {"ca": "CreatedAfter", "cb": "CreatedBefore", "la": "LastUpdatedAfter",
            "lb": "LastUpdatedBefore"}
V26_NAMES = {"ca": "createdAfter", "cb": "createdBefore", "la": "lastUpdatedAfter",
             "lb": "lastUpdatedBefore"}
# The simulator's own reading of each model's sentence on the two lower bounds (the created and
# updated bounds never go together: `cannot be set when`, `neither ... may be provided`). Orders
# 2026-01-01 says "exactly one", so both lower bounds are refused in its words; v0 says "Either
# ... is required" and refuses both through its other sentence. tests/test_exec_contract_rows.py
# finds each quote in Amazon's model file.
V0_ONE_OF = ("Either the `CreatedAfter` parameter or the `LastUpdatedAfter` parameter is required. "
             "Both cannot be empty.", False)
V26_ONE_OF = ("You must provide exactly one of `createdAfter` and `lastUpdatedAfter` in your request.",
              True)
V0_STATUSES = tuple(V0_TO_2026)
V26_STATUSES = ("PENDING_AVAILABILITY", "PENDING", "UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED",
                "CANCELLED", "UNFULFILLABLE")
INCLUDED_DATA = ("BUYER", "RECIPIENT", "PROCEEDS", "EXPENSE", "PROMOTION", "CANCELLATION",
                 "FULFILLMENT", "PACKAGES", "TAX", "PAYMENT", "FULFILLMENT_ORDERS")


@dataclass
class OrderQuery:
    """A resolved order search: the window (inclusive) and the filters."""

    field: str  # "created" | "updated"
    lo: float
    hi: float
    echo: str  # the applied upper bound, as echoed in the response
    markets: list[str] | None = None
    statuses: list[str] | None = None  # v0 status names
    afn: bool | None = None  # True: Amazon-fulfilled only; False: seller-fulfilled only
    ids: list[str] | None = None

    def matches(self, rec: Record, idx: int) -> bool:
        """Whether the filters (not the window) accept this version."""
        if self.markets is not None and rec.marketplace not in self.markets:
            return False
        if self.statuses is not None and rec.versions[idx].status not in self.statuses:
            return False
        if self.afn is not None and rec.attrs["afn"] != self.afn:
            return False
        return self.ids is None or rec.id in self.ids


def page(
    data: Dataset, q: OrderQuery, now: float, after: tuple[int, str] | None, size: int,
    *, token_on_full_page: bool = False,
) -> tuple[list[tuple[Record, int]], tuple[int, str] | None]:
    """One page of at most `size` results, and the keyset position to continue from (or None)."""
    data.ensure(now)
    walk = data.walk_created if q.field == "created" else data.walk_updated
    results: list[tuple[Record, int]] = []
    rows: Iterator[tuple[Record, int]] = (
        (rec, idx) for rec, idx in walk(now, q.lo, q.hi, after) if q.matches(rec, idx)
    )
    for row in rows:
        if len(results) == size:
            return results, _position(q, results[-1])
        results.append(row)
    if token_on_full_page and len(results) == size:
        return results, _position(q, results[-1])  # Amazon may hand out a token to an empty page
    return results, None


def _position(q: OrderQuery, row: tuple[Record, int]) -> tuple[int, str]:
    rec, idx = row
    return (rec.created if q.field == "created" else rec.versions[idx].time, rec.id)


def _markets(query: MultiMapping[str], name: str, required: bool, allowed: set[str]) -> list[str]:
    markets = query_list(query, name)
    if required and not markets:
        raise invalid(BAD_INPUT, f"Missing required parameter {name}.")
    if len(markets) > 50:
        raise invalid(BAD_INPUT, f"{name} accepts at most 50 values.")
    unknown = [m for m in markets if m not in allowed]
    if unknown:
        raise invalid(BAD_INPUT, f"Invalid {name} {unknown}: not a marketplace of this seller.")
    return markets


def resolve_window(query: MultiMapping[str], names: dict[str, str], one_of: tuple[str, bool],
                   now: float, lag: float) -> tuple[str, float, float, str]:
    """Apply the created/updated bound rules; returns (field, after, before, echoed before).
    `one_of`: the model's sentence on the two lower bounds, and whether it says exactly one."""
    ca, cb, la, lb = (query.get(names[k]) or None for k in ("ca", "cb", "la", "lb"))
    sentence, exactly = one_of
    if not ca and not la or exactly and ca and la:
        raise invalid(BAD_INPUT, sentence)
    if (ca or cb) and (la or lb):
        raise invalid(BAD_INPUT, f"{names['la']} and {names['lb']} cannot be set when "
                                 f"{names['ca']} or {names['cb']} is set.")
    field, after_name, before_name = (("created", "ca", "cb") if ca else ("updated", "la", "lb"))
    after = parse_time(names[after_name], ca or la or "")
    latest = now - lag
    raw_before = cb if ca else lb
    if raw_before:
        before = parse_time(names[before_name], raw_before)
        if before > latest:
            raise invalid(LAG_MESSAGE, f"{names[before_name]} must be at least "
                                       f"{int(lag)} seconds before the current time.")
        if before < after:
            raise invalid(BAD_INPUT, f"{names[before_name]} must be equal to or after "
                                     f"{names[after_name]}.")
    else:
        before = float(floor_second(latest))
        if after > before:
            raise invalid(LAG_MESSAGE, f"{names[after_name]} must be at least {int(lag)} "
                                       "seconds before the current time.")
    return field, after, before, iso(before)


def _v0_query(call: Call, markets: list[str]) -> OrderQuery:
    q = call.query
    field, lo, hi, echo = resolve_window(q, V0_NAMES, V0_ONE_OF, call.now, call.state.lag)
    statuses = query_list(q, "OrderStatuses") or None
    check_enum("OrderStatuses", statuses or (), V0_STATUSES)
    channels = query_list(q, "FulfillmentChannels")
    check_enum("FulfillmentChannels", channels, ("AFN", "MFN"))
    ids = query_list(q, "AmazonOrderIds") or None
    if ids is not None and len(ids) > 50:
        raise invalid(BAD_INPUT, "AmazonOrderIds accepts at most 50 values.")
    afn = None if len(set(channels)) != 1 else channels[0] == "AFN"
    return OrderQuery(field, lo, hi, echo, markets, statuses, afn, ids)


async def get_orders(call: Call) -> dict[str, Any]:
    """GET /orders/v0/orders. With NextToken every filter but MarketplaceIds is ignored."""
    st, q = call.state, call.query
    markets = _markets(q, "MarketplaceIds", True, st.known_markets)
    size = query_int(q, "MaxResultsPerPage", 1, 100, 100)
    token = q.get("NextToken")
    if token:
        payload = st.codec.decode(token, op=GET_ORDERS, now=call.now, ttl=st.token_ttl,
                                  name="NextToken")
        oq, after = OrderQuery(**payload["q"]), tuple(payload["pos"])
        if "MaxResultsPerPage" not in q:
            size = payload["n"]
    else:
        oq, after = _v0_query(call, markets), None
    rows, pos = page(st.orders, oq, call.now, after, size,
                     token_on_full_page=st.token_on_full_page)
    elements = call.grant.elements("GET", call.path) if call.grant is not None else frozenset()
    body: dict[str, Any] = {"Orders": [st.rendered.get(render_v0, rec, idx, elements)
                                       for rec, idx in rows]}
    if pos is not None:
        body["NextToken"] = _token(call, GET_ORDERS, oq, pos, size)
    body["CreatedBefore" if oq.field == "created" else "LastUpdatedBefore"] = oq.echo
    return {"payload": body}


def _token(call: Call, op: str, oq: OrderQuery, pos: tuple[int, str], size: int,
           params: dict[str, Any] | None = None) -> str:
    payload = {"op": op, "iat": call.now, "q": asdict(oq), "pos": list(pos), "n": size}
    if params is not None:
        payload["params"] = params
    return str(call.state.codec.encode(payload))


def _filters_2026(query: MultiMapping[str]) -> dict[str, Any]:
    """The request's parameters that a paginationToken must be sent with, normalized."""
    out: dict[str, Any] = {}
    for name in V26_NAMES.values():
        if query.get(name):
            out[name] = parse_time(name, query[name])
    for name in ("fulfillmentStatuses", "marketplaceIds", "fulfilledBy"):
        values = query_list(query, name)
        if values:
            out[name] = sorted(set(values))
    return out


def _same_request(given: dict[str, Any], original: dict[str, Any], oq: OrderQuery) -> bool:
    if given == original:
        return True
    # Sending the echoed upper bound instead of omitting it is the same request.
    before = V26_NAMES["cb" if oq.field == "created" else "lb"]
    return before not in original and given == {**original, before: oq.hi}


def _v26_query(call: Call) -> OrderQuery:
    q = call.query
    field, lo, hi, echo = resolve_window(q, V26_NAMES, V26_ONE_OF, call.now, call.state.lag)
    markets = _markets(q, "marketplaceIds", False, call.state.known_markets) or None
    statuses = query_list(q, "fulfillmentStatuses")
    check_enum("fulfillmentStatuses", statuses, V26_STATUSES)
    v0_statuses = [s for s, new in V0_TO_2026.items() if new in statuses] if statuses else None
    by = query_list(q, "fulfilledBy")
    check_enum("fulfilledBy", by, ("MERCHANT", "AMAZON"))
    afn = None if len(set(by)) != 1 else by[0] == "AMAZON"
    return OrderQuery(field, lo, hi, echo, markets, v0_statuses, afn)


async def search_orders(call: Call) -> dict[str, Any]:
    """GET /orders/2026-01-01/orders. A paginationToken needs the same other parameters."""
    st, q = call.state, call.query
    size = query_int(q, "maxResultsPerPage", 1, 100, 100)
    included = query_list(q, "includedData")
    check_enum("includedData", included, INCLUDED_DATA)
    filters = _filters_2026(q)
    token = q.get("paginationToken")
    if token:
        payload = st.codec.decode(token, op=SEARCH_ORDERS, now=call.now, ttl=st.token_ttl,
                                  name="paginationToken")
        oq, after = OrderQuery(**payload["q"]), tuple(payload["pos"])
        if not _same_request(filters, payload["params"], oq):
            raise invalid(BAD_INPUT, "A paginationToken must be sent with the same parameters as "
                                     "the request that returned it (except maxResultsPerPage "
                                     "and includedData).")
    else:
        oq, after = _v26_query(call), None
    rows, pos = page(st.orders, oq, call.now, after, size,
                     token_on_full_page=st.token_on_full_page)
    inc = frozenset(included)
    body: dict[str, Any] = {"orders": [st.rendered.get(render_2026, rec, idx, inc)
                                       for rec, idx in rows]}
    if pos is not None:
        params = payload["params"] if token else filters
        body["pagination"] = {"nextToken": _token(call, SEARCH_ORDERS, oq, pos, size, params)}
    body["createdBefore" if oq.field == "created" else "lastUpdatedBefore"] = oq.echo
    return body


def known_markets(configured: tuple[str, ...]) -> set[str]:
    """Marketplace ids the simulator accepts: Amazon's well-known ones plus configured ones."""
    return set(MARKETPLACES) | set(configured)
