"""`python -m tests.bench throughput [--orders 200000] [--small 50000] [--rounds 3]`: what a
user's deployment sees: whole-process CPU and wall time of fetching every order from the
simulator (its own process, no rate limits, every order's JSON rendered once before the first
measured run, not counted) and writing it to a file, for

- `spd`: a real `spd once` subprocess, one ordersV0.getOrders poller, `emit: page`, file emitter
  (fsync per page, the default);
- `sp_api` (the peer): python-amazon-sp-api's Orders.get_orders paged with NextToken, its LWA
  token URL and endpoint pointed at the simulator, writing its lines with the standard library's
  `json` (the library brings no faster one: its own answers are parsed by httpx with `json`);
- `sp_api_orjson`: the same peer tuned by hand: its lines written with orjson (the bytes are the
  same), so the ratios show what a user who knows to add orjson would see;
- `bare`: a bare aiohttp + orjson loop (one LWA token, one session) that only fetches the pages;
- `floor`: the same loop without parsing the orders or writing anything (it finds the next
  token in the bytes): the simulator's own time per page plus the least any client does, a
  floor under every client's wall time (and the CPU of the HTTP requests alone).

The first four write the same lines: one JSON line per page with spd's page envelope (poller, account,
object_type, window, page, emitted_at, results), fsync per page. Each runs at two sizes from the
same simulator: all `--orders` (from before the seeded period) and about `--small` of them (a
later start time); the steady-state cost per 10,000 objects is the difference of the two runs
divided by the difference of their object counts, so interpreter start-up, imports and the LWA
token drop out. Individual mode (`emit: individually`, one message per object) is measured at
the small size into stdout (redirected to a file), a file and a webhook (a bare aiohttp receiver
in its own process, not counted), in objects/s beside page mode.

Each client runs in its own subprocess; its wall time and CPU (user + system of that child alone,
from wait4) cover the process from start to exit; `sim_cpu_s` is the simulator's CPU while the
client ran (what of its wall time was the simulator's own work). Every client runs with its bytecode cached, as
after `pip install` (which compiles it): the environment's PYTHONDONTWRITEBYTECODE is dropped and
spd and the bench are compiled before the first round (a stale or missing .pyc would make each
start compile them again, ~0.1-0.2 s of CPU that no installed spd spends). The runs are interleaved (every client once per
round, `--rounds` rounds); each figure is the median of the rounds. The machine may be shared:
absolute figures are noisy, the ratios against the peer measured in the same rounds are what to
compare. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from tests.support.sim_process import SimProcess

ROOT = Path(__file__).resolve().parents[2]
MARKETPLACE = "ATVPDKIKX0DER"
LWA = {"client_id": "bench-client", "client_secret": "bench-secret", "refresh_token": "bench-refresh"}
SEEDED_DAYS = 3  # the simulator seeds its orders over 3 days ending SEEDED_UNTIL ago
# The seeded period ends a week ago: a seeded order's lifecycle (spd.sim.data: pre-order, ship or
# cancel) ends within 6 days, so all its versions are visible before any client runs, and no
# order is added or updated later (--no-live). Every client, run at whatever time and whatever
# its window's end (spd's stays 2 minutes behind now), pages through the same orders.
SEEDED_UNTIL = timedelta(days=7)
# what every measured process runs with: bytecode written once and then read (see the docstring)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
PAGE_CLIENTS = ("spd", "sp_api", "sp_api_orjson", "bare", "floor")
INDIVIDUAL_CLIENTS = ("spd_individual_stdout", "spd_individual_file", "spd_individual_webhook")


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def account_yaml(name: str, url: str, refresh_token: str = LWA["refresh_token"]) -> list[str]:
    """The YAML lines of one simulator account."""
    return [f"  {name}:", f"    endpoint: {url}", f"    marketplace_ids: [{MARKETPLACE}]",
            f"    lwa: {{client_id: {LWA['client_id']}, client_secret: {LWA['client_secret']}, "
            f"refresh_token: {refresh_token}, token_url: {url}/auth/o2/token}}"]


def spd_config(tmp: Path, url: str, after: datetime, emitter: str, emit: str) -> Path:
    """One getOrders poller (`emit` page or individually) into one emitter (a YAML flow map)."""
    lines = [f"state: {{path: {tmp / 'state.db'}}}", "log: {level: warning, format: json}",
             "accounts:", *account_yaml("sim", url), "emitters:", f"  out: {emitter}",
             "pollers:", "  orders:", "    object: ordersV0.getOrders",
             "    timestamp_field: updated", f"    emit: {emit}", f"    start_time: {iso(after)}",
             "    interval: 1h", "    emitters: [out]"]
    path = tmp / "spd.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_child(cmd: list[str], stdout: Path | None = None, timeout: float = 1800) -> dict[str, float]:
    """Runs a client subprocess to its end: wall seconds, CPU seconds and peak RSS of that
    child alone (wait4's rusage)."""
    out = stdout.open("wb") if stdout else subprocess.DEVNULL
    err = tempfile.TemporaryFile()
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, env=ENV)
    deadline = began + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            raise SystemExit(f"{cmd[:5]} timed out after {timeout}s")
        time.sleep(0.01)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if stdout:
        out.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        err.seek(0)
        raise SystemExit(f"{cmd[:5]} failed ({proc.returncode}): {err.read().decode()[-800:]}")
    return {"seconds": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024}


