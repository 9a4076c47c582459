"""An SQS queue read through aioboto3: long-poll receive, batch delete, visibility extension.

Imported only when a config has `subscriptions:` (aioboto3 is the optional `aws` extra). With
`role_arn`, the keys assume that role through STS (spd.client.sigv4.AssumedRoles) and the SQS
client is rebuilt before the temporary credentials expire.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from spd.client.sigv4 import REFRESH_MARGIN, AssumedRoles, NoRedirectHttpSession
from spd.core.errors import SpdError

MAX_BATCH = 10  # SQS returns and deletes at most 10 messages per call
# read_timeout above the 20 s long poll; botocore's own retries for throttling and 5xx
SQS_CONFIG = AioConfig(connect_timeout=10, read_timeout=40,
                       retries={"max_attempts": 3, "mode": "standard"},
                       http_session_cls=NoRedirectHttpSession)


class QueueError(SpdError):
    """SQS refused or could not be reached; `retriable` when a later attempt may succeed."""

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable


@dataclass(frozen=True)
class SqsMessage:
    """One received message: its ids, body and when SQS got it."""

    message_id: str
    receipt_handle: str
    body: str
    sent_at: float | None  # epoch seconds (SentTimestamp)
    receive_count: int


@dataclass(frozen=True)
class QueueSettings:
    """Where the queue is and how to reach it (from a subscription's config)."""

    queue_url: str
    region: str
    access_key_id: str
    secret_access_key: str
    endpoint_url: str | None = None
    role_arn: str | None = None
    role_session_name: str = "spd"
    sts_endpoint: str | None = None


class _RoleAccount:
    """What AssumedRoles reads of an account: `aws` (keys, role) and `region`."""

    def __init__(self, settings: QueueSettings) -> None:
        self.region = settings.region
        self.aws = _RoleKeys(settings)


class _RoleKeys:
    def __init__(self, s: QueueSettings) -> None:
        self.access_key_id = s.access_key_id
        self.secret_access_key = _Plain(s.secret_access_key)
        self.role_arn = s.role_arn
        self.role_session_name = s.role_session_name
        self.region = s.region
        self.sts_endpoint = s.sts_endpoint


class _Plain:
    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value


class SqsQueue:
    """One SQS queue; `async with` it or start()/close()."""

    def __init__(self, settings: QueueSettings, label: str) -> None:
        self.settings = settings
        self.label = label  # for messages: "queue of subscription NAME"
        self._roles = AssumedRoles() if settings.role_arn else None
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._expires = float("inf")

    async def start(self) -> None:
        """Opens the SQS client now (assuming the role first when one is configured); otherwise
        the first call opens it."""
        await self._open()

    async def close(self) -> None:
        """Closes the client; safe to call twice."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()
        if self._roles is not None:
            self._roles.close()

    async def __aenter__(self) -> SqsQueue:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _open(self) -> None:
        s = self.settings
        keys: dict[str, str] = {"aws_access_key_id": s.access_key_id,
                                "aws_secret_access_key": s.secret_access_key}
        if self._roles is not None:
            creds = await self._roles.get(self.label, _RoleAccount(s))
            keys = {"aws_access_key_id": creds.access_key_id,
                    "aws_secret_access_key": creds.secret_access_key,
                    "aws_session_token": creds.session_token}
            self._expires = creds.expires_at - REFRESH_MARGIN
        session = aioboto3.Session(region_name=s.region, **keys)
        stack = contextlib.AsyncExitStack()
        self._client = await stack.enter_async_context(
            session.client("sqs", endpoint_url=s.endpoint_url, config=SQS_CONFIG))
        old, self._stack = self._stack, stack
        if old is not None:
            await old.aclose()

    async def _sqs(self) -> Any:
        if self._client is None or time.time() >= self._expires:
            await self._open()
        return self._client

    async def receive(self, *, wait_seconds: int, visibility: int) -> list[SqsMessage]:
        """Up to 10 messages, waiting up to `wait_seconds` for the first (a long poll)."""
        sqs = await self._sqs()
        try:
            answer = await sqs.receive_message(
                QueueUrl=self.settings.queue_url, MaxNumberOfMessages=MAX_BATCH,
                WaitTimeSeconds=wait_seconds, VisibilityTimeout=visibility,
                AttributeNames=["SentTimestamp", "ApproximateReceiveCount"])
        except (ClientError, BotoCoreError) as exc:
            raise self._error("receive", exc) from None
        return [_message(m) for m in answer.get("Messages", [])]

    async def delete(self, messages: list[SqsMessage]) -> list[str]:
        """Deletes the messages (in batches of 10); returns the ids SQS did not delete."""
        sqs = await self._sqs()
        failed: list[str] = []
        for i in range(0, len(messages), MAX_BATCH):
            chunk = messages[i:i + MAX_BATCH]
            entries = [{"Id": str(n), "ReceiptHandle": m.receipt_handle} for n, m in enumerate(chunk)]
            try:
                answer = await sqs.delete_message_batch(QueueUrl=self.settings.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                raise self._error("delete", exc) from None
            failed += [chunk[int(f["Id"])].message_id for f in answer.get("Failed", [])]
        return failed

    async def extend(self, messages: list[SqsMessage], seconds: int) -> None:
        """Keeps the messages invisible `seconds` longer (a delivery is still retrying)."""
        sqs = await self._sqs()
        for i in range(0, len(messages), MAX_BATCH):
            entries = [{"Id": str(n), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": seconds}
                       for n, m in enumerate(messages[i:i + MAX_BATCH])]
            try:
                await sqs.change_message_visibility_batch(QueueUrl=self.settings.queue_url,
                                                          Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                raise self._error("extend the visibility of", exc) from None

    def _error(self, action: str, exc: Exception) -> QueueError:
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", "Unknown"))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            detail = " ".join(str(err.get("Message", "")).split())
            retriable = status >= 500 or status == 429 or "Throttl" in code
            return QueueError(f"{self.label}: cannot {action} {self.settings.queue_url} ({code}): "
                              f"{detail}", retriable=retriable)
        return QueueError(f"{self.label}: cannot {action} {self.settings.queue_url}: "
                          f"{' '.join(str(exc).split())}")


def _message(raw: dict[str, Any]) -> SqsMessage:
    attributes = raw.get("Attributes") or {}
    sent = attributes.get("SentTimestamp")
    return SqsMessage(
        message_id=str(raw.get("MessageId", "")), receipt_handle=str(raw.get("ReceiptHandle", "")),
        body=str(raw.get("Body", "")), sent_at=int(sent) / 1000 if sent else None,
        receive_count=int(attributes.get("ApproximateReceiveCount") or 1),
    )
