"""Orders v0 getOrder: one order in its current version (the full order a push consumer
fetches after an ORDER_CHANGE notification)."""

from __future__ import annotations

from typing import Any

from spd.sim.common import ApiReject, Call
from spd.sim.render import render_v0

GET_ORDER = "ordersV0.getOrder"


async def get_order(call: Call) -> dict[str, Any]:
    """GET /orders/v0/orders/{orderId}; restricted elements as the Restricted Data Token grants."""
    st = call.state
    order_id = call.path.rstrip("/").rsplit("/", 1)[-1]
    st.orders.ensure(call.now)
    rec = st.orders.by_id.get(order_id)
    # by id, not through the search index: the version in effect now, however fresh
    idx = max((i for i, v in enumerate(rec.versions) if v.time <= call.now), default=None) if rec else None
    if rec is None or idx is None:
        raise ApiReject(404, "NotFound", f"Order {order_id} was not found.")
    elements = call.grant.elements("GET", call.path) if call.grant is not None else frozenset()
    return {"payload": render_v0(rec, idx, elements)}
