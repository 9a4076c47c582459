"""Replicas sharing pollers through PostgreSQL: three real `spd run` processes against the simulator
and one database (the machine's PostgreSQL). One is SIGKILLed, one cut from the database through a
TCP proxy, one stopped with SIGTERM; every object is still delivered, no account runs on two
replicas at once (checked from the lease history and from the emitted pages), and takeovers and
stops come within their bounds."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from spd.app.cluster import assign
from support.cluster import assert_no_overlap, holders, lease_history, pages, parse, query
from support.config import write_config
from support.postgres import PG_HOST, PG_PORT, database_url, temp_database_sync
from support.spd import iso, kill_left, run_spd, spd_env, start_spd, stop_spd, wait_for
from support.tcp_proxy import TcpProxy

TTL = 6.0  # lease_ttl: heartbeats every 2 s
INTERVAL = 2.0  # the pollers' interval
ACCOUNTS = ["a1", "a2", "a3", "a4"]
# Bounds of the issue, plus what a loaded 2-core test machine adds to a process's reaction time.
LOAD_SLACK = 3.0


# -- the assignment ---------------------------------------------------------------------------------


def test_assignment_is_even_deterministic_and_moves_few_accounts() -> None:
    owners = assign(ACCOUNTS, ["r3", "r1", "r2"])
    assert owners == assign(list(reversed(ACCOUNTS)), ["r1", "r2", "r3"])  # order never matters
    assert sorted(Counter(owners.values()).values()) == [1, 1, 2]  # every replica holds some
    many = [f"acct-{i}" for i in range(100)]
    before = assign(many, ["r1", "r2", "r3"])
    after = assign(many, ["r1", "r2", "r3", "r4"])
    assert sorted(Counter(after.values()).values()) == [25, 25, 25, 25]
    moved = sum(before[a] != after[a] for a in many)
    assert moved <= 40  # about the quarter the new replica takes, not a reshuffle
    assert assign(many, []) == {} and set(assign(["x"], ["r1", "r2"]).values()) <= {"r1", "r2"}


# -- real replicas ------------------------------------------------------------------------------------


def cluster_config(directory: Path, sim_url: str, state_url: str, start: datetime, out: Path) -> Path:
    """Four accounts with one orders poller each; a file per replica and poller under `out`."""
    directory.mkdir(exist_ok=True)
    pollers = {f"p{i}": {"account": account, "object": "ordersV0.getOrders", "emit": "page",
                         "interval": f"{INTERVAL:g}s", "start_time": iso(start)}
               for i, account in enumerate(ACCOUNTS, 1)}
    return write_config(directory, sim_url, pollers, account=ACCOUNTS[0], more_accounts=ACCOUNTS[1:],
                        state_url=state_url,
                        extra=f'cluster: {{lease_ttl: {TTL:g}s}}\nhttp: {{listen: "127.0.0.1:${{SPD_HTTP_PORT:-9464}}"}}',
                        emitters={"archive": f'{{type: file, path: "{out}/${{SPD_REPLICA_ID}}/{{poller}}.jsonl"}}'})


PORTS: dict[str, int] = {}  # replica -> its /metrics port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_replica(config: Path, name: str, logs: Path) -> subprocess.Popen:
    """`spd run` as replica `name`, its log in logs/NAME.log, /metrics on PORTS[name]."""
    log = (logs / f"{name}.log").open("w")
    PORTS[name] = free_port()
    return start_spd("run", "-c", str(config), env=spd_env(SPD_REPLICA_ID=name, SPD_HTTP_PORT=str(PORTS[name])),
                     stderr=log)


def cluster_metrics(name: str) -> dict[str, float]:
    """The spd_cluster_* samples of replica `name`'s /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{PORTS[name]}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found = re.findall(rf'^(spd_cluster_\w+)\{{replica="{re.escape(name)}"\}} (\S+)$', text, re.M)
    return {metric: float(value) for metric, value in found}


def busy_simulator(sim_factory: Any, start: datetime, now: datetime) -> Any:
    """Enough orders, answered slowly enough, that the replicas are still catching up when one dies."""
    return sim_factory(orders=6000, purchase_orders=10, start=start, end=now, rate_limit=False,
                       latency_ms=120)


