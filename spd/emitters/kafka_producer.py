"""The Kafka emitter at work: an aiokafka producer, its acknowledgements, and throwing it away.

What it produces and how it recovers is described in spd.emitters.kafka, which owns the
emitter's config and imports this module only when it builds one (asyncio and aiokafka stay
unimported for `spd validate`).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import aiokafka
from aiokafka.errors import KafkaError

from spd.core.errors import ConfigError, DeliveryError
from spd.core.lazylog import get_logger
from spd.emitters.base import Emitter, Message

log = get_logger(__name__)

ABANDON_TIMEOUT = 1.0  # seconds to close an abandoned producer's sockets (no broker involved)
TOPIC_MAX = 249  # Kafka's limit on topic name length
_FORBIDDEN = re.compile(r"[^a-zA-Z0-9._-]")


def safe_topic(name: str) -> str:
    """`name` with every character Kafka forbids in a topic name replaced by `.`."""
    return _FORBIDDEN.sub(".", name)


def topic_for(template: str, message: Message, date: str) -> str:
    """The topic a message goes to (template filled in, then made safe)."""
    return safe_topic(template.format_map({
        "object_type": message.object_type, "poller": message.poller,
        "account": message.account, "date": date,
    }))


class KafkaEmitter(Emitter):
    """Produces each message as one record; `send` returns when the broker acknowledged all."""

    type = "kafka"

    def __init__(
        self, name: str, bootstrap_servers: Sequence[str], topic: str, *,
        compression: str | None = None, enable_idempotence: bool = False,
        security_protocol: str = "PLAINTEXT", sasl: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None, request_timeout: float = 30.0,
        max_request_size: int = 1048576, linger: float = 0.005,
    ) -> None:
        super().__init__(name)
        self.topic = topic
        self.servers = list(bootstrap_servers)
        self.request_timeout = request_timeout
        self._options: dict[str, Any] = {
            "bootstrap_servers": self.servers, "acks": "all",
            "enable_idempotence": enable_idempotence, "compression_type": compression,
            "security_protocol": security_protocol, "ssl_context": ssl_context,
            "request_timeout_ms": int(request_timeout * 1000), "max_request_size": max_request_size,
            "linger_ms": int(linger * 1000), "client_id": f"spd-{name}",
        }
        if sasl:
            self._options.update(sasl_mechanism=sasl["mechanism"],
                                 sasl_plain_username=sasl["username"],
                                 sasl_plain_password=sasl["password"])
        self._producer: Any = None
        self._lock = asyncio.Lock()
        self._stopping: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Checks the producer options (ConfigError); the broker is contacted on the first send."""
        await super().start()
        self._stop_later(self._new_producer())  # built and dropped: only to check the options

    def _new_producer(self) -> Any:
        try:
            return aiokafka.AIOKafkaProducer(**self._options)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise ConfigError(f"emitters.{self.name}: {exc}") from None

    async def send(self, messages: list[Message]) -> None:
        """Produces the messages; returns once the broker acknowledged every record."""
        self._check_open()
        if not messages:
            return
        producer = await self._connected()
        date = datetime.now(timezone.utc).date().isoformat()  # YYYY-MM-DD; strftime costs 4x
        futures: list[asyncio.Future[Any]] = []
        try:
            # Queueing waits for topic metadata, bounded by the producer's request timeout.
            await asyncio.wait_for(self._enqueue(producer, messages, date, futures),
                                   self.request_timeout * 2)
            await self._await_acks(futures)
        except (asyncio.TimeoutError, OSError, KafkaError, DeliveryError) as exc:
            self._discard(producer)
            log.warning("kafka_delivery_failed", emitter=self.name, records=len(messages),
                        error=_describe(exc))
            raise DeliveryError(
                f"emitter {self.name}: Kafka did not acknowledge the page ({_describe(exc)}); "
                "the poller holds its watermark and retries on its next run"
            ) from None

    async def _enqueue(self, producer: Any, messages: list[Message], date: str,
                       futures: list[asyncio.Future[Any]]) -> None:
        for m in messages:
            topic = topic_for(self.topic, m, date)
            if len(topic) > TOPIC_MAX or topic in (".", ".."):
                raise DeliveryError(f"topic {topic[:60]!r}... is not a valid Kafka topic name; "
                                    f"change emitters.{self.name}.topic")
            headers = [("poller", m.poller.encode()), ("object_type", m.object_type.encode()),
                       ("account", m.account.encode())]
            future = await producer.send(topic, m.body, key=m.key.encode(), headers=headers)
            future.add_done_callback(_retrieve)  # a failed page must not warn "never retrieved"
            futures.append(future)

    async def _await_acks(self, futures: list[asyncio.Future[Any]]) -> None:
        # aiokafka fails a batch after request_timeout; the extra time is only a safety net.
        done, pending = await asyncio.wait(futures, timeout=self.request_timeout * 2)
        if pending:
            raise DeliveryError(f"{len(pending)} of {len(futures)} records unacknowledged after "
                                f"{self.request_timeout * 2:g}s")
        for future in futures:
            if future.cancelled():
                raise DeliveryError("a record was cancelled before the broker acknowledged it")
            error = future.exception()
            if error is not None:
                raise error

    async def _connected(self) -> Any:
        """The started producer, connecting (bounded by request_timeout) when there is none."""
        async with self._lock:
            self._check_open()
            if self._producer is not None:
                return self._producer
            producer = self._new_producer()
            try:
                await asyncio.wait_for(producer.start(), self.request_timeout)
            except (asyncio.TimeoutError, OSError, KafkaError) as exc:
                self._stop_later(producer)
                log.warning("kafka_unavailable", emitter=self.name, servers=self.servers,
                            error=_describe(exc))
                raise DeliveryError(
                    f"emitter {self.name}: cannot reach Kafka at {', '.join(self.servers)} "
                    f"({_describe(exc)}); the poller holds its watermark and retries on its next run"
                ) from None
            self._producer = producer
            log.info("kafka_connected", emitter=self.name, servers=self.servers)
            return producer

    def _discard(self, producer: Any) -> None:
        """Drops a producer after a failure; the next send starts a fresh one."""
        if self._producer is producer:
            self._producer = None
            self._stop_later(producer)

    def _stop_later(self, producer: Any) -> None:
        # Stopping flushes what is queued, which can take request_timeout while the broker is
        # down: it runs in the background and close() waits for it.
        task = asyncio.ensure_future(self._stop(producer))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop(self, producer: Any) -> None:
        """Stops a producer: gracefully (flushing what is queued) within request_timeout, and
        then, however that ended (timed out, failed, cancelled by a caller's own bound), its
        sender task and broker connections are closed: aiokafka's stop() abandoned halfway
        leaves both open for the life of the process."""
        current = asyncio.current_task()
        try:
            if current is None or not current.cancelling():  # else the caller's bound ran out
                await asyncio.wait_for(producer.stop(), self.request_timeout)
        except Exception as exc:  # the producer is being thrown away; nothing to deliver here
            log.debug("kafka_producer_stop_failed", emitter=self.name, error=_describe(exc))
        finally:
            await _abandon(producer)

    async def probe(self) -> str | None:
        """`spd check`: connects and fetches the cluster's metadata (brokers and topics)."""
        producer = self._new_producer()
        try:
            await asyncio.wait_for(producer.start(), self.request_timeout)
            metadata = await asyncio.wait_for(producer.client.fetch_all_metadata(), self.request_timeout)
        except (asyncio.TimeoutError, OSError, KafkaError) as exc:
            raise DeliveryError(f"cannot reach Kafka at {', '.join(self.servers)} "
                                f"({_describe(exc)})") from None
        finally:
            await self._stop(producer)
        brokers, topics = len(metadata.brokers()), len(metadata.topics())
        return f"{brokers} broker{'s' if brokers != 1 else ''}, {topics} topic{'s' if topics != 1 else ''}"

    async def flush(self) -> None:
        """Waits for anything queued (every send already waited for its acknowledgements)."""
        producer = self._producer
        if producer is not None:
            try:
                await asyncio.wait_for(producer.flush(), self.request_timeout)
            except (asyncio.TimeoutError, KafkaError) as exc:
                raise DeliveryError(f"emitter {self.name}: flush failed ({_describe(exc)})") from None

    async def _close(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
            if producer is not None:
                await self._stop(producer)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)


