"""One refresh at a time per key: the LWA token, the STS credentials and the RDT caches share it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class SingleFlight(Generic[V]):
    """Runs at most one coroutine per key; every caller of that key awaits the same result."""

    def __init__(self) -> None:
        self._inflight: dict[Hashable, asyncio.Future[V]] = {}

    async def run(self, key: Hashable, start: Callable[[], Awaitable[V]]) -> V:
        """The result of the flight for `key`, starting one with `start()` if none is running."""
        fut = self._inflight.get(key)
        if fut is None:
            fut = asyncio.ensure_future(start())
            self._inflight[key] = fut
            fut.add_done_callback(lambda f: self._settle(key, f))
        # shield: a cancelled caller must not cancel the refresh others are waiting for
        return await asyncio.shield(fut)

    def close(self) -> None:
        """Cancels the flights still running."""
        for fut in list(self._inflight.values()):
            fut.cancel()
        self._inflight.clear()

    def _settle(self, key: Hashable, fut: asyncio.Future[V]) -> None:
        if self._inflight.get(key) is fut:
            del self._inflight[key]
        if not fut.cancelled():
            fut.exception()  # retrieved: no "never retrieved" warning if every waiter left
