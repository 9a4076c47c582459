"""Whether each poller makes progress, for /readyz: a poller is stalled when neither a run
completed nor a page was delivered for longer than `STALL_INTERVALS` of its intervals, not
counting the time its requests waited for quota (a slow quota is Amazon's pace, not a fault).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from spd.client.observe import QuotaClock

STALL_INTERVALS = 3


@dataclass
class PollerProgress:
    """When one poller last made progress, and how long it had waited for quota by then."""

    interval: float  # seconds
    quota: QuotaClock
    mark: float  # monotonic time of the last progress (or of the start)
    waited_at_mark: float

    def stalled_for(self, now: float) -> float:
        """Seconds without progress, minus the time spent waiting for quota meanwhile."""
        waited = self.quota.waited() - self.waited_at_mark
        return max(0.0, now - self.mark - waited)


class Liveness:
    """The progress of every poller of the running config; the daemon marks it, /readyz reads it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._pollers: dict[str, PollerProgress] = {}

    def track(self, intervals: dict[str, float]) -> None:
        """The pollers of a (re)loaded config with their intervals in seconds: new ones start
        their clock now, removed ones are forgotten, kept ones keep theirs (a reload does not
        hide a stall)."""
        now = self._clock()
        for name in set(self._pollers) - set(intervals):
            del self._pollers[name]
        for name, interval in intervals.items():
            known = self._pollers.get(name)
            if known is not None:
                known.interval = interval
            else:
                self._pollers[name] = PollerProgress(interval, QuotaClock(self._clock), now, 0.0)

    def quota_clock(self, name: str) -> QuotaClock | None:
        """The clock a run of `name` counts its quota waits on (spd.client.observe.QUOTA_CLOCK)."""
        progress = self._pollers.get(name)
        return progress.quota if progress is not None else None

    def progressed(self, name: str) -> None:
        """`name` completed a run or delivered a page."""
        progress = self._pollers.get(name)
        if progress is not None:
            progress.mark = self._clock()
            progress.waited_at_mark = progress.quota.waited()

    def stalled(self) -> dict[str, tuple[float, float]]:
        """{poller: (seconds stalled, interval)} for every poller stalled past the limit."""
        now = self._clock()
        found = {}
        for name, progress in self._pollers.items():
            seconds = progress.stalled_for(now)
            if seconds > STALL_INTERVALS * progress.interval:
                found[name] = (seconds, progress.interval)
        return found
