"""A page read without building its objects (spd.pipeline.raw_page) gives what the dict path gives
(page_contents + ObjectKeys): the same ids, cursors, next token and echo, and objects whose JSON
parses to the same values; any reply the dict path would read differently is left to it."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spd.pipeline.object_keys import ObjectKeys
from spd.pipeline.poller_support import page_contents
from spd.pipeline.raw_page import RawPage, RawPageReader
from spd.sim import SimSettings, Simulator
from spd.sources.object_type import ObjectType, object_id
from spd.sources.registry import object_types, resolve_object_type
from support.runtime import start_runtime, stop_runtime, truth
from support.spd import iso
from test_object_keys import objects_for

ORDERS = resolve_object_type("ordersV0.getOrders")
GOOD = [{"AmazonOrderId": f"114-{n:07d}-6880086", "LastUpdateDate": f"2026-11-20T15:46:{n:02d}Z",
         "OrderTotal": {"Amount": "10.50", "CurrencyCode": "EUR"}, "BuyerName": "Zoë 東京 \U0001f600",
         "Note": "a \"quote\", a \\ and a\nnewline", "Items": [1, 2.5, None, True]} for n in range(30)]


def first_time(ot: ObjectType, field: str) -> str:
    """The path of the type's time for `field` (the first of its fallbacks)."""
    return ot.extraction.timestamp_paths(field)[0]


