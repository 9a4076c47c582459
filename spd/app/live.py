"""What a running daemon is doing now, for `spd status`: per poller its state (running, waiting
for quota until T, stalled: reason, idle) and its next run.

The daemon writes it every few seconds to a small JSON file beside the state database
(`state.db.live.json`, mode 0600, replaced atomically); `spd status` reads it when it is fresh
and otherwise says the pollers are idle (no daemon runs them).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from spd.app.health import Liveness
from spd.app.systemd import StatusBoard
from spd.core.times import format_ts, parse_ts, utcnow

WRITE_INTERVAL = 2.0  # seconds between the daemon's writes (longer when a write costs more than 1 %)
FRESH_FOR = timedelta(seconds=15)  # an older file is a daemon that no longer runs
STATE_REASON_CHARS = 80  # the last error column shows all of it


@dataclass(frozen=True)
class PollerNow:
    """One poller's state as the daemon sees it."""

    state: str  # "running", "waiting for quota", "stalled", "idle"
    until: str | None = None  # waiting for quota: when the token comes
    quota: str | None = None  # waiting for quota: `waiting 58 s for ordersV0.getOrders quota, 0.0167/s`
    reason: str | None = None  # stalled: why
    next_run: str | None = None

    def describe(self) -> str:
        """`waiting for quota until 2026-11-30T12:00:58Z`, `stalled: reason`, `running`, `idle`."""
        if self.state == "waiting for quota" and self.until:
            return f"waiting for quota until {self.until}"
        if self.state == "stalled" and self.reason:
            reason = self.reason if len(self.reason) <= STATE_REASON_CHARS else self.reason[:STATE_REASON_CHARS - 1] + "…"
            return f"stalled: {reason}"
        return self.state


def live_path(state_path: Path) -> Path:
    """The live file beside the state database."""
    return state_path.with_name(state_path.name + ".live.json")


def poller_now(name: str, running: bool, board: StatusBoard, liveness: Liveness,
               nxt: str | None, error: str | None) -> PollerNow:
    """The state of poller `name` (`nxt`: its next run, `second()`): a run in flight waits for
    quota or runs; between runs it is stalled (its last run failed) or idle."""
    if running:
        clock = liveness.quota_clock(name)
        waits = clock.waits() if clock is not None and clock.waiting else []
        if waits:
            now = utcnow()
            return PollerNow("waiting for quota", second(now + timedelta(seconds=waits[0].seconds)),
                             waits[0].describe(), next_run=nxt)
        return PollerNow("running", next_run=nxt)
    if name in board.failed:
        return PollerNow("stalled", reason=error or "the last run failed", next_run=nxt)
    return PollerNow("idle", next_run=nxt)


def live_document(pollers: dict[str, PollerNow]) -> bytes:
    """The live file's content, written now."""
    # orjson writes the dataclasses itself, several times faster than asdict (10,000 pollers)
    return orjson.dumps({"written_at": format_ts(utcnow()), "pid": os.getpid(), "pollers": pollers})


def write_live(path: Path, document: bytes) -> None:
    """Replaces the live file at once (a reader never sees half of it)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(document)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_live(path: Path) -> dict[str, PollerNow] | None:
    """The daemon's view of its pollers, or None when no daemon wrote it lately."""
    try:
        data: Any = orjson.loads(path.read_bytes())
        written = parse_ts(data["written_at"])
        pollers = {name: PollerNow(**now) for name, now in data["pollers"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pollers if utcnow() - written <= FRESH_FOR else None


def second(value: datetime) -> str:
    """A time as the live file gives it: to the second."""
    return format_ts(value.replace(microsecond=0))
