"""`spd demo`: the daemon against the built-in simulator, printing objects for people.

Needs no credentials and no config: the simulator listens on a free loopback port, the
packaged demo.yaml points at it, and the state lives in a temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections import Counter
from datetime import datetime, timedelta, timezone
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import orjson

from spd.core.paths import dig
from spd.app.daemon import Daemon
from spd.core.logging import quiet_library_logs
from spd.emitters.base import Emitter, Message
from spd.sim import SimSettings, Simulator


class PrettyEmitter(Emitter):
    """Prints one readable line per object instead of JSON."""

    def __init__(self, name: str, counts: Counter[str], out: Any = None) -> None:
        self.name = name
        self.counts = counts
        self.out = out or sys.stdout

    async def start(self) -> None:
        return None

    async def send(self, messages: list[Message]) -> None:
        for message in messages:
            doc = orjson.loads(message.body)
            objects = doc["results"] if "results" in doc else [doc["data"]]
            for obj in objects:
                self.counts[doc["poller"]] += 1
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


def first(obj: dict[str, Any], *keys: str) -> Any:
    return next((obj[k] for k in keys if obj.get(k)), None)




async def demo(seconds: float | None) -> int:
    """Starts the simulator, runs the daemon on demo.yaml, prints a summary at the end."""
    counts: Counter[str] = Counter()
    async with Simulator(SimSettings()) as sim:
        with tempfile.TemporaryDirectory(prefix="spd-demo-") as state_dir, \
                as_file(files("spd._config") / "demo.yaml") as config_path:
            os.environ["SPD_SIM_URL"] = sim.url
            os.environ["SPD_STATE_DIR"] = state_dir
            start = datetime.now(timezone.utc) - timedelta(days=4)
            os.environ["SPD_DEMO_START"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
            print(f"spd demo: simulator at {sim.url}; polling (Ctrl-C to stop)", file=sys.stderr)
            daemon = Daemon(Path(config_path), emitter_factory=lambda name, cfg: PrettyEmitter(name, counts))
            await daemon.start()
            if seconds:
                asyncio.get_running_loop().call_later(seconds, daemon.request_stop)
            code = await daemon.wait()
    print_summary(counts)
    return code


def print_summary(counts: Counter[str]) -> None:
    total = sum(counts.values())
    per = ", ".join(f"{name}: {n}" for name, n in sorted(counts.items())) or "nothing"
    print(f"\nspd demo: {total} objects emitted ({per})", file=sys.stderr)


def run_demo(seconds: float | None = None) -> int:
    """`spd demo [--seconds N]`."""
    quiet_library_logs()
    return asyncio.run(demo(seconds))
