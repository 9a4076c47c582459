"""What the client lets others observe without a dependency: the latency of its requests per
bucket, and the time a task spends waiting for quota (so /readyz can tell a wait from a stall).

`QuotaClock` is found through a context variable: the daemon sets one per poller run, and every
request of that run (and of the tasks it starts) adds its waits for a token, or after a 429, to it.
"""

from __future__ import annotations

import bisect
import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

# Seconds: SP-API answers in 0.1–2 s; reports' documents and slow sandboxes take longer.
LATENCY_BOUNDS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass
class LatencyHistogram:
    """Counts of request durations per upper bound (not cumulative), their sum and count."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BOUNDS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: ("0.05", n ≤ 0.05 s), …, ("+Inf", all)."""
        bounds = [repr(b) for b in LATENCY_BOUNDS] + ["+Inf"]
        running, out = 0, []
        for bound, count in zip(bounds, self.counts):
            running += count
            out.append((bound, running))
        return out


class QuotaSource(Protocol):
    """What a wait for quota waits on: a token bucket, named after its operation."""

    @property
    def name(self) -> str: ...

    @property
    def rate(self) -> float: ...

    def delay(self) -> float:
        """Seconds until its next token."""


@dataclass(frozen=True)
class QuotaWait:
    """One wait in progress, as a person reads it: `waiting 58 s for ordersV0.getOrders quota,
    0.0167/s`."""

    operation: str
    seconds: float  # until the next token (a request queued behind others waits longer)
    rate: float  # requests per second

    def describe(self) -> str:
        return f"waiting {self.seconds:.0f} s for {self.operation} quota, {self.rate:g}/s"


def current_wait(source: QuotaSource) -> QuotaWait:
    """The wait on `source` as it stands now."""
    return QuotaWait(source.name, source.delay(), source.rate)


class QuotaClock:
    """Seconds spent waiting for quota (tokens, or after a 429) by one poller's requests; waits
    that overlap (a prefetch beside a page) count once. It also knows what it waits on now."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._total = 0.0
        self._waiting = 0
        self._since = 0.0
        self._sources: list[QuotaSource] = []

    def waits(self) -> list[QuotaWait]:
        """The waits in progress, longest first."""
        return sorted((current_wait(s) for s in self._sources), key=lambda w: -w.seconds)

    @property
    def waiting(self) -> bool:
        """A request of this poller is waiting for quota now."""
        return self._waiting > 0

    def begin(self, source: QuotaSource | None = None) -> None:
        if self._waiting == 0:
            self._since = self._clock()
        self._waiting += 1
        if source is not None:
            self._sources.append(source)

    def end(self, source: QuotaSource | None = None) -> None:
        if source is not None and source in self._sources:
            self._sources.remove(source)
        self._waiting -= 1
        if self._waiting == 0:
            self._total += self._clock() - self._since

    def waited(self) -> float:
        """Seconds waited so far, the wait in progress included."""
        ongoing = self._clock() - self._since if self._waiting else 0.0
        return self._total + ongoing


QUOTA_CLOCK: ContextVar[QuotaClock | None] = ContextVar("spd_quota_clock", default=None)


@contextlib.contextmanager
def quota_wait(source: QuotaSource | None = None) -> Iterator[None]:
    """Counts the time inside as waiting for quota (on `source`) on the current task's clock,
    if it has one."""
    clock = QUOTA_CLOCK.get()
    if clock is None:
        yield
        return
    clock.begin(source)
    try:
        yield
    finally:
        clock.end(source)
