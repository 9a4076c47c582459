"""The page fetched ahead, against the real simulator over loopback: the next page is requested
while this one is delivered; a stop, the cap, a failed delivery or a failed prefetch never let
the page fetched ahead be emitted or checkpointed, and no request of a run outlives it."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from spd.app.runtime import Runtime
from spd.client.policy import RetryPolicy
from spd.core.errors import ApiError, DeliveryError
from spd.sim import Simulator
from support.recording import RecordingEmitter
from support.spd import iso
from test_poller import LONG_TOKEN_TTL, NOW, make_runtime, sim_settings, truth

pytestmark = pytest.mark.filterwarnings("error")  # a task destroyed pending, an unawaited coroutine

OP = "ordersV0.getOrders"
START = NOW - timedelta(days=21)
POLLER = {"object": OP, "timestamp_field": "created", "emit": "page", "start_time": iso(START)}
PAGES = 15  # 1500 orders, 100 a page


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_settings(LONG_TOKEN_TTL)) as simulator:
        yield simulator


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reaches the loop's exception handler ("Task exception was never retrieved")."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(None)


def counter(sim: Simulator, name: str) -> Callable[[], int]:
    return lambda: sim.state.stats[OP][name]


async def until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Waits for `condition`; fails naming `what` when it does not come."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting: {what}")


def on_send(recorder: RecordingEmitter, send: int, condition: Callable[[], bool], what: str,
            then: Callable[[], object] = lambda: None) -> None:
    """Before acknowledging send `send`, the emitter waits for `condition`, then does `then`."""
    async def hook() -> None:
        await until(condition, what)
        then()

    recorder.before_ack[send] = hook


def fetches_left() -> list[asyncio.Task[Any]]:
    """Tasks of the pipeline still running (a request fetched ahead and not awaited)."""
    return [t for t in asyncio.all_tasks() if not t.done() and t is not asyncio.current_task()
            and "spd/pipeline" in getattr(t.get_coro(), "cr_code", t.get_coro()).co_filename]


def stop_watches_left() -> list[asyncio.Task[Any]]:
    """Tasks still waiting for a poller's stop event (a run's watch not closed)."""
    return [t for t in asyncio.all_tasks()
            if not t.done() and getattr(t.get_coro(), "__qualname__", "") == "Event.wait"]


def pages_of(recorder: RecordingEmitter) -> list[int]:
    return [m["page"] for m in recorder.messages]


async def close(runtime: Runtime) -> None:
    await runtime.close()
    await runtime.store.close()


async def all_delivered_once(sim: Simulator, recorder: RecordingEmitter, watermark: Any) -> None:
    ids = [o["AmazonOrderId"] for m in recorder.messages for o in m["results"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == await truth(sim, OP, "created", START, watermark)


async def test_the_next_page_is_requested_while_this_one_is_delivered(
        tmp_path: Path, sim: Simulator) -> None:
    runtime, recorder = await make_runtime(tmp_path, sim, POLLER)
    requests = counter(sim, "requests")
    # Page 1 is acknowledged only once the simulator got the request for page 2: a poller that
    # asks for page 2 only after page 1 is checkpointed never gets there.
    on_send(recorder, 1, lambda: requests() >= 2, "page 2 requested")
    try:
        result = await asyncio.wait_for(runtime.pollers["p"].run(), 60)
        assert stop_watches_left() == []  # the run watched for a stop, and stopped watching
    finally:
        await close(runtime)
    assert pages_of(recorder) == list(range(1, PAGES + 1)) and requests() == PAGES
    await all_delivered_once(sim, recorder, result.watermark)


async def test_a_stop_ends_the_run_after_the_page_in_flight_and_drops_the_page_fetched_ahead(
        tmp_path: Path, sim: Simulator) -> None:
    runtime, recorder = await make_runtime(tmp_path, sim, POLLER)
    poller, answered = runtime.pollers["p"], counter(sim, "ok")
    on_send(recorder, 3, lambda: answered() >= 4, "page 4 answered", poller.stopping.set)
    try:
        first = await poller.run()
        assert fetches_left() == [] and stop_watches_left() == []
        state = await runtime.store.get("p")
        assert (first.pages, state.page, state.watermark) == (3, 3, START) and state.next_token
        assert pages_of(recorder) == [1, 2, 3]  # page 4 was fetched, never emitted
        poller.stopping.clear()
        second = await poller.run()  # page 4 again, from the checkpointed token
    finally:
        await close(runtime)
    assert pages_of(recorder) == list(range(1, PAGES + 1))
    assert sim.state.stats[OP]["requests"] == PAGES + 1  # page 4 twice
    await all_delivered_once(sim, recorder, second.watermark)


async def test_a_stop_abandons_a_request_fetched_ahead_still_unanswered(
        tmp_path: Path, sim: Simulator) -> None:
    runtime, recorder = await make_runtime(tmp_path, sim, POLLER)
    poller, knobs = runtime.pollers["p"], sim.state.faults.knobs
    answered, requests = counter(sim, "ok"), counter(sim, "requests")
    # page 3 (asked for once page 1 is checkpointed) is answered in 8 s; the stop comes meanwhile
    on_send(recorder, 1, lambda: answered() >= 2, "page 2 answered",
            lambda: setattr(knobs, "latency_ms", 8_000))
    on_send(recorder, 2, lambda: requests() >= 3, "page 3 requested", poller.stopping.set)
    try:
        result = await asyncio.wait_for(poller.run(), 4)  # not the 8 s of page 3
        assert fetches_left() == []
        state = await runtime.store.get("p")
    finally:
        knobs.latency_ms = 0
        await close(runtime)
    assert (result.pages, state.page, pages_of(recorder)) == (2, 2, [1, 2])


async def test_the_cap_leaves_the_checkpoint_at_the_last_page_delivered(
        tmp_path: Path, sim: Simulator) -> None:
    runtime, recorder = await make_runtime(tmp_path, sim, {**POLLER, "max_items_per_run": 250})
    try:
        result = await runtime.pollers["p"].run()
        assert fetches_left() == []
        state = await runtime.store.get("p")
    finally:
        await close(runtime)
    assert result.capped and (state.page, state.watermark) == (3, START) and state.next_token
    assert pages_of(recorder) == [1, 2, 3]
    assert sim.state.stats[OP]["requests"] == 3  # nothing fetched ahead past the cap


async def test_a_failed_delivery_drops_the_page_fetched_ahead(
        tmp_path: Path, sim: Simulator) -> None:
    runtime, recorder = await make_runtime(tmp_path, sim, POLLER)
    poller, answered = runtime.pollers["p"], counter(sim, "ok")

    def refuse() -> None:
        raise DeliveryError("page 3 refused by the test")

    on_send(recorder, 3, lambda: answered() >= 4, "page 4 answered", refuse)
    try:
        with pytest.raises(DeliveryError, match="page 3 refused"):
            await poller.run()
        assert fetches_left() == []
        state = await runtime.store.get("p")
        assert (state.page, pages_of(recorder)) == (2, [1, 2])  # page 4 never emitted
        result = await poller.run()  # resumes at page 3
    finally:
        await close(runtime)
    assert pages_of(recorder) == list(range(1, PAGES + 1))
    await all_delivered_once(sim, recorder, result.watermark)


def fail_page_4(sim: Simulator, runtime: Runtime, recorder: RecordingEmitter) -> None:
    """The request for page 4 (sent ahead while page 3 is delivered) gets a 500, once, with no
    retry; page 3's delivery waits until that answer came."""
    assert runtime.client is not None
    runtime.client.retry = RetryPolicy(max_attempts=1)
    knobs, answered, failed = sim.state.faults.knobs, counter(sim, "ok"), counter(sim, "server_errors")
    on_send(recorder, 2, lambda: answered() >= 3, "page 3 answered",
            lambda: setattr(knobs, "error_rate", 1.0))
    on_send(recorder, 3, lambda: failed() >= 1, "page 4 failed",
            lambda: setattr(knobs, "error_rate", 0.0))


