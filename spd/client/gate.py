"""Refused credentials fail fast: LWA and STS are not asked again until a retry time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from spd.core.errors import AuthError
from spd.core.retry import Backoff

GATE_BASE = 30.0  # refused credentials: first retry after 30 s, doubling up to an hour
GATE_CAP = 3600.0


class FailureGate:
    """Refused credentials fail fast, without a request, until their next retry time.

    One account's revoked refresh token or wrong AWS keys must neither hammer LWA/STS on every
    poll nor stop the other accounts; the retry time doubles while the refusals go on.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 base: float = GATE_BASE, cap: float = GATE_CAP) -> None:
        self._clock = clock
        self._base = base
        self._cap = cap
        self._blocked: dict[Any, tuple[float, int, str]] = {}  # key -> (until, failures, msg)

    def check(self, key: Any) -> None:
        """Raises the last refusal again while `key` is blocked."""
        blocked = self._blocked.get(key)
        if blocked is not None and self._clock() < blocked[0]:
            wait = max(1, round(blocked[0] - self._clock()))
            raise AuthError(f"{blocked[2]}; next attempt in {wait}s")

    def failed(self, key: Any, exc: AuthError) -> None:
        failures = self._blocked[key][1] + 1 if key in self._blocked else 1
        delay = Backoff(self._base, self._cap, "none").delay(failures)
        self._blocked[key] = (self._clock() + delay, failures, exc.message)

    def passed(self, key: Any) -> None:
        self._blocked.pop(key, None)
