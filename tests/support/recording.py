"""An emitter that records what it is sent, and can be told to fail."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from spd.core.errors import DeliveryError
from spd.emitters.base import Emitter, Message


class RecordingEmitter(Emitter):
    """Keeps every message; can fail on chosen sends, sleep or run a hook before acknowledging."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: list[dict[str, Any]] = []
        self.sends = 0
        self.fail_on: set[int] = set()
        self.delay_on: dict[int, float] = {}
        self.before_ack: dict[int, Callable[[], Awaitable[None]]] = {}  # send number -> hook

    async def start(self) -> None:
        return None

    async def send(self, messages: list[Message]) -> None:
        self.sends += 1
        if self.sends in self.delay_on:
            await asyncio.sleep(self.delay_on[self.sends])
        if self.sends in self.before_ack:
            await self.before_ack[self.sends]()
        if self.sends in self.fail_on:
            raise DeliveryError(f"send {self.sends} refused by the test")
        self.messages += [orjson.loads(m.body) for m in messages]

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def reopen(self) -> None:
        return None
