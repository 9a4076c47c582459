"""SingleFlight: one refresh per key however many callers wait, and a caller leaving stops nothing."""

from __future__ import annotations

import asyncio

import pytest

from spd.client.singleflight import SingleFlight


async def test_concurrent_callers_share_one_flight_per_key() -> None:
    flights: SingleFlight[str] = SingleFlight()
    started: list[str] = []

    async def refresh(key: str) -> str:
        started.append(key)
        await asyncio.sleep(0.01)
        return f"token-{key}"

    results = await asyncio.gather(*(flights.run(k, lambda k=k: refresh(k)) for k in "aaaab"))
    assert results == ["token-a"] * 4 + ["token-b"]
    assert started == ["a", "b"]
    assert await flights.run("a", lambda: refresh("a")) == "token-a" and started == ["a", "b", "a"]


async def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    flights: SingleFlight[int] = SingleFlight()
    release = asyncio.Event()

    async def slow() -> int:
        await release.wait()
        return 7

    leaving = asyncio.ensure_future(flights.run("k", slow))
    staying = asyncio.ensure_future(flights.run("k", slow))
    await asyncio.sleep(0)
    leaving.cancel()
    release.set()
    assert await staying == 7
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_close_cancels_flights_and_errors_reach_every_caller() -> None:
    flights: SingleFlight[int] = SingleFlight()

    async def fail() -> int:
        await asyncio.sleep(0)
        raise RuntimeError("refused")

    results = await asyncio.gather(flights.run("x", fail), flights.run("x", fail), return_exceptions=True)
    assert [str(r) for r in results] == ["refused", "refused"]
    waiting = asyncio.ensure_future(flights.run("y", lambda: asyncio.sleep(10, result=1)))
    await asyncio.sleep(0)
    flights.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting
