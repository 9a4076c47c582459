"""Seeded fault injection: latency, 500/503s, dropped connections, truncated bodies."""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass, fields
from typing import Any

from aiohttp import web

from spd.sim.common import error_body

INTERNAL_FAILURE = "We encountered an internal error. Please try again."


@dataclass
class FaultKnobs:
    """Probabilities per request (0..1) and a fixed added latency."""

    error_rate: float = 0.0
    latency_ms: float = 0.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update; ValueError names a bad key or value."""
        known = {f.name for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown fault knob {key!r}; allowed: {', '.join(sorted(known))}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{key} must be a number >= 0")
            if key != "latency_ms" and value > 1:
                raise ValueError(f"{key} must be between 0 and 1")
        for key, value in changes.items():
            setattr(self, key, float(value))

    def as_dict(self) -> dict[str, float]:
        """The knobs as JSON."""
        return asdict(self)


class FaultInjector:
    """Decides, with its own seeded random stream, which requests fail and how."""

    def __init__(self, knobs: FaultKnobs, seed: int) -> None:
        self.knobs = knobs
        self._rng = random.Random(f"{seed}:faults")

    async def delay(self) -> None:
        """Sleep the configured latency."""
        if self.knobs.latency_ms > 0:
            await asyncio.sleep(self.knobs.latency_ms / 1000.0)

    def drop(self) -> bool:
        """True when this request's connection should be closed without a response."""
        return self._rng.random() < self.knobs.drop_rate

    def error(self) -> tuple[int, dict[str, Any]] | None:
        """A 500 or 503 with Amazon's InternalFailure body, or None."""
        if self._rng.random() >= self.knobs.error_rate:
            return None
        status = self._rng.choice((500, 503))
        code = "InternalFailure" if status == 500 else "ServiceUnavailable"
        return status, error_body(code, INTERNAL_FAILURE)

    def truncate(self) -> str | None:
        """"short" (Content-Length promises more than is sent), "cut" (complete HTTP message
        whose JSON is cut), or None."""
        if self._rng.random() >= self.knobs.truncate_rate:
            return None
        return self._rng.choice(("short", "cut"))


async def send_truncated(
    request: web.Request, body: bytes, headers: dict[str, str], mode: str, status: int = 200
) -> web.StreamResponse:
    """Send half of `body` with the operation's success status, then close the connection."""
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_type = "application/json"
    part = body[: max(1, len(body) // 2)]
    resp.content_length = len(body) if mode == "short" else len(part)
    await resp.prepare(request)
    await resp.write(part)
    if mode == "short" and request.transport is not None:
        request.transport.close()
    else:
        await resp.write_eof()
    return resp


def drop_connection(request: web.Request) -> web.Response:
    """Close the connection without answering; the caller sees a disconnect."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)
