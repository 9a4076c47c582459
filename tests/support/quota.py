"""What a client's token bucket granted, and what Amazon's bucket would make of it."""

from __future__ import annotations

from typing import Any

import pytest


def record_grants(monkeypatch: pytest.MonkeyPatch, bucket: Any) -> list[float]:
    """Times at which `bucket` handed out its tokens: the clock reading each take counted its
    tokens at (the bucket's own `_take`), not a stamp after it, which the OS could delay on a
    loaded machine and so squeeze one gap and stretch the next."""
    granted: list[float] = []
    clock, take = bucket._clock, bucket._take
    readings: list[float] = []

    def read_clock() -> float:
        now: float = clock()
        readings.append(now)
        return now

    def timed_take() -> None:
        readings.clear()
        take()
        granted.append(readings[0])  # _take reads the clock once, first, and refills at it

    monkeypatch.setattr(bucket, "_clock", read_clock)
    monkeypatch.setattr(bucket, "_take", timed_take)
    return granted
