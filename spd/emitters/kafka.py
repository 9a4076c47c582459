"""The Kafka emitter: one record per message through an aiokafka producer with `acks=all`.

The topic is a template (`{object_type}`, `{poller}`, `{account}`, `{date}`); characters Kafka
forbids in topic names (anything but `a-z A-Z 0-9 . _ -`, such as `:` in `report:TYPE`) become
`.`. The record key is the message key (object id, or the poller name in page mode); headers
`poller`, `object_type` and `account` say where it comes from.

`send` queues every record of the page, then waits for every broker acknowledgement: the page
counts as delivered only when all of them arrived. The connection is made lazily, on the first
`send`, so a broker that is down at startup does not stop the daemon: that `send` fails with
DeliveryError after at most `request_timeout` and the poller holds its watermark. After any
failure the producer is discarded and the next `send` connects afresh, so delivery resumes by
itself when the broker is back.

A producer thrown away (after a failure, or at close) gets request_timeout to stop gracefully;
whatever is still running then (its sender, produce requests retrying, sockets a stalled broker
never reads) is cancelled and closed, so close() is bounded and leaves no connection behind.

`enable_idempotence` is off by default: some Kafka-protocol brokers (tansu, used by the tests)
reject idempotent producers. aiokafka is imported only when a Kafka emitter is configured.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from spd.core.errors import ConfigError, DeliveryError
from spd.core.lazylog import get_logger
from spd.core.fields import ConfigModel, Duration, Secret, Template, Text, fail
from spd.core.environment import installed
from spd.core.problems import Problem, error
from spd.emitters.base import Emitter, EmitterSettings, Message

log = get_logger(__name__)

ABANDON_TIMEOUT = 1.0  # seconds to close an abandoned producer's sockets (no broker involved)
TOPIC_MAX = 249  # Kafka's limit on topic name length
_FORBIDDEN = re.compile(r"[^a-zA-Z0-9._-]")
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
SSL_PROTOCOLS = ("SSL", "SASL_SSL")
MISSING_AIOKAFKA = ("a kafka emitter needs the aiokafka package; install spd with the kafka extra: "
                    "pip install 'spd[kafka]'")


def safe_topic(name: str) -> str:
    """`name` with every character Kafka forbids in a topic name replaced by `.`."""
    return _FORBIDDEN.sub(".", name)


def topic_for(template: str, message: Message, date: str) -> str:
    """The topic a message goes to (template filled in, then made safe)."""
    return safe_topic(template.format_map({
        "object_type": message.object_type, "poller": message.poller,
        "account": message.account, "date": date,
    }))


def make_ssl_context(*, cafile: str | None = None, certfile: str | None = None,
                keyfile: str | None = None, password: str | None = None,
                check_hostname: bool = True) -> ssl.SSLContext:
    """A client TLS context: the system CAs (or `cafile`), an optional client certificate."""
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = check_hostname
    if certfile:
        context.load_cert_chain(certfile, keyfile, password)
    return context


def _aiokafka(name: str) -> Any:
    try:
        import aiokafka  # lazy: only configs with a Kafka emitter need the kafka extra
    except ImportError:
        raise ConfigError(f"emitters.{name}.type: {MISSING_AIOKAFKA}") from None
    return aiokafka


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
        self._kafka = _aiokafka(name)
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
            return self._kafka.AIOKafkaProducer(**self._options)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise ConfigError(f"emitters.{self.name}: {exc}") from None

    async def send(self, messages: list[Message]) -> None:
        """Produces the messages; returns once the broker acknowledged every record."""
        self._check_open()
        if not messages:
            return
        producer = await self._connected()
        date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        futures: list[asyncio.Future[Any]] = []
        try:
            # Queueing waits for topic metadata, bounded by the producer's request timeout.
            await asyncio.wait_for(self._enqueue(producer, messages, date, futures),
                                   self.request_timeout * 2)
            await self._await_acks(futures)
        except (asyncio.TimeoutError, OSError, self._kafka.errors.KafkaError, DeliveryError) as exc:
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
            except (asyncio.TimeoutError, OSError, self._kafka.errors.KafkaError) as exc:
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
        except (asyncio.TimeoutError, OSError, self._kafka.errors.KafkaError) as exc:
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
            except (asyncio.TimeoutError, self._kafka.errors.KafkaError) as exc:
                raise DeliveryError(f"emitter {self.name}: flush failed ({_describe(exc)})") from None

    async def _close(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
            if producer is not None:
                await self._stop(producer)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)


def _has_codec(compression: str) -> bool:
    from aiokafka import codec  # lazy: only configs with a Kafka emitter need the kafka extra

    return bool(getattr(codec, f"has_{compression}")())


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


class KafkaSaslConfig(ConfigModel):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    username: Text
    password: Secret


class KafkaSslConfig(ConfigModel):
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    password: SecretStr | None = None
    check_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        """The client TLS context these files describe (OSError, ValueError when unreadable)."""
        return make_ssl_context(cafile=self.cafile, certfile=self.certfile, keyfile=self.keyfile,
                                password=self.password.get_secret_value() if self.password else None,
                                check_hostname=self.check_hostname)


class KafkaEmitterConfig(EmitterSettings):
    summary = "one record per message through an aiokafka producer with acks=all (the kafka extra)"
    type: Literal["kafka"] = "kafka"
    bootstrap_servers: Annotated[list[Text], Field(min_length=1)]
    topic: Template
    compression: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    enable_idempotence: bool = False
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl: KafkaSaslConfig | None = None
    ssl: KafkaSslConfig | None = None
    request_timeout: Duration = timedelta(seconds=30)  # a down broker stalls the poller this long

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [s.strip() for s in value.split(",")] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _security(self) -> KafkaEmitterConfig:
        protocol = self.security_protocol
        if self.sasl is not None and protocol not in SASL_PROTOCOLS:
            raise fail(f"needs security_protocol SASL_PLAINTEXT or SASL_SSL, not {protocol}", "sasl")
        if self.ssl is not None and protocol not in SSL_PROTOCOLS:
            raise fail(f"needs security_protocol SSL or SASL_SSL, not {protocol}", "ssl")
        return self

    def build(self, name: str) -> Emitter:
        ssl_context = None
        if self.security_protocol in SSL_PROTOCOLS:  # the files were checked by environment()
            ssl_context = self.ssl.context() if self.ssl else make_ssl_context()
        sasl = self.sasl and {"mechanism": self.sasl.mechanism, "username": self.sasl.username,
                              "password": self.sasl.password.get_secret_value()}
        return KafkaEmitter(
            name, self.bootstrap_servers, self.topic, compression=self.compression,
            enable_idempotence=self.enable_idempotence, security_protocol=self.security_protocol,
            sasl=sasl or None, ssl_context=ssl_context,
            request_timeout=self.request_timeout.total_seconds(),
        )

    def describe(self) -> str:
        return f"kafka {', '.join(self.bootstrap_servers)} topic {self.topic}"

    def environment(self, name: str) -> list[Problem]:
        if not installed("aiokafka"):
            return [error("emitters", name, "type", message=MISSING_AIOKAFKA)]
        problems = []
        if self.compression not in (None, "gzip") and not _has_codec(self.compression):
            problems.append(error("emitters", name, "compression", message=(
                f"{self.compression} needs the cramjam package (pip install cramjam); gzip needs nothing")))
        if self.ssl is not None and self.security_protocol in SSL_PROTOCOLS:
            try:
                self.ssl.context()
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                problems.append(error("emitters", name, "ssl", message=(
                    f"cannot load the TLS files ({exc}); check cafile, certfile, keyfile and password")))
        return problems