async def _abandon(producer: Any) -> None:
    """Closes what a producer still holds, at once and without the broker (nothing is left to
    deliver: an unacknowledged page fails and its poller retries it): the sender task, its
    produce requests in flight, which would otherwise retry and reconnect, and the connections.
    After a completed stop() this finds all of them closed already."""
    sender = getattr(producer, "_sender", None)
    tasks = [t for t in asyncio.all_tasks() if _runs_for(t, sender)]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=ABANDON_TIMEOUT)
    for conn in list(getattr(producer.client, "_conns", {}).values()):
        writer = getattr(conn, "_writer", None)
        if writer is not None:  # close() would keep the socket until a stalled broker read the rest
            writer.transport.abort()
    try:  # the connections are closed locally: the bound is only a safety net
        await asyncio.wait_for(producer.client.close(), ABANDON_TIMEOUT)
    except Exception as exc:
        log.debug("kafka_producer_close_failed", error=_describe(exc))


def _runs_for(task: asyncio.Task[Any], sender: Any) -> bool:
    """Whether `task` is the sender's loop or one of its produce requests (aiokafka keeps no
    list of the latter: they are the tasks running a method of the sender)."""
    frame = getattr(task.get_coro(), "cr_frame", None)
    return sender is not None and frame is not None and frame.f_locals.get("self") is sender


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text and type(exc).__name__ not in text else (text or type(exc).__name__)
