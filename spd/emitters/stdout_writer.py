"""The stdout emitter at work: JSON lines written one send at a time and in the order sent (sends
from several pollers never interleave). Into a pipe or a terminal from its own thread: a reader
that stops would block a write for ever. Into a regular file (`spd once > orders.jsonl`) on the
loop while the writes are quick, as the file emitter does (spd.emitters.io_thread).

Its config is spd.emitters.stdout, which imports this module only when it builds an emitter
(asyncio stays unimported for `spd validate`).
"""

from __future__ import annotations

import os
import stat
import sys
from functools import partial
from typing import BinaryIO

from spd.core.errors import DeliveryError
from spd.emitters.base import Emitter, Message
from spd.emitters.io_thread import INLINE_LIMIT_S, IoThread


class StdoutEmitter(Emitter):
    """Writes JSON lines to stdout's binary buffer (or a given binary stream, for tests)."""

    type = "stdout"

    def __init__(self, name: str, stream: BinaryIO | None = None) -> None:
        super().__init__(name)
        self._stream = stream
        self._io = IoThread(f"spd-stdout-{name}")
        self._placed_for: BinaryIO | None = None  # the stream the IoThread's mode was chosen for

    def _target(self) -> BinaryIO:
        # Looked up at each send so a replaced sys.stdout (pytest capture, CLI) is honoured.
        return self._stream if self._stream is not None else sys.stdout.buffer

    async def send(self, messages: list[Message]) -> None:
        """Writes the messages as lines and flushes; a closed pipe raises DeliveryError."""
        self._check_open()
        if not messages:
            return
        data = b"\n".join(m.body for m in messages) + b"\n"
        target = self._target()
        if target is not self._placed_for:
            self._io.inline_limit = INLINE_LIMIT_S if _regular_file(target) else None
            self._placed_for = target
        await self._io.run(partial(self._write, data))

    def _write(self, data: bytes) -> None:
        stream = self._target()
        try:
            stream.write(data)
            stream.flush()
        except BrokenPipeError:
            raise DeliveryError(
                f"emitter {self.name}: stdout is closed (broken pipe); its reader went away"
            ) from None
        except (OSError, ValueError) as exc:  # ValueError: write to a closed file object
            raise DeliveryError(f"emitter {self.name}: cannot write to stdout ({exc})") from None

    async def flush(self) -> None:
        """Flushes stdout; errors at shutdown are ignored (nothing is buffered past `send`)."""
        try:
            self._target().flush()
        except (OSError, ValueError):
            pass

    async def _close(self) -> None:
        self._io.close()


def _regular_file(stream: BinaryIO) -> bool:
    """Whether `stream` writes to a regular file (not a pipe, socket or terminal)."""
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return False
