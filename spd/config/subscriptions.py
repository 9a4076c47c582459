"""`subscriptions:` (DESIGN §3, §14): SP-API notifications read from an SQS queue.

`spd.config.model` adds the section to `Config` and checks its references (account, emitters,
`reconcile_with`); what a subscription says about itself is checked here, against the
Notifications API model where Amazon states a rule (which types take an `eventFilter`).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from spd.catalog.model import load_catalog
from spd.client.data_elements import RestrictedElement
from spd.core.errors import SpdError
from spd.core.fields import (ConfigModel, FilePath, Interval, Secret, Text, UniqueTexts, Url, check_url,
                             fail, show)
from spd.config.sections import check_region

NOTIFICATION_TYPE_RE = re.compile(r"[A-Z][A-Z0-9_]*")
# SQS allows a visibility timeout of 0 s .. 12 h; spd keeps it between these (it extends it
# while a delivery is still retrying, so a long one is not needed).
MIN_VISIBILITY = timedelta(seconds=10)
MAX_VISIBILITY = timedelta(hours=12)
DEFAULT_PAYLOAD_VERSION = "1.0"


class SqsAwsConfig(ConfigModel):
    """AWS credentials for the queue; `role_arn` makes spd assume that role through STS."""

    access_key_id: Text
    secret_access_key: Secret
    region: str
    role_arn: Text | None = None
    role_session_name: Text = "spd"
    sts_endpoint: Url | None = None

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return check_region(value)


NotificationTypes = Annotated[UniqueTexts, Field(min_length=1)]


class SubscriptionConfig(ConfigModel):
    """One subscription: a queue, the notification types read from it, where they go."""

    internal_keys: ClassVar[frozenset[str]] = frozenset({"name"})
    name: str
    account: str = ""  # filled in by Config: the only account, or the default one
    queue_url: Url
    aws: SqsAwsConfig
    endpoint_url: Url | None = None  # SQS endpoint override (a loopback moto server in tests)
    notification_types: NotificationTypes
    emitters: Annotated[UniqueTexts, Field(min_length=1)]
    dead_letter: FilePath | None = None
    reconcile_with: Text | None = None
    fetch: bool = False  # ORDER_CHANGE: fetch the full order before emitting
    restricted: list[RestrictedElement] | None = None  # fetch with an RDT for these elements
    payload_version: Text = DEFAULT_PAYLOAD_VERSION  # createSubscription's payloadVersion
    processing_directive: dict[str, dict[str, Any]] = {}  # notification type -> processingDirective
    visibility_timeout: Interval = timedelta(seconds=60)
    wait_time: Interval = timedelta(seconds=20)  # the long poll (SQS allows at most 20 s)
    destination_name: Text | None = None  # `spd subscribe`: default spd-<subscription name>

    @field_validator("queue_url")
    @classmethod
    def _queue(cls, value: str) -> str:
        check_url(value)
        if not value.rsplit("/", 1)[-1] or value.count("/") < 4:
            raise fail(f"{show(value)} is not an SQS queue URL; use one such as "
                       "https://sqs.us-east-1.amazonaws.com/123456789012/spd-notifications")
        return value

    @field_validator("notification_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        for i, item in enumerate(value):
            if not NOTIFICATION_TYPE_RE.fullmatch(item):
                raise fail(f"{show(item)} is not a notification type; write it as Amazon does, such "
                           "as ORDER_CHANGE or REPORT_PROCESSING_FINISHED", i)
        return value

    @field_validator("visibility_timeout")
    @classmethod
    def _visibility(cls, value: timedelta) -> timedelta:
        if not MIN_VISIBILITY <= value <= MAX_VISIBILITY:
            raise fail("must be between 10s and 12h (SQS allows at most 12 hours)")
        return value

    @field_validator("wait_time")
    @classmethod
    def _wait(cls, value: timedelta) -> timedelta:
        if value > timedelta(seconds=20):
            raise fail("must be at most 20s, SQS's longest long poll")
        return value

    @model_validator(mode="after")
    def _check(self) -> SubscriptionConfig:
        if self.restricted is not None and not self.fetch:
            raise fail("restricted applies to the orders fetch: true makes; set fetch: true or "
                       "remove it", "restricted")
        if self.fetch and "ORDER_CHANGE" not in self.notification_types:
            raise fail("fetch: true fetches the order of an ORDER_CHANGE notification; add "
                       "ORDER_CHANGE to notification_types or remove fetch", "fetch")
        filterable = event_filter_types()
        for ntype, directive in self.processing_directive.items():
            if ntype not in self.notification_types:
                raise fail(f"{ntype} is not in notification_types; give a processingDirective only "
                           "for a type this subscription names", "processing_directive", ntype)
            unknown = set(directive) - {"eventFilter", "filterExpression"}
            if unknown:
                raise fail(f"unknown key {show(sorted(unknown)[0])}; a processingDirective has "
                           "eventFilter or filterExpression", "processing_directive", ntype)
            if "eventFilter" in directive and "filterExpression" in directive:
                raise fail("eventFilter and filterExpression are mutually exclusive; keep one",
                           "processing_directive", ntype)
            if "eventFilter" in directive and ntype not in filterable:
                raise fail(f"Amazon takes an eventFilter only for {', '.join(sorted(filterable))}",
                           "processing_directive", ntype, "eventFilter")
        return self

    def sqs_region(self) -> str:
        """The queue's region (the `aws.region`)."""
        return self.aws.region

    def queue_key(self) -> tuple[str, str | None]:
        """Subscriptions with the same key read one queue together."""
        return self.queue_url, self.endpoint_url


def event_filter_types() -> frozenset[str]:
    """The notification types that take an eventFilter: the model's `eventFilterType` enum."""
    try:
        api = load_catalog().api("notifications")
    except (SpdError, KeyError):
        return frozenset()
    event_filter = api.definitions.get("EventFilter", {})
    for part in event_filter.get("allOf", []):
        enum = part.get("properties", {}).get("eventFilterType", {}).get("enum")
        if enum:
            return frozenset(enum)
    return frozenset()


def check_subscriptions(subscriptions: dict[str, SubscriptionConfig], pollers: dict[str, Any]) -> None:
    """`reconcile_with` names a poller of the same account; subscriptions sharing a queue read it
    with the same credentials and split its notification types between them."""
    by_queue: dict[tuple[str, str | None], SubscriptionConfig] = {}
    owner: dict[tuple[tuple[str, str | None], str], str] = {}
    for name, sub in subscriptions.items():
        if sub.reconcile_with is not None:
            poller = pollers.get(sub.reconcile_with)
            if poller is None:
                raise fail(f"unknown poller {show(sub.reconcile_with)}; pollers: "
                           f"{', '.join(pollers) or 'none'}", "subscriptions", name, "reconcile_with")
            if getattr(poller, "account", sub.account) != sub.account:
                raise fail(f"poller {sub.reconcile_with} polls account {poller.account}, not "
                           f"{sub.account}; reconcile with a poller of the same account",
                           "subscriptions", name, "reconcile_with")
        key = sub.queue_key()
        first = by_queue.setdefault(key, sub)
        if first is not sub and first.aws != sub.aws:
            raise fail(f"reads the queue of subscription {first.name} with other AWS settings; "
                       "use the same aws: for one queue", "subscriptions", name, "aws")
        for ntype in sub.notification_types:
            other = owner.setdefault((key, ntype), name)
            if other != name:
                raise fail(f"{ntype} from this queue is already read by subscription {other}; "
                           "name each type once per queue", "subscriptions", name, "notification_types")
