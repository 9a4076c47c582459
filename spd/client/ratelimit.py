"""Token buckets that mirror SP-API's own, so spd runs at the quota without being throttled.

One `TokenBucket` per (account, operation). Waits are computed from a monotonic clock (never a
polling sleep), waiters are served first come, first served, and a rate change wakes the waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from spd.catalog.model import Operation
from spd.client.observe import LatencyHistogram, quota_wait
from spd.core.errors import SpdError
from spd.core.typing import Account, BucketLevel

DEFAULT_RATE = 0.5
DEFAULT_BURST = 1
# Amazon's bucket starts refilling when a request *arrives*; ours when it is sent. Taking from a
# full bucket therefore starts our refill a little later, to absorb latency jitter. With a burst
# above 1 that happens once per busy period (no throughput cost) and is capped at the time the
# burst takes to refill; with burst 1 the bucket is full at every take, so there the guard is paid
# per request and capped at 2 % of the interval.
DEFAULT_GUARD = 0.15  # tolerates 150 ms of jitter between our send and Amazon seeing it
GUARD_SHARE = 0.02
# A saved level covers the takes of about this long (at least one): one durable write a second
# at most per bucket; after a crash the next start waits at most this long more than it must.
JOURNAL_SECONDS = 1.0
_EPSILON = 1e-9
T = TypeVar("T")


@dataclass
class BucketStats:
    """Counters of one bucket; `errors` counts failed attempts other than 429; `latency` the
    durations of the requests that got an HTTP answer."""

    requests: int = 0
    throttled: int = 0
    retries: int = 0
    errors: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


class TokenBucket:
    """A refilling bucket of `burst` tokens at `rate` tokens per second, starting full."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        guard: float = DEFAULT_GUARD,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        name: str = "",
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"token bucket needs rate > 0 and burst >= 1, got {rate}/{burst}")
        self._rate = float(rate)
        self._burst = int(burst)
        self._guard = guard
        self._clock = clock
        self._sleep = sleep or self._wakeable_sleep
        self._tokens = float(burst)
        self._first_take = True
        self._stamp = clock()  # tokens were counted at this time; may lie in the future (guard)
        self._lock = asyncio.Lock()  # FIFO: the holder waits for the next token, others queue
        self._wake: asyncio.Future[None] | None = None
        self._waiting = 0
        self.stats = BucketStats()
        # Saves a level (tokens) before the takes it covers (SavedBuckets); None: not saved
        self.journal: Callable[[TokenBucket, float], Awaitable[None]] | None = None
        self._covered = 0  # takes the last saved level still covers
        self.name = name  # "API.OPERATION", for messages about waits

    @property
    def waiting(self) -> int:
        """Requests waiting for a token now."""
        return self._waiting

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> int:
        return self._burst

    def tokens(self) -> float:
        """Tokens available now (fractional)."""
        self._refill(self._clock())
        return self._tokens

    def delay(self) -> float:
        """Seconds until the next token is available (0 when one is there now)."""
        now = self._clock()
        self._refill(now)
        if self._tokens >= 1.0 - _EPSILON:  # float dust must not cause a zero-length wait loop
            return 0.0
        return max(self._stamp - now, 0.0) + (1.0 - self._tokens) / self._rate

    async def acquire(self) -> None:
        """Wait, in arrival order, until a token is available and take it (a wait counts on
        the task's quota clock, spd.client.observe). With a journal, a level is saved first
        whenever the last one no longer covers this take."""
        if not self._lock.locked() and self._ready():
            self._take()
            return
        await self._head_of_queue()
        try:
            self._take()
        finally:
            self._lock.release()

    async def acquire_to_send(self, slots: asyncio.Semaphore, prepare: Callable[[], Awaitable[T]]) -> T:
        """acquire() for a request about to go out, which also needs one of `slots` (the
        client's in-flight cap): returns holding a slot (the caller releases it after its send)
        and what `prepare()` (its access token) gave.

        The token is taken after the slot, not before: Amazon's bucket refills from each
        request's arrival, and tokens taken by requests that then queued for slots would reach
        Amazon together when slots free up, faster than the bucket's pace. Only this bucket's
        head waits for a slot, once its token is there: requests still waiting for quota hold
        no slot, so a slow operation never blocks the others' sends."""
        await self._head_of_queue()
        try:
            while True:
                # before the slot: a round trip for a new access token (or an RDT, whose
                # request needs a slot of its own) would otherwise hold one
                prepared = await prepare()
                await slots.acquire()
                if self._ready():
                    self._take()
                    return prepared
                slots.release()  # drained by a 429, or a new rate voided the saved level, meanwhile
                with self._waiter():
                    await self._until_ready()
        finally:
            self._lock.release()

    async def _head_of_queue(self) -> None:
        """Returns holding the lock (this bucket's FIFO queue) once a token is available to
        this request; the wait counts as waiting for quota."""
        if not self._lock.locked() and self._ready():
            await self._lock.acquire()  # free: no wait
            return
        with self._waiter():
            await self._lock.acquire()
            try:
                await self._until_ready()
            except BaseException:
                self._lock.release()
                raise

    async def _until_ready(self) -> None:
        while (wait := self.delay()) > 0:
            await self._sleep(wait)
        if self.journal is not None and self._covered <= 0:
            await self._save_ahead(self.journal)

    def _ready(self) -> bool:
        """A token is there now, and the saved level covers its take."""
        return self.delay() == 0 and (self.journal is None or self._covered > 0)

    @contextlib.contextmanager
    def _waiter(self) -> Iterator[None]:
        self._waiting += 1
        try:
            with quota_wait(self):
                yield
        finally:
            self._waiting -= 1

    async def _save_ahead(self, journal: Callable[[TokenBucket, float], Awaitable[None]]) -> None:
        """Saves the level as if the next `reserve` takes had happened already: until they have,
        the saved level is never above the real one, whenever the process dies."""
        reserve = max(1, min(self._burst, math.ceil(self._rate * JOURNAL_SECONDS)))
        await journal(self, self.tokens() - reserve)
        self._covered = reserve

    def restore(self, level: BucketLevel, now: float) -> None:
        """Starts from a saved level (taken at wall time `level.at`; `now` is wall time too),
        refilled at its rate since; never above this bucket's burst."""
        self._tokens = self._refilled(level, now)
        self._stamp = self._clock()

    def _refilled(self, level: BucketLevel, now: float) -> float:
        elapsed = max(0.0, now - level.at)
        return min(float(self._burst), level.tokens + elapsed * level.rate)

    def lower_to(self, level: BucketLevel | None, now: float) -> None:
        """Another process ran this bucket meanwhile (an account lease taken over in a cluster):
        never fuller than the level it saved, refilled since (as `restore`), and a level is saved
        again before the next take."""
        if level is not None and self._refilled(level, now) < self.tokens():
            self.restore(level, now)
        self._covered = 0

    def try_acquire(self) -> bool:
        """Take a token if one is available now and nobody is waiting (or queued for a slot)."""
        if self._lock.locked() or self._waiting or self.delay() > 0:
            return False
        self._take()
        return True

    def set_rate(self, rate: float) -> bool:
        """Follow a new rate (from `x-amzn-RateLimit-Limit`); the burst stays. True if changed."""
        if rate <= 0 or abs(rate - self._rate) <= 1e-9 * self._rate:
            return False
        self._refill(self._clock())  # tokens earned so far count at the old rate
        self._rate = float(rate)
        self._covered = 0  # the saved level refills at the old rate: save again before a take
        self._wake_waiter()
        return True

    def drain(self) -> None:
        """Empty the bucket (after a 429: Amazon's bucket is empty too)."""
        now = self._clock()
        self._refill(now)
        self._tokens = 0.0
        self._stamp = max(self._stamp, now)
        self._covered = 0

    def snapshot(self) -> dict[str, Any]:
        """Rate, burst, available tokens, waiters and counters, for metrics and `status`."""
        return {
            "rate": self._rate,
            "burst": self._burst,
            "tokens": round(self.tokens(), 3),
            "waiting": self._waiting,
            "requests": self.stats.requests,
            "throttled": self.stats.throttled,
            "retries": self.stats.retries,
            "errors": self.stats.errors,
            "latency": self.stats.latency,
        }

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(float(self._burst), self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now

    def _take(self) -> None:
        now = self._clock()
        self._refill(now)
        was_full = self._tokens >= self._burst - _EPSILON
        self._tokens -= 1.0
        self._covered -= 1
        if was_full and self._guard > 0:
            self._stamp = now + self._guard_for_this_take()

    def _guard_for_this_take(self) -> float:
        # Refill starts when Amazon sees the request. A pause longer than the time the whole
        # burst takes to refill adds no cushion, and at high rates (the bucket is full again
        # before every request) it would stall the sender, so it is capped there. The very first
        # request also opens the connection (TLS), so it reaches Amazon later than the next one:
        # that one take gets the whole guard whatever the burst.
        first, self._first_take = self._first_take, False
        if self._burst == 1 and not first:
            return min(self._guard, GUARD_SHARE / self._rate)
        return min(self._guard, self._burst / self._rate)

    def _wake_waiter(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _wakeable_sleep(self, seconds: float) -> None:
        # Like asyncio.sleep, but set_rate() can cut it short so the waiter recomputes.
        loop = asyncio.get_running_loop()
        self._wake = fut = loop.create_future()
        handle = loop.call_later(seconds, _resolve, fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._wake = None


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def initial_limits(account: Account, op: Operation) -> tuple[float, int]:
    """Rate and burst for a new bucket: config override, else the Usage Plan, else the default."""
    key = f"{op.api}.{op.id}"
    overrides = getattr(account, "rate_limits", None) or {}
    override = overrides.get(key)
    if override is None and getattr(op, "operation_id", op.id) != op.id:
        override = overrides.get(f"{op.api}.{op.operation_id}")
    rate = getattr(override, "rate", None) or op.rate
    burst = getattr(override, "burst", None) or op.burst
    if not rate or rate <= 0:
        return DEFAULT_RATE, int(burst or DEFAULT_BURST)
    return float(rate), max(int(burst or DEFAULT_BURST), 1)


class QuotaJournal(Protocol):
    """Where bucket levels are kept across reloads and restarts (spd.state.backend.StateBackend)."""

    async def load_bucket_levels(self) -> list[BucketLevel]: ...

    async def save_bucket_levels(self, levels: list[BucketLevel]) -> None: ...


class SavedBuckets:
    """The client's buckets kept in a QuotaJournal: a new bucket starts from its saved level,
    a level is saved before the takes it covers, and every exact level at close (a reload
    starts where the old config stopped)."""

    def __init__(self, journal: QuotaJournal, wall: Callable[[], float] = time.time) -> None:
        self.journal = journal
        self.wall = wall
        self.saved: dict[tuple[str, str], BucketLevel] = {}

    async def load(self) -> None:
        self.saved = {(x.account, x.operation): x for x in await self.journal.load_bucket_levels()}

    def attach(self, account: str, operation: str, bucket: TokenBucket) -> None:
        """Restores `bucket` from its saved level, if any, and saves its levels from now on."""
        level = self.saved.get((account, operation))
        if level is not None:
            bucket.restore(level, self.wall())

        async def save(b: TokenBucket, tokens: float) -> None:
            await self.journal.save_bucket_levels([self.level(account, operation, b, tokens)])

        bucket.journal = save

    def level(self, account: str, operation: str, bucket: TokenBucket, tokens: float) -> BucketLevel:
        return BucketLevel(account, operation, bucket.rate, bucket.burst, tokens, self.wall())

    async def save_all(self, buckets: dict[tuple[str, str], TokenBucket]) -> None:
        """Every bucket's level as it is now (nothing is sent any more), one save per account:
        an account whose lease moved on (its save refused) keeps none of the others from being
        saved; the first error is raised after the others were tried."""
        failed: SpdError | None = None
        for account in sorted({a for a, _ in buckets}):
            try:
                await self.save_account(account, buckets)
            except SpdError as exc:
                failed = failed or exc
        if failed is not None:
            raise failed

    async def save_account(self, account: str, buckets: dict[tuple[str, str], TokenBucket]) -> None:
        """The levels of the account's buckets as they are now (its pollers stopped)."""
        levels = [self.level(a, op, bucket, bucket.tokens()) for (a, op), bucket in buckets.items()
                  if a == account]
        if levels:
            await self.journal.save_bucket_levels(levels)

    async def reload_account(self, account: str, buckets: dict[tuple[str, str], TokenBucket]) -> None:
        """The account's levels as its last holder saved them (this replica just claimed its
        lease): its new buckets start from them, those it has already are lowered to them."""
        for level in await self.journal.load_bucket_levels():
            if level.account == account:
                self.saved[(level.account, level.operation)] = level
        for (a, op), bucket in buckets.items():
            if a == account:
                bucket.lower_to(self.saved.get((a, op)), self.wall())
