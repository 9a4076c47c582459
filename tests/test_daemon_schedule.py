"""How the daemon places its pollers' runs in time: a few pollers start within the jitter, many
are spread so that about FIRST_RUNS_PER_SECOND start a second (never beyond one interval); and
what it leaves the garbage collector to walk between runs."""

from __future__ import annotations

import gc
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from spd.app import daemon as daemon_module
from spd.app.daemon import Daemon
from spd.config.validate import load_config
from support.config import write_config
from support.spd import iso


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


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the other tests' objects are collected as usual


def walked(obj: object) -> bool:
    """Whether a full collection walks `obj` (frozen objects are not in any generation)."""
    return any(o is obj for o in gc.get_objects())


async def test_start_and_reload_leave_their_config_out_of_later_collections(
        tmp_path: Path, sim_factory: Any, unfrozen: None) -> None:
    """A full collection with 10,000 pollers' config, catalog and jobs takes ~0.3 s and holds up
    every run due meanwhile: what start-up leaves is frozen; a reload freezes its own."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=5, start=now - timedelta(hours=1), end=now, rate_limit=False)
    path = write_config(tmp_path, sim.url, {"orders": {"object": "ordersV0.getOrders",
                                                       "start_time": iso(now - timedelta(hours=2))}})
    daemon = Daemon(path, install_signals=False)
    await daemon.start()
    try:
        assert daemon.config is not None and daemon.runtime is not None
        assert not walked(daemon.config) and not walked(daemon.runtime.pollers["orders"])
        first = daemon.config
        await daemon.reload()
        assert daemon.config is not first and not walked(daemon.config)
    finally:
        await daemon.close()
