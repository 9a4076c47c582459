"""The state rows of backfills as `spd status` and `spd reset --forget-backfills` read them.

`spd once POLLER --from T1 [--until T2]` keeps its position in rows of its own (spd.app.backfill):
`POLLER@backfill:T1..T2`, or `…@MARKETPLACE` per marketplace where the type fans out, `T1..now`
when open-ended. This module only reads those keys (no pipeline imports: `spd status` stays
light): which poller and range a row belongs to, and whether the backfill reached its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from spd.core.times import format_ts, parse_ts
from spd.state.backend import PollerState

BACKFILL = "@backfill:"  # between the poller's name and the range in a backfill's rows
OPEN_END = "now"  # the end of an open-ended backfill's range


def range_text(start: datetime, until: datetime | None) -> str:
    """`T1..T2`, or `T1..now` for an open-ended backfill: the same for every run of it."""
    return f"{format_ts(start)}..{format_ts(until) if until else OPEN_END}"


def backfill_key(poller: str, start: datetime, until: datetime | None) -> str:
    """The backfill's row for the poller's row `poller` (`name` or `name@MARKETPLACE`)."""
    name, at, market = poller.partition("@")
    return f"{name}{BACKFILL}{range_text(start, until)}{at}{market}"


@dataclass(frozen=True)
class BackfillRow:
    """One backfill row's key, read: its poller, range and marketplace (None: not fanned out)."""

    key: str
    poller: str
    range: str
    start: datetime
    until: datetime | None
    market: str | None

    @classmethod
    def parse(cls, key: str) -> BackfillRow | None:
        """The row `key` names, or None when it is not a backfill's (or not one spd wrote)."""
        poller, found, rest = key.partition(BACKFILL)
        if not found:
            return None
        span, at, market = rest.partition("@")
        start, _, until = span.partition("..")
        try:
            return cls(key, poller, span, parse_ts(start),
                       None if until == OPEN_END else parse_ts(until), market if at else None)
        except ValueError:
            return None

    def complete(self, state: PollerState) -> bool:
        """Whether the backfill reached its end: its watermark is at UNTIL and no window is in
        progress. An open-ended one never is: run again, it carries on to the new now."""
        return self.until is not None and state.window_start is None and state.watermark >= self.until

    def describe(self, state: PollerState) -> str:
        """What `spd status` shows in its STATE column: `complete`, `incomplete, 40% done` (of
        the range's time, resumed by the same `spd once` command) or `open-ended`."""
        if self.until is None:
            return "open-ended"
        if self.complete(state):
            return "complete"
        return f"incomplete, {int(self.progress(state) * 100)}% done"

    def progress(self, state: PollerState) -> float:
        """The share of the range's time below the watermark (0 to 1; 0 for an open-ended one)."""
        if self.until is None or self.until <= self.start:
            return 0.0
        done = (min(state.watermark, self.until) - self.start) / (self.until - self.start)
        return max(done, 0.0)
