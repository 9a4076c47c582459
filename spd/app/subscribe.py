"""`spd subscribe`: the Notifications API side of a subscription, idempotently.

Creates the SQS destination (grantless createDestination) unless one for the queue's ARN exists,
then one subscription per notification type (createSubscription, with the subscription's
processingDirective where it gives one) unless getSubscription finds it; a second run changes
nothing. `--delete` removes the subscriptions that point at the destination, then the
destination; `--list` shows the destinations and the subscriptions of the config's types.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from spd.catalog.model import load_catalog
from spd.client.http import SpClient
from spd.client.policy import ONE_SHOT
from spd.config.model import Config
from spd.config.secrets import register_config_secrets
from spd.config.subscriptions import SubscriptionConfig
from spd.core.errors import ApiError, UsageError
from spd.core.fields import show
from spd.core.output import Column

API = "notifications"
COLUMNS = ("kind", "name", "id", "destination", "payload_version", "action")
SUBSCRIBE_COLUMNS = (Column("KIND", "kind"), Column("NAME", "name"), Column("ID", "id"),
                     Column("DESTINATION", "destination"), Column("PAYLOAD VERSION", "payload_version"),
                     Column("ACTION", "action"))


def queue_arn(sub: SubscriptionConfig) -> str:
    """The ARN of the subscription's queue: URL path ACCOUNT/NAME in the `aws.region`."""
    parts = [p for p in urlsplit(sub.queue_url).path.split("/") if p]
    if len(parts) < 2:
        raise UsageError(f"subscriptions.{sub.name}.queue_url: {show(sub.queue_url)} has no "
                         "ACCOUNT/NAME path; use the queue's URL as SQS shows it")
    return f"arn:aws:sqs:{sub.aws.region}:{parts[-2]}:{parts[-1]}"


