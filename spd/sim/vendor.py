"""Vendor Orders v1 getPurchaseOrders: created/changed windows of at most 7 days."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from spd.sim.common import BAD_INPUT, Call, check_enum, invalid, parse_time, query_int
from spd.sim.data import Dataset, Record
from spd.sim.render import render_po

GET_PURCHASE_ORDERS = "vendorOrders.getPurchaseOrders"
STATES = ("New", "Acknowledged", "Closed")


@dataclass
class VendorQuery:
    """A resolved purchase order search; results are sorted by purchaseOrderDate."""

    field: str  # "created" | "changed"
    lo: float
    hi: float
    descending: bool = False
    state: str | None = None
    vendor: str | None = None
    changed_only: bool = False
    cancelled_items: bool = False

    def matches(self, rec: Record, idx: int) -> bool:
        """Whether the filters (not the window) accept this version."""
        v = rec.versions[idx]
        if self.state is not None and v.status != self.state:
            return False
        if self.vendor is not None and rec.attrs["vendor"] != self.vendor:
            return False
        if self.changed_only and v.extra["changed"] is None:
            return False
        return not self.cancelled_items or v.extra["cut"] is not None


def _bool(call: Call, name: str, default: bool) -> bool:
    raw = call.query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() not in ("true", "false"):
        raise invalid(BAD_INPUT, f"{name} must be true or false; got {raw!r}.")
    return raw.lower() == "true"


def _window(call: Call) -> tuple[str, float, float]:
    q, max_window = call.query, call.state.max_vendor_window
    ca, cb, xa, xb = (q.get(n) or None for n in
                      ("createdAfter", "createdBefore", "changedAfter", "changedBefore"))
    if (ca or cb) and (xa or xb):
        raise invalid(BAD_INPUT, "createdAfter/createdBefore cannot be combined with "
                                 "changedAfter/changedBefore.")
    if not (ca or cb or xa or xb):
        raise invalid(BAD_INPUT, "Specify createdAfter/createdBefore or "
                                 "changedAfter/changedBefore (a window of at most 7 days).")
    field, (an, bn), (av, bv) = (
        ("created", ("createdAfter", "createdBefore"), (ca, cb)) if ca or cb
        else ("changed", ("changedAfter", "changedBefore"), (xa, xb))
    )
    before = parse_time(bn, bv) if bv else call.now
    after = parse_time(an, av) if av else before - max_window
    if after > before:
        raise invalid(BAD_INPUT, f"{an} must be earlier than {bn}.")
    if before - after > max_window:
        raise invalid(BAD_INPUT, f"The date range between {an} and {bn} must not exceed "
                                 f"{max_window / 86400:g} days.")
    return field, after, before


def _query(call: Call) -> VendorQuery:
    field, lo, hi = _window(call)
    q = call.query
    state = q.get("purchaseOrderState") or None
    check_enum("purchaseOrderState", [state] if state else [], STATES)
    item_state = q.get("poItemState") or None
    check_enum("poItemState", [item_state] if item_state else [], ("Cancelled",))
    sort = q.get("sortOrder") or "ASC"
    check_enum("sortOrder", [sort], ("ASC", "DESC"))
    return VendorQuery(field, lo, hi, sort == "DESC", state, q.get("orderingVendorCode") or None,
                       _bool(call, "isPOChanged", False), item_state is not None)


def page(data: Dataset, vq: VendorQuery, now: float, after: tuple[int, str] | None, size: int
         ) -> tuple[list[tuple[Record, int]], tuple[int, str] | None]:
    """One page sorted by (purchaseOrderDate, number), ascending or descending."""
    data.ensure(now)
    walk = data.walk_created if vq.field == "created" else data.walk_updated
    rows = [(rec, idx) for rec, idx in walk(now, vq.lo, vq.hi, None) if vq.matches(rec, idx)]
    rows.sort(key=lambda row: (row[0].created, row[0].id), reverse=vq.descending)
    if after is not None:
        if vq.descending:
            rows = [r for r in rows if (r[0].created, r[0].id) < after]
        else:
            rows = [r for r in rows if (r[0].created, r[0].id) > after]
    if len(rows) > size:
        last = rows[size - 1][0]
        return rows[:size], (last.created, last.id)
    return rows, None


async def get_purchase_orders(call: Call) -> dict[str, Any]:
    """GET /vendor/orders/v1/purchaseOrders."""
    st, q = call.state, call.query
    size = query_int(q, "limit", 1, 100, 100)
    details = _bool(call, "includeDetails", True)
    token = q.get("nextToken")
    if token:
        payload = st.codec.decode(token, op=GET_PURCHASE_ORDERS, now=call.now,
                                  ttl=st.token_ttl, name="nextToken")
        vq, after = VendorQuery(**payload["q"]), tuple(payload["pos"])
        if "limit" not in q:
            size = payload["n"]
    else:
        vq, after = _query(call), None
    rows, pos = page(st.purchase_orders, vq, call.now, after, size)
    body: dict[str, Any] = {}
    if pos is not None:
        token_payload = {"op": GET_PURCHASE_ORDERS, "iat": call.now, "q": asdict(vq),
                         "pos": list(pos), "n": size}
        body["pagination"] = {"nextToken": st.codec.encode(token_payload)}
    body["orders"] = [render_po(rec, idx, details) for rec, idx in rows]
    return {"payload": body}
