"""What a running daemon tells the outside about its pollers: systemd's STATUS= line and
watchdog, the live file `spd status` reads (spd.app.live) and /readyz's answer.

All of it is a view of every poller at once, so none of it is rebuilt when one run ends: with
10,000 pollers, a view per run is 10,000 x 10,000 steps a round and keeps the event loop busy
enough to make every run late. A run's end only marks the views out of date; the live file is
rewritten on its own period, and the STATUS= line at most once per `STATUS_DELAY`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from spd.app import systemd
from spd.app.health import STALL_INTERVALS, Liveness
from spd.app.live import (WRITE_INTERVAL, PollerNow, live_document, live_path, poller_now, second,
                          write_live)
from spd.core.redaction import redact

if TYPE_CHECKING:
    from spd.app.daemon import Daemon

log = structlog.get_logger("spd.app.reporting")

STATUS_INTERVAL = 5.0  # seconds between checks whether systemd's STATUS= line needs an update
STATUS_DELAY = 1.0  # a run's outcome reaches STATUS= within this long (runs ending meanwhile share it)
LIVE_REFRESH = 5.0  # the live file is rewritten at least this often (`spd status` trusts it 15 s)
LIVE_SHARE = 0.01  # the live file's writes hold the event loop at most this share of the time,
# between WRITE_INTERVAL and LIVE_REFRESH apart (with 10,000 pollers one write takes tens of ms)


class Reports:
    """The daemon's outward views of its pollers; `start()` begins the periodic ones, `stop()` ends them."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.board = systemd.StatusBoard()
        self.liveness = Liveness()  # /readyz: which pollers make no progress
        self._status_sent = ""
        self._status_due: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._live_changed = True  # a run ended since the live file was written
        self._live_written = 0.0  # monotonic time of the last write
        self._live_cost = 0.0  # seconds the last write held the event loop (wall: a busy machine counts)
        self._live_write: asyncio.Task[None] | None = None  # the file being written in a thread
        self._next_texts: dict[str, tuple[datetime, str]] = {}  # job -> its next run, and as text
        self._idle_rows: dict[str, PollerNow] = {}  # poller between runs -> its row as last written

    def start(self) -> None:
        """Begins the watchdog (when systemd asks for one), the live file and the status line."""
        interval = systemd.watchdog_interval()
        if interval:
            self._tasks.append(asyncio.ensure_future(self._keepalive(interval)))
        self._tasks.append(asyncio.ensure_future(self._write_live_loop()))
        if systemd.under_systemd():
            self._tasks.append(asyncio.ensure_future(self._refresh_status()))

    async def stop(self) -> None:
        """Ends the periodic reports (at shutdown); a live file being written is finished first,
        so none appears after the daemon removed it."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        if self._status_due is not None:
            self._status_due.cancel()
            self._status_due = None
        if self._live_write is not None:
            await asyncio.wait([self._live_write])
            if not self._live_write.cancelled():
                self._live_write.exception()  # its loop, cancelled above, no longer looks at it

    def run_ended(self) -> None:
        """A run's outcome is in the board: the views catch up soon, not now."""
        self._live_changed = True
        if self._status_due is None and systemd.under_systemd():
            self._status_due = asyncio.get_running_loop().call_later(STATUS_DELAY, self._status_now)

    def _status_now(self) -> None:
        self._status_due = None
        self.report_status()

    def readiness(self) -> dict[str, Any]:
        """/readyz's answer: `{"status": "ready"}`, or "not ready" with the reason and, per
        stalled poller, how long it has made no progress (quota waits not counted)."""
        if self.daemon.stopped.is_set():
            return {"status": "not ready", "reason": "stopping"}
        runtime = self.daemon.runtime
        if runtime is None:
            return {"status": "not ready", "reason": "starting or reloading"}
        stalled = {
            name: {"seconds": round(seconds, 1), "interval_seconds": interval,
                   "last_error": redact(runtime.pollers[name].failure or "") or None}
            for name, (seconds, interval) in self.liveness.stalled().items() if name in runtime.pollers
        }
        if not stalled:
            return {"status": "ready"}
        return {"status": "not ready", "stalled": stalled,
                "reason": f"no progress for more than {STALL_INTERVALS} intervals: " + ", ".join(sorted(stalled))}

    def status_line(self) -> str:
        """The one-line summary systemd shows: pollers ok / waiting for quota / stalled, last error."""
        runtime = self.daemon.runtime
        if runtime is None:
            return "starting"
        return self.board.line(list(runtime.pollers), list(runtime.jobs), self.waiting_for_quota())

    def waiting_for_quota(self) -> set[str]:
        """Pollers in flight with a request waiting for quota, of any operation (their run's
        quota clock, spd.client.observe)."""
        waiting = set()
        for key in self.daemon.inflight.values():
            clock = self.liveness.quota_clock(key)
            if clock is not None and clock.waiting:
                waiting.add(key)
        return waiting

    def notify_ready(self) -> None:
        """READY=1 with the current status line (at startup and after each reload)."""
        self._status_sent = self.status_line()
        systemd.notify(f"READY=1\nSTATUS={self._status_sent}")

    def report_status(self) -> None:
        """Sends STATUS= when the line changed (and only under systemd)."""
        daemon = self.daemon
        if not systemd.under_systemd() or daemon.stopped.is_set() or daemon.reloading:
            return
        line = self.status_line()
        if line != self._status_sent:
            self._status_sent = line
            systemd.notify(f"STATUS={line}")

    async def write_live(self) -> None:
        """Each poller's state and next run for `spd status` (spd.app.live); a write that fails
        (a full disk) costs only that. The file (1 MB for 10,000 pollers) is written in a thread:
        tens of ms on a busy disk would make the runs due meanwhile late."""
        daemon = self.daemon
        runtime, config = daemon.runtime, daemon.config
        if runtime is None or config is None or daemon.stopped.is_set() or not config.state_config().path:
            return  # (replicas on PostgreSQL have no state file to write it beside)
        began = self._live_written = time.monotonic()
        self._live_changed = False
        running = set(daemon.inflight.values())
        next_runs = self.next_runs()
        pollers = {name: self._row(name, name in running, next_runs.get(name)) for name in runtime.pollers}
        if len(self._idle_rows) > len(pollers):  # pollers a reload removed
            self._idle_rows = {name: row for name, row in self._idle_rows.items() if name in pollers}
        document = live_document(pollers)
        self._live_cost = time.monotonic() - began
        write = self._live_write = asyncio.ensure_future(
            asyncio.to_thread(write_live, live_path(config.state_path()), document))
        try:
            await asyncio.shield(write)  # a stop meanwhile waits for it in stop()
        except OSError as exc:
            log.debug("live_status_not_written", error=str(exc))

    def _row(self, name: str, running: bool, nxt: str | None) -> PollerNow:
        """Poller `name`'s row; between runs the same as last time unless its next run or its
        outcome changed (most rows of 10,000 pollers, every write)."""
        reason = self.board.reasons.get(name)
        if not running:
            row = self._idle_rows.get(name)
            if row is not None and row.next_run == nxt and row.reason == reason:
                return row
        row = poller_now(name, running, self.board, self.liveness, nxt, reason)
        if not running:
            self._idle_rows[name] = row
        return row

    def next_runs(self) -> dict[str, str]:
        """When the scheduler runs each of its jobs next, to the second: one pass over the jobs,
        and a time formatted again only when it moved (most did not since the last write)."""
        scheduler = self.daemon.scheduler
        if scheduler is None:
            return {}
        known, texts = self._next_texts, {}
        for job in scheduler.get_jobs():
            when = job.next_run_time
            if when is None:
                continue
            cached = known.get(job.id)
            if cached is None or cached[0] != when:
                cached = known[job.id] = (when, second(when))
            texts[job.id] = cached[1]
        for gone in known.keys() - texts.keys():
            del known[gone]
        return texts

    def live_due(self) -> bool:
        """Whether the live file is out of date: a run ended, runs are in flight (their quota
        waits change without an event), or it is about to look stale to `spd status`."""
        return (self._live_changed or bool(self.daemon.inflight)
                or time.monotonic() - self._live_written >= LIVE_REFRESH)

    async def _write_live_loop(self) -> None:
        while True:
            if self.live_due():
                await self.write_live()
            await asyncio.sleep(min(LIVE_REFRESH, max(WRITE_INTERVAL, self._live_cost / LIVE_SHARE)))

    async def _refresh_status(self) -> None:
        # Waiting for quota starts and ends between runs' outcomes: look every few seconds.
        while True:
            await asyncio.sleep(STATUS_INTERVAL)
            self.report_status()

    async def _keepalive(self, interval: float) -> None:
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)

