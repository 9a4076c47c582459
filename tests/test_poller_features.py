"""Poller features against the simulator: marketplace fan-out, start_time clamping, overlap,
`include: [items]`, financial events flattening and an expiring inventory next token."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from spd.config.validate import load_config
from spd.core.times import format_ts
from spd.core.errors import ConfigError
from spd.sources.object_type import object_id
from spd.sources.registry import resolve_object_type
from spd.sim import SimSettings, Simulator
from spd.app.status import STATUS_COLUMNS, collect_status, status_table
from support.config import write_config
from support.recording import RecordingEmitter
from support.runtime import start_runtime, stop_runtime, truth
from support.spd import iso

US, CA = "ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    """`spd status`'s table rows, cells joined by " | "."""
    return [" | ".join(c.cell(row) for c in STATUS_COLUMNS) for row in status_table(rows)]

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    settings = SimSettings(orders=250, purchase_orders=50, objects_per_type=300, start=NOW - timedelta(days=20),
                           end=NOW, live=False, rate_limit=False, marketplaces=(US, CA))
    async with Simulator(settings) as simulator:
        yield simulator


async def test_single_marketplace_types_fan_out_with_their_own_watermarks(tmp_path: Path, sim: Simulator) -> None:
    name = "fbaInventory.getInventorySummaries"
    start = NOW - timedelta(days=10)
    runtime, recorder = await start_runtime(tmp_path, sim.url, {"inv": {
        "object": name, "timestamp_field": "updated", "start_time": iso(start)}}, markets=(US, CA))
    try:
        result = await runtime.pollers["inv"].run()
        states = {s.poller: s for s in await runtime.store.all()}
        lines = table_lines(await collect_status(runtime.config))
    finally:
        await stop_runtime(runtime)
    assert result.caught_up
    assert {"inv", f"inv@{US}", f"inv@{CA}"} <= set(states)
    ot = resolve_object_type(name)
    emitted = {m["id"] for m in recorder.messages}
    for market in (US, CA):
        state = states[f"inv@{market}"]
        assert state.watermark > NOW - timedelta(minutes=1) and state.objects_emitted > 0
        rows = await truth(sim.url, name, "updated", start, state.watermark, market)
        assert {object_id(ot, r["data"]) for r in rows} <= emitted
        assert all(r["marketplace_id"] == market for r in rows)
    assert states[f"inv@{US}"].objects_emitted + states[f"inv@{CA}"].objects_emitted == len(recorder.messages)
    parent = states["inv"]  # the poller's own row: the oldest marketplace, and all of them in the note
    assert parent.watermark == min(states[f"inv@{m}"].watermark for m in (US, CA))
    assert f"{US} at " in parent.note and f"{CA} at " in parent.note
    assert any(line.startswith("inv | ") and "per marketplace" in line for line in lines)
    objects = [c.header for c in STATUS_COLUMNS].index("OBJECTS")
    assert lines[0].split(" | ")[objects] == str(len(recorder.messages))  # the marketplaces' sum
    assert sorted(line.split(" | ")[0] for line in lines[1:3]) == sorted([f"  inv@{US}", f"  inv@{CA}"])
    assert not any("no longer in the config" in line for line in lines)


async def test_resetting_a_fanned_out_poller_restarts_every_marketplace(tmp_path: Path, sim: Simulator) -> None:
    runtime, recorder = await start_runtime(tmp_path, sim.url, {"inv": {
        "object": "fbaInventory.getInventorySummaries", "timestamp_field": "updated",
        "start_time": iso(NOW - timedelta(days=10))}}, markets=(US, CA))
    try:
        await runtime.pollers["inv"].run()
        first = len(recorder.messages)
        await runtime.store.reset("inv", NOW - timedelta(days=10))  # what `spd reset` does
        await runtime.pollers["inv"].run()
        states = {s.poller: s for s in await runtime.store.all()}
    finally:
        await stop_runtime(runtime)
    assert len(recorder.messages) == 2 * first  # both marketplaces polled again from the reset
    assert states["inv"].watermark == min(states[f"inv@{m}"].watermark for m in (US, CA))