async def test_a_failed_fetch_ahead_surfaces_after_the_page_in_flight_is_checkpointed(
        tmp_path: Path, sim: Simulator) -> None:
    runtime, recorder = await make_runtime(tmp_path, sim, POLLER)
    fail_page_4(sim, runtime, recorder)
    try:
        with pytest.raises(ApiError):
            await runtime.pollers["p"].run()
        state = await runtime.store.get("p")
        # page 3 was delivered and checkpointed before the failure of page 4 surfaced
        assert (state.page, pages_of(recorder)) == (3, [1, 2, 3]) and state.last_error
        result = await runtime.pollers["p"].run()
    finally:
        await close(runtime)
    assert pages_of(recorder) == list(range(1, PAGES + 1))
    await all_delivered_once(sim, recorder, result.watermark)


async def test_a_failed_delivery_after_a_failed_fetch_ahead_leaves_no_error_unretrieved(
        tmp_path: Path, sim: Simulator, loop_errors: list[dict[str, Any]]) -> None:
    runtime, recorder = await make_runtime(tmp_path, sim, POLLER)
    fail_page_4(sim, runtime, recorder)
    recorder.fail_on = {3}  # after page 4's request failed
    try:
        with pytest.raises(DeliveryError):
            await runtime.pollers["p"].run()
        assert fetches_left() == []
        state = await runtime.store.get("p")
    finally:
        await close(runtime)
    gc.collect()
    await asyncio.sleep(0)
    assert (state.page, pages_of(recorder)) == (2, [1, 2])
    assert loop_errors == []
