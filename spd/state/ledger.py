"""What report pollers remember beyond the watermark, in three tables of the SQLite state database.

- `report_attempts`: per poller series, the report requested for the window in progress (so a
  restart waits for the same report instead of requesting another) and the last FATAL or
  CANCELLED outcome with the time the window may be retried (the cool-down).
- `report_done`: per poller series, the reports Amazon generated itself (settlements) that were
  emitted completely; each is processed once. Entries older than the watermark are pruned; a
  watermark moved back (`spd reset`) forgets the entries after it, so those are emitted again.
- `report_marks`: the watermark the pruning last saw, to notice it moving back.

The ledger uses the state store's connection (and its one-line errors): `StateStore.ledger`;
each write is one transaction of the store's (`Transaction`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol, TypeVar

from spd.state.backend import Attempt, from_iso, to_iso

LEDGER_TABLES = (
    "CREATE TABLE IF NOT EXISTS report_attempts (series TEXT PRIMARY KEY, window_start TEXT NOT NULL,"
    " report_id TEXT NOT NULL, status TEXT NOT NULL, failures INTEGER NOT NULL DEFAULT 0,"
    " retry_at TEXT)",
    "CREATE TABLE IF NOT EXISTS report_done (series TEXT NOT NULL, report_id TEXT NOT NULL,"
    " created TEXT NOT NULL, PRIMARY KEY (series, report_id))",
    "CREATE TABLE IF NOT EXISTS report_marks (series TEXT PRIMARY KEY, watermark TEXT NOT NULL)",
)

T = TypeVar("T")

Connection = Callable[[], AbstractContextManager[sqlite3.Connection]]
"""The store's connection for reads: `with sql() as db` holds it under the store's mutex."""


class Transaction(Protocol):
    """The store's writes: runs `work` (statements, no await) in one transaction, waiting without
    blocking the loop while another connection holds the lock (spd.state.sqlite)."""

    def __call__(self, work: Callable[[sqlite3.Connection], T]) -> Awaitable[T]: ...


class SqliteLedger:
    """The report tables, over the store's connection (`sql()` yields it under its mutex) and
    its write transactions."""

    def __init__(self, sql: Connection, transaction: Transaction) -> None:
        self._db = sql
        self._write = transaction

    async def attempt(self, series: str) -> Attempt | None:
        """The report requested for the series' window, or None."""
        with self._db() as db:
            row = db.execute("SELECT window_start, report_id, status, failures, retry_at FROM"
                             " report_attempts WHERE series=?", (series,)).fetchone()
        if row is None:
            return None
        return Attempt(from_iso(row[0]), row[1], row[2], row[3], from_iso(row[4]))  # type: ignore[arg-type]

    async def requested(self, series: str, window_start: datetime, report_id: str) -> None:
        """Remembers the report requested for the window (failures so far are kept)."""
        await self._write(lambda db: db.execute(
            "INSERT INTO report_attempts (series, window_start, report_id, status) VALUES"
            " (?, ?, ?, 'PENDING') ON CONFLICT(series) DO UPDATE SET report_id=excluded.report_id,"
            " status='PENDING', failures=CASE WHEN window_start=excluded.window_start"
            " THEN failures ELSE 0 END, window_start=excluded.window_start, retry_at=NULL",
            (series, to_iso(window_start), report_id)))

    async def failed(self, series: str, status: str, retry_at: datetime) -> int:
        """Records a FATAL/CANCELLED outcome; returns the failures of this window so far."""
        def count(db: sqlite3.Connection) -> int:
            db.execute("UPDATE report_attempts SET status=?, failures=failures+1, retry_at=?"
                       " WHERE series=?", (status, to_iso(retry_at), series))
            row = db.execute("SELECT failures FROM report_attempts WHERE series=?",
                             (series,)).fetchone()
            return int(row[0]) if row else 1

        return await self._write(count)

    async def clear_attempt(self, series: str) -> None:
        """Forgets the series' attempt."""
        await self._write(lambda db: db.execute("DELETE FROM report_attempts WHERE series=?",
                                                (series,)))

    async def done_ids(self, series: str, watermark: datetime) -> set[str]:
        """Reports already emitted; forgets those after `watermark` when it moved back (reset)."""
        with self._db() as db:
            mark = db.execute("SELECT watermark FROM report_marks WHERE series=?",
                              (series,)).fetchone()
        if mark is not None and to_iso(watermark) < mark[0]:
            await self._write(lambda db: self._forget_after(db, series, watermark))
        with self._db() as db:
            rows = db.execute("SELECT report_id FROM report_done WHERE series=?", (series,))
            return {r[0] for r in rows}

    @staticmethod
    def _forget_after(db: sqlite3.Connection, series: str, watermark: datetime) -> None:
        """The watermark moved back to `watermark`: the reports after it are emitted again."""
        db.execute("DELETE FROM report_done WHERE series=? AND created>=?",
                   (series, to_iso(watermark)))
        db.execute("UPDATE report_marks SET watermark=? WHERE series=?", (to_iso(watermark), series))

    async def done(self, series: str, report_id: str, created: datetime) -> None:
        """Records a report as emitted completely."""
        await self._write(lambda db: db.execute(
            "INSERT OR IGNORE INTO report_done (series, report_id, created) VALUES (?, ?, ?)",
            (series, report_id, to_iso(created))))

    async def moved(self, series: str, watermark: datetime) -> None:
        """The watermark moved forward: entries before it can never be listed again."""
        def prune(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM report_done WHERE series=? AND created<?",
                       (series, to_iso(watermark)))
            db.execute("INSERT INTO report_marks (series, watermark) VALUES (?, ?) ON CONFLICT"
                       "(series) DO UPDATE SET watermark=excluded.watermark",
                       (series, to_iso(watermark)))

        await self._write(prune)
