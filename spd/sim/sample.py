"""Seeded sample objects shaped by a catalog JSON Schema (the simulator's generic types)."""

from __future__ import annotations

import random
from typing import Any

MAX_DEPTH = 4
MAX_PROPERTIES = 16
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
_CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CAD")


def resolve(schema: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """Follows $ref (and merges allOf) into one plain schema dict."""
    for _ in range(20):
        if not (isinstance(schema, dict) and "$ref" in schema):
            break
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    if not isinstance(schema, dict):
        return {}
    if "allOf" in schema:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        props: dict[str, Any] = dict(schema.get("properties") or {})
        for part in schema["allOf"]:
            part = resolve(part, defs)
            props.update(part.get("properties") or {})
            merged.setdefault("type", part.get("type"))
        merged["properties"] = props
        return merged
    return schema


def sample(schema: Any, defs: dict[str, Any], rng: random.Random, name: str = "",
           depth: int = 0) -> Any:
    """A plausible value for `schema`: enums pick a member, objects fill their properties,
    arrays hold one element, strings follow their format and name."""
    schema = resolve(schema, defs)
    if schema.get("enum"):
        return rng.choice(schema["enum"])
    kind = schema.get("type") or ("object" if "properties" in schema else "string")
    if kind == "object":
        if depth >= MAX_DEPTH:
            return {}
        props = list((schema.get("properties") or {}).items())[:MAX_PROPERTIES]
        return {key: sample(sub, defs, rng, key, depth + 1) for key, sub in props}
    if kind == "array":
        if depth >= MAX_DEPTH:
            return []
        return [sample(schema.get("items") or {}, defs, rng, name, depth + 1)]
    if kind == "integer":
        return rng.randint(1, 100)
    if kind == "number":
        return round(rng.uniform(1, 250), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    return _string(schema, rng, name)


def _string(schema: dict[str, Any], rng: random.Random, name: str) -> str:
    fmt, lower = schema.get("format"), name.lower()
    if fmt == "date-time" or lower.endswith(("date", "time", "datetime")):
        return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
    if fmt == "date":
        return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if "currency" in lower:
        return rng.choice(_CURRENCIES)
    if "amount" in lower or "price" in lower:
        return f"{rng.uniform(1, 250):.2f}"
    if "marketplace" in lower:
        return "ATVPDKIKX0DER"
    if lower.endswith("asin"):
        return "B0" + "".join(rng.choices(_ALNUM, k=8))
    return "".join(rng.choices(_ALNUM, k=10))


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """Sets a dotted path ("a.0.b"), creating dicts and one-element lists on the way."""
    keys = path.split(".")
    node: Any = obj
    for key, nxt in zip(keys, keys[1:]):
        child = node[int(key)] if isinstance(node, list) else node.get(key)
        if not isinstance(child, (dict, list)) or (isinstance(child, list) and not child):
            child = [{}] if nxt.isdigit() else {}
            if isinstance(node, list):
                node[int(key)] = child
            else:
                node[key] = child
        if isinstance(child, list) and not isinstance(child[0], dict):
            child[0] = {}
        node = child
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
