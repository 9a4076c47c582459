"""A consumer task cancelled while its long poll is still winding down ends cancelled: the
cancellation is not swallowed by the wait for the cut poll (it was, with suppress(CancelledError))."""

from __future__ import annotations

import asyncio
from typing import Any

from spd.pipeline.subscriptions import QueueConsumer, Route


class SlowToCancelQueue:
    """A long poll that takes `linger` seconds to end once cancelled (a client closing its call)."""

    def __init__(self, linger: float) -> None:
        self.linger = linger
        self.polling = asyncio.Event()

    async def receive(self, *, wait_seconds: int, visibility: int) -> list[Any]:
        self.polling.set()
        try:
            await asyncio.sleep(wait_seconds)
        except asyncio.CancelledError:
            await asyncio.sleep(self.linger)
            raise
        return []

    async def close(self) -> None: ...
    async def delete(self, messages: list[Any]) -> list[str]: return []
    async def extend(self, messages: list[Any], seconds: int) -> None: ...


async def test_a_cancel_during_the_cut_polls_wind_down_ends_the_consumer_task() -> None:
    queue = SlowToCancelQueue(linger=0.5)
    consumer = QueueConsumer("q", queue, {"s": Route("s", "acct", [])})
    task = asyncio.ensure_future(consumer.receive())
    await queue.polling.wait()
    consumer.stopping.set()  # the stop cuts the long poll short: receive waits for it to end
    await asyncio.sleep(0.1)
    task.cancel()  # shutdown cancels the consumer meanwhile
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done and task.cancelled()


async def test_a_stop_returns_no_messages_once_the_cut_poll_ended() -> None:
    queue = SlowToCancelQueue(linger=0.05)
    consumer = QueueConsumer("q", queue, {"s": Route("s", "acct", [])})
    task = asyncio.ensure_future(consumer.receive())
    await queue.polling.wait()
    consumer.stopping.set()
    assert await asyncio.wait_for(task, 5) == []
