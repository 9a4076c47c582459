"""The dead-letter file: messages an emitter gave up on, one JSON line each, with the reason.

Each line is `{"failed_at", "error", "status", "delivery", "attempts", "message"}` where
`message` is the original message JSON, untouched. The file is written by a `FileEmitter`, so
it shares its template (`{poller}`, `{object_type}`, `{account}`, `{date}`), mode 0600, torn
line repair, SIGHUP reopen and fsync before the message counts as handled.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson

from spd.emitters.file_writer import FileEmitter
from spd.core.redaction import redact
from spd.core.times import rfc3339
from spd.emitters.base import Message


class DeadLetter:
    """Appends given-up messages to a JSON-lines file (fsynced) so their page can be acknowledged."""

    def __init__(self, emitter_name: str, template: str) -> None:
        self.file = FileEmitter(f"{emitter_name}.dead_letter", template, fsync=True)

    async def record(
        self, message: Message, *, error: str, status: int | None, delivery: str, attempts: int,
    ) -> None:
        """Writes one dead-letter line and fsyncs it; DeliveryError when the file cannot be written."""
        line = dead_letter_line(message, error=error, status=status, delivery=delivery,
                                attempts=attempts)
        await self.file.send([Message(line, message.key, message.poller, message.account,
                                      message.object_type)])

    def reopen(self) -> None:
        """SIGHUP: lets logrotate's renamed file go."""
        self.file.reopen()

    async def close(self) -> None:
        """Closes the file; idempotent."""
        await self.file.close()


def dead_letter_line(
    message: Message, *, error: str, status: int | None, delivery: str, attempts: int,
    failed_at: datetime | None = None,
) -> bytes:
    """The JSON line recorded for a message given up on (no trailing newline)."""
    record: dict[str, Any] = {
        "failed_at": rfc3339(failed_at or datetime.now(timezone.utc)),
        "error": redact(error),  # a receiver's answer may repeat the headers it was sent
        "status": status,
        "delivery": delivery,
        "attempts": attempts,
        "message": _as_json(message.body),
    }
    return orjson.dumps(record)


def _as_json(body: bytes) -> Any:
    # spd's own messages are always JSON; anything else is kept as text rather than lost.
    try:
        orjson.loads(body)  # a Fragment is copied in unchecked: make sure it is whole JSON
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")
    return orjson.Fragment(body)
