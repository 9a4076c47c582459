"""ObjectKeys (a page's ids and cursors at once) gives exactly what object_id and object_cursor
give one by one, and counts the same fallbacks, for every object type and odd objects."""

from __future__ import annotations

from typing import Any

import pytest

from spd.pipeline.object_keys import ObjectKeys, all_canonical
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


def good_page(id_key: str, time_key: str, n: int = 5) -> list[Any]:
    return [{id_key: f"114-{i}", time_key: f"2026-11-2{i % 10}T15:46:4{i % 10}Z", "n": i}
            for i in range(n)]


ODD: list[Any] = [  # each alone takes a page off the whole-page path
    {"AmazonOrderId": "x", "LastUpdateDate": "2026-11-20T15:46:44.120Z"},
    {"AmazonOrderId": "x", "LastUpdateDate": "2026-11-20T17:46:44+02:00"},
    {"AmazonOrderId": "x", "LastUpdateDate": "２０２６-11-20T15:46:44Z"},  # \d, not ASCII
    {"AmazonOrderId": "x", "LastUpdateDate": "2026-11-20T15:46:44Z\n2026-11-20T15:46:44Z"},
    {"AmazonOrderId": "x", "LastUpdateDate": ""},
    {"AmazonOrderId": "x", "LastUpdateDate": None},
    {"AmazonOrderId": "x"},
    {"AmazonOrderId": 42, "LastUpdateDate": "2026-11-20T15:46:44Z"},
    {"LastUpdateDate": "2026-11-20T15:46:44Z"},
    ["AmazonOrderId", "LastUpdateDate"],
    None,
]


@pytest.mark.parametrize("odd", ODD, ids=repr)
@pytest.mark.parametrize("at", [0, 2, 5])
def test_a_page_with_one_odd_object_is_what_each_object_gives(odd: Any, at: int) -> None:
    # The page as a whole is refused; the per-object path gives exactly the general functions'.
    ot = resolve_object_type("ordersV0.getOrders")
    keys = ObjectKeys(ot, "updated")
    objects = good_page("AmazonOrderId", "LastUpdateDate")
    objects.insert(at, odd)
    assert keys.whole_page(objects) is None
    triples, fallbacks = keys.triples(objects)
    expected = [(object_id(ot, o), object_cursor(ot, o, "updated"), o) for o in objects]
    assert triples == expected
    assert fallbacks == count_fallbacks(ot, expected, "updated")


@pytest.mark.parametrize("ot", object_types(), ids=lambda ot: ot.name)
def test_whole_pages_give_what_each_object_gives(ot) -> None:
    ext = ot.extraction
    for field in ot.timestamp_fields() or ["updated"]:
        keys = ObjectKeys(ot, field)
        if keys.id_key is None or keys.time_key is None:
            continue
        objects = good_page(keys.id_key, keys.time_key)
        triples = keys.whole_page(objects)
        assert triples == [(object_id(ot, o), object_cursor(ot, o, field), o) for o in objects]
        assert keys.triples(objects) == (triples, {})
        assert ext.id_field is not None


def test_all_canonical() -> None:
    assert all_canonical(["2026-11-20T15:46:44Z", "1999-01-02T03:04:05Z"])
    assert all_canonical([])
    assert not all_canonical(["2026-11-20T15:46:44Z", "2026-11-20T15:46:44"])
    assert not all_canonical(["2026-11-20T15:46:44Z", "2026-11-20 15:46:44Z"])
    assert not all_canonical(["2026-11-20T15:46:44Z", "2026-11-20T15:46:4xZ"])
    assert not all_canonical(["２０２６-11-20T15:46:44Z"])  # non-ASCII digits: each on its own
    assert not all_canonical(["é" * 20])
    # A newline inside one cursor cannot make two cursors look like three canonical ones.
    assert not all_canonical(["2026-11-20T15:46:44Z\n2026-11-20T15:46:44Z", "", "2026-11-20T15:46:44Z"])
    assert not all_canonical(["2026-11-20T15:46:44Z\n2026-11-20T15:46:44Z", "2026-11-20T15:46:44Z"])

