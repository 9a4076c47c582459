"""`python -m tests.bench ratelimit [--seconds 60]`: the share of the quota used and the 429s of
a client paging through vendorOrders.getPurchaseOrders (usage plan 10 requests/s, burst 10)
against a simulator that enforces Amazon's token buckets, over a fixed window.

Clients, each in its own process against its own simulator process (a fresh bucket):
- spd: a real `spd once` subprocess (one poller, file emitter), stopped with SIGTERM at the end;
- sp_api: python-amazon-sp-api, each page through its `throttle_retry()` decorator with its
  defaults (10 tries, 5 s delay growing by 1.3x on 429), pages chained by `load_all_pages` with
  no pause (`throttle_by_seconds=0`);
- sp_api_paced: the same, but `load_all_pages(use_rate_limit_header=True)` sleeps 1/rate (from
  `x-amzn-RateLimit-Limit`) between pages, the library's own pacing.

The window starts at the simulator's first getPurchaseOrders request (watched on /_sim/stats every
50 ms) and lasts `--seconds`; the figures are the simulator's counts at its end. Quota available =
burst + rate x seconds; share = accepted requests / quota.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from tests.bench.throughput import LWA, MARKETPLACE, ROOT, SimProcess, account_yaml, iso

OPERATION = "vendorOrders.getPurchaseOrders"
RATE, BURST = 10.0, 10  # the simulator's (and Amazon's) usage plan for getPurchaseOrders
# Small pages so that a modest simulator dataset still holds more than a minute of requests.
PAGE_SIZE = 10
CLIENTS = ("spd", "sp_api", "sp_api_paced")


def spd_config(tmp: Path, url: str, after: datetime) -> Path:
    lines = [f"state: {{path: {tmp / 'state.db'}}}", "log: {level: warning, format: json}",
             "accounts:", *account_yaml("sim", url), "emitters:",
             f"  file: {{type: file, path: \"{tmp / 'out.jsonl'}\"}}", "pollers:", "  po:",
             f"    object: {OPERATION}", "    timestamp_field: created", "    emit: page",
             f"    params: {{limit: {PAGE_SIZE}}}", f"    start_time: {iso(after)}",
             "    interval: 1h", "    emitters: [file]"]
    path = tmp / "spd.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def sp_api_pages(url: str, after: str, paced: bool) -> None:
    """Pages through getPurchaseOrders with python-amazon-sp-api's own decorators until killed."""
    from types import SimpleNamespace

    from sp_api.api import VendorOrders
    from sp_api.auth import AccessTokenClient
    from sp_api.util import load_all_pages, throttle_retry

    AccessTokenClient.scheme = "http://"  # LWA is hard-coded to https://api.amazon.com
    AccessTokenClient.host = url.removeprefix("http://")
    market = SimpleNamespace(endpoint=url, marketplace_id=MARKETPLACE, region="us-east-1")
    credentials = {"lwa_app_id": LWA["client_id"], "lwa_client_secret": LWA["client_secret"]}
    client = VendorOrders(market, refresh_token=LWA["refresh_token"], credentials=credentials)
    pacing = {"use_rate_limit_header": True} if paced else {"throttle_by_seconds": 0}

    @load_all_pages(next_token_param="nextToken", **pacing)
    @throttle_retry()
    def pages(**kwargs: Any) -> Any:
        return client.get_purchase_orders(**kwargs)

    for _ in pages(createdAfter=after, limit=PAGE_SIZE):
        pass


def start_client(name: str, tmp: Path, url: str, after: datetime) -> subprocess.Popen:
    if name == "spd":
        cmd = [sys.executable, "-m", "spd.cli", "once", "-c", str(spd_config(tmp, url, after))]
    else:
        cmd = [sys.executable, "-m", "tests.bench.ratelimit", "--client", name, url, iso(after)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=(tmp / f"{name}.stderr").open("wb"))


def op_stats(sim: SimProcess) -> dict[str, int]:
    return sim.get("/_sim/stats")["operations"][OPERATION]


def watch(sim: SimProcess, proc: subprocess.Popen, seconds: float) -> tuple[float, dict[str, int]]:
    """Waits for the first request, then `seconds`; (elapsed, the simulator's counts then)."""
    deadline = time.monotonic() + 60
    while not op_stats(sim).get("requests"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"client exited or never called {OPERATION} (exit {proc.poll()})")
        time.sleep(0.05)
    began = time.monotonic()
    time.sleep(seconds)
    stats = op_stats(sim)
    return time.monotonic() - began, stats


def measure(name: str, seconds: float, purchase_orders: int) -> dict[str, Any]:
    after = datetime.now(timezone.utc) - timedelta(days=4)  # one 7-day window over the seeded 3 days
    with tempfile.TemporaryDirectory() as tmp, \
            SimProcess("--purchase-orders", str(purchase_orders), "--orders", "0") as sim:
        proc = start_client(name, Path(tmp), sim.url, after)
        try:
            elapsed, stats = watch(sim, proc, seconds)
            finished_early = proc.poll() is not None
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(40)
    quota = BURST + RATE * elapsed
    ok = stats.get("ok", 0)
    return {"requests": stats.get("requests", 0), "ok": ok, "throttled_429": stats.get("throttled", 0),
            "quota": round(quota, 1), "quota_share": round(ok / quota, 3),
            "seconds": round(elapsed, 2), "ran_out_of_work": finished_early}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--client"]:
        sp_api_pages(argv[2], argv[3], paced=argv[1] == "sp_api_paced")
        return 0
    parser = argparse.ArgumentParser(prog="python -m tests.bench ratelimit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each window")
    parser.add_argument("--purchase-orders", type=int, default=20_000,
                        help="purchase orders the simulator seeds (enough work for the window)")
    parser.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"bench": "ratelimit", "operation": OPERATION, "rate": RATE, "burst": BURST}
    for name in args.clients.split(","):
        result[name] = measure(name, args.seconds, args.purchase_orders)
    print(orjson.dumps(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
