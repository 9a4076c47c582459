"""What a client's token bucket granted, and what Amazon's bucket would make of it."""

from __future__ import annotations

import time
from typing import Any

import pytest


def record_grants(monkeypatch: pytest.MonkeyPatch, bucket: Any) -> list[float]:
    """Times at which `bucket` handed out its tokens, read as acquire() or acquire_to_send()
    returns (nothing awaits between the bucket taking the token and the stamp, so load cannot
    move one stamp alone)."""
    granted: list[float] = []
    acquire, acquire_to_send = bucket.acquire, bucket.acquire_to_send

    async def timed_acquire() -> None:
        await acquire()
        granted.append(time.monotonic())

    async def timed_acquire_to_send(*args: Any) -> Any:
        prepared = await acquire_to_send(*args)
        granted.append(time.monotonic())
        return prepared

    monkeypatch.setattr(bucket, "acquire", timed_acquire)
    monkeypatch.setattr(bucket, "acquire_to_send", timed_acquire_to_send)
    return granted