def count_objects(path: Path, emit: str) -> tuple[int, int]:
    """(objects, bytes) in a JSON-lines output: one object a line, or a page envelope a line."""
    objects = size = 0
    with path.open("rb") as f:
        for line in f:
            size += len(line)
            if emit != "page":
                objects += 1
                continue
            doc = orjson.loads(line)
            objects += len(doc["results"]) if "results" in doc else doc["count"]  # floor: a count
    return objects, size


# --- the peers, each run as `python -m tests.bench.throughput --client NAME URL AFTER OUT` ------

def json_dumps(doc: Any) -> bytes:
    """The standard library's JSON in orjson's compact form: the same bytes, at json's cost."""
    import json

    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def envelope(page: int, after: str, objects: list[Any], dumps: Any = orjson.dumps) -> bytes:
    """spd's page message for `objects`, so every client writes the same lines."""
    return dumps({"poller": "orders", "account": "sim", "object_type": "ordersV0.getOrders",
                  "window": [after, None], "page": page,
                  "emitted_at": iso(datetime.now(timezone.utc)), "results": objects}) + b"\n"


def fetch_sp_api(url: str, after: str, out: Path, dumps: Any = json_dumps) -> None:
    """python-amazon-sp-api: getOrders page by page with NextToken (as its load_all_pages does,
    the token goes with the other parameters), one page line each (`dumps`), fsync per page."""
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
    page = 0
    with out.open("ab") as f:
        while True:
            res = client.get_orders(**kwargs)
            page += 1
            f.write(envelope(page, after, res.payload.get("Orders", []), dumps))
            f.flush()
            os.fsync(f.fileno())
            if not res.next_token:
                break
            kwargs["NextToken"] = res.next_token


async def first_request(session: Any, url: str, after: str) -> tuple[dict[str, str], dict[str, str]]:
    """One LWA token for the bare loop and the floor: the first page's query and the headers."""
    grant = {"grant_type": "refresh_token", **LWA}
    async with session.post(f"{url}/auth/o2/token", data=grant) as r:
        token = orjson.loads(await r.read())["access_token"]
    query = {"LastUpdatedAfter": after, "MarketplaceIds": MARKETPLACE, "MaxResultsPerPage": "100"}
    return query, {"x-amz-access-token": token}


