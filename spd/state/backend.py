"""The state interface: what every backend (SQLite today, PostgreSQL next) offers the pipeline.

One narrow async interface over every table spd keeps: poller watermarks and page checkpoints,
the report ledger (`StateBackend.ledger`), the rate-limit bucket levels and the daemon lock. A second backend implements these
two Protocols; the storage tests (tests/test_state_backends.py) run once per backend. The values
shared by every backend (the row types, how times are stored) live here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

from spd.core.errors import IdentityChangedError
from spd.core.typing import BucketLevel

MAX_ERROR_CHARS = 500


@dataclass
class PollerState:
    """One poller's saved position and counters; datetimes are aware UTC."""

    poller: str
    identity: str
    watermark: datetime
    window_start: datetime | None
    window_end: datetime | None
    next_token: str | None
    page: int
    objects_emitted: int
    pages_emitted: int
    runs: int
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    note: str | None


@dataclass
class Attempt:
    """The report requested for a window, and how its last try ended."""

    window_start: datetime
    report_id: str
    status: str  # PENDING | FATAL | CANCELLED
    failures: int
    retry_at: datetime | None


class ReportLedger(Protocol):
    """What report pollers remember beyond the watermark, per poller series (`series`).

    Attempts: the report requested for the window in progress (a restart waits for the same
    report) and its last FATAL/CANCELLED outcome with the cool-down. Done: the reports Amazon
    generated itself (settlements) that were emitted completely, each processed once."""

    async def attempt(self, series: str) -> Attempt | None:
        """The report requested for the series' window, or None."""

    async def requested(self, series: str, window_start: datetime, report_id: str) -> None:
        """Remembers the report requested for the window (failures of the same window are kept)."""

    async def failed(self, series: str, status: str, retry_at: datetime) -> int:
        """Records a FATAL/CANCELLED outcome; returns the failures of this window so far."""

    async def clear_attempt(self, series: str) -> None:
        """Forgets the series' attempt (its window is finished or restarted)."""

    async def done_ids(self, series: str, watermark: datetime) -> set[str]:
        """Reports already emitted; forgets those after `watermark` when it moved back (reset)."""

    async def done(self, series: str, report_id: str, created: datetime) -> None:
        """Records a report as emitted completely."""

    async def moved(self, series: str, watermark: datetime) -> None:
        """The watermark moved forward: entries before it can never be listed again."""


@runtime_checkable
class MetaStore(Protocol):
    """Text values by key beside the poller state (the subscriptions' counters `status` shows);
    a backend without it keeps them in memory only."""

    async def put_meta(self, key: str, value: str) -> None:
        """Stores one text value by key."""

    async def update_meta(self, key: str, change: Callable[[str | None], str]) -> None:
        """Replaces one value by `change(the value stored now, or None)` atomically: concurrent
        updates of the key (by other replicas too) wait for each other, none is lost."""

    async def meta_items(self, prefix: str) -> dict[str, str]:
        """Every value stored by `put_meta` whose key starts with `prefix`, by the rest of its key."""


class StateBackend(Protocol):
    """Poller state: watermarks, page checkpoints, counters, the report ledger, rate-limit
    bucket levels and the daemon lock. Writes return once durable. Failures are StateError (damaged: exit 78) or
    StateWriteError (cannot write now: exit 1), one line each."""

    @property
    def ledger(self) -> ReportLedger:
        """The report tables, on the same connection."""

    @property
    def where(self) -> str:
        """The state's location for messages (a path, or a URL without its password)."""

    async def open(self) -> None:
        """Creates or opens the state (migrating its schema), taking the daemon lock if asked."""

    async def close(self) -> None:
        """Closes the state and releases the daemon lock; safe to call twice."""

    async def __aenter__(self) -> StateBackend: ...

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None: ...

    def check_file(self) -> None:
        """StateError when the state's file was deleted or replaced since it was opened (`spd run`
        and `spd once` ask every few seconds, spd.app.state.StateFileWatch); a database server
        has no such file."""

    async def is_locked_by_daemon(self) -> bool:
        """True when a daemon (this store or another process) holds the state's lock."""

    async def get(self, poller: str) -> PollerState | None:
        """The saved state of `poller`, or None when it has none."""

    async def require(self, poller: str) -> PollerState:
        """The saved state of `poller`; StateError when it has none."""

    async def all(self) -> list[PollerState]:
        """Every poller's saved state, ordered by name."""

    async def pollers(self) -> list[str]:
        """The names of every poller with saved state, sorted."""

    async def ensure(self, poller: str, identity: str, start: datetime, *,
                     config_path: str | Path | None = None) -> PollerState:
        """The poller's state, created at `start` when new; IdentityChangedError on a mismatch."""

    async def save_page(self, poller: str, window_start: datetime, window_end: datetime | None,
                        next_token: str | None, page: int, count: int) -> None:
        """Checkpoints a delivered page: window, next token, page number; adds to counters."""

    async def finish_window(self, poller: str, new_watermark: datetime) -> None:
        """Moves the watermark to the finished window's end and clears the window in progress."""

    async def restart_window(self, poller: str) -> None:
        """Forgets the next token and page count (an expired token) but keeps the window."""

    async def record_run(self, poller: str, *, error: str | None) -> None:
        """Counts a run; an error is kept (one line, secrets redacted), a success clears it."""

    async def set_note(self, poller: str, note: str | None) -> None:
        """Sets (or clears) the note `status` shows, e.g. that start_time was clamped."""

    async def reset(self, poller: str, to: datetime, identity: str | None = None) -> None:
        """Moves the watermark to `to` and drops the window in progress; refused under a daemon."""

    async def delete(self, poller: str) -> bool:
        """Forgets a poller entirely; True when it had state."""

    async def forget(self, pollers: list[str]) -> int:
        """Deletes these rows in one transaction (`spd reset --forget-backfills`; backfills keep
        no report ledger); refused under a daemon, as reset; returns how many there were."""

    async def load_bucket_levels(self) -> list[BucketLevel]:
        """The rate-limit bucket levels last saved, one per (account, operation)."""

    async def save_bucket_levels(self, levels: list[BucketLevel]) -> None:
        """Replaces the saved level of each bucket named (the others stay); durable on return,
        so a restart after a crash starts no bucket fuller than Amazon's. Fenced by the
        account's lease where replicas share the state, as the pollers' checkpoints."""

    async def lease_holders(self) -> dict[str, str]:
        """Account -> the replica whose live lease runs its pollers (empty without replicas)."""


def to_iso(dt: datetime) -> str:
    """A fixed-width ISO 8601 UTC string with `Z` (sorts as text)."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: state timestamps must carry a time zone")
    # isoformat, not strftime: the same text in a third of the time, and a page saves three
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"


def from_iso(text: str | None) -> datetime | None:
    """Parses a stored timestamp back into an aware UTC datetime."""
    if text is None:
        return None
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Collapses whitespace to one line and truncates to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def check_identity(state: PollerState, identity: str, config_path: str | Path | None) -> None:
    """IdentityChangedError when the poller's saved identity is not the configured one."""
    if state.identity != identity:
        cfg = config_path if config_path is not None else "CONFIG"
        raise IdentityChangedError(
            f"poller {state.poller}: its account, object, timestamp_field or params changed since"
            f" its watermark was saved; run `spd reset -c {cfg} {state.poller}` to start it again"
        )
