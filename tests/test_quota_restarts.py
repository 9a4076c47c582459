"""Quota survives reloads and restarts (issue 13 item 5): a real `spd run` against the
simulator's enforced token bucket, SIGKILLed and started again every few seconds, or reloaded
with SIGHUP, never gets a 429: the bucket levels live in the state database."""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from support.config import write_config
from support.spd import iso, start_spd, stop_spd, wait_for

RATE, BURST = 1.0, 5  # getOrders here: 5 at once, then one a second (both ends agree)


def getorders(sim: Any) -> dict[str, int]:
    return sim.get("/_sim/stats")["operations"]["ordersV0.getOrders"]


def scene(tmp_path: Path, sim_factory: Any) -> tuple[Any, Path]:
    """A simulator with far more pages of orders than the runs below can fetch, and a config
    polling them page after page at the bucket's pace."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=6000, purchase_orders=5, start=now - timedelta(days=2), end=now,
                      rate_limits={"ordersV0.getOrders": (RATE, BURST)})
    pollers = {"orders": {"object": "ordersV0.getOrders", "timestamp_field": "updated", "interval": "1s",
                          "start_time": iso(now - timedelta(days=2)), "params": {"MaxResultsPerPage": 20}}}
    account = f"    rate_limits: {{ordersV0.getOrders: {{rate: {RATE}, burst: {BURST}}}}}"
    return sim, write_config(tmp_path, sim.url, pollers, extra_account=account)


def test_sigkill_and_restart_every_few_seconds_never_bursts_past_the_limit(tmp_path: Path, sim_factory: Any) -> None:
    sim, config = scene(tmp_path, sim_factory)
    for _ in range(6):
        proc = start_spd("run", "-c", str(config), stderr=subprocess.DEVNULL)
        before = getorders(sim).get("requests", 0)
        try:
            wait_for(lambda: getorders(sim).get("requests", 0) >= before + 2, timeout=30, interval=0.05)
            time.sleep(1.0)  # a few more at the bucket's pace, then the crash
        finally:
            proc.kill()
            proc.wait(10)
    stats = getorders(sim)
    assert stats.get("requests", 0) >= 6 * 3, stats
    assert stats.get("throttled", 0) == 0, stats


def test_sighup_reloads_keep_the_levels(tmp_path: Path, sim_factory: Any) -> None:
    sim, config = scene(tmp_path, sim_factory)
    proc = start_spd("run", "-c", str(config), stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: getorders(sim).get("requests", 0) >= BURST, timeout=30, interval=0.05)
        for _ in range(5):
            before = getorders(sim).get("requests", 0)
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: getorders(sim).get("requests", 0) >= before + 1, timeout=30, interval=0.05)
            time.sleep(0.5)
    finally:
        assert stop_spd(proc, signal.SIGTERM) == 0
    stats = getorders(sim)
    assert stats.get("throttled", 0) == 0, stats
