"""Backfills and resets a person can do safely (issue 13 item 7): real `spd` subprocesses
against the simulator, real files and SQLite."""

from __future__ import annotations

import json
import signal
import urllib.parse
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from support.config import write_config
from support.sim_process import SimProcess
from support.spd import iso, read_jsonl, read_jsonl_so_far, run_spd, start_spd, stop_spd, wait_for

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
ORDERS = {"object": "ordersV0.getOrders", "timestamp_field": "updated"}


def status(config: Path) -> dict[str, Any]:
    return {row["poller"]: row for row in json.loads(run_spd("status", "-c", str(config)).stdout)}


def emitted(out: Path, start: int = 0) -> list[tuple[str, str]]:
    return [(m["id"], m["cursor"]) for m in read_jsonl(out)[start:]]


def truth(sim: Any, after: datetime, before: datetime) -> set[str]:
    objects = sim.get("/_sim/objects", type="ordersV0.getOrders", field="updated", after=iso(after),
                      before=iso(before))["objects"]
    return {o["id"] for o in objects if o["superseded_at"] is None}


def test_backfill_emits_its_range_and_never_moves_the_watermark(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory(orders=400, purchase_orders=5, start=NOW - timedelta(days=3), end=NOW, rate_limit=False)
    config = write_config(tmp_path, sim.url, {
        "orders": {"object": "ordersV0.getOrders", "timestamp_field": "updated",
                   "start_time": iso(NOW - timedelta(days=4))}})
    out = tmp_path / "out" / "orders.jsonl"
    assert run_spd("once", "-c", str(config)).returncode == 0
    before = status(config)["orders"]
    caught_up = len(read_jsonl(out))
    assert before["watermark"] > iso(NOW - timedelta(minutes=10))

    start, until = NOW - timedelta(days=2), NOW - timedelta(days=1)
    result = run_spd("once", "-c", str(config), "orders", "--from", iso(start)[:10], "--until", iso(until))
    assert result.returncode == 0, result.stderr
    assert f"orders (backfill {iso(start.replace(hour=0))}..{iso(until)}): " in result.stderr
    after = status(config)["orders"]
    assert after["watermark"] == before["watermark"]  # the poller's own row did not move
    assert after["window"] is None and after["last_run"] == before["last_run"]
    backfilled = emitted(out, caught_up)
    first = start.replace(hour=0)  # --from 2026-11-28 is midnight UTC
    assert backfilled and all(iso(first) <= cursor <= iso(until) for _, cursor in backfilled)
    assert truth(sim, first, until - timedelta(seconds=1)) <= {i for i, _ in backfilled}
    row = after["backfills"][0]  # its own series, listed under the poller
    assert row["poller"] == f"orders@backfill:{iso(first)}..{iso(until)}"
    assert row["watermark"] == iso(until) and row["objects_emitted"] == len(backfilled)
    assert after["objects_emitted"] == before["objects_emitted"]

    again = run_spd("once", "-c", str(config), "orders", "--from", iso(first), "--until", iso(until))
    assert again.returncode == 0 and len(read_jsonl(out)) == caught_up + len(backfilled)  # done already
    assert status(config)["orders"]["watermark"] == before["watermark"]


OPEN_ORDERS = 3000  # ~1500 in the open-ended range: 15 pages at OPEN_LATENCY ms each, ~8 s
OPEN_LATENCY = 500


def open_ended_sim(now: datetime) -> SimProcess:
    """`spd sim` in its own process: orders created 12 to 7 days ago, none since, so that every
    order has settled (the last shipments come < 6 days after the order) and the ground truth
    up to now - lag is the same whenever spd asks."""
    return SimProcess("--orders", str(OPEN_ORDERS), "--start", iso(now - timedelta(days=12)),
                      "--end", iso(now - timedelta(days=7)), "--latency", str(OPEN_LATENCY),
                      "--no-rate-limit", "--no-live")


def backfill_from(now: datetime) -> datetime:
    return (now - timedelta(days=9)).replace(hour=0, minute=0, second=0)


def current_ids(sim: SimProcess, after: datetime, before: datetime) -> set[str]:
    query = urllib.parse.urlencode({"type": "ordersV0.getOrders", "field": "updated",
                                    "after": iso(after), "before": iso(before)})
    return {o["id"] for o in sim.get(f"/_sim/objects?{query}")["objects"] if o["superseded_at"] is None}


def test_backfill_without_until_runs_up_to_now_minus_lag(tmp_path: Path) -> None:
    # QA: `--until` defaulted to the clock's now, sent as LastUpdatedBefore, which Amazon refuses
    # (it must be 2 minutes in the past): every backfill without --until failed with HTTP 400.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    first = backfill_from(now)
    with open_ended_sim(now) as sim:
        config = write_config(tmp_path, sim.url, {"orders": {**ORDERS, "start_time": iso(now - timedelta(days=14))}})
        result = run_spd("once", "-c", str(config), "orders", "--from", iso(first)[:10])
        assert result.returncode == 0, result.stderr
        assert f"orders (backfill {iso(first)}..now): " in result.stderr
        backfilled = emitted(tmp_path / "out" / "orders.jsonl")
        assert len(backfilled) == len(set(backfilled))
        assert {i for i, _ in backfilled} == current_ids(sim, first, now)  # exactly the range's
        assert all(cursor >= iso(first) for _, cursor in backfilled)
        # An explicit --until later than now - lag: the echo ends the last window (not a 400).
        until = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
        bounded = run_spd("once", "-c", str(config), "orders", "--from", iso(first), "--until", iso(until))
        assert bounded.returncode == 0, bounded.stderr
        again = emitted(tmp_path / "out" / "orders.jsonl", len(backfilled))
        assert {i for i, _ in again} == {i for i, _ in backfilled}
    row = status(config)["orders"]
    backfills = {b["poller"]: b for b in row["backfills"]}
    assert sorted(backfills) == [f"orders@backfill:{iso(first)}..{iso(until)}", f"orders@backfill:{iso(first)}..now"]
    assert backfills[f"orders@backfill:{iso(first)}..now"]["watermark"] >= iso(now - timedelta(minutes=3))  # now - lag
    assert backfills[f"orders@backfill:{iso(first)}..{iso(until)}"]["watermark"] < iso(until)  # Amazon's reach
    assert row["watermark"] == iso(now - timedelta(days=14)) and row["objects_emitted"] == 0  # not moved


def test_backfill_without_until_resumes_when_run_again(tmp_path: Path) -> None:
    # The same command after an interrupted run is the same series: before, --until was the
    # clock's now to the microsecond, a new key (and a new row in `spd status`) on every run.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    first = backfill_from(now)
    out = tmp_path / "out" / "orders.jsonl"
    with open_ended_sim(now) as sim:
        config = write_config(tmp_path, sim.url, {"orders": {**ORDERS, "start_time": iso(now - timedelta(days=14))}})
        command = ("once", "-c", str(config), "orders", "--from", iso(first)[:10])
        proc = start_spd(*command)
        try:
            wait_for(lambda: read_jsonl_so_far(out), 60)  # its first page is delivered
        finally:
            stop_spd(proc, signal.SIGTERM, timeout=60)
        interrupted = len(read_jsonl(out))
        truth = current_ids(sim, first, now)
        assert 0 < interrupted < len(truth)  # it stopped part way
        stopped = status(config)["orders"]["backfills"]
        assert [b["poller"] for b in stopped] == [f"orders@backfill:{iso(first)}..now"]

        again = run_spd(*command)
        assert again.returncode == 0, again.stderr
        backfilled = emitted(out)
        assert {i for i, _ in backfilled} == truth
        resumed = backfilled[interrupted:]  # at least once: at most the page in flight again
        assert len(resumed) <= len(truth) - interrupted + 100
        assert set(resumed) & set(backfilled[:interrupted]) <= set(backfilled[interrupted - 100:interrupted])
    rows = status(config)["orders"]["backfills"]
    assert [b["poller"] for b in rows] == [f"orders@backfill:{iso(first)}..now"]  # one row, still
    assert rows[0]["objects_emitted"] >= len(truth)


def test_backfill_options_are_checked(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", {"orders": {"object": "ordersV0.getOrders"}})
    for args, message in [
        (("--until", "2026-11-01"), "spd: --until needs --from"),
        (("--from", "2026-11-02", "--until", "2026-11-01"), "spd: --until 2026-11-01T00:00:00Z is not after --from"),
        (("--from", "yesterday"), 'spd: --from: "yesterday" is not a timestamp'),
        (("--from", "2999-01-01"), "spd: --from 2999-01-01T00:00:00Z is not before now"),
    ]:
        result = run_spd("once", "-c", str(config), *args)
        assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
        assert len(result.stderr.splitlines()) == 1


def test_reset_shows_both_watermarks_and_takes_a_date(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory(orders=50, purchase_orders=5, start=NOW - timedelta(days=1), end=NOW, rate_limit=False)
    config = write_config(tmp_path, sim.url, {
        "orders": {"object": "ordersV0.getOrders", "start_time": iso(NOW - timedelta(days=2))}})
    never = run_spd("reset", "-c", str(config), "orders", "--to", "2026-11-29", "--yes")
    assert never.stdout == "poller orders: watermark none yet → 2026-11-29T00:00:00Z\n"
    assert run_spd("once", "-c", str(config)).returncode == 0
    current = status(config)["orders"]["watermark"]
    refused = run_spd("reset", "-c", str(config), "orders", "--to", "2026-11-29")
    assert refused.returncode == 2
    assert refused.stderr == (f"spd: reset of poller orders needs confirmation: add --yes "
                              f"(watermark {current} → 2026-11-29T00:00:00Z)\n")
    done = run_spd("reset", "-c", str(config), "orders", "--to", "2026-11-29", "--yes")
    assert done.stdout == f"poller orders: watermark {current} → 2026-11-29T00:00:00Z\n"
    assert status(config)["orders"]["watermark"] == "2026-11-29T00:00:00Z"
    bad = run_spd("reset", "-c", str(config), "orders", "--to", "2026-11-31", "--yes")
    assert bad.returncode == 2 and "is not a valid date" in bad.stderr
