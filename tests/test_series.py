"""Series.unless_stopped: a page already fetched is taken as it is; a fetch in flight is
abandoned (PollStopped) as soon as the poller is told to stop."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from spd.pipeline.series import Series
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
    await asyncio.sleep(0)
    assert fetch.cancelled()
