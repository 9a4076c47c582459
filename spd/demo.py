"""`spd demo`: the daemon against the built-in simulator, narrated for people.

Needs no credentials and no config: the simulator listens on a free loopback port, the
packaged demo.yaml points at it, and the state lives in a temporary directory. The simulator
keeps creating and updating orders and purchase orders while the demo runs, so after the
catch-up new objects arrive every few seconds. Objects go to stdout, one line each; the
header, the "caught up" line and the closing summary go to stderr.

`--push` adds push beside poll: moto's SQS server on loopback (`pip install 'moto[server]'`)
stands in for Amazon SQS, the simulator publishes ORDER_CHANGE into its queue as Amazon's
Notifications API would, the subscription is set up as `spd subscribe` does, and the pushed
notifications print (as `push:order-changes`) seconds after each change, minutes before the
poller sees it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any, TextIO

import orjson

from spd.core.paths import dig
from spd.core.times import format_ts
from spd.app.daemon import Daemon
from spd.app.subscribe import subscribe
from spd.core.errors import UsageError
from spd.config.model import Config
from spd.config.validate import load_config
from spd.core.logging import quiet_library_logs
from spd.emitters.base import Emitter, Message
from spd.pipeline.types import RunResult
from spd.sim import SimSettings, Simulator

# The simulated seller: two hours of history at an order every 3 s and a purchase order every
# 5 s (with bursts), going on live at the same pace; the demo catches up from CATCH_UP ago.
HISTORY = timedelta(hours=2)
ORDERS = 2400
PURCHASE_ORDERS = 1440
CATCH_UP = timedelta(minutes=15)


@dataclass
class Narrator:
    """What the demo tells a person: a header, when the pollers caught up, and a summary;
    counts every object as catch-up or new."""

    pollers: list[str]
    err: TextIO = field(default_factory=lambda: sys.stderr)
    started: float = field(default_factory=time.monotonic)
    counts: Counter[str] = field(default_factory=Counter)
    new: Counter[str] = field(default_factory=Counter)
    behind: set[str] = field(default_factory=set)
    caught_up_after: float | None = None

    def __post_init__(self) -> None:
        self.behind = set(self.pollers)

    def header(self, sim_url: str, config: Config) -> None:
        say = self.say
        say(f"spd demo: the daemon polling a built-in SP-API simulator at {sim_url}")
        say("  (fake credentials; nothing leaves this machine; Ctrl-C stops it)")
        for name, poller in config.pollers.items():
            every = poller.interval.total_seconds()
            say(f"  {name:<14} {poller.object_type.name} every {every:g} s, by {poller.timestamp_field} time")
        for name, sub in config.subscriptions.items():
            say(f"  push:{name:<9} {', '.join(sub.notification_types)} from SQS (moto on loopback), "
                f"reconciled by {sub.reconcile_with}")
        minutes = int(CATCH_UP.total_seconds() // 60)
        say(f"catching up from {minutes} minutes ago; one line per object on stdout")

    def emitted(self, poller: str) -> None:
        self.counts[poller] += 1
        if self.caught_up_after is not None:
            self.new[poller] += 1

    def polled(self, name: str, result: RunResult) -> None:
        """A poller run completed: the first time every poller is caught up, says so."""
        if result.caught_up:
            self.behind.discard(name)
        if not self.behind and self.caught_up_after is None:
            self.caught_up_after = time.monotonic() - self.started
            total = sum(self.counts.values())
            self.say(f"caught up in {self.caught_up_after:.1f} s ({total} objects), waiting for "
                     "changes: new objects print as they arrive (orders show up 2 minutes "
                     "after they change, Amazon's lag)")

    def summary(self) -> None:
        total = sum(self.counts.values())
        per = ", ".join(f"{name}: {n}" for name, n in sorted(self.counts.items())) or "nothing"
        seconds = time.monotonic() - self.started
        if self.caught_up_after is None:
            how = "stopped before the catch-up finished"
        else:
            how = (f"{total - sum(self.new.values())} in the catch-up, {sum(self.new.values())} new "
                   f"while it ran")
        self.say(f"\nspd demo: {total} objects emitted ({per}) in {seconds:.0f} s: {how}")

    def say(self, line: str) -> None:
        print(line, file=self.err, flush=True)


class PrettyEmitter(Emitter):
    """Prints one readable line per object instead of JSON."""

    def __init__(self, name: str, narrator: Narrator, out: Any = None) -> None:
        self.name = name
        self.narrator = narrator
        self.out = out or sys.stdout

    async def start(self) -> None:
        return None

    async def send(self, messages: list[Message]) -> None:
        for message in messages:
            doc = orjson.loads(message.body)
            if "subscription" in doc:  # a pushed notification
                self.narrator.emitted(f"push:{doc['subscription']}")
                print(describe_notification(doc), file=self.out)
                continue
            objects = doc["results"] if "results" in doc else [doc["data"]]
            for obj in objects:
                self.narrator.emitted(doc["poller"])
                print(describe_object(doc, obj), file=self.out)
        self.out.flush()

    async def flush(self) -> None:
        self.out.flush()

    async def close(self) -> None:
        return None

    def reopen(self) -> None:
        return None


def describe_object(doc: dict[str, Any], obj: dict[str, Any]) -> str:
    """`poller  id  status  amount  time` from whichever fields the object has."""
    oid = doc.get("id") or first(obj, "AmazonOrderId", "orderId", "purchaseOrderNumber") or "?"
    status = first(obj, "OrderStatus", "purchaseOrderState") or dig(obj, "fulfillment.fulfillmentStatus") or ""
    total = obj.get("OrderTotal") or dig(obj, "proceeds.grandTotal") or {}
    currency = total.get("CurrencyCode") or total.get("currencyCode") or ""
    amount = f"{currency} {total.get('Amount') or total.get('amount') or ''}".strip()
    when = doc.get("cursor") or first(obj, "LastUpdateDate", "lastUpdatedTime") \
        or dig(obj, "orderDetails.purchaseOrderDate") or ""
    return f"{doc['poller']:<16} {oid:<22} {status:<18} {amount:<14} {when}"


def describe_notification(doc: dict[str, Any]) -> str:
    """`push:NAME  order id  status  type  event time` of a pushed notification."""
    data = doc["data"] if isinstance(doc["data"], dict) else {}
    change = data.get("OrderChangeNotification") or {}
    oid = change.get("AmazonOrderId") or doc.get("notification_id") or "?"
    status = (change.get("Summary") or {}).get("OrderStatus") or ""
    return f"{'push:' + doc['subscription']:<16} {oid:<22} {status:<18} {doc['notification_type']:<14} {doc['event_time']}"


def first(obj: dict[str, Any], *keys: str) -> Any:
    return next((obj[k] for k in keys if obj.get(k)), None)


def demo_settings(now: datetime) -> SimSettings:
    """The simulated seller (see HISTORY): busy enough that something changes every few seconds."""
    return SimSettings(orders=ORDERS, purchase_orders=PURCHASE_ORDERS, start=now - HISTORY, end=now)


async def demo(seconds: float | None, push: bool = False) -> int:
    """Starts the simulator, runs the daemon on demo.yaml, narrates, summarizes at the end."""
    now = datetime.now(timezone.utc)
    sqs = SqsPeer.start() if push else None
    try:
        return await _demo(now, seconds, sqs)
    finally:
        if sqs is not None:
            sqs.stop()


async def _demo(now: datetime, seconds: float | None, sqs: SqsPeer | None) -> int:
    settings = demo_settings(now)
    if sqs is not None:
        settings = dataclasses.replace(settings, sqs_endpoint=sqs.url, sqs_keys=SQS_KEYS)
    async with Simulator(settings) as sim:
        with tempfile.TemporaryDirectory(prefix="spd-demo-") as state_dir, \
                as_file(files("spd._config") / "demo.yaml") as packaged:
            os.environ["SPD_SIM_URL"] = sim.url
            os.environ["SPD_STATE_DIR"] = state_dir
            os.environ["SPD_DEMO_START"] = format_ts((now - CATCH_UP).replace(microsecond=0))
            config_path = Path(packaged)
            if sqs is not None:
                config_path = await with_subscription(config_path, Path(state_dir), sqs)
            config = load_config(config_path)  # the daemon loads it again; here: to name the pollers
            narrator = Narrator(list(config.pollers))
            daemon = Daemon(Path(config_path), on_poll=narrator.polled,
                            emitter_factory=lambda name, _: PrettyEmitter(name, narrator))
            narrator.header(sim.url, config)
            await daemon.start()
            if seconds:
                asyncio.get_running_loop().call_later(seconds, daemon.request_stop)
            code = await daemon.wait()
    narrator.summary()
    return code


SQS_KEYS = ("demo-key-id", "demo-secret", "us-east-1")


@dataclass
class SqsPeer:
    """moto's SQS server on loopback with one queue: the demo's stand-in for Amazon SQS."""

    server: Any
    url: str
    queue_url: str

    @classmethod
    def start(cls) -> SqsPeer:
        try:
            import boto3
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise UsageError("spd demo --push runs moto's SQS server on loopback: "
                             "pip install 'moto[server]'") from None
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        sqs = boto3.client("sqs", endpoint_url=url, region_name=SQS_KEYS[2],
                           aws_access_key_id=SQS_KEYS[0], aws_secret_access_key=SQS_KEYS[1])
        return cls(server, url, sqs.create_queue(QueueName="spd-demo")["QueueUrl"])

    def stop(self) -> None:
        self.server.stop()


async def with_subscription(packaged: Path, folder: Path, sqs: SqsPeer) -> Path:
    """demo.yaml plus an ORDER_CHANGE subscription on the demo queue, reconciled by the orders
    poller, set up in the simulator's Notifications API as `spd subscribe` does."""
    keys = f"{{access_key_id: {SQS_KEYS[0]}, secret_access_key: {SQS_KEYS[1]}, region: {SQS_KEYS[2]}}}"
    lines = ["", "subscriptions:", "  order-changes:", f"    queue_url: {sqs.queue_url}",
             f"    endpoint_url: {sqs.url}", f"    aws: {keys}", "    notification_types: [ORDER_CHANGE]",
             "    reconcile_with: orders", "    emitters: [out]", ""]
    path = folder / "demo-push.yaml"
    path.write_text(packaged.read_text() + "\n".join(lines))
    await subscribe(load_config(path), "order-changes")
    return path


def run_demo(seconds: float | None = None, push: bool = False) -> int:
    """`spd demo [--seconds N] [--push]`."""
    quiet_library_logs()
    return asyncio.run(demo(seconds, push))
