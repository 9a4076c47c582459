"""Poller state: watermarks, windows in progress and counters in the SQLite state database.

`StateStore` is the SQLite `StateBackend`: the reads and writes of the `pollers` and `meta`
tables here, the report ledger (spd.state.ledger) and the bucket levels (spd.state.buckets) on
the same connection. Every write is one `_transaction` (a lock held by another connection is
waited for without stalling the loop). Opening the file, its schema, the one-line errors and the
WAL checkpoints (why a commit runs on the loop without an fsync, and why at-least-once still
holds) are in spd.state.sqlite.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from spd.core.errors import StateError, StateFullError
from spd.core.redaction import redact
from spd.core.typing import BucketLevel
from spd.state.backend import PollerState, check_identity, from_iso, one_line, to_iso
from spd.state.buckets import SqliteBuckets
from spd.state.ledger import SqliteLedger
from spd.state.sqlite import POLLER_COLUMNS, SCHEMA_VERSION, SqliteDatabase

__all__ = ["SCHEMA_VERSION", "StateStore"]


def _now() -> str:
    return to_iso(datetime.now(timezone.utc))


def _row_to_state(row: tuple[Any, ...]) -> PollerState:
    """A row as a PollerState; ValueError/TypeError when a value is not what spd wrote."""
    if not isinstance(row[2], str):
        raise ValueError(f"watermark {row[2]!r}")
    return PollerState(
        poller=str(row[0]), identity=str(row[1]), watermark=from_iso(row[2]),  # type: ignore[arg-type]
        window_start=from_iso(row[3]), window_end=from_iso(row[4]), next_token=row[5],
        page=int(row[6]), objects_emitted=int(row[7]), pages_emitted=int(row[8]), runs=int(row[9]),
        last_run_at=from_iso(row[10]), last_success_at=from_iso(row[11]),
        last_error=row[12], note=row[13],
    )


class StateStore(SqliteDatabase):
    """The state database; `daemon=True` also takes the daemon's exclusive lock, `readonly=True`
    only reads (and never creates or migrates the file)."""

    def __init__(self, path: Path | str, *, daemon: bool = False, readonly: bool = False) -> None:
        super().__init__(path, daemon=daemon, readonly=readonly)
        self.ledger = SqliteLedger(self._sql, self._transaction)
        self.buckets = SqliteBuckets(self._sql, self._transaction)

    async def __aenter__(self) -> StateStore:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def _state(self, row: tuple[Any, ...]) -> PollerState:
        try:
            return _row_to_state(row)
        except (TypeError, ValueError) as exc:
            raise self._damaged(f"poller {row[0]} has an unreadable value: {exc}; "
                                f"`spd reset -c CONFIG {row[0]}` rewrites its watermark") from None

    def _get(self, poller: str) -> PollerState | None:
        with self._sql() as db:
            row = db.execute(f"SELECT {POLLER_COLUMNS} FROM pollers WHERE poller = ?", (poller,)).fetchone()
        return self._state(row) if row else None

    async def get(self, poller: str) -> PollerState | None:
        """The saved state of `poller`, or None when it has none."""
        return self._get(poller)

    async def require(self, poller: str) -> PollerState:
        """The saved state of `poller`; StateError when it has none."""
        state = self._get(poller)
        if state is None:
            raise self._missing(poller)
        return state

    def _missing(self, poller: str) -> StateError:
        return StateError(f"state {self.path}: poller {poller} has no saved state")

    async def all(self) -> list[PollerState]:
        """Every poller's saved state, ordered by name."""
        with self._sql() as db:
            rows = db.execute(f"SELECT {POLLER_COLUMNS} FROM pollers ORDER BY poller").fetchall()
        return [self._state(r) for r in rows]

    async def pollers(self) -> list[str]:
        """The names of every poller with saved state, sorted."""
        with self._sql() as db:
            rows = db.execute("SELECT poller FROM pollers ORDER BY poller").fetchall()
        return [r[0] for r in rows]

    async def put_meta(self, key: str, value: str) -> None:
        """Stores one value of the key-value `meta` table (subscription counters, for status)."""
        await self._transaction(lambda db: db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value)))

    async def update_meta(self, key: str, change: Callable[[str | None], str]) -> None:
        """Replaces one `meta` value by what `change` makes of it, in one write transaction."""
        def update(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                       (key, change(row[0] if row else None)))

        await self._transaction(update)

    async def meta_items(self, prefix: str) -> dict[str, str]:
        """Every `meta` value whose key starts with `prefix`, by the rest of its key."""
        with self._sql() as db:
            rows = db.execute("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?",
                              (len(prefix), prefix)).fetchall()
        return {k[len(prefix):]: v for k, v in rows}

    async def _write(self, sql: str, args: tuple[Any, ...], poller: str) -> None:
        """Runs one UPDATE in its own transaction (on the loop: see the module docstring); the
        poller must exist."""
        def update(db: sqlite3.Connection) -> None:
            if db.execute(sql, args).rowcount == 0:
                raise self._missing(poller)  # rolled back: nothing was written

        await self._transaction(update)

    @staticmethod
    def _insert_new(db: sqlite3.Connection, poller: str, identity: str, start: datetime) -> None:
        """Creates the poller's row at `start`, unless it has one."""
        db.execute(
            "INSERT OR IGNORE INTO pollers (poller, identity, watermark, updated_at)"
            " VALUES (?, ?, ?, ?)",
            (poller, identity, to_iso(start), _now()),
        )

    async def ensure(
        self, poller: str, identity: str, start: datetime, *, config_path: str | Path | None = None
    ) -> PollerState:
        """The poller's state, created at `start` when new; IdentityChangedError on a mismatch."""
        await self._transaction(lambda db: self._insert_new(db, poller, identity, start))
        state = await self.require(poller)
        check_identity(state, identity, config_path)
        return state

    async def save_page(
        self, poller: str, window_start: datetime, window_end: datetime | None,
        next_token: str | None, page: int, count: int,
    ) -> None:
        """Checkpoints a delivered page: window, next token, page number; adds to counters."""
        end = to_iso(window_end) if window_end is not None else None
        await self._write(
            "UPDATE pollers SET window_start=?, window_end=?, next_token=?, page=?,"
            " objects_emitted=objects_emitted+?, pages_emitted=pages_emitted+1, updated_at=?"
            " WHERE poller=?",
            (to_iso(window_start), end, next_token, page, count, _now(), poller),
            poller,
        )

    async def finish_window(self, poller: str, new_watermark: datetime) -> None:
        """Moves the watermark to the finished window's end and clears the window in progress."""
        await self._write(
            "UPDATE pollers SET watermark=?, window_start=NULL, window_end=NULL, next_token=NULL,"
            " page=0, updated_at=? WHERE poller=?",
            (to_iso(new_watermark), _now(), poller),
            poller,
        )

    async def restart_window(self, poller: str) -> None:
        """Forgets the next token and page count (an expired token) but keeps the window."""
        await self._write(
            "UPDATE pollers SET next_token=NULL, page=0, updated_at=? WHERE poller=?",
            (_now(), poller),
            poller,
        )

    async def record_run(self, poller: str, *, error: str | None) -> None:
        """Counts a run; an error is kept (one line, secrets redacted), a success clears it.
        On a full disk (StateFullError) the reserve is given up so that the error is still
        recorded; any other failure (a lock held too long: StateBusyError) is raised as it is."""
        now = _now()
        if error is None:
            sql = "UPDATE pollers SET runs=runs+1, last_run_at=?, last_success_at=?, last_error=NULL"
            args: tuple[Any, ...] = (now, now)
        else:
            sql = "UPDATE pollers SET runs=runs+1, last_run_at=?, last_error=?"
            args = (now, one_line(redact(error)))
        write = (sql + ", updated_at=? WHERE poller=?", (*args, now, poller), poller)
        try:
            await self._write(*write)
        except StateFullError:
            if error is None or not self.reserve.give_up():
                raise
            await self._write(*write)  # while the disk stays full, what is left is kept for the next
        if self.daemon:
            self.reserve.keep()

    async def set_note(self, poller: str, note: str | None) -> None:
        """Sets (or clears) the note `status` shows, e.g. that start_time was clamped."""
        text = one_line(redact(note)) if note is not None else None
        await self._write(
            "UPDATE pollers SET note=?, updated_at=? WHERE poller=?", (text, _now(), poller), poller
        )

    async def reset(self, poller: str, to: datetime, identity: str | None = None) -> None:
        """Moves the watermark to `to` and drops the window in progress; refused under a daemon."""
        def move(db: sqlite3.Connection) -> None:
            cur = db.execute(
                "UPDATE pollers SET watermark=?, identity=COALESCE(?, identity), window_start=NULL,"
                " window_end=NULL, next_token=NULL, page=0, updated_at=? WHERE poller=?",
                (to_iso(to), identity, _now(), poller),
            )
            if cur.rowcount == 0:
                if identity is None:
                    raise self._missing(poller)
                self._insert_new(db, poller, identity, to)

        with self.lock.exclusive():
            await self._transaction(move)

    async def forget(self, pollers: list[str]) -> int:
        """Deletes these rows in one transaction; refused under a daemon (as reset)."""
        def drop(db: sqlite3.Connection) -> int:
            return sum(db.execute("DELETE FROM pollers WHERE poller = ?", (p,)).rowcount for p in pollers)

        with self.lock.exclusive():
            return await self._transaction(drop)

    async def lease_holders(self) -> dict[str, str]:
        """One machine, no replicas: nobody holds leases."""
        return {}

    async def delete(self, poller: str) -> bool:
        """Forgets a poller entirely; True when it had state."""
        deleted = await self._transaction(
            lambda db: db.execute("DELETE FROM pollers WHERE poller = ?", (poller,)).rowcount)
        return deleted > 0

    async def load_bucket_levels(self) -> list[BucketLevel]:
        """The rate-limit bucket levels last saved, one per (account, operation)."""
        try:
            return self.buckets.load()
        except (TypeError, ValueError) as exc:
            raise self._damaged(f"rate_limits has an unreadable value: {exc}") from None

    async def save_bucket_levels(self, levels: list[BucketLevel]) -> None:
        """Replaces the saved level of each bucket named; durable when it returns."""
        if levels:
            await self.buckets.save(levels)
