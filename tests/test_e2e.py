"""End to end: real `spd` subprocesses against the simulator over loopback, with real files and
SQLite. SIGKILL at random moments loses nothing; SIGTERM exits 0 and the restart resumes."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from support.spd import iso, read_jsonl, read_jsonl_so_far, run_spd, start_spd, stop_spd, wait_for
from support.config import POLLERS, write_config


DAY = timedelta(days=1)


def watermark(tmp_path: Path, poller: str) -> datetime:
    with sqlite3.connect(tmp_path / "state.db") as db:
        row = db.execute("SELECT watermark FROM pollers WHERE poller = ?", (poller,)).fetchone()
    return datetime.fromisoformat(row[0].replace("Z", "+00:00"))


def ground_truth(sim: Any, object_type: str, field: str, after: datetime, before: datetime) -> set[tuple[str, str]]:
    """Every (id, version time) in [after, before] that is still current, so that the API serves
    it: a version updated away before spd reached its window is, like on Amazon, never served."""
    objects = sim.get("/_sim/objects", type=object_type, field=field, after=iso(after), before=iso(before))["objects"]
    return {(o["id"], normalize(o["version_time"])) for o in objects if o["superseded_at"] is None}


def normalize(ts: str) -> str:
    return iso(datetime.fromisoformat(ts.replace("Z", "+00:00")))


def emitted(tmp_path: Path, poller: str) -> list[tuple[str, str]]:
    """(id, cursor) of every object the file emitter wrote for a poller, pages unrolled."""
    found = []
    for message in read_jsonl(tmp_path / "out" / f"{poller}.jsonl"):
        if "results" in message:  # emit: page; the test's types are created-time polls
            found += [(o["orderId"], normalize(o["createdTime"])) for o in message["results"]]
        else:
            found.append((message["id"], normalize(message["cursor"])))
    return found


def kill_and_restart(tmp_path: Path, config: Path, kills: int, seed: int) -> None:
    """Starts `spd run`, SIGKILLs it at a random moment, `kills` times."""
    rng = random.Random(seed)
    for _ in range(kills):
        proc = start_spd("run", "-c", str(config))
        time.sleep(rng.uniform(0.8, 2.5))
        proc.kill()
        proc.wait(10)


def assert_nothing_lost(sim: Any, tmp_path: Path, start: datetime, kills: int) -> None:
    for poller, spec in POLLERS.items():
        end = watermark(tmp_path, poller)
        truth = ground_truth(sim, spec["object"], spec["timestamp_field"], start, end)
        out = emitted(tmp_path, poller)
        missing = truth - set(out)
        assert truth, f"{poller}: the simulator served nothing in range"
        assert not missing, f"{poller}: {len(missing)} of {len(truth)} versions lost, e.g. {sorted(missing)[:3]}"
        dupes = sum(n - 1 for n in Counter(out).values() if n > 1)
        # At most one page (100) per kill repeated, plus objects on window boundaries.
        assert dupes <= 100 * (kills + 1) + 50, f"{poller}: {dupes} duplicates"


@pytest.mark.parametrize("faults", [{}, {"error_rate": 0.1, "drop_rate": 0.03, "truncate_rate": 0.03}],
                         ids=["clean", "faults"])
def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path, sim_factory: Any, faults: dict) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - 3 * DAY
    sim = sim_factory(orders=6000, purchase_orders=1500, start=start, end=now, rate_limit=False,
                      latency_ms=15, **faults)
    pollers = {name: {**spec, "start_time": iso(start - DAY)} for name, spec in POLLERS.items()}
    config = write_config(tmp_path, sim.url, pollers)
    kills = 4
    kill_and_restart(tmp_path, config, kills, seed=len(faults))
    result = run_spd("once", "-c", str(config), timeout=300)
    assert result.returncode in (0, 1), result.stderr
    if result.returncode == 1:  # a fault can fail the last run; the next one finishes
        result = run_spd("once", "-c", str(config), timeout=300)
    assert result.returncode == 0, result.stderr
    assert_nothing_lost(sim, tmp_path, start - DAY, kills)


def test_sigterm_exits_zero_and_restart_resumes(tmp_path: Path, sim_factory: Any) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=3000, purchase_orders=200, start=now - 2 * DAY, end=now, rate_limit=False,
                      latency_ms=20)
    pollers = {"orders": {**POLLERS["orders"], "start_time": iso(now - 3 * DAY)}}
    config = write_config(tmp_path, sim.url, pollers)
    proc = start_spd("run", "-c", str(config))
    out = tmp_path / "out" / "orders.jsonl"
    wait_for(lambda: len(read_jsonl_so_far(out)) >= 200, timeout=60)
    began = time.monotonic()
    code = stop_spd(proc, signal.SIGTERM)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 0, stderr
    assert time.monotonic() - began < 30
    assert "daemon_stopped" in stderr
    first_run = emitted(tmp_path, "orders")
    status = run_spd("status", "-c", str(config))
    assert status.returncode == 0 and json.loads(status.stdout)[0]["watermark"], status  # piped: JSON
    result = run_spd("once", "-c", str(config), "orders", timeout=120)
    assert result.returncode == 0, result.stderr
    after = emitted(tmp_path, "orders")
    # The restart resumed: the objects of the first run were not all sent again.
    repeated = sum(1 for x in after[len(first_run):] if x in set(first_run))
    assert repeated <= 100 + 20, f"{repeated} objects re-emitted after a clean stop"
    truth = ground_truth(sim, "ordersV0.getOrders", "updated", now - 3 * DAY, watermark(tmp_path, "orders"))
    assert truth <= set(after)


def test_identity_change_stops_with_exit_78(tmp_path: Path, sim_factory: Any) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=100, purchase_orders=10, start=now - DAY, end=now, rate_limit=False)
    spec = {**POLLERS["orders"], "start_time": iso(now - DAY)}
    config = write_config(tmp_path, sim.url, {"orders": spec})
    assert run_spd("once", "-c", str(config)).returncode == 0
    write_config(tmp_path, sim.url, {"orders": {**spec, "timestamp_field": "created"}})
    for command in ("once", "run"):
        result = run_spd(command, "-c", str(config), timeout=60)
        assert result.returncode == 78, result.stderr
        assert result.stderr.strip().splitlines()[-1] == (
            f"spd: poller orders: its account, object, timestamp_field or params changed since its "
            f"watermark was saved; run `spd reset -c {config} orders` to start it again")
    reset = run_spd("reset", "-c", str(config), "orders", "--yes")
    assert reset.returncode == 0, reset.stderr
    assert run_spd("once", "-c", str(config)).returncode == 0


def test_token_bucket_enforced_no_429(tmp_path: Path, sim_factory: Any) -> None:
    """Against a simulator enforcing 5 req/s (half the usage plan, learnt from the header) burst 10: no 429, quota used."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - 60 * DAY
    sim = sim_factory(orders=10, purchase_orders=4000, start=start, end=now,
                      rate_limits={"vendorOrders.getPurchaseOrders": (5.0, 10)})
    config = write_config(tmp_path, sim.url, {"vendor": {**POLLERS["vendor"], "start_time": iso(start)}})
    began = time.monotonic()
    result = run_spd("once", "-c", str(config), timeout=120)
    elapsed = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    stats = sim.get("/_sim/stats")
    op = stats["operations"]["vendorOrders.getPurchaseOrders"]
    assert op.get("throttled", 0) == 0, stats
    requests = op["requests"]
    # Quota available over the run: the burst plus the rate over the time spent (startup included).
    share = requests / (10 + 5.0 * elapsed)
    print(f"quota share {share:.2f}: {requests} requests in {elapsed:.1f}s")
    assert requests >= 40 and share > 0.5


