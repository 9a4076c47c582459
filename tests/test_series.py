"""Series.unless_stopped: a page already fetched is taken as it is; a fetch in flight is
abandoned (PollStopped) as soon as the poller is told to stop. `abandon` returns once the work
it cancels has ended, drops its outcome unread, and lets a cancellation of its caller through."""

from __future__ import annotations

import asyncio
import gc
from types import SimpleNamespace

import pytest

from spd.pipeline.series import Series, abandon
from spd.pipeline.types import PollStopped


async def test_a_prefetched_page_needs_no_waiting(monkeypatch) -> None:
    series = SimpleNamespace(stopping=asyncio.Event())
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
    series = SimpleNamespace(stopping=asyncio.Event())
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


async def test_abandon_lets_a_cancellation_of_its_caller_through() -> None:
    released = asyncio.Event()

    async def slow_to_end() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await released.wait()  # cleans up for a while after its cancellation

    work = asyncio.ensure_future(slow_to_end())
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
