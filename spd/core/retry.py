"""The one retry policy: exponential backoff with a cap and a jitter, and Retry-After.

The SP-API client, the webhook emitter, the LWA/STS failure gate and the report status checks
all wait `Backoff.delay(attempt)`; they differ only in their numbers and jitter, declared where
each is built. `retry_after` reads the `Retry-After` header both the client and the webhook
emitter honour.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Literal

Jitter = Literal["full", "half", "none"]


@dataclass(frozen=True)
class Backoff:
    """`first * 2**(attempt - 1)` seconds, at most `cap`, then jittered: "full" draws from
    [0, delay] (SP-API calls: many clients share a quota), "half" from [delay/2, delay]
    (webhooks), "none" keeps it (gates and status checks)."""

    first: float
    cap: float
    jitter: Jitter = "full"

    def delay(self, attempt: int) -> float:
        """Seconds to wait before try `attempt + 1` (attempt counts from 1)."""
        base = min(self.cap, self.first * 2.0 ** (attempt - 1))
        if self.jitter == "full":
            return random.uniform(0, base)
        if self.jitter == "half":
            return base * random.uniform(0.5, 1.0)
        return base


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or an HTTP date), never
    negative; None when absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - (now or datetime.now(timezone.utc))).total_seconds(), 0.0)
