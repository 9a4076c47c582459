"""The emitter contract: `send()` takes messages and returns only once every one is acknowledged
downstream."""

from __future__ import annotations

import builtins
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar

from spd.core.errors import DeliveryError
from spd.core.fields import ConfigModel
from spd.core.problems import Problem


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

    async def probe(self) -> str | None:
        """`spd check`: one harmless exchange with the peer, described in a few words (SpdError
        when it fails); None when there is no peer to probe."""
        return None

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


class EmitterSettings(ConfigModel):
    """An emitter type as a component: its config model (fields, defaults, limits, cross-field
    checks) is the base of `build`, `describe` and the checks beyond the file. Each type lives in
    one module; spd.emitters.registry lists them."""

    type: str
    summary: ClassVar[str] = ""  # one line: what this emitter type does (`spd validate`, docs)

    @classmethod
    def type_name(cls) -> str:
        """The `type:` value that selects this model."""
        return str(cls.model_fields["type"].default)

    @abstractmethod
    def build(self, name: str) -> Emitter:
        """The emitter for this (validated) config; opens nothing until `start()`."""

    def describe(self) -> str:
        """One line for `spd validate`: where the messages go, without any secret."""
        return self.type

    def resolved(self, base: Path) -> EmitterSettings:
        """This config with relative file paths made relative to `base` (the config's folder)."""
        return self

    def environment(self, name: str) -> list[Problem]:
        """What only this machine can say (missing extras, unreadable TLS files, unwritable
        folders), at key paths under `emitters.NAME`."""
        return []
