"""Path lookup in parsed JSON: the one `dig` every layer uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def dig(value: Any, path: str | Sequence[str]) -> Any:
    """The value at a dotted path (or a sequence of keys) in nested dicts, or None when a step is
    missing; a numeric key indexes a list ("summaries.0.createdDate"); an empty path is `value`."""
    for key in path.split(".") if isinstance(path, str) else path:
        if isinstance(value, list) and key.isdigit():
            value = value[int(key)] if int(key) < len(value) else None
        elif isinstance(value, dict):
            value = value.get(key)
        else:
            return None
    return value
