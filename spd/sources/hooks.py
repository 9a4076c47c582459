"""Flatten hooks: result objects that hold many lists become one emitted object per element.

Financial events (financesV0.listFinancialEvents*) come as `payload.FinancialEvents`, an object
with one list per event type (`ShipmentEventList`, `RefundEventList`, ...). spd emits one event
per object with its type added as `eventType` ("ShipmentEvent"); the id is the content hash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

EVENT_TYPE_KEY = "eventType"


def flatten_financial_events(value: Any) -> list[dict[str, Any]]:
    """`FinancialEvents` -> [{**event, "eventType": "ShipmentEvent"}, ...] in list order."""
    if not isinstance(value, dict):
        return []
    out: list[dict[str, Any]] = []
    for list_name, events in value.items():
        if not isinstance(events, list):
            continue
        event_type = list_name[: -len("List")] if list_name.endswith("List") else list_name
        out.extend({**event, EVENT_TYPE_KEY: event_type} for event in events if isinstance(event, dict))
    return out


def financial_events_schema(container: dict[str, Any], resolve: Callable[[Any], dict[str, Any]]
                            ) -> dict[str, Any]:
    """The schema of one flattened event: anyOf the event schemas, each with `eventType`."""
    variants = []
    for list_name, list_schema in sorted((resolve(container).get("properties") or {}).items()):
        items = resolve(list_schema).get("items")
        if not isinstance(items, dict):
            continue
        event_type = list_name[: -len("List")] if list_name.endswith("List") else list_name
        variants.append({"allOf": [items, {
            "type": "object", "required": [EVENT_TYPE_KEY],
            "properties": {EVENT_TYPE_KEY: {"type": "string", "const": event_type}}}]})
    return {"anyOf": variants}


FLATTENERS: dict[str, Callable[[Any], list[dict[str, Any]]]] = {
    "financial_events": flatten_financial_events,
}
SCHEMAS: dict[str, Callable[[dict[str, Any], Callable[[Any], dict[str, Any]]], dict[str, Any]]] = {
    "financial_events": financial_events_schema,
}


def flatten(name: str | None, value: Any) -> Any:
    """Applies the named hook (None: the value is already the result list)."""
    return value if name is None else FLATTENERS[name](value)