def ran_since(url: str, poller: str, since: datetime) -> bool:
    """Whether the poller recorded a run after `since` (record_run is fenced: by the holder)."""
    rows = query(url, "SELECT last_run_at FROM spd_pollers WHERE poller=$1", poller)
    return bool(rows and rows[0]["last_run_at"] and rows[0]["last_run_at"] > since)


def balanced(url: str, replicas: set[str]) -> dict[str, str] | None:
    """The holders once every account is held by the replica `assign` gives it among `replicas`.
    (Every account held and every replica holding some is not enough: a replica may still hold
    an account it claimed before the last one joined, and be about to hand it back.)"""
    now = holders(url)
    return now if now == assign(ACCOUNTS, sorted(replicas)) else None


def delivered(sim: Any, out: Path, url: str, start: datetime) -> None:
    """Every account's orders up to its watermark were emitted (by one replica or another), and
    every message of a page carries one emitted_at."""
    messages = pages(out)
    marks = {r["poller"]: r["watermark"] for r in query(url, "SELECT poller, watermark FROM spd_pollers")}
    for i, account in enumerate(ACCOUNTS, 1):
        got = {o["AmazonOrderId"] for m in messages if m["account"] == account for o in m["results"]}
        truth = sim.get("/_sim/objects", type="ordersV0.getOrders", field="created", after=iso(start),
                        before=iso(marks[f"p{i}"]))["objects"]
        expected = {o["id"] for o in truth if o["superseded_at"] is None}
        assert expected and expected <= got, (account, len(expected - got))
    for m in messages:
        assert abs(parse(m["emitted_at"]) - datetime.now(timezone.utc)) < timedelta(minutes=5)


def emitted_under_lease(out: Path, url: str) -> None:
    """Each page was emitted while its replica held the account's lease (which never overlap)."""
    history = lease_history(url)
    assert_no_overlap(history)
    for m in pages(out):
        at = parse(m["emitted_at"])
        assert any(h["account"] == m["account"] and h["replica"] == m["_replica"] and h["acquired_at"] <= at
                   and (h["ended_at"] is None or at <= h["ended_at"]) for h in history), (m["account"], m["_replica"], at)


@pytest.fixture
def cluster_db() -> Any:
    with temp_database_sync("spd_cluster") as url:
        yield url


def test_sigkill_takeover_sigterm_handback_and_status(tmp_path: Path, sim_factory: Any, cluster_db: str) -> None:
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=1)
    sim = busy_simulator(sim_factory, start, now)
    config = cluster_config(tmp_path, sim.url, cluster_db, start, tmp_path / "out")
    replicas = {name: start_replica(config, name, tmp_path) for name in ("r1", "r2", "r3")}
    try:
        owners = wait_for(lambda: balanced(cluster_db, {"r1", "r2", "r3"}), timeout=60, interval=0.5)
        status = run_spd("status", "-c", str(config), "--json")
        assert status.returncode == 0, status.stderr
        rows = {r["poller"]: r for r in json.loads(status.stdout)}
        assert {p: rows[p]["replica"] for p in rows} == {f"p{i}": owners[a] for i, a in enumerate(ACCOUNTS, 1)}

        victim = max(set(owners.values()), key=lambda r: list(owners.values()).count(r))
        lost = {a for a, r in owners.items() if r == victim}
        killed_at = datetime.now(timezone.utc)
        replicas[victim].kill()
        replicas[victim].wait(10)
        taken = wait_for(lambda: (lambda h: h if lost <= set(h) and victim not in h.values() else None)(
            holders(cluster_db)), timeout=TTL + 4 * INTERVAL + 20, interval=0.2)
        takeovers = [h for h in lease_history(cluster_db) if h["account"] in lost and h["how"] == "takeover"]
        assert {h["account"] for h in takeovers} == lost and all(h["previous"] == victim for h in takeovers)
        for h in takeovers:  # the bound of the issue: lease_ttl + 2 poll intervals
            assert (h["acquired_at"] - killed_at).total_seconds() <= TTL + 2 * INTERVAL + LOAD_SLACK, h
        for account in lost:  # and the new holder polls it
            poller = f"p{ACCOUNTS.index(account) + 1}"
            acquired = next(h["acquired_at"] for h in takeovers if h["account"] == account)
            wait_for(lambda: ran_since(cluster_db, poller, acquired), timeout=2 * INTERVAL + 30)
        assert set(taken) >= lost
        for name in {taken[a] for a in lost}:  # /metrics of each replica that took over
            metrics = cluster_metrics(name)
            mine = sum(1 for r in holders(cluster_db).values() if r == name)
            assert metrics["spd_cluster_takeovers_total"] >= 1, metrics
            assert metrics["spd_cluster_leases_held"] == mine, (metrics, mine)
            assert 0 <= metrics["spd_cluster_heartbeat_lag_seconds"] < TTL, metrics
            assert metrics["spd_cluster_heartbeat_seconds"] > 0, metrics

        leaving, staying = sorted(r for r in replicas if r != victim)
        handed = {a for a, r in holders(cluster_db).items() if r == leaving}
        termed_at = datetime.now(timezone.utc)
        assert stop_spd(replicas[leaving]) == 0
        released = [h for h in lease_history(cluster_db) if h["replica"] == leaving and h["ended"] == "released"]
        assert handed <= {h["account"] for h in released}
        wait_for(lambda: balanced(cluster_db, {staying}), timeout=2 * INTERVAL + LOAD_SLACK + 5, interval=0.2)
        claims = [h for h in lease_history(cluster_db) if h["account"] in handed and h["replica"] == staying
                  and h["acquired_at"] > termed_at]
        assert {h["account"] for h in claims} == handed and all(h["how"] == "claim" for h in claims)
        time.sleep(2 * INTERVAL)
        assert stop_spd(replicas[staying]) == 0
    finally:
        kill_left(replicas.values())
    delivered(sim, tmp_path / "out", cluster_db, start)
    emitted_under_lease(tmp_path / "out", cluster_db)


