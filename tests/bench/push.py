"""`python -m tests.bench push [--seconds 240] [--interval 30]`: change-to-emit latency of an SQS
subscription beside a poller's detection latency, in one run of one `spd run`.

Peers on loopback: the simulator (a busy seller, about one order change a second) publishing
ORDER_CHANGE into an SQS queue of moto's server, as Amazon's Notifications API would; `spd
subscribe` sets the destination and subscription up; one `spd run` has the subscription and an
ordersV0.getOrders poller (by LastUpdateDate, every `--interval`), both posting to one webhook
receiver that stamps each message's arrival. Latency = arrival - the change's time (the
notification's EventTime, the order's LastUpdateDate: the simulator's version time). Figures:
p50/p99 per path and poll/push ratios; the poller's side includes Amazon's 2-minute rule, which
the simulator enforces on getOrders, so it needs `--seconds` well above 120 to have figures.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from spd.sim import SimSettings, Simulator
from tests.bench.throughput import ROOT, account_yaml, iso

KEYS = ("AKIDBENCH", "bench-secret", "us-east-1")


class Peers:
    """The simulator and the stamping webhook receiver in one event loop thread, moto beside."""

    def __init__(self, sqs_url: str) -> None:
        self.sqs_url = sqs_url
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.sim_url = self.hook_url = ""

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        busy = datetime.now(timezone.utc) - timedelta(minutes=10)
        self.sim = Simulator(SimSettings(orders=600, start=busy, live=True, sqs_endpoint=self.sqs_url,
                                         sqs_keys=KEYS, rate_limit=True))
        await self.sim.start()
        self.sim_url = self.sim.url

        async def hook(request: web.Request) -> web.Response:
            body = await request.read()
            self.arrivals.append((time.time(), orjson.loads(body)))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.hook_url = f"http://127.0.0.1:{port}/hook"

    def start(self) -> Peers:
        self.thread.start()
        self.ready.wait(30)
        return self

    def stop(self) -> None:
        async def close() -> None:
            await self.sim.close()
            await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def config(tmp: Path, peers: Peers, queue_url: str, sqs_url: str, start: datetime, interval: int) -> Path:
    lines = [f"state: {{path: {tmp / 'state.db'}}}", "log: {level: warning, format: json}",
             "accounts:", *account_yaml("sim", peers.sim_url), "emitters:",
             f"  hook: {{type: webhook, url: \"{peers.hook_url}\"}}",
             "pollers:", "  orders:", "    object: ordersV0.getOrders", "    timestamp_field: updated",
             f"    start_time: {iso(start)}", f"    interval: {interval}s", "    emitters: [hook]",
             "subscriptions:", "  changes:", f"    queue_url: {queue_url}", f"    endpoint_url: {sqs_url}",
             f"    aws: {{access_key_id: {KEYS[0]}, secret_access_key: {KEYS[1]}, region: {KEYS[2]}}}",
             "    notification_types: [ORDER_CHANGE]", "    reconcile_with: orders", "    emitters: [hook]"]
    path = tmp / "spd.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def spd(*args: str) -> list[str]:
    return [sys.executable, "-m", "spd.cli", *args]


def change_time(doc: dict[str, Any]) -> tuple[str, str, float] | None:
    """(path, order id, change time) of a received message: push or poll."""
    if "notification_type" in doc:
        change = doc["data"]["OrderChangeNotification"]
        return "push", change["AmazonOrderId"], _epoch(doc["event_time"])
    if "poller" in doc:
        return "poll", doc["data"]["AmazonOrderId"], _epoch(doc["data"]["LastUpdateDate"])
    return None


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "p50_s": None, "p99_s": None}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"count": len(values), "p50_s": round(statistics.median(ordered), 3), "p99_s": round(p99, 3)}


def measure(peers: Peers) -> dict[str, Any]:
    # from the first push delivery on: changes made while spd was still starting waited for it
    first = min((t for t, doc in peers.arrivals if "notification_type" in doc), default=float("inf"))
    started = first + 1.0
    latency: dict[str, list[float]] = {"push": [], "poll": []}
    seen: dict[str, dict[tuple[str, float], float]] = {"push": {}, "poll": {}}
    for arrived, doc in list(peers.arrivals):
        found = change_time(doc)
        if found is None or found[2] < started:
            continue  # changes from before the run: not detection latency
        path, order_id, changed = found
        latency[path].append(arrived - changed)
        seen[path].setdefault((order_id, changed), arrived - changed)
    both = set(seen["push"]) & set(seen["poll"])
    result: dict[str, Any] = {"push": percentiles(latency["push"]), "poll": percentiles(latency["poll"]),
                              "same_changes": {"count": len(both)}}
    if both:
        result["same_changes"]["push"] = percentiles([seen["push"][k] for k in both])
        result["same_changes"]["poll"] = percentiles([seen["poll"][k] for k in both])
    push, poll = result["push"], result["poll"]
    if push["p50_s"] and poll["p50_s"]:
        result["poll_over_push_p50"] = round(poll["p50_s"] / push["p50_s"], 1)
        result["poll_over_push_p99"] = round(poll["p99_s"] / push["p99_s"], 1)
    return result


def run(seconds: float, interval: int) -> dict[str, Any]:
    from moto.server import ThreadedMotoServer
    import boto3

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    sqs_url = f"http://{host}:{port}"
    sqs = boto3.client("sqs", endpoint_url=sqs_url, region_name=KEYS[2], aws_access_key_id=KEYS[0],
                       aws_secret_access_key=KEYS[1])
    queue_url = sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    peers = Peers(sqs_url).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = config(Path(tmp), peers, queue_url, sqs_url, datetime.now(timezone.utc), interval)
            done = subprocess.run(spd("subscribe", "-c", str(path), "changes"), cwd=ROOT,
                                  capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise SystemExit(f"spd subscribe failed: {done.stderr}")
            proc = subprocess.Popen(spd("run", "-c", str(path)), cwd=ROOT, stderr=subprocess.DEVNULL)
            time.sleep(seconds)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(35)
    finally:
        peers.stop()
        moto.stop()
    return {"seconds": seconds, "poll_interval_s": interval, "exit_code": code, **measure(peers)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench push")
    parser.add_argument("--seconds", type=float, default=240.0, help="how long spd runs")
    parser.add_argument("--interval", type=int, default=30, help="the poller's interval, seconds")
    args = parser.parse_args(argv)
    print(orjson.dumps(run(args.seconds, args.interval)).decode())
    return 0
