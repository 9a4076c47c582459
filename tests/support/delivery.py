"""A delivery scene: a simulator whose orders stop being created at `end`, a config writer for
its emitters, the spd process and its state, for the end-to-end delivery tests and benchmarks."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from .config import write_config
from .kafka_broker import TansuBroker
from .spd import iso, run_spd, start_spd

DAY = timedelta(days=1)


SECRET = "whsec-e2e-0123456789"


OBJECT = "ordersV0.getOrders"


def normalize(ts: str) -> str:
    return iso(datetime.fromisoformat(ts.replace("Z", "+00:00")))


class Scene:
    """A simulator with no orders created after `end` (old ones still change), its ground truth
    and a config writer."""

    def __init__(self, sim_factory: Any, tmp_path: Path, orders: int, **settings: Any) -> None:
        self.now = datetime.now(timezone.utc).replace(microsecond=0)
        self.start, self.end = self.now - 2 * DAY, self.now - timedelta(minutes=10)
        self.sim = sim_factory(orders=orders, purchase_orders=0, start=self.start, end=self.end,
                               live=False, rate_limit=False, **settings)
        self.tmp = tmp_path
        self.config = tmp_path / "spd.yaml"
        self.log = tmp_path / "spd.log"

    def truth(self) -> set[tuple[str, str]]:
        """(id, updated time) of every version up to the watermark that is still current (orders
        keep changing after `end`): what must have reached each emitter."""
        objects = self.sim.get("/_sim/objects", type=OBJECT, field="updated", after=iso(self.start - DAY),
                               before=iso(self.watermark()))["objects"]
        return {(o["id"], normalize(o["version_time"])) for o in objects if o["superseded_at"] is None}

    def write(self, emitters: dict[str, dict[str, Any]], emit: str = "individually") -> Path:
        poller = {"object": OBJECT, "timestamp_field": "updated", "emit": emit, "interval": "1s",
                  "start_time": iso(self.start - DAY), "emitters": sorted(emitters)}
        specs = {name: orjson.dumps(spec).decode() for name, spec in emitters.items()}  # JSON is YAML
        return write_config(self.tmp, self.sim.url, {"orders": poller}, emitters=specs)

    def spd(self) -> subprocess.Popen:
        """`spd run` in the background, its log appended to spd.log (a pipe could fill and block it)."""
        with open(self.log, "ab") as log:
            return start_spd("run", "-c", str(self.config), stderr=log)

    def state(self) -> dict[str, Any]:
        """The poller's row in the state database ({} before spd created it); read-only."""
        path = self.tmp / "state.db"
        if not path.exists():
            return {}
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            try:
                row = db.execute("SELECT * FROM pollers WHERE poller = 'orders'").fetchone()
            except sqlite3.OperationalError:  # spd is creating the schema
                return {}
        return dict(row) if row else {}

    def watermark(self) -> datetime:
        mark = self.state().get("watermark")
        return datetime.fromisoformat(mark.replace("Z", "+00:00")) if mark else self.start - DAY

    def caught_up(self) -> bool:
        """The watermark passed the simulator's last created object: its pages were acknowledged."""
        return self.watermark() > self.end

    def status_line(self) -> str:
        """The last errors `spd status` shows (its JSON: the output is piped), one per poller."""
        result = run_spd("status", "-c", str(self.config), timeout=30)
        assert result.returncode == 0, result.stderr
        return "; ".join(f"{row['poller']}: last error: {row['last_error']}"
                         for row in json.loads(result.stdout) if row["last_error"])


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "secret": SECRET, "timeout": "2s",
            "max_retry_time": "1500ms", **extra}


def kafka(broker: TansuBroker) -> dict[str, Any]:
    return {"type": "kafka", "bootstrap_servers": [broker.bootstrap], "topic": "spd.{poller}",
            "request_timeout": "2s"}
