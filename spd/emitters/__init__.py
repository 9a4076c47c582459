"""Emitters: where messages go. `build_emitter` turns an emitter's config into an Emitter."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable

from spd.emitters.base import Emitter
from spd.emitters.file import FileEmitter
from spd.emitters.kafka import KafkaEmitter, make_ssl_context
from spd.emitters.stdout import StdoutEmitter
from spd.emitters.webhook import WebhookEmitter
from spd.core.errors import ConfigError

__all__ = ["Emitter", "FileEmitter", "StdoutEmitter", "WebhookEmitter", "build_emitter",
           "SUPPORTED_TYPES"]

KAFKA_REQUEST_TIMEOUT = 30.0  # seconds; a stalled broker fails a page within about this long
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
SSL_PROTOCOLS = ("SSL", "SASL_SSL")


def _stdout(name: str, cfg: Any) -> Emitter:
    return StdoutEmitter(name)


def _file(name: str, cfg: Any) -> Emitter:
    path = getattr(cfg, "path", None)
    if not isinstance(path, str):
        raise ConfigError(f"emitters.{name}.path: is required for a file emitter; give a path template")
    return FileEmitter(name, path, fsync=bool(getattr(cfg, "fsync", True)))


def _webhook(name: str, cfg: Any) -> Emitter:
    url = getattr(cfg, "url", None)
    if not isinstance(url, str):
        raise ConfigError(f"emitters.{name}.url: is required for a webhook emitter; give an https:// URL")
    headers = {k: _reveal(v) for k, v in (getattr(cfg, "headers", None) or {}).items()}
    return WebhookEmitter(
        name, url, secret=_reveal(getattr(cfg, "secret", None)),
        timeout=_seconds(getattr(cfg, "timeout", None), 10.0), headers=headers,
        max_retry_time=_seconds(getattr(cfg, "max_retry_time", None), 3600.0),
        dead_letter=getattr(cfg, "dead_letter", None),
        verify_tls=bool(getattr(cfg, "verify_tls", True)),
        concurrency=int(getattr(cfg, "concurrency", 1) or 1),
    )


def _kafka(name: str, cfg: Any) -> Emitter:
    protocol = getattr(cfg, "security_protocol", "PLAINTEXT") or "PLAINTEXT"
    sasl = getattr(cfg, "sasl", None)
    if sasl is not None and protocol not in SASL_PROTOCOLS:
        raise ConfigError(f"emitters.{name}.sasl: needs security_protocol SASL_PLAINTEXT or SASL_SSL, "
                          f"not {protocol}")
    return KafkaEmitter(
        name, list(getattr(cfg, "bootstrap_servers")), getattr(cfg, "topic"),
        compression=getattr(cfg, "compression", None),
        enable_idempotence=bool(getattr(cfg, "enable_idempotence", False)),
        security_protocol=protocol,
        sasl=None if sasl is None else {"mechanism": sasl.mechanism, "username": sasl.username,
                                        "password": _reveal(sasl.password)},
        ssl_context=_kafka_ssl(name, protocol, getattr(cfg, "ssl", None)),
        request_timeout=_seconds(getattr(cfg, "request_timeout", None), KAFKA_REQUEST_TIMEOUT),
    )


def _kafka_ssl(name: str, protocol: str, ssl_cfg: Any) -> Any:
    if protocol not in SSL_PROTOCOLS:
        if ssl_cfg is not None:
            raise ConfigError(f"emitters.{name}.ssl: needs security_protocol SSL or SASL_SSL, not {protocol}")
        return None
    if ssl_cfg is None:
        return make_ssl_context()
    try:
        return make_ssl_context(
            cafile=ssl_cfg.cafile, certfile=ssl_cfg.certfile, keyfile=ssl_cfg.keyfile,
            password=_reveal(ssl_cfg.password), check_hostname=ssl_cfg.check_hostname,
        )
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise ConfigError(f"emitters.{name}.ssl: cannot load the TLS files ({exc}); "
                          "check cafile, certfile, keyfile and password") from None


def _reveal(value: Any) -> Any:
    """A SecretStr's value (emitters need the real secret); other values as they are."""
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


def _seconds(value: Any, default: float) -> float:
    if value is None:
        return default
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


_BUILDERS: dict[str, Callable[[str, Any], Emitter]] = {
    "stdout": _stdout, "file": _file, "webhook": _webhook, "kafka": _kafka,
}
SUPPORTED_TYPES = tuple(_BUILDERS)


def build_emitter(name: str, cfg: Any) -> Emitter:
    """The emitter for config `cfg`, read duck-typed (the fields of the emitter config models)."""
    kind = getattr(cfg, "type", None)
    builder = _BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is not None:
        return builder(name, cfg)
    allowed = ", ".join(SUPPORTED_TYPES)
    raise ConfigError(f"emitters.{name}.type: unknown emitter type {kind!r}; allowed: {allowed}")
