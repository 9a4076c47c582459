"""Emitted message JSON: exact keys, key order, UTC `Z` timestamps, raw data untouched."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from spd.core.times import rfc3339
from spd.pipeline.messages import Message, build_messages, normalize_cursor

UTC = timezone.utc
W0 = datetime(2025, 3, 1, tzinfo=UTC)
W1 = datetime(2025, 3, 1, 1, tzinfo=UTC)
EMITTED = datetime(2025, 3, 1, 2, 3, 4, 567000, tzinfo=UTC)
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
ORDER = {"AmazonOrderId": "902-1845936-5435065", "OrderTotal": {"Amount": "12.50"}, "Ünïcode": "✓"}


def _build(emit: str, objects, **kw) -> list[Message]:
    args = dict(poller="orders", account="acme-us", object_type="ordersV0.getOrders", emit=emit,
                window=(W0, W1), page=3, objects=objects, emitted_at=EMITTED)
    args.update(kw)
    return build_messages(**args)


def _parse(body: bytes) -> dict:
    # stdlib json keeps the order keys appear in, so key order is checked on the bytes.
    return json.loads(body)


def test_individually_is_one_message_per_object_with_exact_shape() -> None:
    msgs = _build("individually", [
        ("902-1845936-5435065", "2025-03-01T10:00:00Z", ORDER),
        ("902-0000000-0000001", "2025-03-01T11:00:00.250Z", {"AmazonOrderId": "902-0000000-0000001"}),
    ])
    assert len(msgs) == 2
    first = _parse(msgs[0].body)
    assert list(first) == ["poller", "account", "object_type", "id", "cursor", "emitted_at", "data"]
    assert first == {
        "poller": "orders", "account": "acme-us", "object_type": "ordersV0.getOrders",
        "id": "902-1845936-5435065", "cursor": "2025-03-01T10:00:00Z",
        "emitted_at": "2025-03-01T02:03:04.567Z", "data": ORDER,
    }
    assert _parse(msgs[1].body)["cursor"] == "2025-03-01T11:00:00.250Z"
    m = msgs[0]
    assert (m.key, m.poller, m.account, m.object_type) == (
        "902-1845936-5435065", "orders", "acme-us", "ordersV0.getOrders")
    assert not m.body.endswith(b"\n") and b"\n" not in m.body
    assert orjson.loads(m.body)["data"]["Ünïcode"] == "✓"


def test_page_is_one_message_with_raw_results() -> None:
    objects = [(str(i), None, {"n": i}) for i in range(100)]
    (msg,) = _build("page", objects)
    body = _parse(msg.body)
    assert list(body) == ["poller", "account", "object_type", "window", "page", "emitted_at", "results"]
    assert body["window"] == ["2025-03-01T00:00:00Z", "2025-03-01T01:00:00Z"]
    assert body["page"] == 3
    assert body["results"] == [{"n": i} for i in range(100)]
    assert msg.key == "orders"


def test_a_page_of_200_objects_is_two_messages_of_at_most_100() -> None:
    objects = [(str(i), None, {"n": i}) for i in range(200)]
    messages = _build("page", objects)
    bodies = [orjson.loads(m.body) for m in messages]
    assert [len(b["results"]) for b in bodies] == [100, 100]
    assert [r["n"] for b in bodies for r in b["results"]] == list(range(200))
    assert {b["page"] for b in bodies} == {3}


def test_empty_page_gives_no_message() -> None:
    assert _build("page", []) == []
    assert _build("individually", []) == []


def test_cursors_are_normalized_to_utc_z() -> None:
    msgs = _build("individually", [
        ("a", "2025-03-01T03:00:00-07:00", {}),
        ("b", None, {}),
        ("c", "not a timestamp", {}),
        ("d", "2025-03-01T10:00:00.000Z", {}),
    ])
    cursors = [_parse(m.body)["cursor"] for m in msgs]
    assert cursors == ["2025-03-01T10:00:00Z", None, "not a timestamp", "2025-03-01T10:00:00Z"]


def test_default_emitted_at_is_now_in_utc_with_z() -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    (msg,) = build_messages(poller="p", account="a", object_type="t", emit="page",
                            window=(W0, W1), page=1, objects=[("1", None, {})])
    stamp = _parse(msg.body)["emitted_at"]
    assert STAMP.match(stamp), stamp
    assert "+00:00" not in msg.body.decode()
    assert before <= datetime.fromisoformat(stamp) <= datetime.now(UTC)


def test_window_with_offsets_and_fractions() -> None:
    plus1 = timezone(timedelta(hours=1))
    (msg,) = _build("page", [("1", None, {})],
                    window=(datetime(2025, 3, 1, 1, tzinfo=plus1),
                            datetime(2025, 3, 1, 1, 0, 0, 123456, tzinfo=UTC)))
    assert _parse(msg.body)["window"] == ["2025-03-01T00:00:00Z", "2025-03-01T01:00:00.123456Z"]


def test_datetimes_inside_data_also_use_z() -> None:
    (msg,) = _build("individually", [("a", None, {"at": datetime(2025, 1, 1, tzinfo=UTC)})])
    assert _parse(msg.body)["data"] == {"at": "2025-01-01T00:00:00Z"}


def test_unknown_emit_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="individually"):
        _build("batch", [])


@pytest.mark.parametrize("dt,text", [
    (datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), "2025-01-02T03:04:05Z"),
    (datetime(2025, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), "2025-01-02T03:04:05.120Z"),
    (datetime(2025, 1, 2, 3, 4, 5, 7, tzinfo=UTC), "2025-01-02T03:04:05.000007Z"),
    (datetime(2025, 1, 2, 3, 4, 5), "2025-01-02T03:04:05Z"),
])
def test_rfc3339(dt: datetime, text: str) -> None:
    assert rfc3339(dt) == text


def test_normalize_cursor_accepts_datetimes() -> None:
    assert normalize_cursor(datetime(2025, 1, 1, tzinfo=UTC)) == "2025-01-01T00:00:00Z"


def test_every_message_of_a_page_shares_one_emitted_at_of_now() -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    objects = [(str(i), W0, {"n": i}) for i in range(100)]
    messages = build_messages(poller="p", account="a", object_type="t", emit="individually",
                              window=(W0, W1), page=1, objects=objects)
    stamps = {_parse(m.body)["emitted_at"] for m in messages}
    assert len(messages) == 100 and len(stamps) == 1
    assert before <= datetime.fromisoformat(stamps.pop()) <= datetime.now(UTC)