def test_a_replica_cut_from_the_database_stops_in_time_and_rejoins(tmp_path: Path, sim_factory: Any,
                                                                 cluster_db: str) -> None:
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=1)
    sim = busy_simulator(sim_factory, start, now)
    out = tmp_path / "out"
    config = cluster_config(tmp_path, sim.url, cluster_db, start, out)
    proxy = TcpProxy(PG_HOST, PG_PORT).start()
    replicas = {name: start_replica(config, name, tmp_path) for name in ("r1", "r2")}
    # r3 reaches the same database through the proxy: same cluster (only host and port differ)
    cut_url = database_url(cluster_db.rsplit("/", 1)[1], "127.0.0.1", proxy.port)
    replicas["r3"] = start_replica(cluster_config(tmp_path / "r3", sim.url, cut_url, start, out), "r3", tmp_path)
    try:
        owners = wait_for(lambda: balanced(cluster_db, {"r1", "r2", "r3"}), timeout=60, interval=0.5)
        cut_off = {a for a, r in owners.items() if r == "r3"}
        time.sleep(INTERVAL)  # r3 polls a little
        cut_at = datetime.now(timezone.utc)
        proxy.cut()
        wait_for(lambda: cut_off <= set(holders(cluster_db)) and "r3" not in holders(cluster_db).values(),
                 timeout=TTL + 4 * INTERVAL + 20, interval=0.2)
        stopped = wait_for(lambda: [json.loads(line) for line in (tmp_path / "r3.log").read_text().splitlines()
                                    if '"leases_expiring"' in line], timeout=10)
        stopped_at = parse(stopped[0]["timestamp"])
        assert cut_at < stopped_at < cut_at + timedelta(seconds=TTL)  # before its leases could expire
        assert replicas["r3"].poll() is None  # it keeps running
        proxy.restore()
        wait_for(lambda: balanced(cluster_db, {"r1", "r2", "r3"}), timeout=60, interval=0.5)  # it rejoined
        time.sleep(INTERVAL)
        for name in ("r3", "r2", "r1"):
            assert stop_spd(replicas[name]) == 0
    finally:
        proxy.stop()
        kill_left(replicas.values())
    history = lease_history(cluster_db)
    for h in history:  # every lease r3 held when it was cut ended by expiry, after it had stopped
        held_at_cut = h["acquired_at"] < cut_at and (h["ended_at"] is None or h["ended_at"] > cut_at)
        if h["replica"] == "r3" and h["account"] in cut_off and held_at_cut:  # not one handed on in the first balancing
            assert h["ended"] == "expired" and h["ended_at"] > stopped_at, h
    delivered(sim, tmp_path / "out", cluster_db, start)
    emitted_under_lease(tmp_path / "out", cluster_db)
