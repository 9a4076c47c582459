"""`python -m tests.bench cluster [--replicas 3] [--pollers 1000] [--ttl 6] [--window 20]`: replicas
of `spd run` sharing pollers through the machine's PostgreSQL (a database of its own), against the
simulator (its own process), 5 pollers per account.

- join_s: from the start of the replicas until every account is held and every replica holds some.
- db_transactions_per_s: committed transactions of the database (pg_stat_database) per second over
  an idle `--window` once the first runs and the rebalancing settled (3 x lease_ttl after the
  join): what the cluster costs the database while the pollers wait for their interval (300 s).
- heartbeat_ms: one heartbeat round (announce, renew every lease, read the cluster), as each
  replica's /metrics reports it, sampled every second of the window; the peer measured in the same
  run is a bare `SELECT 1` round trip from this process (`heartbeat_over_select1`).
- takeover_s: one replica is SIGKILLed; seconds until all its accounts are held by the others, as
  a share of lease_ttl too (the bound is lease_ttl plus one heartbeat interval), and until each of
  its pollers has run again on its new replica.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from tests.bench.scale import OBJECT_TYPES, fleet_yaml
from tests.bench.throughput import ROOT, SimProcess
from tests.support.postgres import create_database, database_url, drop_database



def write_config(tmp: Path, sim_url: str, state_url: str, accounts: int, ttl: float) -> Path:
    lines = [f"state: {{url: {state_url}}}", f"cluster: {{lease_ttl: {ttl:g}s}}",
             "log: {level: info, format: json}", 'http: {listen: "127.0.0.1:${SPD_BENCH_PORT}"}',
             *fleet_yaml(sim_url, accounts, f"{tmp}/out/${{SPD_REPLICA_ID}}/{{account}}.jsonl", 300)]
    path = tmp / "spd.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def holders(url: str) -> dict[str, str]:
    try:
        rows = asyncio.run(fetch(url, "SELECT account, replica FROM spd_leases WHERE replica IS NOT NULL"
                                      " AND expires_at > now()"))
    except asyncpg.UndefinedTableError:
        return {}
    return {r["account"]: r["replica"] for r in rows}


def transactions(url: str, name: str) -> int:
    rows = asyncio.run(fetch(url, "SELECT xact_commit FROM pg_stat_database WHERE datname=$1", name))
    return int(rows[0]["xact_commit"])


def select1_ms(url: str, rounds: int = 200) -> float:
    async def run() -> float:
        conn = await asyncpg.connect(url)
        try:
            took = []
            for _ in range(rounds):
                began = time.perf_counter()
                await conn.fetchval("SELECT 1")
                took.append(time.perf_counter() - began)
            return statistics.median(took) * 1000
        finally:
            await conn.close()

    return asyncio.run(run())


def heartbeat_ms(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    found = re.search(r"^spd_cluster_heartbeat_seconds\{[^}]*\} (\S+)$", text, re.M)
    return float(found.group(1)) * 1000 if found else None


def wait(predicate: Any, timeout: float, what: str, procs: dict[str, Any] | None = None) -> float:
    """Seconds until `predicate()`; SystemExit on timeout or when a replica (of `procs`) exited."""
    began = time.monotonic()
    while not predicate():
        gone = [rid for rid, (proc, _) in (procs or {}).items() if proc.poll() is not None]
        if gone or time.monotonic() - began > timeout:
            raise SystemExit(f"{what}: not within {timeout:g}s" + (f"; replica {gone[0]} exited" if gone else ""))
        time.sleep(0.1)
    return time.monotonic() - began


def ran_again(url: str, pollers: list[str], since: datetime) -> bool:
    rows = asyncio.run(fetch(url, "SELECT count(*) AS n FROM spd_pollers WHERE poller = ANY($1)"
                                  " AND last_run_at > $2", pollers, since))
    return int(rows[0]["n"]) == len(pollers)


def run(replicas: int, pollers: int, ttl: float, window: float, tmp: Path) -> dict[str, Any]:
    accounts = max(replicas, pollers // len(OBJECT_TYPES))
    name = asyncio.run(create_database("spd_bench_cluster"))
    url = database_url(name)
    procs: dict[str, tuple[subprocess.Popen, int]] = {}
    try:
        with SimProcess("--orders", "200", "--purchase-orders", "20") as sim:
            config = write_config(tmp, sim.url, url, accounts, ttl)
            began = time.monotonic()
            for r in range(replicas):
                rid, port = f"r{r + 1}", free_port()
                env = {**{k: v for k, v in os.environ.items() if not k.startswith("SPD_")},
                       "SPD_REPLICA_ID": rid, "SPD_BENCH_PORT": str(port)}
                log = (tmp / f"{rid}.log").open("wb")
                procs[rid] = (subprocess.Popen([sys.executable, "-m", "spd.cli", "run", "-c", str(config)],
                                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log), port)
            every = {f"r{r + 1}" for r in range(replicas)}
            wait(lambda: (lambda h: len(h) == accounts and set(h.values()) == every)(holders(url)),
                 timeout=600, what="every replica holding some of every account", procs=procs)
            join = time.monotonic() - began
            time.sleep(3 * ttl)  # the first runs (one small window each) and rebalancing settle
            # Nothing but the replicas talks to the database in the window (PostgreSQL flushes a
            # backend's counts within a second: the bench's own queries come after, or before + 2 s).
            time.sleep(2)
            tx0, t0 = transactions(url, name), time.monotonic()
            time.sleep(window)
            tx_rate = (transactions(url, name) - tx0 - 1) / (time.monotonic() - t0)
            peer = select1_ms(url)
            samples: list[float] = []
            for _ in range(int(window)):  # then the heartbeat rounds, from each replica's /metrics
                samples += [ms for _, port in procs.values() if (ms := heartbeat_ms(port)) is not None]
                time.sleep(1.0)
            victim = "r1"
            lost = sorted(a for a, r in holders(url).items() if r == victim)
            lost_pollers = [f"{a}-t{n}" for a in lost for n in range(len(OBJECT_TYPES))]
            killed_at = datetime.now(timezone.utc)
            procs[victim][0].kill()
            takeover = wait(lambda: (lambda h: all(a in h and h[a] != victim for a in lost))(holders(url)),
                            timeout=ttl * 4 + 60, what="takeover")
            resumed = takeover + wait(lambda: ran_again(url, lost_pollers, killed_at), timeout=120,
                                      what="taken-over pollers running")
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        asyncio.run(drop_database(name))
    beat = statistics.median(samples) if samples else None
    return {
        "bench": "cluster", "replicas": replicas, "accounts": accounts, "pollers": accounts * len(OBJECT_TYPES),
        "lease_ttl_s": ttl, "join_s": round(join, 1), "window_s": window,
        "db_transactions_per_s": round(tx_rate, 1),
        "heartbeat_ms_p50": None if beat is None else round(beat, 2),
        "heartbeat_ms_max": round(max(samples), 2) if samples else None,
        "select1_ms_p50": round(peer, 3),
        "heartbeat_over_select1": None if beat is None else round(beat / peer, 1),
        "takeover_accounts": len(lost), "takeover_s": round(takeover, 2),
        "takeover_over_lease_ttl": round(takeover / ttl, 2),
        "taken_over_pollers_ran_s": round(resumed, 2),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--pollers", type=int, default=1000, help="pollers in all (5 per account)")
    parser.add_argument("--ttl", type=float, default=6.0, help="cluster.lease_ttl, seconds")
    parser.add_argument("--window", type=float, default=20.0, help="idle window measured, seconds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.replicas, args.pollers, args.ttl, args.window, Path(tmp))
    print(orjson.dumps(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
