"""The poller against the real simulator over loopback, with a recording emitter that can be told
to fail or stall: windows, checkpoints, expired next tokens, caps and delivery failures."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from spd.config.validate import load_config
from spd.core.errors import DeliveryError
from spd.app.runtime import Runtime
from spd.sim import SimSettings, Simulator
from spd.state.store import StateStore
from support.config import write_config
from support.spd import iso
from support.recording import RecordingEmitter

NOW = datetime.now(timezone.utc).replace(microsecond=0)


# Next tokens outlive any pause a loaded machine puts between two pages or two runs, so a test of
# resuming never meets an expired token by accident; only the expiry test asks for a short life,
# and its delivery sleeps past it (a sleep is never shorter than asked, so load cannot undo it).
LONG_TOKEN_TTL = timedelta(minutes=30)
SHORT_TOKEN_TTL = timedelta(seconds=2)


def sim_settings(next_token_ttl: timedelta) -> SimSettings:
    return SimSettings(orders=1500, purchase_orders=400, start=NOW - timedelta(days=20), end=NOW,
                       rate_limit=False, next_token_ttl=next_token_ttl)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_settings(LONG_TOKEN_TTL)) as simulator:
        yield simulator


@pytest.fixture
async def short_token_sim() -> AsyncIterator[Simulator]:
    async with Simulator(sim_settings(SHORT_TOKEN_TTL)) as simulator:
        yield simulator


async def make_runtime(tmp_path: Path, sim: Simulator, poller: dict[str, Any]) -> tuple[Runtime, RecordingEmitter]:
    config = load_config(write_config(tmp_path, sim.url, {"p": poller}))
    recorder = RecordingEmitter("archive")
    store = StateStore(Path(config.state.path))
    await store.open()
    runtime = Runtime(config, store, emitter_factory=lambda name, cfg: recorder)
    await runtime.start()
    return runtime, recorder


async def truth(sim: Simulator, object_type: str, field: str, after: datetime, before: datetime) -> set[str]:
    async with __import__("aiohttp").ClientSession() as session:
        async with session.get(f"{sim.url}/_sim/objects", params={
                "type": object_type, "field": field, "after": iso(after), "before": iso(before)}) as resp:
            body = await resp.json()
    return {o["id"] for o in body["objects"] if o["superseded_at"] is None}


async def test_expired_next_token_restarts_the_window(tmp_path: Path, short_token_sim: Simulator) -> None:
    sim = short_token_sim
    runtime, recorder = await make_runtime(tmp_path, sim, {
        "object": "ordersV0.getOrders", "timestamp_field": "created", "start_time": iso(NOW - timedelta(days=21))})
    # the token of page 2 expires while page 2 is being delivered
    recorder.delay_on = {2: SHORT_TOKEN_TTL.total_seconds() + 0.5}
    try:
        result = await runtime.pollers["p"].run()
    finally:
        await runtime.close()
        await runtime.store.close()
    ids = {m["id"] for m in recorder.messages}
    expected = await truth(sim, "ordersV0.getOrders", "created", NOW - timedelta(days=21), result.watermark)
    assert expected and expected <= ids
    # The window started again from its first page: pages 1-2 were delivered twice.
    assert len(recorder.messages) >= len(expected) + 200


async def test_vendor_windows_are_at_most_seven_days_and_contiguous(tmp_path: Path, sim: Simulator) -> None:
    start = NOW - timedelta(days=20)
    runtime, recorder = await make_runtime(tmp_path, sim, {
        "object": "vendorOrders.getPurchaseOrders", "emit": "page", "start_time": iso(start)})
    try:
        result = await runtime.pollers["p"].run()
    finally:
        await runtime.close()
        await runtime.store.close()
    windows = sorted({tuple(m["window"]) for m in recorder.messages})
    assert result.windows == 3 and result.caught_up
    for (a_start, a_end), (b_start, _) in zip(windows, windows[1:]):
        # Amazon does not say whether these bounds include their instant: one second of overlap
        assert datetime.fromisoformat(a_end.replace("Z", "+00:00")) - timedelta(seconds=1) == \
            datetime.fromisoformat(b_start.replace("Z", "+00:00"))
    for w_start, w_end in windows:
        span = datetime.fromisoformat(w_end.replace("Z", "+00:00")) - datetime.fromisoformat(w_start.replace("Z", "+00:00"))
        assert span <= timedelta(days=7)
    assert windows[0][0] == iso(start)
    ids = {o["purchaseOrderNumber"] for m in recorder.messages for o in m["results"]}
    assert ids == await truth(sim, "vendorOrders.getPurchaseOrders", "created", start, result.watermark)
    assert all(len(m["results"]) <= 100 for m in recorder.messages)


async def test_failed_delivery_keeps_the_checkpoint_and_resumes(tmp_path: Path, sim: Simulator) -> None:
    start = NOW - timedelta(days=21)
    runtime, recorder = await make_runtime(tmp_path, sim, {
        "object": "orders_2026-01-01.searchOrders", "timestamp_field": "updated", "start_time": iso(start)})
    recorder.fail_on = {3}
    store = runtime.store
    try:
        with pytest.raises(DeliveryError):
            await runtime.pollers["p"].run()
        state = await store.get("p")
        assert state.watermark == start and state.page == 2 and state.next_token
        assert state.objects_emitted == 200 and "send 3 refused" in state.last_error
        result = await runtime.pollers["p"].run()  # resumes with the saved token at page 3
    finally:
        await runtime.close()
        await store.close()
    ids = [m["id"] for m in recorder.messages]
    assert len(ids) == len(set(ids))  # nothing repeated: the failed page was never acknowledged
    assert set(ids) == await truth(sim, "orders_2026-01-01.searchOrders", "updated", start, result.watermark)


async def test_max_items_per_run_stops_at_a_page_boundary(tmp_path: Path, sim: Simulator) -> None:
    start = NOW - timedelta(days=21)
    runtime, recorder = await make_runtime(tmp_path, sim, {
        "object": "ordersV0.getOrders", "start_time": iso(start), "max_items_per_run": 250})
    try:
        first = await runtime.pollers["p"].run()
        second = await runtime.pollers["p"].run()
    finally:
        await runtime.close()
        await runtime.store.close()
    assert (first.objects, first.capped, first.caught_up) == (300, True, False)
    assert second.objects == 300
    ids = [m["id"] for m in recorder.messages]
    assert len(ids) == len(set(ids)) == 600
    # No page was fetched ahead past the cap: 6 pages delivered, 6 requests spent.
    assert (await sim_stats(sim))["ordersV0.getOrders"]["requests"] == 6


async def sim_stats(sim: Simulator) -> dict[str, Any]:
    async with __import__("aiohttp").ClientSession() as session:
        async with session.get(f"{sim.url}/_sim/stats") as resp:
            return (await resp.json())["operations"]


async def test_a_retried_page_goes_only_to_the_emitters_that_did_not_acknowledge_it(
        tmp_path: Path, sim: Simulator) -> None:
    start = NOW - timedelta(days=21)
    config = load_config(write_config(tmp_path, sim.url, {"p": {
        "object": "ordersV0.getOrders", "start_time": iso(start), "emit": "page"}}))
    config = config.model_copy(update={"emitters": {**config.emitters, "second": config.emitters["archive"]}})
    config.pollers["p"].emitters.append("second")  # type: ignore[attr-defined]
    healthy, flaky = RecordingEmitter("archive"), RecordingEmitter("second")
    flaky.fail_on = {2, 3}  # page 2 fails twice, then goes through
    store = StateStore(Path(config.state.path))
    await store.open()
    runtime = Runtime(config, store, emitter_factory=lambda name, cfg: healthy if name == "archive" else flaky)
    await runtime.start()
    try:
        for _ in range(2):
            with pytest.raises(DeliveryError):
                await runtime.pollers["p"].run()
        await runtime.pollers["p"].run()
    finally:
        await runtime.close()
        await store.close()
    pages = [m["page"] for m in healthy.messages]
    assert pages == sorted(set(pages))  # the healthy emitter got page 2 once, not three times
    assert [m["page"] for m in flaky.messages] == pages


async def test_a_run_ends_once_it_reached_its_own_start_even_when_requests_are_slow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests slower than MIN_WINDOW (thousands of pollers, a slow API): each window ends at
    its answer's time - lag, older than now - lag by the time it is delivered; the run stops at
    its own start instead of chasing the clock forever, and the next run picks the rest up."""
    import asyncio

    from spd.pipeline import poller as poller_module, windows

    for module in (poller_module, windows):
        monkeypatch.setattr(module, "MIN_WINDOW", timedelta(milliseconds=50))
    settings = SimSettings(orders=0, purchase_orders=200, start=NOW - timedelta(days=1), end=NOW,
                           rate_limit=False, latency_ms=300)
    async with Simulator(settings) as slow:
        runtime, recorder = await make_runtime(tmp_path, slow, {
            "object": "vendorOrders.getPurchaseOrders", "start_time": iso(NOW - timedelta(hours=2))})
        try:
            result = await asyncio.wait_for(runtime.pollers["p"].run(), 30)
        finally:
            await runtime.close()
            await runtime.store.close()
    assert result.caught_up and result.windows <= 2, result
