"""The type aliases and Protocols that cross layers, named once."""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]
"""A JSON object as orjson parses it: an SP-API object, a report row, a response body."""

Triple = tuple[str, str | None, JsonObject]
"""An object as it is delivered: (id, cursor, data); the cursor is None when it has no time."""
