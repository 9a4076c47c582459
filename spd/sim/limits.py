"""Amazon-style token buckets: one per (selling partner + application, operation)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# Advertised in x-amzn-RateLimit-Limit when rate limiting is switched off.
UNLIMITED_RATE = "1000.0"

# Usage Plans from Amazon's models: operation -> (rate per second, burst).
USAGE_PLANS: dict[str, tuple[float, int]] = {
    "ordersV0.getOrders": (0.0167, 20),
    "orders_2026-01-01.searchOrders": (0.0056, 20),
    "vendorOrders.getPurchaseOrders": (10.0, 10),
    "tokens_2021-03-01.createRestrictedDataToken": (1.0, 10),
    "sellers.getMarketplaceParticipations": (0.016, 15),
}


@dataclass
class TokenBucket:
    """Holds up to `burst` tokens, refilled at `rate` per second; starts full."""

    rate: float
    burst: int
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class RateLimiter:
    """Buckets per (caller, operation); `enabled=False` lets everything through."""

    def __init__(
        self,
        overrides: dict[str, tuple[float, int]] | None = None,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self._plans = {**USAGE_PLANS, **(overrides or {})}
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._clock = clock

    def plan(self, operation: str) -> tuple[float, int]:
        """The (rate, burst) this simulator applies to `operation`."""
        return self._plans.get(operation, (0.5, 1))

    def header(self, operation: str) -> str:
        """The value of `x-amzn-RateLimit-Limit`: the rate only, as Amazon sends it.

        With limits off the simulator advertises a generous rate, so clients that follow the
        header (as they should) are not held back by the usage plan in throughput tests."""
        if not self.enabled:
            return UNLIMITED_RATE
        return repr(float(self.plan(operation)[0]))

    def allow(self, caller: str, operation: str) -> bool:
        """Spend a token of the caller's bucket for `operation`; False means 429."""
        if not self.enabled:
            return True
        now = self._clock()
        bucket = self._buckets.get((caller, operation))
        if bucket is None:
            rate, burst = self.plan(operation)
            bucket = TokenBucket(rate, burst, float(burst), now)
            self._buckets[(caller, operation)] = bucket
        return bucket.take(now)
