"""Orders v0 getOrderItems: the items of one order, a few per page so that clients must follow
NextToken (Amazon pages items too, for orders with many lines)."""

from __future__ import annotations

from typing import Any

from spd.sim.common import ApiReject, Call

GET_ORDER_ITEMS = "ordersV0.getOrderItems"
ITEMS_PER_PAGE = 2


def render_items(rec: Any, idx: int) -> list[dict[str, Any]]:
    """Every item of the order in the given version."""
    a, v = rec.attrs, rec.versions[idx]
    shipped = v.extra.get("shipped", 0)
    items = []
    for line in a["lines"]:
        sent = min(line["qty"], shipped)
        shipped -= sent
        price = line["price"] * line["qty"]
        items.append({
            "ASIN": line["asin"], "SellerSKU": line["sku"], "OrderItemId": line["item_id"],
            "Title": line["title"], "QuantityOrdered": line["qty"], "QuantityShipped": sent,
            "ItemPrice": {"CurrencyCode": a["currency"], "Amount": f"{price:.2f}"},
            "IsGift": "false", "ConditionId": "New", "ConditionSubtypeId": "New",
            "IsTransparency": False, "SerialNumberRequired": False,
            "ProductInfo": {"NumberOfItems": "1"},
            "PromotionDiscount": {"CurrencyCode": a["currency"], "Amount": "0.00"},
        })
    return items


async def get_order_items(call: Call) -> dict[str, Any]:
    """GET /orders/v0/orders/{orderId}/orderItems."""
    st = call.state
    order_id = call.path.rstrip("/").split("/")[-2]
    st.orders.ensure(call.now)
    rec = st.orders.by_id.get(order_id)
    idx = rec.current(call.now) if rec is not None else None
    if rec is None or idx is None:
        raise ApiReject(404, "NotFound", f"Order {order_id} was not found.")
    start = 0
    token = call.query.get("NextToken")
    if token:
        payload = st.codec.decode(token, op=GET_ORDER_ITEMS, now=call.now, ttl=st.token_ttl,
                                  name="NextToken")
        if payload["order"] != order_id:
            raise ApiReject(400, "InvalidInput", "Invalid NextToken.",
                            "The NextToken was issued for another order.")
        start = payload["start"]
    items = render_items(rec, idx)
    payload_out: dict[str, Any] = {"AmazonOrderId": order_id,
                                   "OrderItems": items[start:start + ITEMS_PER_PAGE]}
    if start + ITEMS_PER_PAGE < len(items):
        payload_out["NextToken"] = st.codec.encode({"op": GET_ORDER_ITEMS, "iat": call.now,
                                                    "order": order_id, "start": start + ITEMS_PER_PAGE})
    return {"payload": payload_out}
