"""At-least-once with the state in WAL mode, `synchronous=NORMAL`: a power loss may undo the last
checkpoints, which is harmless only because each checkpoint is written after the page it records
is durable downstream. Here a real file emitter and a real state database, fed by the simulator:
every checkpoint comes after the file emitter's fsync of its page."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from spd.app.runtime import Runtime
from spd.config.validate import load_config
from spd.emitters import file as file_emitter
from spd.sim import SimSettings, Simulator
from spd.state.store import StateStore
from support.config import write_config
from support.spd import iso

NOW = datetime.now(timezone.utc).replace(microsecond=0)


async def test_every_checkpoint_follows_the_fsync_of_its_page(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        events.append("fsync")

    real_save = StateStore.save_page

    async def save_page(self: StateStore, *args: Any, **kwargs: Any) -> None:
        events.append("checkpoint")
        await real_save(self, *args, **kwargs)

    monkeypatch.setattr(file_emitter.os, "fsync", fsync)
    monkeypatch.setattr(StateStore, "save_page", save_page)
    settings = SimSettings(orders=500, start=NOW - timedelta(days=2), end=NOW, rate_limit=False)
    async with Simulator(settings) as sim:
        poller = {"object": "ordersV0.getOrders", "start_time": iso(NOW - timedelta(days=3))}
        config = load_config(write_config(tmp_path, sim.url, {"p": poller}))
        store = StateStore(Path(config.state.path))
        await store.open()
        runtime = Runtime(config, store)
        await runtime.start()
        try:
            result = await runtime.pollers["p"].run()
        finally:
            await runtime.close()
            await store.close()
    assert result.pages >= 5 and events.count("checkpoint") == result.pages
    previous = "checkpoint"
    for event in events:  # fsync+ checkpoint, fsync+ checkpoint, ...
        assert not (event == "checkpoint" and previous == "checkpoint"), events
        previous = event
    lines = (tmp_path / "out" / "p.jsonl").read_bytes().count(b"\n")
    assert lines == result.objects
