"""Publishes ORDER_CHANGE notifications into the SQS destinations subscribed to them, as
Amazon does within seconds of a change (spd.sim.notifications holds the subscriptions).

Runs only with `SimSettings.sqs_endpoint`; aioboto3 is imported then (the optional `aws` extra).
An SQS destination's ARN `arn:aws:sqs:REGION:ACCOUNT:NAME` is the queue ENDPOINT/ACCOUNT/NAME.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from aiohttp import web

from spd.sim.common import iso

log = structlog.get_logger("spd.sim.publisher")

INTERVAL = 0.2  # seconds between looks for changed orders
ORDER_CHANGE = "ORDER_CHANGE"
APPLICATION_ID = "amzn1.sellerapps.app.spd-simulator"
SELLER_ID = "A3SPDSIMULATOR"


def queue_url(endpoint: str, arn: str) -> str:
    """The queue URL of an SQS ARN at `endpoint`."""
    _, _, _, _region, account, name = arn.split(":", 5)
    return f"{endpoint.rstrip('/')}/{account}/{name}"


def order_change(rec: Any, idx: int, subscription_id: str, now: float) -> dict[str, Any]:
    """Amazon's ORDER_CHANGE envelope (PascalCase) for one version of an order."""
    version = rec.versions[idx]
    return {
        "NotificationVersion": "1.0", "NotificationType": ORDER_CHANGE, "PayloadVersion": "1.0",
        "EventTime": iso(version.time),
        "Payload": {"OrderChangeNotification": {
            "NotificationLevel": "OrderLevel", "SellerId": SELLER_ID, "AmazonOrderId": rec.id,
            "OrderChangeType": "OrderStatusChange",
            "OrderChangeTrigger": {"TimeOfOrderChange": iso(version.time), "ChangeReason": "OrderStatusChange"},
            "Summary": {"MarketplaceId": rec.marketplace, "OrderStatus": version.status,
                        "PurchaseDate": iso(rec.created)},
        }},
        "NotificationMetadata": {"ApplicationId": APPLICATION_ID, "SubscriptionId": subscription_id,
                                 "PublishTime": iso(round(now, 3)), "NotificationId": str(uuid.uuid4())},
    }


def targets(state: Any) -> list[tuple[str, str]]:
    """(queue URL, subscription id) of every ORDER_CHANGE subscription with an SQS destination."""
    world, endpoint = state.notifications, state.settings.sqs_endpoint
    out = []
    for (_caller, ntype, _version), sub in world.subscriptions.items():
        dest = world.destinations.get(sub["destinationId"])
        if ntype == ORDER_CHANGE and dest is not None and "sqs" in dest["resource"]:
            out.append((queue_url(endpoint, dest["resource"]["sqs"]["arn"]), sub["subscriptionId"]))
    return out


async def publish_changes(state: Any, sqs: Any) -> None:
    """Every INTERVAL, the order versions whose time came since the last look, to every target."""
    last = state.now()
    while True:
        await asyncio.sleep(INTERVAL)
        now = state.now()
        state.orders.ensure(now)
        changes = state.orders.changes(last, now)
        last = now
        for url, sub_id in targets(state) if changes else []:
            bodies = [order_change(rec, idx, sub_id, now) for rec, idx in changes]
            for i in range(0, len(bodies), 10):
                entries = [{"Id": str(n), "MessageBody": orjson.dumps(b).decode()}
                           for n, b in enumerate(bodies[i:i + 10])]
                try:
                    await sqs.send_message_batch(QueueUrl=url, Entries=entries)
                    state.notifications.published += len(entries)
                except Exception as exc:  # a missing queue must not stop the simulator
                    state.notifications.publish_errors += 1
                    log.warning("sim_publish_failed", queue=url, error=str(exc))


def publisher_ctx(state: Any) -> Any:
    """An aiohttp cleanup context running `publish_changes` while the app runs."""
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        import aioboto3  # the optional `aws` extra, needed only when publishing

        s = state.settings
        session = aioboto3.Session(aws_access_key_id=s.sqs_keys[0], aws_secret_access_key=s.sqs_keys[1],
                                   region_name=s.sqs_keys[2])
        async with session.client("sqs", endpoint_url=s.sqs_endpoint) as sqs:
            task = asyncio.ensure_future(publish_changes(state, sqs))
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return ctx
