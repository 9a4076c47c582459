"""IoThread: an emitter's blocking calls, run in order: in one thread of its own, or on the loop
while they are quick."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import spd.emitters.io_thread as io_mod
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


# -- on the loop while quick ---------------------------------------------------------------------

async def test_quick_calls_run_on_the_loop_in_order_and_raise_to_the_caller() -> None:
    io = IoThread("test-io-inline", inline_limit=1.0)
    seen: list[tuple[int, str]] = []

    def call(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * 10

    results = await asyncio.gather(*(io.run(lambda i=i: call(i)) for i in range(3)))
    here = threading.current_thread().name
    assert results == [0, 10, 20] and seen == [(0, here), (1, here), (2, here)]

    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        await io.run(fail)
    assert not io.running  # no thread was ever needed


async def test_a_slow_call_sends_the_next_ones_to_the_thread_for_a_while(monkeypatch) -> None:
    monkeypatch.setattr(io_mod, "THREAD_AFTER_SLOW_S", 0.3)
    io = IoThread("test-io-slow", inline_limit=0.05)
    name = lambda: threading.current_thread().name  # noqa: E731
    here = name()
    assert await io.run(lambda: (time.sleep(0.1), name())[1]) == here  # slow, but already running
    assert await io.run(name) == "test-io-slow"  # the next one goes to the thread
    await asyncio.sleep(0.35)
    assert await io.run(name) == here  # the while is over: on the loop again
    io.close()


async def test_a_call_never_overtakes_one_still_in_the_thread(monkeypatch) -> None:
    monkeypatch.setattr(io_mod, "THREAD_AFTER_SLOW_S", 0.1)
    io = IoThread("test-io-overtake", inline_limit=0.05)
    await io.run(lambda: time.sleep(0.06))  # to the thread for the next 0.1 s
    started, release = threading.Event(), threading.Event()
    order: list[str] = []

    def blocked() -> None:
        started.set()
        release.wait(5)
        order.append("first")

    first = asyncio.ensure_future(io.run(blocked))
    await asyncio.to_thread(started.wait, 5)
    await asyncio.sleep(0.15)  # the while is over, but the first call is still running
    second = asyncio.ensure_future(io.run(lambda: order.append(threading.current_thread().name)))
    await asyncio.sleep(0.05)
    assert order == []  # not run on the loop beside the first
    release.set()
    await asyncio.gather(first, second)
    assert order == ["first", "test-io-overtake"]
    assert await io.run(threading.current_thread) is threading.current_thread()  # all done: loop
    io.close()