async def test_one_marketplace_keeps_the_plain_state_key(tmp_path: Path, sim: Simulator) -> None:
    runtime, recorder = await start_runtime(tmp_path, sim.url, {"tx": {
        "object": "finances_2024-06-19.listTransactions", "start_time": iso(NOW - timedelta(days=5))}},
        markets=(CA,))
    try:
        await runtime.pollers["tx"].run()
        names = {s.poller for s in await runtime.store.all()}
    finally:
        await stop_runtime(runtime)
    assert names == {"tx"} and recorder.messages


async def test_old_start_time_is_clamped_and_status_says_so(tmp_path: Path, sim: Simulator) -> None:
    runtime, recorder = await start_runtime(tmp_path, sim.url, {"rep": {
        "object": "feeds_2021-06-30.getFeeds", "start_time": "2020-01-01T00:00:00Z",
        "params": {"feedTypes": ["POST_PRODUCT_DATA"]}}})
    try:
        result = await runtime.pollers["rep"].run()  # the simulator refuses createdSince > 90 days ago
        state = await runtime.store.get("rep")
        lines = table_lines(await collect_status(runtime.config))
    finally:
        await stop_runtime(runtime)
    assert result.caught_up and recorder.messages
    assert state is not None and state.note and "moved to" in state.note and "90d" in state.note
    assert any("note: watermark 2020-01-01T00:00:00Z is older" in line for line in lines)


async def test_overlap_rescans_the_end_of_the_previous_window(tmp_path: Path, sim: Simulator) -> None:
    name = "transfers_2024-06-01.listPayouts"
    start = NOW - timedelta(days=10)
    runtime, recorder = await start_runtime(tmp_path, sim.url, {"pay": {
        "object": name, "start_time": iso(start), "overlap": "1d", "emit": "page"}})
    try:
        await runtime.pollers["pay"].run()
        first_window = recorder.messages[0]["window"]
        watermark = (await runtime.store.require("pay")).watermark
        await runtime.store.finish_window("pay", watermark - timedelta(minutes=1))  # as if time passed
        recorder.messages.clear()
        await runtime.pollers["pay"].run()
    finally:
        await stop_runtime(runtime)
    assert first_window[0] == iso(start)  # the overlap never reaches before start_time
    second = recorder.messages
    assert second and second[0]["window"][0] == format_ts(watermark - timedelta(minutes=1) - timedelta(days=1))
    ot = resolve_object_type(name)
    again = {object_id(ot, o) for m in second for o in m["results"]}
    rows = await truth(sim.url, name, "created", watermark - timedelta(days=1), watermark, US)
    assert rows and {object_id(ot, r["data"]) for r in rows} <= again  # emitted a second time


async def test_overlap_is_at_most_half_a_maximum_window(tmp_path: Path, sim: Simulator) -> None:
    runtime, recorder = await start_runtime(tmp_path, sim.url, {"df": {
        "object": "vendorDirectFulfillmentShipping_2021-12-28.getPackingSlips", "emit": "page",
        "start_time": iso(NOW - timedelta(days=12)), "overlap": "10d"}})
    try:
        result = await runtime.pollers["df"].run()
    finally:
        await stop_runtime(runtime)
    windows = sorted({tuple(m["window"]) for m in recorder.messages})
    assert result.caught_up and len(windows) >= 3
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    for (_, a_end), (b_start, _) in zip(windows, windows[1:]):
        assert parse(a_end) - parse(b_start) == timedelta(days=3, hours=12)


