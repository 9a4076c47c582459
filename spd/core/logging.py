"""Logging: structlog configured in one place, with secrets redacted from every event.

The pipeline is a visible list of small processors. Output goes to stderr (journald under
systemd): JSON lines by default, a console renderer when asked or on a TTY. The redaction is
spd.core.redaction's, which also runs on everything else spd writes or prints.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson
import structlog

from spd.core.redaction import REDACTED, RedactSecrets, redact_secrets, set_debug

__all__ = ["REDACTED", "RedactSecrets", "build_processors", "configure_logging", "quiet_library_logs",
           "redact_secrets"]

def _orjson_dumps(event: dict[str, Any], **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def build_processors(fmt: str) -> list[Any]:
    """The processor pipeline, in order; redaction runs after exceptions are rendered to text."""
    renderer: Any
    if fmt == "console":
        # Exceptions reach the renderer as text (format_exc_info, above); the plain formatter is
        # named so the renderer is the same whether structlog was imported with rich or without
        # (spd.commands hides rich from it: ~60 ms of every start).
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(),
                                                 exception_formatter=structlog.dev.plain_traceback)
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
        renderer,
    ]


def configure_logging(level: str = "info", fmt: str | None = None) -> None:
    """Configures structlog once for the process: level, json|console, stderr."""
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    set_debug(numeric <= logging.DEBUG)
    structlog.configure(
        processors=build_processors(fmt),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def quiet_library_logs() -> None:
    """APScheduler logs through the standard library; only its errors are worth a line."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    # While a broker is down aiokafka logs plain-text ERRORs on every reconnect attempt (dozens
    # a second), breaking JSON logs; spd logs kafka_unavailable / kafka_delivery_failed itself.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
