"""A runtime of real pollers in the test's own event loop, against a simulator, recording what
they emit; and the simulator's ground truth to compare it with."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from spd.app.runtime import Runtime
from spd.config.validate import load_config
from spd.state.store import StateStore
from .config import write_config
from .recording import RecordingEmitter
from .spd import iso


async def start_runtime(tmp_path: Path, url: str, pollers: dict[str, dict[str, Any]],
                        markets: tuple[str, ...] = ("ATVPDKIKX0DER",)) -> tuple[Runtime, RecordingEmitter]:
    """A started runtime whose pollers all send to one recorder."""
    config = load_config(write_config(tmp_path, url, pollers, markets=markets))
    recorder = RecordingEmitter("archive")
    store = StateStore(Path(config.state.path))
    await store.open()
    runtime = Runtime(config, store, emitter_factory=lambda name, cfg: recorder)
    await runtime.start()
    return runtime, recorder


async def stop_runtime(runtime: Runtime) -> None:
    await runtime.close()
    await runtime.store.close()


async def truth(url: str, name: str, field: str, after: datetime, before: datetime,
                market: str | None = None) -> list[dict[str, Any]]:
    """Ground truth rows (with data) still current, so that the API serves them."""
    query = {"type": name, "field": field, "after": iso(after), "before": iso(before), "data": "1"}
    if market:
        query["marketplace"] = market
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/_sim/objects", params=query) as resp:
            body = await resp.json()
    assert resp.status == 200, body
    return [o for o in body["objects"] if o["superseded_at"] is None]
