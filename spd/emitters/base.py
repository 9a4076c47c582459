"""The emitter contract: `send()` takes messages and returns only once every one is acknowledged
downstream."""

from __future__ import annotations

import builtins
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType

from spd.core.errors import DeliveryError


@dataclass(frozen=True)
class Message:
    """One emitted message, already serialized (`body` has no trailing newline)."""

    body: bytes
    key: str  # object id (individually) or poller name (page)
    poller: str
    account: str
    object_type: str


class Emitter(ABC):
    """A sink for messages with an explicit lifecycle: start → send… → flush → close."""

    type: str = "?"  # the config's `type:`
    # Class defaults keep subclasses that skip super().__init__ (test doubles) working.
    _started = False
    _closed = False

    def __init__(self, name: str) -> None:
        self.name = name
        self._started = False
        self._closed = False

    async def start(self) -> None:
        """Opens connections or files the emitter needs before the first send."""
        self._started = True

    @abstractmethod
    async def send(self, messages: list[Message]) -> None:
        """Delivers `messages` in order; returns once all are acknowledged, else DeliveryError."""

    async def flush(self) -> None:
        """Pushes out anything buffered (most emitters buffer nothing past `send`)."""

    async def close(self) -> None:
        """Flushes, then releases resources; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            await self.flush()
        finally:
            await self._close()

    async def _close(self) -> None:
        """Subclasses release their resources here."""

    def reopen(self) -> None:
        """SIGHUP: reopens outputs (the file emitter, for logrotate); others ignore it."""

    def _check_open(self) -> None:
        if self._closed:
            raise DeliveryError(f"emitter {self.name}: it is closed")

    async def __aenter__(self) -> Emitter:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: builtins.type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __del__(self) -> None:
        # aiokafka-style: a started emitter that was never closed may have lost a flush.
        if self._started and not self._closed:
            warnings.warn(f"emitter {self!r} was not closed", ResourceWarning, stacklevel=1)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
