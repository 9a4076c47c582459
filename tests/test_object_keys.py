"""ObjectKeys (a page's ids and cursors at once) gives exactly what object_id and object_cursor
give one by one, and counts the same fallbacks, for every object type and odd objects."""

from __future__ import annotations

from typing import Any

import pytest

from spd.pipeline.object_keys import ObjectKeys
from spd.pipeline.poller_support import count_fallbacks
from spd.sources.object_type import object_cursor, object_id
from spd.sources.registry import object_types, resolve_object_type

TIMES: list[Any] = ["2026-11-20T15:46:44Z", "2026-11-20T15:46:44.120Z", "2026-11-20T17:46:44+02:00",
                    "2026-11-20T15:46:44", " 2026-11-20T15:46:44Z ", "2026-1X-20T15:46:44Z",
                    "yesterday", "", None, 1764000000, {"at": "2026-11-20T15:46:44Z"}]
IDS: list[Any] = ["114-1281784-6880086", "", 42, None, ["a"], {"id": "x"}]


def objects_for(id_key: str | None, time_keys: list[str]) -> list[Any]:
    """Every combination of odd ids and times under the type's own keys, and non-objects."""
    out: list[Any] = []
    for obj_id in IDS:
        for time in TIMES:
            obj: dict[str, Any] = {"other": 1}
            if id_key is not None and obj_id is not None:
                obj[id_key] = obj_id
            for key in time_keys:
                if time is not None:
                    obj[key] = time
            out.append(obj)
    if len(time_keys) > 1:  # only a fallback field holds a time
        out.append({id_key or "id": "x", time_keys[1]: "2026-11-20T15:46:44Z"})
    return [*out, {}, [1, 2], "text", None]


@pytest.mark.parametrize("ot", object_types(), ids=lambda ot: ot.name)
def test_same_as_object_id_and_object_cursor(ot) -> None:
    ext = ot.extraction
    for field in ot.timestamp_fields() or ["updated"]:
        spec = ext.timestamp(field)
        paths = [spec] if isinstance(spec, str) else list(spec or ())
        top = [p for p in paths if "." not in p]
        objects = objects_for(ext.id_field if ext.id_field and "." not in ext.id_field else None, top)
        triples, fallbacks = ObjectKeys(ot, field).triples(objects)
        expected = [(object_id(ot, o), object_cursor(ot, o, field), o) for o in objects]
        assert triples == expected
        assert fallbacks == count_fallbacks(ot, expected, field)


def test_common_objects_skip_the_general_path(monkeypatch) -> None:
    # An order with a string id and a canonical time needs no path walk, no normalizing.
    import spd.pipeline.object_keys as keys

    def refuse(*args: Any) -> Any:
        raise AssertionError("general path taken")

    monkeypatch.setattr(keys, "object_id", refuse)
    monkeypatch.setattr(keys, "object_cursor", refuse)
    ot = resolve_object_type("ordersV0.getOrders")
    orders = [{"AmazonOrderId": f"114-{i}", "LastUpdateDate": "2026-11-20T15:46:44Z"} for i in range(3)]
    triples, fallbacks = ObjectKeys(ot, "updated").triples(orders)
    assert [t[:2] for t in triples] == [(f"114-{i}", "2026-11-20T15:46:44Z") for i in range(3)]
    assert fallbacks == {}