async def fetch_bare(url: str, after: str, out: Path) -> None:
    """The bare loop: one LWA token, then getOrders pages over one aiohttp session, orjson in
    and out, one page line each, fsync per page."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        query, headers = await first_request(session, url, after)
        page = 0
        with out.open("ab") as f:
            while True:
                async with session.get(f"{url}/orders/v0/orders", params=query, headers=headers) as r:
                    if r.status != 200:
                        raise SystemExit(f"HTTP {r.status}: {(await r.text())[:300]}")
                    payload = orjson.loads(await r.read())["payload"]
                page += 1
                f.write(envelope(page, after, payload.get("Orders", [])))
                f.flush()
                os.fsync(f.fileno())
                if not payload.get("NextToken"):
                    break
                query["NextToken"] = payload["NextToken"]


async def fetch_floor(url: str, after: str, out: Path) -> None:
    """The floor: the bare loop's requests, but the next token is found in the bytes and the
    orders only counted; one line with the count at the end."""
    import re

    import aiohttp

    next_token = re.compile(rb'"NextToken":"([^"]*)"')
    objects = 0
    async with aiohttp.ClientSession() as session:
        query, headers = await first_request(session, url, after)
        while True:
            async with session.get(f"{url}/orders/v0/orders", params=query, headers=headers) as r:
                if r.status != 200:
                    raise SystemExit(f"HTTP {r.status}: {(await r.text())[:300]}")
                body = await r.read()
            objects += body.count(b'"AmazonOrderId"')
            found = next_token.search(body)
            if found is None:
                break
            query["NextToken"] = found.group(1).decode()
    out.write_bytes(orjson.dumps({"count": objects}) + b"\n")


async def receive_webhooks(port_file: Path) -> None:
    """A bare webhook receiver: answers every POST 200; writes its port to `port_file`."""
    import asyncio

    from aiohttp import web

    received = [0]

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        received[0] += 1
        return web.Response(text="ok")

    async def count(request: web.Request) -> web.Response:
        return web.Response(text=str(received[0]))

    app = web.Application()
    app.router.add_post("/hook", handle)
    app.router.add_get("/count", count)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port_file.write_text(str(runner.addresses[0][1]))
    await asyncio.Event().wait()  # until SIGTERM


def client_main(name: str, *args: str) -> int:
    import asyncio

    if name == "sp_api":
        fetch_sp_api(args[0], args[1], Path(args[2]))
    elif name == "sp_api_orjson":
        fetch_sp_api(args[0], args[1], Path(args[2]), orjson.dumps)
    elif name == "bare":
        asyncio.run(fetch_bare(args[0], args[1], Path(args[2])))
    elif name == "floor":
        asyncio.run(fetch_floor(args[0], args[1], Path(args[2])))
    elif name == "receiver":
        asyncio.run(receive_webhooks(Path(args[0])))
    return 0


class Receiver:
    """The webhook receiver in its own process (its CPU is not counted); `url` once started."""

    def __enter__(self) -> "Receiver":
        self.tmp = tempfile.TemporaryDirectory()
        port_file = Path(self.tmp.name) / "port"
        cmd = [sys.executable, "-m", "tests.bench.throughput", "--client", "receiver", str(port_file)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT)
        for _ in range(600):
            if port_file.exists() and port_file.read_text():
                self.url = f"http://127.0.0.1:{port_file.read_text()}/hook"
                return self
            time.sleep(0.05)
        self.proc.kill()
        raise SystemExit("webhook receiver did not start")

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self.tmp.cleanup()

    def count(self) -> int:
        """Messages received so far."""
        with urllib.request.urlopen(self.url.replace("/hook", "/count"), timeout=30) as resp:
            return int(resp.read())


# --- the benchmark ------------------------------------------------------------------------------

def run_client(name: str, tmp: Path, sim: SimProcess, after: datetime, hook: Receiver) -> dict[str, Any]:
    """One run of one client with fresh state and output: its figures, and the simulator's CPU
    while it ran (the simulator's share of every client's wall time)."""
    url = sim.url
    work = Path(tempfile.mkdtemp(dir=tmp))
    out = work / "out.jsonl"
    stdout = None
    if name in PAGE_CLIENTS[1:]:
        cmd = [sys.executable, "-m", "tests.bench.throughput", "--client", name, url, iso(after),
               str(out)]
        emit = "page"
    else:
        emit = "page" if name == "spd" else "individually"
        emitter = {"spd": f"{{type: file, path: \"{out}\"}}",
                   "spd_individual_file": f"{{type: file, path: \"{out}\"}}",
                   "spd_individual_stdout": "{type: stdout}",
                   "spd_individual_webhook": f"{{type: webhook, url: \"{hook.url}\"}}"}[name]
        config = spd_config(work, url, after, emitter, emit)
        cmd = [sys.executable, "-m", "spd.cli", "once", "-c", str(config)]
        stdout = out if name == "spd_individual_stdout" else None
    received = hook.count()
    sim_cpu = sim.cpu_seconds()
    result = run_child(cmd, stdout=stdout)
    result["sim_cpu_s"] = sim.cpu_seconds() - sim_cpu
    if name == "spd_individual_webhook":
        objects, size = hook.count() - received, 0
    else:
        objects, size = count_objects(out, emit)
    size = 0 if name == "floor" else size  # it writes only a count
    result.update(objects=objects, bytes_per_object=round(size / max(objects, 1)) if size else None)
    return result


def median_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the rounds, and objects/s and CPU per 10,000 objects."""
    med = {k: statistics.median(r[k] for r in runs)
           for k in ("seconds", "cpu_s", "peak_rss_mb", "sim_cpu_s")}
    objects = runs[0]["objects"]
    return {"objects": objects, "seconds": round(med["seconds"], 2), "cpu_s": round(med["cpu_s"], 2),
            "objects_per_s": round(objects / med["seconds"]),
            "cpu_s_per_10k": round(med["cpu_s"] * 10_000 / objects, 3),
            "peak_rss_mb": round(med["peak_rss_mb"], 1), "sim_cpu_s": round(med["sim_cpu_s"], 2),
            "bytes_per_object": runs[0]["bytes_per_object"], "rounds": len(runs)}


