"""The SP-API client: LWA auth, token-bucket rate limits, retries (DESIGN.md §5, §6)."""

from __future__ import annotations

from spd.client.http import Response, SpClient
from spd.client.ratelimit import TokenBucket

__all__ = ["Response", "SpClient", "TokenBucket"]