def test_sighup_reloads_pollers_and_keeps_running_on_a_bad_config(tmp_path: Path, sim_factory: Any) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=300, purchase_orders=100, start=now - DAY, end=now, rate_limit=False)
    orders = {**POLLERS["orders"], "start_time": iso(now - DAY)}
    config = write_config(tmp_path, sim.url, {"orders": orders})
    proc = start_spd("run", "-c", str(config))
    try:
        wait_for(lambda: len(read_jsonl_so_far(tmp_path / "out" / "orders.jsonl")) >= 290, timeout=60)
        # A broken config is reported and the old one keeps running.
        good = config.read_text()
        config.write_text(good.replace("interval: 1s", "interval: soon", 1))
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert proc.poll() is None
        # A new poller is added without losing the first one's state.
        write_config(tmp_path, sim.url, {"orders": orders, "vendor": {**POLLERS["vendor"], "start_time": iso(now - DAY)}})
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(read_jsonl_so_far(tmp_path / "out" / "vendor.jsonl")) >= 90, timeout=60)
    finally:
        code = stop_spd(proc, signal.SIGTERM)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 0, stderr
    assert '"event":"reload_failed"' in stderr and "pollers.orders.interval" in stderr
    assert '"event":"config_reloaded"' in stderr
    ids = [m["id"] for m in read_jsonl(tmp_path / "out" / "orders.jsonl")]
    assert len(ids) - len(set(ids)) <= 100  # the reload did not start the orders poller over
    for secret in ("test-secret-value", "test-refresh-token", "Atza|"):
        assert secret not in stderr


def test_sighup_with_an_emitter_that_cannot_start_keeps_the_old_config(tmp_path: Path, sim_factory: Any) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=200, purchase_orders=10, start=now - DAY, end=now, rate_limit=False)
    config = write_config(tmp_path, sim.url, {"orders": {**POLLERS["orders"], "start_time": iso(now - DAY)}})
    proc = start_spd("run", "-c", str(config))
    try:
        wait_for(lambda: len(read_jsonl_so_far(tmp_path / "out" / "orders.jsonl")) >= 190, timeout=60)
        running = tmp_path / "running.yaml"  # what the daemon keeps, for `spd status`
        running.write_text(config.read_text())
        # Valid YAML and keys, but the Kafka emitter refuses SASL over PLAINTEXT.
        config.write_text(config.read_text().replace("emitters:\n", (
            "emitters:\n  bus: {type: kafka, bootstrap_servers: [127.0.0.1:9], topic: t, "
            "sasl: {mechanism: PLAIN, username: u, password: p}}\n"), 1))
        proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        assert proc.poll() is None
        status = run_spd("status", "-c", str(running), "--json")
        before = json.loads(status.stdout)[0]["last_run"]
        wait_for(lambda: json.loads(run_spd("status", "-c", str(running), "--json").stdout)[0]["last_run"] != before,
                 timeout=30)  # the orders poller still runs on its interval
    finally:
        code = stop_spd(proc, signal.SIGTERM)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 0, stderr
    assert stderr.count('"event":"reload_failed"') == 1 and "sasl" in stderr.lower()
