"""IoThread: an emitter's blocking calls, run in order in one thread of its own."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from spd.emitters.io_thread import IoThread


def thread_named(name: str) -> threading.Thread | None:
    return next((t for t in threading.enumerate() if t.name == name), None)


async def test_calls_run_in_order_in_one_thread_of_their_own() -> None:
    io = IoThread("test-io-order")
    seen: list[tuple[int, str]] = []

    def call(i: int) -> int:
        time.sleep(0.01 * (3 - i))  # the first call is the slowest: order is kept anyway
        seen.append((i, threading.current_thread().name))
        return i * 10

    results = await asyncio.gather(*(io.run(lambda i=i: call(i)) for i in range(3)))
    assert results == [0, 10, 20]
    assert seen == [(0, "test-io-order"), (1, "test-io-order"), (2, "test-io-order")]
    io.close()


async def test_what_a_call_raises_reaches_the_caller_and_the_thread_goes_on() -> None:
    io = IoThread("test-io-raise")

    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await io.run(fail)
    assert await io.run(lambda: "still here") == "still here"
    io.close()


async def test_a_cancelled_caller_leaves_the_call_to_run() -> None:
    io = IoThread("test-io-cancel")
    started, release, ran = threading.Event(), threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        ran.set()
        return "done"

    task = asyncio.ensure_future(io.run(slow))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    assert await io.run(lambda: ran.is_set()) is True  # ran to its end, its outcome dropped
    io.close()


async def test_close_ends_the_thread_and_a_later_run_starts_another() -> None:
    io = IoThread("test-io-close")
    await io.run(lambda: None)
    first = thread_named("test-io-close")
    assert first is not None and io.running
    io.close()
    first.join(5)
    assert not first.is_alive() and not io.running
    io.close()  # again: nothing
    assert await io.run(lambda: 7) == 7
    second = thread_named("test-io-close")
    assert second is not None and second is not first
    io.close()


def test_a_loop_closed_before_the_call_ends_does_not_stop_the_thread() -> None:
    io = IoThread("test-io-loop-gone")
    release = threading.Event()

    async def leave_a_call_behind() -> None:
        asyncio.ensure_future(io.run(lambda: release.wait(5)))
        await asyncio.sleep(0.05)

    asyncio.run(leave_a_call_behind())  # the loop closes with the call still running
    release.set()

    async def later() -> str:
        return await asyncio.wait_for(io.run(lambda: "served"), 5)

    assert asyncio.run(later()) == "served"  # the same thread serves another loop
    io.close()
