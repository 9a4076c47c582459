"""Builds the queue consumers of a config's `subscriptions:` (one per queue) and the fetch of
full orders for `fetch: true`."""

from __future__ import annotations

from typing import Any

from spd.catalog.model import Catalog
from spd.client.http import SpClient
from spd.config.model import Config
from spd.config.subscriptions import SubscriptionConfig
from spd.core.errors import SpdError
from spd.emitters.base import Emitter
from spd.pipeline.subscriptions import Fetch, QueueConsumer, Route
from spd.sources.notifications import Notification

ORDER_API, ORDER_OPERATION = "ordersV0", "getOrder"


def build_consumers(config: Config, emitters: dict[str, Emitter], client: SpClient,
                    catalog: Catalog) -> tuple[dict[str, QueueConsumer], dict[str, Route]]:
    """One consumer per queue (subscriptions naming the same queue share it), and every
    subscription's route by name."""
    if not config.subscriptions:
        return {}, {}
    # aioboto3 is the optional `aws` extra: imported only for a config with subscriptions
    from spd.client.sqs import SqsQueue

    groups: dict[tuple[str, str | None], list[SubscriptionConfig]] = {}
    for sub in config.subscriptions.values():
        groups.setdefault(sub.queue_key(), []).append(sub)
    consumers: dict[str, QueueConsumer] = {}
    routes: dict[str, Route] = {}
    for subs in groups.values():
        first = subs[0]
        by_type: dict[str, Route] = {}
        for sub in subs:
            route = Route(sub.name, sub.account, [emitters[e] for e in sub.emitters],
                          fetch=order_fetch(client, catalog, config, sub) if sub.fetch else None)
            routes[sub.name] = route
            by_type.update({t: route for t in sub.notification_types})
        dead_letter = next((str(s.dead_letter) for s in subs if s.dead_letter), None)
        queue = SqsQueue(queue_settings(first), f"queue of subscription {first.name}")
        consumers[first.name] = QueueConsumer(
            f"subscription {first.name}", queue, by_type, dead_letter=dead_letter,
            wait_seconds=int(first.wait_time.total_seconds()),
            visibility=int(first.visibility_timeout.total_seconds()))
    return consumers, routes


def queue_settings(sub: SubscriptionConfig) -> Any:
    """The SQS settings of a subscription (spd.client.sqs.QueueSettings)."""
    from spd.client.sqs import QueueSettings  # lazy: aioboto3 (see build_consumers)

    aws = sub.aws
    return QueueSettings(
        queue_url=sub.queue_url, region=aws.region, access_key_id=aws.access_key_id,
        secret_access_key=aws.secret_access_key.get_secret_value(), endpoint_url=sub.endpoint_url,
        role_arn=aws.role_arn, role_session_name=aws.role_session_name, sts_endpoint=aws.sts_endpoint)


def order_fetch(client: SpClient, catalog: Catalog, config: Config, sub: SubscriptionConfig) -> Fetch:
    """getOrder of an ORDER_CHANGE's AmazonOrderId through the rate-limited client, with a
    Restricted Data Token when the subscription (or its reconcile poller) names elements."""
    op = catalog.operation(ORDER_API, ORDER_OPERATION)
    restricted = sub.restricted
    if restricted is None and sub.reconcile_with is not None:
        restricted = config.pollers[sub.reconcile_with].restricted

    async def fetch(note: Notification) -> Any:
        order_id = note.order_id()
        if order_id is None:
            raise SpdError(f"the {note.notification_type} notification names no AmazonOrderId")
        response = await client.call(sub.account, op, {"orderId": order_id},
                                     restricted=list(restricted) if restricted is not None else None)
        body = response.body
        return body.get("payload", body) if isinstance(body, dict) else body

    return fetch