async def test_include_items_attaches_every_item_of_every_order(tmp_path: Path, sim: Simulator) -> None:
    runtime, recorder = await start_runtime(tmp_path, sim.url, {"o": {
        "object": "ordersV0.getOrders", "start_time": iso(NOW - timedelta(days=3)), "include": ["items"]}})
    try:
        await runtime.pollers["o"].run()
    finally:
        await stop_runtime(runtime)
    assert len(recorder.messages) > 20
    multi_page = 0
    for message in recorder.messages:
        rec = sim.state.orders.by_id[message["id"]]
        items = message["data"]["OrderItems"]
        assert [i["OrderItemId"] for i in items] == [line["item_id"] for line in rec.attrs["lines"]]
        multi_page += len(items) > 2  # the simulator pages items two at a time
    assert multi_page > 0
    stats = sim.state.stats["ordersV0.getOrderItems"]
    assert stats["ok"] >= len(recorder.messages) + multi_page


async def test_include_is_refused_where_the_type_cannot_include(tmp_path: Path, sim: Simulator) -> None:
    with pytest.raises(ConfigError, match="includedData"):
        await start_runtime(tmp_path, sim.url, {"o": {
            "object": "orders_2026-01-01.searchOrders", "include": ["items"]}})


async def test_financial_events_are_one_event_per_object(tmp_path: Path, sim: Simulator) -> None:
    name = "financesV0.listFinancialEvents"
    start = NOW - timedelta(days=6)
    runtime, recorder = await start_runtime(tmp_path, sim.url, {"fe": {
        "object": name, "start_time": iso(start)}})
    try:
        await runtime.pollers["fe"].run()
        watermark = (await runtime.store.require("fe")).watermark
    finally:
        await stop_runtime(runtime)
    types = {m["data"]["eventType"] for m in recorder.messages}
    assert len(types) >= 3 and "ShipmentEvent" in types
    assert all(m["id"].startswith("sha256:") for m in recorder.messages)
    shipment = next(m for m in recorder.messages if m["data"]["eventType"] == "ShipmentEvent")
    assert shipment["cursor"] == shipment["data"]["PostedDate"] and "AmazonOrderId" in shipment["data"]
    ot = resolve_object_type(name)
    rows = await truth(sim.url, name, "created", start, watermark)
    assert {object_id(ot, r["data"]) for r in rows} == {m["id"] for m in recorder.messages}


class ClockStepper(RecordingEmitter):
    """Moves the simulator's clock 31 s ahead on its first send: the next token has expired."""

    def __init__(self, shift: list[timedelta]) -> None:
        super().__init__("archive")
        self.shift = shift

    async def send(self, messages: Any) -> None:
        if self.sends == 0:  # counted by RecordingEmitter.send
            self.shift[0] += timedelta(seconds=31)
        await super().send(messages)


async def test_inventory_next_token_expires_after_30_seconds(tmp_path: Path) -> None:
    shift = [timedelta(0)]
    settings = SimSettings(orders=10, purchase_orders=10, objects_per_type=400, start=NOW - timedelta(days=20),
                           end=NOW, live=False, rate_limit=False, next_token_ttl=timedelta(hours=1),
                           clock=lambda: datetime.now(timezone.utc) + shift[0])
    async with Simulator(settings) as sim:
        config = load_config(write_config(tmp_path, sim.url, {"inv": {
            "object": "fbaInventory.getInventorySummaries", "timestamp_field": "updated",
            "start_time": iso(NOW - timedelta(days=15))}}))
        from spd.app.runtime import Runtime
        from spd.state.store import StateStore

        recorder = ClockStepper(shift)
        store = StateStore(Path(config.state.path))
        await store.open()
        runtime = Runtime(config, store, emitter_factory=lambda n, c: recorder)
        await runtime.start()
        try:
            result = await runtime.pollers["inv"].run()
        finally:
            await stop_runtime(runtime)
        stats = sim.state.stats["fbaInventory.getInventorySummaries"]
        rows = await truth(sim.url, "fbaInventory.getInventorySummaries", "updated",
                           NOW - timedelta(days=15), result.watermark, "ATVPDKIKX0DER")
    assert result.caught_up and stats["client_errors"] == 1  # the expired token, then a restart
    assert {r["data"]["sellerSku"] for r in rows} <= {m["id"] for m in recorder.messages}
    first_page = recorder.messages[:50]
    assert {m["id"] for m in first_page} <= {m["id"] for m in recorder.messages[50:]}  # page 1 again
