"""The state interface, written once and run against every backend (tests/support/state_backends):
watermarks, page checkpoints, counters, identity, reset, the report ledger and rate-limit levels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from spd.core.errors import IdentityChangedError, StateError
from spd.core.typing import BucketLevel
from spd.state.backend import MAX_ERROR_CHARS, MetaStore, StateBackend
from support.state_backends import BACKENDS, open_backend

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateBackend]:
    async with open_backend(request.param, tmp_path) as backend:
        yield backend


# -- checkpoints and counters ----------------------------------------------------------------


async def test_ensure_creates_once_and_existing_watermark_wins(store: StateBackend) -> None:
    first = await store.ensure("orders", "id", T0)
    assert (first.watermark, first.page, first.window_start, first.runs) == (T0, 0, None, 0)
    again = await store.ensure("orders", "id", T0 + timedelta(days=30))
    assert again.watermark == T0


async def test_times_come_back_as_the_same_instant_in_utc(store: StateBackend) -> None:
    plus2 = timezone(timedelta(hours=2))
    await store.ensure("orders", "id", datetime(2025, 3, 1, 12, 30, 0, 123456, tzinfo=plus2))
    state = await store.require("orders")
    assert state.watermark == datetime(2025, 3, 1, 10, 30, 0, 123456, tzinfo=UTC)
    assert state.watermark.utcoffset() == timedelta(0)


async def test_naive_datetimes_are_refused(store: StateBackend) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.ensure("orders", "id", datetime(2025, 1, 1))


async def test_checkpoints_and_counters(store: StateBackend) -> None:
    w_end = T0 + timedelta(hours=1)
    await store.ensure("orders", "id", T0)
    await store.save_page("orders", T0, w_end, "tok-1", 1, 100)
    await store.save_page("orders", T0, w_end, "tok-2", 2, 40)
    st = await store.require("orders")
    assert (st.window_start, st.window_end, st.next_token, st.page) == (T0, w_end, "tok-2", 2)
    assert (st.objects_emitted, st.pages_emitted, st.watermark) == (140, 2, T0)


async def test_open_ended_window_keeps_no_end(store: StateBackend) -> None:
    await store.ensure("orders", "id", T0)
    await store.save_page("orders", T0, None, "tok", 1, 5)
    st = await store.require("orders")
    assert (st.window_start, st.window_end) == (T0, None)


async def test_finish_and_restart_window(store: StateBackend) -> None:
    w_end = T0 + timedelta(hours=1)
    await store.ensure("orders", "id", T0)
    await store.save_page("orders", T0, w_end, "tok", 3, 10)
    await store.restart_window("orders")
    st = await store.require("orders")
    assert (st.window_start, st.window_end, st.next_token, st.page) == (T0, w_end, None, 0)
    await store.finish_window("orders", w_end)
    st = await store.require("orders")
    assert (st.watermark, st.window_start, st.window_end, st.next_token) == (w_end, None, None, None)
    assert st.objects_emitted == 10


async def test_record_run_keeps_one_line_error_and_clears_it_on_success(store: StateBackend) -> None:
    await store.ensure("orders", "id", T0)
    await store.record_run("orders", error="boom\n  at line 2\t" + "x" * 2000)
    st = await store.require("orders")
    assert st.runs == 1 and st.last_run_at is not None and st.last_success_at is None
    assert st.last_error is not None
    assert st.last_error.startswith("boom at line 2 x") and "\n" not in st.last_error
    assert len(st.last_error) <= MAX_ERROR_CHARS
    await store.record_run("orders", error=None)
    st = await store.require("orders")
    assert st.runs == 2 and st.last_error is None and st.last_success_at == st.last_run_at


async def test_note_pollers_all_and_delete(store: StateBackend) -> None:
    await store.ensure("orders", "a", T0)
    await store.ensure("b-vendor", "b", T0)
    await store.set_note("orders", "start_time clamped to 2023-01-01T00:00:00Z")
    assert (await store.require("orders")).note == "start_time clamped to 2023-01-01T00:00:00Z"
    await store.set_note("orders", None)
    assert (await store.require("orders")).note is None
    assert await store.pollers() == ["b-vendor", "orders"]
    assert [s.poller for s in await store.all()] == ["b-vendor", "orders"]
    assert await store.delete("orders") is True and await store.delete("orders") is False
    assert await store.get("orders") is None and await store.pollers() == ["b-vendor"]


@pytest.mark.parametrize("write", ["save_page", "finish_window", "restart_window", "record_run",
                                   "set_note", "require"])
async def test_unknown_poller_is_refused(store: StateBackend, write: str) -> None:
    calls = {
        "save_page": lambda: store.save_page("ghost", T0, T0, None, 1, 1),
        "finish_window": lambda: store.finish_window("ghost", T0),
        "restart_window": lambda: store.restart_window("ghost"),
        "record_run": lambda: store.record_run("ghost", error=None),
        "set_note": lambda: store.set_note("ghost", "x"),
        "require": lambda: store.require("ghost"),
    }
    with pytest.raises(StateError, match="poller ghost has no saved state"):
        await calls[write]()
    assert await store.get("ghost") is None


async def test_identity_change_names_poller_and_reset_command(store: StateBackend) -> None:
    await store.ensure("orders", "old-identity", T0)
    with pytest.raises(IdentityChangedError) as info:
        await store.ensure("orders", "new-identity", T0, config_path="/etc/spd/spd.yaml")
    assert str(info.value) == (
        "poller orders: its account, object, timestamp_field or params changed since its"
        " watermark was saved; run `spd reset -c /etc/spd/spd.yaml orders` to start it again"
    )
    assert info.value.exit_code == 78
    assert (await store.require("orders")).identity == "old-identity"  # nothing was overwritten


async def test_reset_moves_watermark_takes_new_identity_and_keeps_counters(store: StateBackend) -> None:
    await store.ensure("orders", "old", T0)
    await store.save_page("orders", T0, T0 + timedelta(hours=1), "tok", 1, 7)
    back = T0 - timedelta(days=3)
    await store.reset("orders", back, identity="new")
    st = await store.require("orders")
    assert (st.watermark, st.identity, st.window_start, st.next_token, st.page) == (
        back, "new", None, None, 0)
    assert st.objects_emitted == 7
    assert (await store.ensure("orders", "new", T0)).watermark == back


async def test_reset_of_unknown_poller(store: StateBackend) -> None:
    with pytest.raises(StateError, match="no saved state"):
        await store.reset("fresh", T0)
    await store.reset("fresh", T0, identity="id")
    assert (await store.require("fresh")).watermark == T0


# -- the report ledger ---------------------------------------------------------------------------


async def test_report_attempt_keeps_failures_of_the_same_window(store: StateBackend) -> None:
    ledger = store.ledger
    assert await ledger.attempt("rep") is None
    await ledger.requested("rep", T0, "r1")
    first = await ledger.attempt("rep")
    assert first is not None
    assert (first.window_start, first.report_id, first.status, first.failures, first.retry_at) == (
        T0, "r1", "PENDING", 0, None)
    retry = T0 + timedelta(minutes=15)
    assert await ledger.failed("rep", "FATAL", retry) == 1
    await ledger.requested("rep", T0, "r2")  # the same window again: its failures are kept
    assert await ledger.failed("rep", "CANCELLED", retry) == 2
    failed = await ledger.attempt("rep")
    assert failed is not None and (failed.report_id, failed.status, failed.retry_at) == (
        "r2", "CANCELLED", retry)
    await ledger.requested("rep", T0 + timedelta(days=1), "r3")  # a new window starts from 0
    fresh = await ledger.attempt("rep")
    assert fresh is not None and (fresh.failures, fresh.status) == (0, "PENDING")
    await ledger.clear_attempt("rep")
    assert await ledger.attempt("rep") is None
    assert await ledger.attempt("other") is None


async def test_done_reports_pruned_forward_and_forgotten_after_a_reset(store: StateBackend) -> None:
    ledger = store.ledger
    for n in range(4):
        await ledger.done("settle", f"r{n}", T0 + timedelta(days=n))
    await ledger.done("settle", "r0", T0)  # once only
    assert await ledger.done_ids("settle", T0) == {"r0", "r1", "r2", "r3"}
    await ledger.moved("settle", T0 + timedelta(days=1))  # r0 can never be listed again
    assert await ledger.done_ids("settle", T0 + timedelta(days=1)) == {"r1", "r2", "r3"}
    # the watermark moved back (spd reset): the reports from it on are emitted again
    assert await ledger.done_ids("settle", T0 + timedelta(days=2)) == {"r1", "r2", "r3"}
    assert await ledger.done_ids("settle", T0 + timedelta(hours=12)) == set()
    assert await ledger.done_ids("other", T0) == set()


# -- rate-limit bucket levels ------------------------------------------------------------------


async def test_bucket_levels_are_kept_per_bucket(store: StateBackend) -> None:
    assert await store.load_bucket_levels() == []
    a = BucketLevel("acme", "ordersV0.getOrders", 0.0167, 20, 12.5, 1_700_000_000.25)
    b = BucketLevel("acme", "raw", 0.5, 1, -2.0, 1_700_000_001.0)  # below zero: takes reserved
    await store.save_bucket_levels([a, b])
    newer = BucketLevel("acme", "ordersV0.getOrders", 0.02, 20, 3.0, 1_700_000_005.5)
    await store.save_bucket_levels([newer])
    await store.save_bucket_levels([])
    assert await store.load_bucket_levels() == [newer, b]


async def test_meta_values_by_prefix(store: StateBackend) -> None:
    assert isinstance(store, MetaStore)
    await store.put_meta("subscription:a", "1")
    await store.put_meta("subscription:b", "2")
    await store.put_meta("subscription:a", "3")  # replaced
    await store.put_meta("other:a", "4")
    assert await store.meta_items("subscription:") == {"a": "3", "b": "2"}
    assert await store.meta_items("none:") == {}


async def test_meta_updates_wait_for_each_other_and_lose_none(store: StateBackend) -> None:
    assert isinstance(store, MetaStore)

    async def add_one() -> None:
        await store.update_meta("count:a", lambda text: str(int(text or "0") + 1))

    await asyncio.gather(*(add_one() for _ in range(12)))  # the first ones race to create the row
    await store.update_meta("count:b", lambda text: f"was {text}")
    assert await store.meta_items("count:") == {"a": "12", "b": "was None"}
