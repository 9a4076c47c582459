"""What a client's token bucket granted, and what Amazon's bucket would make of it."""

from __future__ import annotations

import time
from typing import Any

import pytest


def record_grants(monkeypatch: pytest.MonkeyPatch, bucket: Any) -> list[float]:
    """Times at which `bucket` handed out its tokens, read as acquire() returns (nothing awaits
    between the bucket taking the token and the stamp, so load cannot move one stamp alone)."""
    granted: list[float] = []
    acquire = bucket.acquire

    async def timed_acquire() -> None:
        await acquire()
        granted.append(time.monotonic())

    monkeypatch.setattr(bucket, "acquire", timed_acquire)
    return granted
