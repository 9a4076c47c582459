"""The daemon's outward views (spd.app.reporting) with many pollers: a run's end only marks them
out of date (the STATUS= line follows within STATUS_DELAY, once for many runs), and the live file
follows each poller's next run and outcome while reusing the rows that did not change. A real
NOTIFY_SOCKET, a real (paused) APScheduler and the real live file; the daemon around them is a
stand-in with just what the views read."""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from spd.app import reporting
from spd.app.live import live_path, read_live
from spd.app.reporting import Reports

POLLERS = [f"acct{a:03d}-t{t}" for a in range(200) for t in range(5)]


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(65536).decode())
        except BlockingIOError:
            return messages


def stand_in(tmp_path: Path, scheduler: AsyncIOScheduler | None = None) -> Any:
    """What the views read of a daemon running POLLERS."""
    config = SimpleNamespace(state_config=lambda: SimpleNamespace(path=str(tmp_path / "state.db")),
                             state_path=lambda: tmp_path / "state.db")
    runtime = SimpleNamespace(pollers={name: None for name in POLLERS}, jobs={})
    return SimpleNamespace(runtime=runtime, config=config, stopped=asyncio.Event(), inflight={},
                           scheduler=scheduler, reloading=False)


async def test_runs_ending_together_send_one_status_line_soon(
        tmp_path: Path, notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reporting, "STATUS_DELAY", 0.2)
    reports = Reports(stand_in(tmp_path))
    lines = 0
    real_line = reports.status_line

    def counted_line() -> str:
        nonlocal lines
        lines += 1
        return real_line()

    monkeypatch.setattr(reports, "status_line", counted_line)
    for name in POLLERS:  # a round of 1,000 runs ending at once, one of them failed
        if name == "acct007-t3":
            reports.board.failure(name, "boom", stalled=False)
        else:
            reports.board.succeeded(name)
        reports.run_ended()
    assert lines == 0 and received(notify_socket) == []  # nothing walked 1,000 pollers per run
    await asyncio.sleep(0.5)
    assert lines == 1
    sent = received(notify_socket)
    assert len(sent) == 1 and sent[0].startswith("STATUS=1000 pollers: 999 ok, 1 failing; last error ")
    await reports.stop()


async def test_the_live_file_follows_next_runs_and_outcomes(tmp_path: Path) -> None:
    scheduler = AsyncIOScheduler(timezone=timezone.utc)
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)

    async def nothing(name: str) -> None:
        return None

    for n, name in enumerate(POLLERS):
        scheduler.add_job(nothing, "interval", seconds=60, args=[name], id=name,
                          next_run_time=start + timedelta(seconds=n % 60, microseconds=n))
    scheduler.start(paused=True)
    daemon = stand_in(tmp_path, scheduler)
    reports = Reports(daemon)
    try:
        await reports.write_live()
        rows = read_live(live_path(tmp_path / "state.db"))
        assert rows is not None and len(rows) == len(POLLERS)
        assert rows["acct000-t1"].state == "idle" and rows["acct000-t1"].next_run == "2030-01-01T00:00:01Z"

        scheduler.modify_job("acct000-t1", next_run_time=start + timedelta(minutes=5))
        reports.board.failure("acct000-t2", "emitter refused", stalled=True)
        daemon.inflight = {object(): "acct000-t3"}
        reports.run_ended()
        assert reports.live_due()
        await reports.write_live()
        rows = read_live(live_path(tmp_path / "state.db"))
        assert rows is not None
        assert rows["acct000-t1"].next_run == "2030-01-01T00:05:00Z"
        assert rows["acct000-t2"].state == "stalled" and rows["acct000-t2"].reason == "emitter refused"
        assert rows["acct000-t3"].state == "running"

        reports.board.succeeded("acct000-t2")
        daemon.inflight = {}
        await reports.write_live()
        rows = read_live(live_path(tmp_path / "state.db"))
        assert rows is not None and rows["acct000-t2"].state == "idle" and rows["acct000-t3"].state == "idle"
        assert not reports.live_due()  # nothing changed, nothing in flight, just written
    finally:
        scheduler.shutdown(wait=False)
        await reports.stop()
