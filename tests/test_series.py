"""Series.unless_stopped: a page already fetched is taken as it is; a fetch in flight is
abandoned (PollStopped) as soon as the poller is told to stop. `abandon` returns once the work
it cancels has ended, drops its outcome unread, and lets a cancellation of its caller through."""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace

import pytest

from spd.pipeline.series import Series, StopWatch, abandon
from spd.pipeline.types import PollStopped


def watched() -> SimpleNamespace:
    """What `Series.unless_stopped` uses of a series: its stop event and the watch on it."""
    stopping = asyncio.Event()
    return SimpleNamespace(stopping=stopping, watch=StopWatch(stopping))


async def test_a_prefetched_page_needs_no_waiting(monkeypatch) -> None:
    series = watched()
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    done.set_result("page")
    made: list[object] = []
    real = asyncio.ensure_future
    monkeypatch.setattr(asyncio, "ensure_future", lambda *a, **k: made.append(a) or real(*a, **k))
    assert await Series.unless_stopped(series, done) == "page"  # type: ignore[arg-type]
    assert made == []  # no task to watch the stop event
    failed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    failed.set_exception(RuntimeError("refused"))
    with pytest.raises(RuntimeError, match="refused"):
        await Series.unless_stopped(series, failed)  # type: ignore[arg-type]


async def test_a_fetch_in_flight_is_abandoned_on_stop() -> None:
    series = watched()
    fetch = asyncio.ensure_future(asyncio.sleep(30))
    asyncio.get_running_loop().call_later(0.05, series.stopping.set)
    with pytest.raises(PollStopped):
        await Series.unless_stopped(series, fetch)  # type: ignore[arg-type]
    assert fetch.cancelled()  # ended, not just asked to: no request outlives the run


async def test_abandon_drops_an_outcome_unread_without_a_never_retrieved_log() -> None:
    loop = asyncio.get_running_loop()
    logged: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: logged.append(context))

    async def fail() -> None:
        raise RuntimeError("the page ahead failed")

    try:
        failed = asyncio.ensure_future(fail())
        await asyncio.wait({failed})
        await abandon(failed)  # no raise: nobody needs the page ahead any more
        del failed
        gc.collect()
    finally:
        loop.set_exception_handler(None)
    assert logged == []


async def slow_to_end(released: asyncio.Event) -> None:
    """Work that cleans up for a while after its cancellation: until `released` is set."""
    try:
        await asyncio.sleep(30)
    finally:
        await released.wait()


async def test_abandon_lets_a_cancellation_of_its_caller_through() -> None:
    released = asyncio.Event()

    work = asyncio.ensure_future(slow_to_end(released))
    await asyncio.sleep(0)
    caller = asyncio.ensure_future(abandon(work))
    await asyncio.sleep(0.01)
    assert not caller.done()  # waits for the work to end
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    released.set()
    await asyncio.wait({work})
    assert work.cancelled()


def stop_waiters() -> list[asyncio.Task[object]]:
    """Tasks waiting for a stop event (the watch's, or one per page as before)."""
    return [t for t in asyncio.all_tasks()
            if not t.done() and getattr(t.get_coro(), "__qualname__", "") == "Event.wait"]


async def test_one_task_watches_for_the_stop_however_many_pages_are_awaited() -> None:
    series, loop = watched(), asyncio.get_running_loop()
    waiters: set[asyncio.Task[object]] = set()
    for page in range(5):
        fetch: asyncio.Future[int] = loop.create_future()
        waiting = asyncio.ensure_future(Series.unless_stopped(series, fetch))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # the page is awaited, not fetched yet
        waiters.update(stop_waiters())
        fetch.set_result(page)
        assert await waiting == page
    assert len(waiters) == 1  # not one per page
    await series.watch.close()
    assert stop_waiters() == []  # nothing outlives the run


async def test_a_stop_cleared_and_given_again_is_watched_anew() -> None:
    series, loop = watched(), asyncio.get_running_loop()
    for _ in range(2):  # stopped while waiting, then the account is placed here again
        fetch = asyncio.ensure_future(asyncio.sleep(30))
        loop.call_later(0.05, series.stopping.set)
        with pytest.raises(PollStopped):
            await asyncio.wait_for(Series.unless_stopped(series, fetch), 5)  # type: ignore[arg-type]
        assert fetch.cancelled()
        series.stopping.clear()
    await series.watch.close()


async def test_a_cancelled_caller_gets_a_cancellation_not_a_stop() -> None:
    series, released = watched(), asyncio.Event()

    fetch = asyncio.ensure_future(slow_to_end(released))
    caller = asyncio.ensure_future(Series.unless_stopped(series, fetch))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    series.stopping.set()
    while not fetch.cancelling():  # the stop cancelled the fetch, which is still ending
        await asyncio.sleep(0)
    caller.cancel()  # and now the caller itself is cancelled: that is what it must see
    released.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert fetch.cancelled()
    await series.watch.close()


async def test_a_cancelled_caller_stays_cancelled_when_the_work_ignores_it() -> None:
    series = watched()

    async def stubborn() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "page"  # finished all the same
        return "never"

    fetch = asyncio.ensure_future(stubborn())
    caller = asyncio.ensure_future(Series.unless_stopped(series, fetch))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert fetch.result() == "page"
    await series.watch.close()


async def test_a_failed_fetch_raises_its_own_error() -> None:
    series = watched()

    async def refused() -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        await Series.unless_stopped(series, asyncio.ensure_future(refused()))  # type: ignore[arg-type]
    await series.watch.close()
