"""Enrichment hooks: what a poller's `include:` adds to each fetched object, registered by name.

An object type names the hooks it offers (`ObjectType.includes`: include name -> hook name); a
poller that includes one runs it on every fetched page before delivery. The hooks call SP-API
themselves, under the client's rate limits, so they live in the pipeline, not in spd.sources.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from spd.catalog.model import Operation, load_catalog
from spd.client.http import SpClient
from spd.core.errors import ApiError
from spd.core.paths import dig
from spd.pipeline.poller_support import TokenGuard
from spd.sources.object_type import ObjectType

# Items are fetched for several orders at once; the client's token bucket paces them.
ITEM_FETCHES_IN_FLIGHT = 8

# A hook: (client, account name, the page's objects) -> sets what it adds on each object.
Enrichment = Callable[[SpClient, str, list[dict[str, Any]]], Awaitable[None]]


async def attach_order_items(client: SpClient, account: str, orders: list[dict[str, Any]]) -> None:
    """Sets `OrderItems` on every order: getOrderItems, all pages, under its own rate limit."""
    items_op = load_catalog().operation("ordersV0", "getOrderItems")
    gate = asyncio.Semaphore(ITEM_FETCHES_IN_FLIGHT)

    async def one(order: dict[str, Any]) -> None:
        order_id = order.get("AmazonOrderId")
        if not order_id:
            return
        async with gate:
            order["OrderItems"] = await fetch_order_items(client, account, items_op, str(order_id))

    await asyncio.gather(*(one(order) for order in orders))


async def fetch_order_items(client: SpClient, account: str, items_op: Operation,
                            order_id: str) -> list[dict[str, Any]]:
    """Every item of one order, following NextToken."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    guard = TokenGuard(f"ordersV0.getOrderItems {order_id}")
    while True:
        params: dict[str, Any] = {"orderId": order_id}
        if token:
            params["NextToken"] = token
            guard.sent(token)
        body = (await client.call(account, items_op, params)).body
        page = dig(body, ("payload", "OrderItems"))
        if not isinstance(page, list):
            raise ApiError(f"ordersV0.getOrderItems {order_id}: malformed response, no "
                           "payload.OrderItems", retriable=True)
        items.extend(page)
        token = dig(body, ("payload", "NextToken")) or None
        if token is None:
            return items
        guard.check(token, len(items), len(page))


ENRICHMENTS: dict[str, Enrichment] = {
    "order_items": attach_order_items,
}


def enrichments(ot: ObjectType, include: list[str] | None) -> list[Enrichment]:
    """The hooks a poller's `include:` selects (config validation checked the names)."""
    hooks = dict(ot.includes)
    return [ENRICHMENTS[hooks[name]] for name in include or () if name in hooks]
