"""Backfill rows are not forever: `spd status` says which are complete and `spd reset
--forget-backfills` removes them (real `spd` subprocesses against the simulator, the real SQLite
file read back with sqlite3, and the machine's PostgreSQL)."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from spd.state.backend import StateBackend
from spd.state.postgres import PgStore
from spd.state.store import StateStore
from support.cluster import query
from support.config import write_config
from support.postgres import temp_database, temp_database_sync
from support.spd import iso, run_spd, start_spd, stop_spd, wait_for

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
DAY = timedelta(days=1)
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
ORDERS = {"object": "ordersV0.getOrders", "timestamp_field": "updated", "start_time": iso(NOW - 4 * DAY)}


def backfills(config: Path) -> dict[str, dict[str, Any]]:
    """The poller's backfill rows in `spd status --json`, by range."""
    result = run_spd("status", "-c", str(config), "--json")
    assert result.returncode == 0, result.stderr
    row = next(r for r in json.loads(result.stdout) if r["poller"] == "orders")
    return {b["poller"].removeprefix("orders@backfill:"): b for b in row.get("backfills", [])}


def sqlite_rows(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT poller FROM pollers ORDER BY poller")]


def backfill(config: Path, *when: str) -> None:
    result = run_spd("once", "-c", str(config), "orders", *when)
    assert result.returncode == 0, result.stderr


def test_status_says_which_backfills_are_complete_and_reset_forgets_them(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory(orders=300, purchase_orders=5, start=NOW - 3 * DAY, end=NOW, rate_limit=False)
    config = write_config(tmp_path, sim.url, {"orders": ORDERS})
    db = tmp_path / "state.db"
    backfill(config)  # the poller's own row
    done = f"{iso(NOW - 3 * DAY)}..{iso(NOW - 2 * DAY)}"
    backfill(config, "--from", iso(NOW - 3 * DAY), "--until", iso(NOW - 2 * DAY))
    # An --until later than Amazon lets a request reach (now - 2 min) ends short of it: incomplete.
    reach = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    short = f"{iso(NOW - DAY)}..{iso(reach)}"
    backfill(config, "--from", iso(NOW - DAY), "--until", iso(reach))
    midnight = (NOW - DAY).replace(hour=0)
    open_ended = f"{iso(midnight)}..now"
    backfill(config, "--from", iso(midnight)[:10])  # a date: midnight UTC
    watermark = json.loads(run_spd("status", "-c", str(config)).stdout)[0]["watermark"]

    rows = backfills(config)
    assert sorted(rows) == sorted([done, short, open_ended])
    assert (rows[done]["state"], rows[done]["backfill"]) == (
        "complete", {"from": iso(NOW - 3 * DAY), "until": iso(NOW - 2 * DAY), "complete": True})
    assert rows[done]["lag_seconds"] is None and rows[short]["lag_seconds"] >= 0  # done: behind nothing
    assert rows[short]["state"].startswith("incomplete, ") and rows[short]["state"].endswith("% done")
    assert rows[short]["backfill"]["complete"] is False and rows[short]["watermark"] < iso(reach)
    assert (rows[open_ended]["state"], rows[open_ended]["backfill"]["until"]) == ("open-ended", None)
    done_objects = rows[done]["objects_emitted"]
    assert done_objects > 0

    command = ("reset", "-c", str(config), "orders", "--forget-backfills")
    refused = run_spd(*command)  # no terminal: --yes needed, and it says what would go
    assert refused.returncode == 2
    assert refused.stderr == (f"spd: forgetting backfills of poller orders needs confirmation: add --yes "
                              f"(backfill {done} (complete, {done_objects} objects))\n")
    assert len(sqlite_rows(db)) == 4  # nothing removed yet

    forgot = run_spd(*command, "--yes")
    assert forgot.returncode == 0, forgot.stderr
    assert forgot.stdout == f"poller orders: forgot backfill {done} (complete, {done_objects} objects)\n"
    assert sorted(backfills(config)) == sorted([short, open_ended])  # only the complete one went
    assert sqlite_rows(db) == sorted(["orders", f"orders@backfill:{short}", f"orders@backfill:{open_ended}"])

    again = run_spd(*command, "--yes")  # nothing complete left: it says what stays and how
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("poller orders: no complete backfill to forget (not complete: ")
    assert f"{short} (incomplete, " in again.stdout and f"{open_ended} (open-ended, " in again.stdout

    # Named, they go complete or not: as `spd once` took the range, and as `spd status` shows the row.
    named = run_spd(*command, "--backfill", f"{iso(midnight)[:10]}..now",
                    "--backfill", f"  orders@backfill:{short}", "--yes")
    assert named.returncode == 0, named.stderr
    assert named.stdout.splitlines() == [f"poller orders: forgot backfill {open_ended} (open-ended, "
                                         f"{rows[open_ended]['objects_emitted']} objects)",
                                         f"poller orders: forgot backfill {short} (incomplete, "
                                         f"{rows[short]['state'].split(', ')[1]}, {rows[short]['objects_emitted']} objects)"]
    assert sqlite_rows(db) == ["orders"] and backfills(config) == {}
    assert json.loads(run_spd("status", "-c", str(config)).stdout)[0]["watermark"] == watermark  # untouched


def test_forget_backfills_options_are_checked(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", {"orders": ORDERS})
    for args, message in [
        (("orders", "--backfill", "2026-11-01..2026-11-02"), "spd: --backfill names the backfills to remove: "
                                                            "add --forget-backfills"),
        (("orders", "--forget-backfills", "--to", "2026-11-01"), "spd: --to moves the poller's watermark"),
        (("orders", "--forget-backfills", "--backfill", "2026-11-01"), "spd: --backfill 2026-11-01: not a range"),
        (("orders", "--forget-backfills", "--backfill", "2026-11-01..tomorrow"), 'spd: --backfill: "tomorrow" is not'),
        (("orders", "--forget-backfills", "--backfill", "2026-11-01..2026-11-02", "--yes"),
         "spd: poller orders has no backfill 2026-11-01T00:00:00Z..2026-11-02T00:00:00Z; its backfills: none"),
        (("nope", "--forget-backfills", "--yes"), "spd: unknown poller nope; the config has: orders"),
    ]:
        result = run_spd("reset", "-c", str(config), *args)
        assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
        assert len(result.stderr.splitlines()) == 1
    nothing = run_spd("reset", "-c", str(config), "orders", "--forget-backfills")  # no state yet
    assert (nothing.returncode, nothing.stdout) == (0, "poller orders: no complete backfill to forget\n")
    assert not (tmp_path / "state.db").exists()  # only read, never created


def test_forget_backfills_is_refused_while_a_daemon_holds_the_state(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory(orders=50, purchase_orders=5, start=NOW - 3 * DAY, end=NOW, rate_limit=False)
    config = write_config(tmp_path, sim.url, {"orders": ORDERS})
    span = f"{iso(NOW - 3 * DAY)}..{iso(NOW - 2 * DAY)}"
    backfill(config, "--from", iso(NOW - 3 * DAY), "--until", iso(NOW - 2 * DAY))
    proc = start_spd("run", "-c", str(config))
    try:
        wait_for(lambda: (tmp_path / "state.db.live.json").exists(), timeout=30)  # the daemon is up
        result = run_spd("reset", "-c", str(config), "orders", "--forget-backfills", "--yes")
        assert result.returncode == 1
        assert result.stderr.startswith(f"spd: state {tmp_path / 'state.db'} is held by a running spd daemon")
    finally:
        assert stop_spd(proc, signal.SIGTERM) == 0
    assert list(backfills(config)) == [span]  # still there
    assert run_spd("reset", "-c", str(config), "orders", "--forget-backfills", "--yes").returncode == 0
    assert backfills(config) == {}


def test_forget_backfills_on_postgresql(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory(orders=100, purchase_orders=5, start=NOW - 3 * DAY, end=NOW, rate_limit=False)
    with temp_database_sync("lifecycle") as url:
        config = write_config(tmp_path, sim.url, {"orders": ORDERS}, state_url=url)
        done = f"{iso(NOW - 3 * DAY)}..{iso(NOW - 2 * DAY)}"
        backfill(config, "--from", iso(NOW - 3 * DAY), "--until", iso(NOW - 2 * DAY))
        backfill(config, "--from", iso(NOW - DAY))
        assert {k: v["state"] for k, v in backfills(config).items()} == {
            done: "complete", f"{iso(NOW - DAY)}..now": "open-ended"}

        proc = start_spd("run", "-c", str(config))  # a replica: the state is shared, and in use
        try:
            wait_for(lambda: query(url, "SELECT 1 FROM spd_replicas WHERE expires_at > now()"), timeout=30)
            refused = run_spd("reset", "-c", str(config), "orders", "--forget-backfills", "--yes")
            assert refused.returncode == 1
            assert refused.stderr.startswith("spd: state ") and "in use by running spd replicas" in refused.stderr
        finally:
            assert stop_spd(proc, signal.SIGTERM) == 0

        forgot = run_spd("reset", "-c", str(config), "orders", "--forget-backfills", "--yes")
        assert forgot.returncode == 0, forgot.stderr
        assert forgot.stdout.startswith(f"poller orders: forgot backfill {done} (complete, ")
        rows = query(url, "SELECT poller FROM spd_pollers ORDER BY poller")
        assert [r["poller"] for r in rows] == ["orders", f"orders@backfill:{iso(NOW - DAY)}..now"]


@contextlib.asynccontextmanager
async def backend(kind: str, tmp_path: Path) -> AsyncIterator[StateBackend]:
    """A fresh SQLite file, or a fresh PostgreSQL database of this task's own prefix."""
    if kind == "sqlite":
        async with StateStore(tmp_path / "state.db") as store:
            yield store
    else:
        async with temp_database("lifecycle") as url, PgStore(url) as pg:
            yield pg


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_forget_deletes_exactly_the_rows_named_in_one_go(tmp_path: Path, kind: str) -> None:
    keys = ["orders", "orders@backfill:2025-01-01T00:00:00Z..2025-01-02T00:00:00Z@A",
            "orders@backfill:2025-01-01T00:00:00Z..2025-01-02T00:00:00Z@B", "orders@backfill:2025-01-01T00:00:00Z..now"]
    async with backend(kind, tmp_path) as store:
        for key in keys:
            await store.ensure(key, "id", T0)
        assert await store.forget([keys[1], keys[2], "orders@backfill:never"]) == 2
        assert await store.pollers() == [keys[0], keys[3]]
        assert await store.forget([]) == 0 and await store.forget([keys[1]]) == 0
