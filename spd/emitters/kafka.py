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
reject idempotent producers. The producer (spd.emitters.kafka_producer) and aiokafka are imported
only when a Kafka emitter is built.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from spd.core.environment import installed
from spd.core.errors import ConfigError
from spd.core.fields import ConfigModel, Duration, Secret, Template, Text, fail
from spd.core.problems import Problem, error
from spd.emitters.base import Emitter, EmitterSettings

if TYPE_CHECKING:
    import ssl

SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
SSL_PROTOCOLS = ("SSL", "SASL_SSL")
MISSING_AIOKAFKA = ("a kafka emitter needs the aiokafka package; install spd with the kafka extra: "
                    "pip install 'spd[kafka]'")


def make_ssl_context(*, cafile: str | None = None, certfile: str | None = None,
                keyfile: str | None = None, password: str | None = None,
                check_hostname: bool = True) -> ssl.SSLContext:
    """A client TLS context: the system CAs (or `cafile`), an optional client certificate."""
    import ssl  # lazy: only Kafka emitters speaking TLS need it

    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = check_hostname
    if certfile:
        context.load_cert_chain(certfile, keyfile, password)
    return context


def _has_codec(compression: str) -> bool:
    from aiokafka import codec  # lazy: only configs with a Kafka emitter need the kafka extra

    return bool(getattr(codec, f"has_{compression}")())


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
        if not installed("aiokafka"):
            raise ConfigError(f"emitters.{name}.type: {MISSING_AIOKAFKA}")
        from spd.emitters.kafka_producer import KafkaEmitter  # lazy: asyncio and aiokafka, for a built emitter only

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