def steady_state(large: list[dict[str, Any]], small: list[dict[str, Any]]) -> float:
    """CPU seconds per 10,000 objects beyond the fixed cost: (CPU(large) - CPU(small)) /
    (objects(large) - objects(small)), on the medians."""
    cpu = statistics.median(r["cpu_s"] for r in large) - statistics.median(r["cpu_s"] for r in small)
    return round(cpu * 10_000 / (large[0]["objects"] - small[0]["objects"]), 3)


def measure(sim: SimProcess, end: datetime, tmp: Path, orders: int, small: int, rounds: int,
            individual: bool, hook: Receiver) -> dict[str, Any]:
    """Every client at both sizes, interleaved over `rounds`; medians and ratios."""
    before_all = end - timedelta(days=SEEDED_DAYS + 1)
    # About `small` of the orders were last updated after this (the seeded times are uniform).
    after_small = end - timedelta(days=SEEDED_DAYS) * min(1.0, small / orders)
    # The simulator renders each order version once and then serves its cached JSON: one
    # unmeasured pass, so the first measured client does not pay for everyone.
    run_client("floor", tmp, sim, before_all, hook)
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(rounds):
        for name in PAGE_CLIENTS:
            runs.setdefault(f"{name}_large", []).append(run_client(name, tmp, sim, before_all, hook))
            runs.setdefault(f"{name}_small", []).append(run_client(name, tmp, sim, after_small, hook))
        for name in INDIVIDUAL_CLIENTS if individual else ():
            runs.setdefault(name, []).append(run_client(name, tmp, sim, after_small, hook))
    out: dict[str, Any] = {key: median_figures(rs) for key, rs in runs.items()}
    for name in PAGE_CLIENTS:
        out[f"{name}_steady_cpu_s_per_10k"] = steady_state(runs[f"{name}_large"], runs[f"{name}_small"])
    return out


def ratios(r: dict[str, Any]) -> dict[str, float]:
    """spd over the peer, the bare loop and the floor, in the same rounds; and the bare loop and
    the floor over the peer: what no client that fetches (and writes) the same pages goes far
    below (a target of spd's under them is out of reach by construction)."""
    out = {}
    for client, other in (("spd", "sp_api"), ("spd", "sp_api_orjson"), ("spd", "bare"),
                          ("sp_api_orjson", "sp_api"), ("bare", "sp_api"), ("bare", "sp_api_orjson"),
                          ("floor", "sp_api"), ("spd", "floor")):
        out[f"cpu_{client}_over_{other}"] = round(
            r[f"{client}_large"]["cpu_s"] / r[f"{other}_large"]["cpu_s"], 3)
        out[f"wall_{client}_over_{other}"] = round(
            r[f"{client}_large"]["seconds"] / r[f"{other}_large"]["seconds"], 3)
        out[f"steady_cpu_{client}_over_{other}"] = round(
            r[f"{client}_steady_cpu_s_per_10k"] / r[f"{other}_steady_cpu_s_per_10k"], 3)
    return out


def compile_bytecode() -> None:
    """spd's and the bench's .pyc files up to date, as an installed spd has them."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "spd", "tests/bench"], cwd=ROOT,
                   env=ENV, check=True, stdout=subprocess.DEVNULL)


def run(orders: int, small: int, rounds: int, individual: bool) -> dict[str, Any]:
    compile_bytecode()
    end = datetime.now(timezone.utc) - SEEDED_UNTIL
    sim_args = ("--no-rate-limit", "--no-live", "--end", iso(end), "--orders", str(orders))
    with tempfile.TemporaryDirectory() as tmp, SimProcess(*sim_args) as sim, Receiver() as hook:
        results = measure(sim, end, Path(tmp), orders, small, rounds, individual, hook)
        stats = sim.get("/_sim/stats")["operations"]["ordersV0.getOrders"]
    return {"bench": "throughput", "orders": orders, "small": small, "rounds": rounds,
            **ratios(results), **results, "sim_getOrders": stats}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--client"]:
        return client_main(*argv[1:])
    parser = argparse.ArgumentParser(prog="python -m tests.bench throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=200_000, help="orders the simulator seeds")
    parser.add_argument("--small", type=int, default=50_000,
                        help="about this many orders in the small runs (steady-state difference)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported")
    parser.add_argument("--no-individual", action="store_true",
                        help="skip the individual-mode runs (stdout, file, webhook)")
    args = parser.parse_args(argv)
    result = run(args.orders, args.small, args.rounds, not args.no_individual)
    print(orjson.dumps(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
