"""The report ledger (see spd.state.ledger) on PostgreSQL, over the PgStore's connections; writes
are fenced like every other write of a poller."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from spd.state.backend import Attempt

if TYPE_CHECKING:  # the store builds its ledger: it imports this module
    from spd.state.postgres import PgStore


def _aware(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: state timestamps must carry a time zone")
    return dt


class PgLedger:
    """The spd_report_* tables of a PgStore."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    async def attempt(self, series: str) -> Attempt | None:
        """The report requested for the series' window, or None."""
        async with self.store.connection() as conn:
            row = await conn.fetchrow("SELECT window_start, report_id, status, failures, retry_at"
                                      " FROM spd_report_attempts WHERE series=$1", series)
        if row is None:
            return None
        return Attempt(row["window_start"], row["report_id"], row["status"], row["failures"],
                       row["retry_at"])

    async def requested(self, series: str, window_start: datetime, report_id: str) -> None:
        """Remembers the report requested for the window (failures of the same window are kept)."""
        async with self.store.fenced(series) as conn:
            await conn.execute(
                "INSERT INTO spd_report_attempts AS a (series, window_start, report_id, status)"
                " VALUES ($1, $2, $3, 'PENDING') ON CONFLICT (series) DO UPDATE SET"
                " report_id=excluded.report_id, status='PENDING', failures=CASE WHEN"
                " a.window_start=excluded.window_start THEN a.failures ELSE 0 END,"
                " window_start=excluded.window_start, retry_at=NULL",
                series, _aware(window_start), report_id)

    async def failed(self, series: str, status: str, retry_at: datetime) -> int:
        """Records a FATAL/CANCELLED outcome; returns the failures of this window so far."""
        async with self.store.fenced(series) as conn:
            failures = await conn.fetchval(
                "UPDATE spd_report_attempts SET status=$2, failures=failures+1, retry_at=$3"
                " WHERE series=$1 RETURNING failures", series, status, _aware(retry_at))
        return int(failures) if failures is not None else 1

    async def clear_attempt(self, series: str) -> None:
        """Forgets the series' attempt."""
        async with self.store.fenced(series) as conn:
            await conn.execute("DELETE FROM spd_report_attempts WHERE series=$1", series)

    async def done_ids(self, series: str, watermark: datetime) -> set[str]:
        """Reports already emitted; forgets those after `watermark` when it moved back (reset)."""
        async with self.store.fenced(series) as conn:
            mark = await conn.fetchval("SELECT watermark FROM spd_report_marks WHERE series=$1", series)
            if mark is not None and _aware(watermark) < mark:
                await conn.execute("DELETE FROM spd_report_done WHERE series=$1 AND created>=$2",
                                   series, watermark)
                await conn.execute("UPDATE spd_report_marks SET watermark=$2 WHERE series=$1",
                                   series, watermark)
            rows = await conn.fetch("SELECT report_id FROM spd_report_done WHERE series=$1", series)
        return {r["report_id"] for r in rows}

    async def done(self, series: str, report_id: str, created: datetime) -> None:
        """Records a report as emitted completely."""
        async with self.store.fenced(series) as conn:
            await conn.execute("INSERT INTO spd_report_done (series, report_id, created) VALUES"
                               " ($1, $2, $3) ON CONFLICT DO NOTHING", series, report_id,
                               _aware(created))

    async def moved(self, series: str, watermark: datetime) -> None:
        """The watermark moved forward: entries before it can never be listed again."""
        async with self.store.fenced(series) as conn:
            await conn.execute("DELETE FROM spd_report_done WHERE series=$1 AND created<$2",
                               series, _aware(watermark))
            await conn.execute("INSERT INTO spd_report_marks (series, watermark) VALUES ($1, $2)"
                               " ON CONFLICT (series) DO UPDATE SET watermark=excluded.watermark",
                               series, watermark)
