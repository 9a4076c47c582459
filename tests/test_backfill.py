"""Backfills and resets a person can do safely (issue 13 item 7): real `spd` subprocesses
against the simulator, real files and SQLite."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from support.config import write_config
from support.spd import iso, read_jsonl, run_spd

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


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


def test_backfill_options_are_checked(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", {"orders": {"object": "ordersV0.getOrders"}})
    for args, message in [
        (("--until", "2026-11-01"), "spd: --until needs --from"),
        (("--from", "2026-11-02", "--until", "2026-11-01"), "spd: --until 2026-11-01T00:00:00Z is not after --from"),
        (("--from", "yesterday"), 'spd: --from: "yesterday" is not a timestamp'),
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
