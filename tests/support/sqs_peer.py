"""SQS on loopback (moto's server mode) and SP-API notifications as Amazon sends them.

`MotoSqs` runs its own moto server (ThreadedMotoServer) so queues of one test never meet
another's; `notification()` builds an ORDER_CHANGE-style PascalCase envelope or a camelCase
one (newer notification types), the shapes Amazon documents for the SQS message body.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

KEYS = {"access_key_id": "AKIDSPDTEST", "secret_access_key": "spd-sqs-secret", "region": "us-east-1"}


class MotoSqs:
    """moto's server on a free loopback port, with a boto3 SQS client for the test's side."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""
        self.client: Any = None

    def start(self) -> MotoSqs:
        import boto3

        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.client = boto3.client("sqs", endpoint_url=self.url, region_name=KEYS["region"],
                                   aws_access_key_id=KEYS["access_key_id"],
                                   aws_secret_access_key=KEYS["secret_access_key"])
        return self

    def stop(self) -> None:
        self._server.stop()

    def queue(self, name: str | None = None, **attributes: str) -> str:
        """Creates a queue (a unique name unless given); returns its URL."""
        name = name or f"spd-{uuid.uuid4().hex[:10]}"
        return str(self.client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])

    def arn(self, queue_url: str) -> str:
        attrs = self.client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        return str(attrs["Attributes"]["QueueArn"])

    def send(self, queue_url: str, body: Any) -> str:
        """Sends one message (a dict is sent as JSON, text as it is); returns its MessageId."""
        text = body if isinstance(body, str) else json.dumps(body)
        return str(self.client.send_message(QueueUrl=queue_url, MessageBody=text)["MessageId"])

    def counts(self, queue_url: str) -> tuple[int, int]:
        """(visible, in flight) messages of the queue."""
        attrs = self.client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages",
                                                "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def order_change(order_id: str, *, event_time: str = "2026-11-30T10:00:00.123Z",
                 notification_id: str | None = None, status: str = "Shipped") -> dict[str, Any]:
    """An ORDER_CHANGE notification in Amazon's PascalCase envelope."""
    return {
        "NotificationVersion": "1.0",
        "NotificationType": "ORDER_CHANGE",
        "PayloadVersion": "1.0",
        "EventTime": event_time,
        "Payload": {"OrderChangeNotification": {
            "NotificationLevel": "OrderLevel", "SellerId": "A3TH9S8BH6GOGM",
            "AmazonOrderId": order_id, "OrderChangeType": "OrderStatusChange",
            "OrderChangeTrigger": {"TimeOfOrderChange": event_time, "ChangeReason": "OrderStatusChange"},
            "Summary": {"MarketplaceId": "ATVPDKIKX0DER", "OrderStatus": status,
                        "FulfillmentType": "MFN", "OrderType": "StandardOrder"},
        }},
        "NotificationMetadata": {
            "ApplicationId": "amzn1.sellerapps.app.spd-test",
            "SubscriptionId": "sub-order-change",
            "PublishTime": event_time,
            "NotificationId": notification_id or str(uuid.uuid4()),
        },
    }


def camel_notification(ntype: str, payload: dict[str, Any], *, event_time: str = "2026-11-30T10:00:00+02:00",
                       notification_id: str | None = None) -> dict[str, Any]:
    """A notification in the camelCase envelope newer types use."""
    return {
        "notificationVersion": "1.0", "notificationType": ntype, "payloadVersion": "1.0",
        "eventTime": event_time, "payload": payload,
        "notificationMetadata": {"applicationId": "amzn1.sellerapps.app.spd-test",
                                 "subscriptionId": "sub-" + ntype.lower(), "publishTime": event_time,
                                 "notificationId": notification_id or str(uuid.uuid4())},
    }


def subscription_yaml(name: str, sqs: MotoSqs, queue_url: str, *, types: list[str],
                      emitters: list[str], extra: dict[str, Any] | None = None) -> list[str]:
    """The lines of one entry under `subscriptions:`."""
    keys = ", ".join(f"{k}: {v}" for k, v in KEYS.items())
    lines = [f"  {name}:", f"    queue_url: {queue_url}", f"    endpoint_url: {sqs.url}",
             f"    aws: {{{keys}}}", f"    notification_types: [{', '.join(types)}]",
             f"    emitters: [{', '.join(emitters)}]"]
    lines += [f"    {k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}"
              for k, v in (extra or {}).items()]
    return lines


def write_subscription_config(tmp_path: Path, account_lines: list[str],
                              subscriptions: list[list[str]], *, pollers: str = "",
                              extra: str = "", state_url: str | None = None,
                              out: str = "{poller}.jsonl") -> Path:
    """A config with one account, a file emitter `archive` (out/OUT, by default a file per
    poller), the given subscriptions and, optionally, pollers (YAML text); the state in
    PostgreSQL at `state_url` if given, else tmp_path/state.db."""
    where = f"url: {state_url}" if state_url else f"path: {tmp_path / 'state.db'}"
    lines = [f"state: {{{where}}}", "log: {level: info, format: json}", extra,
             "accounts:", *account_lines, "emitters:",
             f"  archive: {{type: file, path: \"{tmp_path / 'out'}/{out}\"}}",
             "subscriptions:"]
    for sub in subscriptions:
        lines += sub
    if pollers:
        lines.append(pollers)
    path = tmp_path / "spd.yaml"
    path.write_text("\n".join(line for line in lines if line) + "\n")
    return path