class NotificationsApi:
    """The Notifications API calls of one account through the rate-limited client."""

    def __init__(self, client: SpClient, account: str) -> None:
        self.client = client
        self.account = account
        self.catalog = load_catalog()

    async def call(self, op_id: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        response = await self.client.call(self.account, self.catalog.operation(API, op_id), params, body)
        payload = response.body.get("payload") if isinstance(response.body, dict) else None
        return payload

    async def find(self, op_id: str, params: dict[str, Any]) -> Any:
        """The payload, or None on 404 (nothing there)."""
        try:
            return await self.call(op_id, params)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def destination_for(self, arn: str) -> dict[str, Any] | None:
        destinations = await self.call("getDestinations") or []
        return next((d for d in destinations if (d.get("resource") or {}).get("sqs", {}).get("arn") == arn),
                    None)


def _row(kind: str, name: str, ident: str | None, destination: str | None, version: str | None,
         action: str) -> dict[str, Any]:
    return dict(zip(COLUMNS, (kind, name, ident, destination, version, action)))


def _client(config: Config, sub: SubscriptionConfig) -> SpClient:
    register_config_secrets(config)
    return SpClient({sub.account: config.accounts[sub.account]}, load_catalog(), retry=ONE_SHOT)


def _subscription(config: Config, name: str | None) -> SubscriptionConfig:
    if name is None or name not in config.subscriptions:
        known = ", ".join(config.subscriptions) or "none"
        what = "name a subscription" if name is None else f"unknown subscription {name}"
        raise UsageError(f"{what}; the config has: {known}")
    return config.subscriptions[name]


async def subscribe(config: Config, name: str | None) -> list[dict[str, Any]]:
    """Creates what is missing; one row per destination and subscription with its action."""
    sub = _subscription(config, name)
    arn = queue_arn(sub)
    async with _client(config, sub) as client:
        api = NotificationsApi(client, sub.account)
        rows = []
        destination = await api.destination_for(arn)
        if destination is None:
            body = {"name": sub.destination_name or f"spd-{sub.name}", "resourceSpecification": {"sqs": {"arn": arn}}}
            destination = await api.call("createDestination", body=body)
            rows.append(_row("destination", destination["name"], destination["destinationId"], arn, None, "created"))
        else:
            rows.append(_row("destination", destination["name"], destination["destinationId"], arn, None, "exists"))
        dest_id = destination["destinationId"]
        for ntype in sub.notification_types:
            rows.append(await _ensure_subscription(api, sub, ntype, dest_id))
        return rows


async def _ensure_subscription(api: NotificationsApi, sub: SubscriptionConfig, ntype: str,
                               dest_id: str) -> dict[str, Any]:
    found = await api.find("getSubscription", {"notificationType": ntype, "payloadVersion": sub.payload_version})
    if found is not None:
        action = "exists" if found.get("destinationId") == dest_id else "exists (another destination)"
        return _row("subscription", ntype, found.get("subscriptionId"), found.get("destinationId"),
                    found.get("payloadVersion"), action)
    body: dict[str, Any] = {"payloadVersion": sub.payload_version, "destinationId": dest_id}
    if ntype in sub.processing_directive:
        body["processingDirective"] = sub.processing_directive[ntype]
    created = await api.call("createSubscription", {"notificationType": ntype}, body)
    return _row("subscription", ntype, created.get("subscriptionId"), dest_id,
                created.get("payloadVersion"), "created")


async def unsubscribe(config: Config, name: str | None) -> list[dict[str, Any]]:
    """Deletes the subscription's subscriptions (those on its destination), then the destination."""
    sub = _subscription(config, name)
    arn = queue_arn(sub)
    async with _client(config, sub) as client:
        api = NotificationsApi(client, sub.account)
        destination = await api.destination_for(arn)
        dest_id = destination["destinationId"] if destination else None
        rows = []
        for ntype in sub.notification_types:
            found = await api.find("getSubscription", {"notificationType": ntype,
                                                       "payloadVersion": sub.payload_version})
            if found is None or found.get("destinationId") != dest_id:
                rows.append(_row("subscription", ntype, None, dest_id, sub.payload_version, "absent"))
                continue
            await api.call("deleteSubscriptionById", {"notificationType": ntype,
                                                      "subscriptionId": found["subscriptionId"]})
            rows.append(_row("subscription", ntype, found["subscriptionId"], dest_id,
                             found.get("payloadVersion"), "deleted"))
        if destination is None:
            rows.append(_row("destination", sub.destination_name or f"spd-{sub.name}", None, arn, None, "absent"))
        else:
            await api.call("deleteDestination", {"destinationId": dest_id})
            rows.append(_row("destination", destination["name"], dest_id, arn, None, "deleted"))
        return rows


async def list_subscriptions(config: Config, name: str | None) -> list[dict[str, Any]]:
    """Every destination of the account, and the subscriptions of the subscription's (or all the
    config's) notification types."""
    subs = [_subscription(config, name)] if name is not None else list(config.subscriptions.values())
    if not subs:
        raise UsageError("the config has no subscriptions")
    rows = []
    for account in dict.fromkeys(s.account for s in subs):
        mine = [s for s in subs if s.account == account]
        async with _client(config, mine[0]) as client:
            api = NotificationsApi(client, account)
            for d in await api.call("getDestinations") or []:
                resource = d.get("resource") or {}
                where = resource.get("sqs", {}).get("arn") or str(resource.get("eventBridge", ""))
                rows.append(_row("destination", d.get("name", ""), d.get("destinationId"), where, None, ""))
            for ntype in dict.fromkeys(t for s in mine for t in s.notification_types):
                found = await api.call("getSubscriptions", {"notificationTypes": [ntype]}) or {}
                for s in found.get("subscriptions") or []:
                    rows.append(_row("subscription", ntype, s.get("subscriptionId"), s.get("destinationId"),
                                     s.get("payloadVersion"), ""))
    return rows
