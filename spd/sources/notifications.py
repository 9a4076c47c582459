"""SP-API notifications as they arrive in an SQS message body (no I/O).

The body is Amazon's notification JSON itself. Its envelope comes in PascalCase
(`NotificationType`, `PayloadVersion`, `EventTime`, `Payload`,
`NotificationMetadata.NotificationId`, as in ORDER_CHANGE) or camelCase in newer types; both
are read. A body that is not JSON, has no type, no payload or no readable event time is
refused with a `NotificationError` saying what is wrong; it is never emitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from spd.core.times import normalize_timestamp

MAX_ERROR_SAMPLE = 80


class NotificationError(ValueError):
    """A message body that is not a notification spd can emit."""


@dataclass(frozen=True)
class Notification:
    """One parsed notification: the envelope's fields and the payload exactly as sent."""

    notification_type: str
    payload_version: str | None
    event_time: str  # UTC RFC 3339 with Z, the same instant to the millisecond
    notification_id: str | None
    data: Any  # the Payload, untouched
    subscription_id: str | None = None

    def order_id(self) -> str | None:
        """The AmazonOrderId of an ORDER_CHANGE payload (either case), else None."""
        if not isinstance(self.data, dict):
            return None
        change = _get(self.data, "OrderChangeNotification")
        value = _get(change, "AmazonOrderId") if isinstance(change, dict) else None
        return value if isinstance(value, str) and value else None


def _get(obj: dict[str, Any], pascal: str) -> Any:
    """`obj[pascal]`, else its camelCase spelling (`NotificationType` / `notificationType`)."""
    if pascal in obj:
        return obj[pascal]
    return obj.get(pascal[:1].lower() + pascal[1:])


def parse_notification(body: bytes | str) -> Notification:
    """The notification in an SQS message body; NotificationError when it is not one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise NotificationError(f"the body is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise NotificationError("the body is not a JSON object")
    ntype = _get(doc, "NotificationType")
    if not isinstance(ntype, str) or not ntype:
        raise NotificationError("the body has no NotificationType")
    if "Payload" not in doc and "payload" not in doc:
        raise NotificationError(f"the {ntype[:MAX_ERROR_SAMPLE]} notification has no Payload")
    raw_time = _get(doc, "EventTime")
    event_time = normalize_timestamp(raw_time)
    if event_time is None:
        raise NotificationError(f"the {ntype[:MAX_ERROR_SAMPLE]} notification has no readable "
                                f"EventTime ({str(raw_time)[:MAX_ERROR_SAMPLE]!r})")
    meta = _get(doc, "NotificationMetadata")
    meta = meta if isinstance(meta, dict) else {}
    version = _get(doc, "PayloadVersion")
    return Notification(
        notification_type=ntype,
        payload_version=str(version) if version is not None else None,
        event_time=event_time,
        notification_id=_text(_get(meta, "NotificationId")),
        data=_get(doc, "Payload"),
        subscription_id=_text(_get(meta, "SubscriptionId")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