def put(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc.setdefault(key, {})
    doc[path[-1]] = value


def reply(ot: ObjectType, field: str, objects: list[Any], token: Any = "tok",
          echo: Any = "2026-11-21T00:00:00Z") -> dict[str, Any]:
    """A reply of `ot` as Amazon shapes it: the objects, the next token and the echoed bound."""
    doc: dict[str, Any] = {}
    put(doc, ot.extraction.results_path, objects)
    put(doc, ot.paging.token_path, token)
    echo_path = ot.window.echo_path(field)
    if echo_path is not None:
        put(doc, echo_path, echo)
    return doc


def encodings(doc: Any) -> list[bytes]:
    """The reply as compact JSON, pretty-printed (newlines between tokens) and ASCII-escaped."""
    return [orjson.dumps(doc), json.dumps(doc, indent=2).encode(),
            json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode(),
            json.dumps(doc, ensure_ascii=False).replace(": ", ":\r\n ").encode()]


def dict_path(ot: ObjectType, field: str, raw: bytes) -> tuple[list[Any], str | None, Any]:
    """What the dict path reads in `raw`: triples, next token, echo."""
    body = orjson.loads(raw)
    objects, token = page_contents(ot, body)
    triples, _ = ObjectKeys(ot, field).triples(objects)
    echo_path = ot.window.echo_path(field)
    echo = body
    for key in echo_path or ():
        echo = echo.get(key) if isinstance(echo, dict) else None
    return triples, token, echo if echo_path else None


def assert_same(page: RawPage, expected: tuple[list[Any], str | None, Any]) -> None:
    triples, token, echo = expected
    assert [t[:2] for t in page.triples] == [t[:2] for t in triples]
    assert (page.next_token, page.echo) == (token, echo)
    for (_, _, raw_data), (_, _, data) in zip(page.triples, triples):
        line = orjson.dumps({"results": [raw_data]})
        assert b"\n" not in line and b"\r" not in line  # a message stays one line
        assert orjson.loads(line)["results"][0] == data


@pytest.mark.parametrize("ot", object_types(), ids=lambda ot: ot.name)
def test_every_type_reads_as_the_dict_path_does(ot: ObjectType) -> None:
    # Each type's own paths (Amazon's models, through the registry); odd ids and times too: a
    # page the short path cannot key is the dict path's, never keyed differently.
    for field in ot.timestamp_fields():
        reader = RawPageReader.for_type(ot, field)
        if reader is None:
            continue
        ext = ot.extraction
        time_key = first_time(ot, field)
        good: list[Any] = []
        for n in range(5):
            good.append({"x": n})
            put(good[-1], tuple(ext.id_field.split(".")), f"id-{n}")
            put(good[-1], tuple(time_key.split(".")), "2026-11-20T15:46:44Z")
        odd = [[obj] for obj in objects_for(ext.id_field, [time_key])]  # flat keys, odd values
        for objects in [good, [], *odd]:
            for raw in encodings(reply(ot, field, objects)):
                page = reader.read(raw)
                if objects is good or not objects:
                    assert page is not None, (ot.name, field, raw[:200])
                if page is not None:
                    assert_same(page, dict_path(ot, field, raw))


def test_orders_objects_keep_their_values_and_come_as_one_line_each() -> None:
    reader = RawPageReader.for_type(ORDERS, "updated")
    assert reader is not None
    for raw in encodings(reply(ORDERS, "updated", GOOD, echo="2026-11-21T00:00:00Z")):
        page = reader.read(raw)
        assert page is not None and len(page.triples) == len(GOOD)
        assert_same(page, dict_path(ORDERS, "updated", raw))
        assert page.next_token == "tok" and page.echo == "2026-11-21T00:00:00Z"


@pytest.mark.parametrize("raw", [
    b'{"payload":{"Orders":[{"AmazonOrderId":"1","LastUpdateDate":"2026-11-20T15:46:44Z","x":"\xff"}]}}',
    b'{"payload":{"Orders":[{"AmazonOrderId":"1","LastUpdateDate":"2026-11-20T15:46:44Z"}]}',
    b'{"payload":{"Orders":[{"AmazonOrderId":"1","LastUpdateDate":"2026-11-20T15:46:44Z",}]}}',
    b'{"payload":{"Orders":[{"AmazonOrderId":"1","LastUpdateDate":"2026-11-20T15:46:44Z"}]}} x',
    b'{"payload":{"Orders":{"AmazonOrderId":"1"}}}',
    b'{"payload":{"Orders":["text"]}}',
    b'{"payload":{}}',
    b'{"errors":[{"code":"InvalidInput"}]}',
    b'{"payload":{"Orders":[{"AmazonOrderId":1,"LastUpdateDate":"2026-11-20T15:46:44Z"}]}}',
    b'{"payload":{"Orders":[{"AmazonOrderId":"1","LastUpdateDate":"2026-11-20T17:46:44+02:00"}]}}',
    b'{"payload":{"Orders":[{"AmazonOrderId":"1","LastUpdateDate":"2026-11-20T15:46:44Z"}],"NextToken":5}}',
    b'[]',
    b'',
], ids=["bad-utf8", "truncated", "trailing-comma", "trailing-text", "not-a-list", "not-an-object",
        "no-results", "errors", "int-id", "offset-time", "int-token", "array", "empty"])
def test_replies_the_dict_path_reads_differently_are_left_to_it(raw: bytes) -> None:
    reader = RawPageReader.for_type(ORDERS, "updated")
    assert reader is not None and reader.read(raw) is None


def test_pollers_of_one_type_share_its_reader() -> None:
    # 10,000 pollers must not mean 10,000 sets of generated msgspec classes.
    assert RawPageReader.for_type(ORDERS, "updated") is RawPageReader.for_type(ORDERS, "updated")
    assert RawPageReader.for_type(ORDERS, "created") is not RawPageReader.for_type(ORDERS, "updated")


def test_types_keyed_by_the_general_path_have_no_reader() -> None:
    # Flattened results (financial events) and times inside lists are keyed object by object.
    assert RawPageReader.for_type(resolve_object_type("financesV0.listFinancialEvents"), "created") is None
    vendor = resolve_object_type("vendorOrders.getPurchaseOrders")
    assert "." in first_time(vendor, "updated")
    assert RawPageReader.for_type(vendor, "updated") is not None  # a nested time
    listings = resolve_object_type("listingsItems_2021-08-01.searchListingsItems")
    assert ".0." in first_time(listings, "updated")
    assert RawPageReader.for_type(listings, "updated") is None  # a list index


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(extras=st.lists(st.dictionaries(st.text(max_size=10), json_values, max_size=5), max_size=8),
       pretty=st.booleans(), token=st.none() | st.text(max_size=40))
def test_any_order_content_reads_as_the_dict_path_does(extras: list[dict[str, Any]], pretty: bool,
                                                       token: str | None) -> None:
    reader = RawPageReader.for_type(ORDERS, "updated")
    assert reader is not None
    objects = [{**extra, "AmazonOrderId": f"id-{n}", "LastUpdateDate": "2026-11-20T15:46:44Z"}
               for n, extra in enumerate(extras)]
    doc = reply(ORDERS, "updated", objects, token=token)
    raw = json.dumps(doc, indent=1).encode() if pretty else orjson.dumps(doc)
    page = reader.read(raw)
    assert page is not None
    assert_same(page, dict_path(ORDERS, "updated", raw))


# --- through the client, against the simulator over loopback ---

NOW = datetime.now(timezone.utc).replace(microsecond=0)
START = NOW - timedelta(days=18)


async def emitted_orders(tmp_path: Path, sim: Simulator) -> tuple[dict[str, Any], datetime]:
    """What a getOrders poller emits in page mode from START on, by id; and its watermark."""
    tmp_path.mkdir()
    runtime, recorder = await start_runtime(tmp_path, sim.url, {"p": {
        "object": "ordersV0.getOrders", "timestamp_field": "updated", "emit": "page",
        "start_time": iso(START)}})
    try:
        result = await asyncio.wait_for(runtime.pollers["p"].run(), 120)
        state = await runtime.store.get("p")
    finally:
        await stop_runtime(runtime)
    assert result.caught_up and state is not None
    return {object_id(ORDERS, o): o for m in recorder.messages for o in m["results"]}, state.watermark


async def test_emitted_pages_hold_what_the_dict_path_emits(tmp_path: Path, monkeypatch) -> None:
    read = RawPageReader.read
    outcomes: list[bool] = []

    def counting(self: RawPageReader, raw: bytes) -> RawPage | None:
        page = read(self, raw)
        outcomes.append(page is not None)
        return page

    settings_ = SimSettings(orders=450, start=NOW - timedelta(days=20), end=NOW, live=False,
                            rate_limit=False)
    async with Simulator(settings_) as sim:
        with monkeypatch.context() as patched:
            patched.setattr(RawPageReader, "read", counting)
            raw, watermark = await emitted_orders(tmp_path / "raw", sim)
        with monkeypatch.context() as patched:
            patched.setattr(RawPageReader, "for_type", classmethod(lambda cls, ot, field: None))
            parsed, _ = await emitted_orders(tmp_path / "parsed", sim)
        rows = await truth(sim.url, "ordersV0.getOrders", "updated", START, watermark, "ATVPDKIKX0DER")
    assert len(outcomes) > 2 and all(outcomes)  # every page was read raw
    assert raw == parsed and set(raw) == {object_id(ORDERS, row["data"]) for row in rows}
