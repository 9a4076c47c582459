"""`python -m tests.bench throughput [--orders 100000] [--rounds 3]`: objects/s and CPU seconds
per 10,000 objects from the simulator (no rate limits, its own process) to JSON lines in a file,
for

- spd: a real `spd once` subprocess, one ordersV0.getOrders poller, file emitter (one message per
  object, fsync per page, the default);
- spd_burst1000: the same with `rate_limits: {ordersV0.getOrders: {rate: 1000, burst: 1000}}`:
  the simulator advertises 1000 requests/s, but with the Usage Plan's burst of 20 spd's bucket
  is full at almost every request and pauses its refill for the 150 ms latency guard each time,
  which caps it near 20 requests per ~150 ms; a big burst shows the pipeline without that cap;
- python-amazon-sp-api (`sp_api`): OrdersV0.get_orders paged with NextToken, one JSON line per
  order, fsync per page; its endpoint and LWA token URL pointed at the simulator;
- the ceiling: a bare aiohttp + orjson loop that only fetches and writes the same pages.

Each client runs in its own subprocess; wall time and CPU (user + system, from the rusage of the
reaped child) cover that process from start to exit, interpreter start-up included. The clients
take turns, `--rounds` times; each figure is the client's median round. Prints one JSON line with
the figures and the ratios spd/peer and spd/ceiling.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
MARKETPLACE = "ATVPDKIKX0DER"
LWA = {"client_id": "bench-client", "client_secret": "bench-secret", "refresh_token": "bench-refresh"}


class SimProcess:
    """`spd sim` in its own process on a free port; `url` once started."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.url = ""
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "SimProcess":
        cmd = [sys.executable, "-m", "spd.cli", "sim", "--port", "0", *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "spd simulator listening on http://..."
        if "http://" not in line:
            self.proc.kill()
            raise SystemExit(f"simulator did not start: {line!r}")
        self.url = line.split()[-1]
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as resp:
            return orjson.loads(resp.read())


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def account_yaml(name: str, url: str, refresh_token: str = LWA["refresh_token"]) -> list[str]:
    """The YAML lines of one simulator account."""
    return [f"  {name}:", f"    endpoint: {url}", f"    marketplace_ids: [{MARKETPLACE}]",
            f"    lwa: {{client_id: {LWA['client_id']}, client_secret: {LWA['client_secret']}, "
            f"refresh_token: {refresh_token}, token_url: {url}/auth/o2/token}}"]


def spd_config(tmp: Path, url: str, after: datetime, out: Path, burst: int | None = None) -> Path:
    """One getOrders poller into a file; `burst` overrides the Usage Plan's burst of 20."""
    limits = [f"    rate_limits: {{ordersV0.getOrders: {{rate: 1000, burst: {burst}}}}}"]
    limits = limits if burst else []
    lines = [f"state: {{path: {tmp / 'state.db'}}}", "log: {level: warning, format: json}",
             "accounts:", *account_yaml("sim", url), *limits, "emitters:",
             f"  file: {{type: file, path: \"{out}\"}}", "pollers:", "  orders:",
             "    object: ordersV0.getOrders", "    timestamp_field: updated",
             "    emit: individually", f"    start_time: {iso(after)}", "    interval: 1h",
             "    emitters: [file]"]
    path = tmp / "spd.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_child(cmd: list[str], timeout: float = 900) -> tuple[float, float]:
    """Runs a client subprocess to its end; (wall seconds, CPU seconds of that child alone)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({result.returncode}): {result.stderr.strip()[-800:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def figures(objects: int, wall: float, cpu: float) -> dict[str, Any]:
    return {"objects": objects, "seconds": round(wall, 2), "cpu_s": round(cpu, 2),
            "objects_per_s": round(objects / wall), "cpu_s_per_10k": round(cpu * 10_000 / objects, 3)}


# --- the peers, each run as `python -m tests.bench.throughput --client NAME URL AFTER OUT` ------

def fetch_sp_api(url: str, after: str, out: Path) -> None:
    """python-amazon-sp-api: getOrders page by page with NextToken (as its load_all_pages does,
    the token goes with the other parameters), one orjson line per order, fsync per page."""
    from types import SimpleNamespace

    from sp_api.api import Orders
    from sp_api.auth import AccessTokenClient

    # The library hard-codes https://api.amazon.com for LWA and takes the SP-API endpoint from the
    # Marketplaces enum: point both at the simulator.
    AccessTokenClient.scheme = "http://"
    AccessTokenClient.host = url.removeprefix("http://")
    market = SimpleNamespace(endpoint=url, marketplace_id=MARKETPLACE, region="us-east-1")
    credentials = {"lwa_app_id": LWA["client_id"], "lwa_client_secret": LWA["client_secret"]}
    client = Orders(market, refresh_token=LWA["refresh_token"], credentials=credentials)
    kwargs: dict[str, Any] = {"LastUpdatedAfter": after, "MarketplaceIds": [MARKETPLACE],
                              "MaxResultsPerPage": 100}
    with out.open("ab") as f:
        while True:
            res = client.get_orders(**kwargs)
            f.write(b"".join(orjson.dumps(o) + b"\n" for o in res.payload.get("Orders", [])))
            f.flush()
            os.fsync(f.fileno())
            if not res.next_token:
                break
            kwargs["NextToken"] = res.next_token


async def fetch_bare(url: str, after: str, out: Path) -> None:
    """The ceiling: one LWA token, then getOrders pages over one aiohttp session, orjson in/out."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        grant = {"grant_type": "refresh_token", **LWA}
        async with session.post(f"{url}/auth/o2/token", data=grant) as r:
            token = orjson.loads(await r.read())["access_token"]
        query = {"LastUpdatedAfter": after, "MarketplaceIds": MARKETPLACE, "MaxResultsPerPage": "100"}
        headers = {"x-amz-access-token": token}
        with out.open("ab") as f:
            while True:
                async with session.get(f"{url}/orders/v0/orders", params=query, headers=headers) as r:
                    if r.status != 200:
                        raise SystemExit(f"HTTP {r.status}: {(await r.text())[:300]}")
                    payload = orjson.loads(await r.read())["payload"]
                f.write(b"".join(orjson.dumps(o) + b"\n" for o in payload.get("Orders", [])))
                f.flush()
                os.fsync(f.fileno())
                if not payload.get("NextToken"):
                    break
                query["NextToken"] = payload["NextToken"]


def client_main(name: str, url: str, after: str, out: str) -> int:
    if name == "sp_api":
        fetch_sp_api(url, after, Path(out))
    else:
        import asyncio

        asyncio.run(fetch_bare(url, after, Path(out)))
    return 0


# --- the benchmark ------------------------------------------------------------------------------

def client_cmd(name: str, tmp: Path, url: str, after: datetime) -> tuple[list[str], Path]:
    """The command of one client and the file it writes (fresh state and output each time)."""
    work = Path(tempfile.mkdtemp(dir=tmp))
    out = work / "out.jsonl"
    if name.startswith("spd"):
        config = spd_config(work, url, after, out, burst=1000 if name == "spd_burst1000" else None)
        return [sys.executable, "-m", "spd.cli", "once", "-c", str(config)], out
    return [sys.executable, "-m", "tests.bench.throughput", "--client", name, url, iso(after),
            str(out)], out


def measure(sim: SimProcess, tmp: Path, after: datetime, rounds: int) -> dict[str, dict[str, Any]]:
    """Runs the clients in turn, `rounds` times, against the same simulator; per client the
    round with the median wall time. `spd_startup` is `spd once` with nothing to fetch
    (start_time = now, inside the 2-minute lag): its start-up and shutdown alone."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(rounds):
        for name in ("spd", "sp_api", "ceiling", "spd_burst1000", "spd_startup"):
            since = datetime.now(timezone.utc) if name == "spd_startup" else after
            cmd, out = client_cmd(name, tmp, sim.url, since)
            wall, cpu = run_child(cmd)
            objects = count_lines(out) if out.exists() else 0
            if name == "spd_startup":
                runs.setdefault(name, []).append({"seconds": round(wall, 2), "cpu_s": round(cpu, 2)})
            else:
                runs.setdefault(name, []).append(figures(objects, wall, cpu))
    return {name: sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2] for name, rs in runs.items()}


def ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    spd = results["spd"]
    out: dict[str, float] = {}
    for peer in ("sp_api", "ceiling"):
        other = results[peer]
        out[f"objects_per_s_spd_burst1000_over_{peer}"] = round(
            results["spd_burst1000"]["objects_per_s"] / other["objects_per_s"], 3)
        out[f"objects_per_s_spd_over_{peer}"] = round(spd["objects_per_s"] / other["objects_per_s"], 3)
        out[f"cpu_per_object_spd_over_{peer}"] = round(spd["cpu_s_per_10k"] / other["cpu_s_per_10k"], 3)
    return out


def run(orders: int, rounds: int) -> dict[str, Any]:
    after = datetime.now(timezone.utc) - timedelta(days=4)  # before the seeded period (now-3d)
    sim_args = ("--no-rate-limit", "--orders", str(orders))
    with tempfile.TemporaryDirectory() as tmp, SimProcess(*sim_args) as sim:
        results = measure(sim, Path(tmp), after, rounds)
        stats = sim.get("/_sim/stats")["operations"]["ordersV0.getOrders"]
    return {"bench": "throughput", "orders": orders, "rounds": rounds,
            "spd_mode": "spd once subprocess, file emitter",
            **results, **ratios(results), "sim_getOrders": stats}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--client"]:
        return client_main(*argv[1:5])
    parser = argparse.ArgumentParser(prog="python -m tests.bench throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100_000, help="orders the simulator seeds")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each client, interleaved; the median one is reported")
    args = parser.parse_args(argv)
    print(orjson.dumps(run(args.orders, args.rounds)).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
