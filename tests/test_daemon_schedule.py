"""How the daemon places its pollers' runs in time: a few pollers start within the jitter, many
are spread so that about FIRST_RUNS_PER_SECOND start a second (never beyond one interval)."""

from __future__ import annotations

import time
from datetime import timezone
from pathlib import Path
from types import SimpleNamespace

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from spd.app import daemon as daemon_module
from spd.app.daemon import Daemon
from spd.config.validate import load_config
from support.config import write_config


def first_runs(tmp_path: Path, pollers: int, interval: str) -> tuple[list[float], float]:
    """Seconds from the earliest to each poller's first scheduled run, and how long scheduling
    took (each job is placed from the moment it is added)."""
    spec = {"object": "ordersV0.getOrders", "interval": interval}
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9", {f"p{i}": spec for i in range(pollers)}))
    daemon = Daemon(config.path)
    daemon.scheduler = AsyncIOScheduler(timezone=timezone.utc)  # never started: nothing runs
    daemon.runtime = SimpleNamespace(consumers={})  # type: ignore[assignment]  # no subscriptions
    began = time.monotonic()
    daemon.schedule(config)
    took = time.monotonic() - began
    times = sorted(job.next_run_time.timestamp() for job in daemon.scheduler.get_jobs())
    assert len(times) == pollers
    return [t - times[0] for t in times], took


def test_a_few_pollers_start_within_the_jitter(tmp_path: Path) -> None:
    offsets, took = first_runs(tmp_path, 20, "20s")
    assert max(offsets) <= 1.0 + took  # 5 % of the interval


def test_many_pollers_are_spread_over_the_interval(tmp_path: Path) -> None:
    pollers = 600  # 6 s of first runs at FIRST_RUNS_PER_SECOND, more than the 1 s of jitter
    assert daemon_module.FIRST_RUNS_PER_SECOND == 100.0
    offsets, took = first_runs(tmp_path, pollers, "20s")
    assert 4.0 < max(offsets) <= 6.0 + took
    per_second = [sum(1 for t in offsets if s <= t < s + 1) for s in range(6)]
    assert max(per_second) < 2 * pollers / 6, per_second  # even, not bunched


def test_the_spread_never_exceeds_one_interval(tmp_path: Path) -> None:
    offsets, took = first_runs(tmp_path, 600, "3s")
    assert max(offsets) <= 3.0 + took
