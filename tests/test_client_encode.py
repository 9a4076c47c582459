"""Wire encoding of parameters and decoding of responses (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from types import SimpleNamespace

import orjson
import pytest

from spd.client import encode as enc
from spd.core.errors import UsageError


@dataclass(frozen=True)
class P:
    name: str
    location: str
    type: str | None = None
    collection_format: str | None = None
    items_type: str | None = None
    greedy: bool = False


def op(path: str, *params: P, api: str = "testApi", op_id: str = "testOp"):
    return SimpleNamespace(api=api, id=op_id, path=path, params=params, method="GET")


def test_datetimes_are_utc_with_z():
    assert enc.format_value(datetime(2025, 3, 1, 10, 0, tzinfo=UTC)) == "2025-03-01T10:00:00Z"
    plus2 = timezone(timedelta(hours=2))
    assert enc.format_value(datetime(2025, 3, 1, 12, 0, tzinfo=plus2)) == "2025-03-01T10:00:00Z"
    assert enc.format_value(datetime(2025, 3, 1, 10, 0)) == "2025-03-01T10:00:00Z"  # naive = UTC
    ms = datetime(2025, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert enc.format_value(ms) == "2025-03-01T10:00:00.123Z"
    us = datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert enc.format_value(us) == "2025-03-01T10:00:00.123456Z"  # never rounded
    assert enc.format_value(date(2025, 3, 1)) == "2025-03-01"


def test_scalars():
    assert enc.format_value(True) == "true"
    assert enc.format_value(False) == "false"
    assert enc.format_value(100) == "100"
    assert enc.format_value("a b") == "a b"


def test_query_arrays_csv_by_default_and_repeated_for_multi():
    q = enc.encode_query(
        [
            ("MarketplaceIds", ["ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"], None),
            ("statuses", ["A", "B"], "multi"),
            ("skipped", None, None),
            ("empty", [], None),
            ("flag", False, None),
        ]
    )
    assert q == "MarketplaceIds=ATVPDKIKX0DER%2CA2EUQ1WTGCTBG2&statuses=A&statuses=B&flag=false"


def test_query_reserved_characters_are_escaped():
    q = enc.encode_query(
        [("NextToken", "ab+/=c d", None), ("after", datetime(2025, 1, 1, tzinfo=UTC), None)]
    )
    assert q == "NextToken=ab%2B%2F%3Dc%20d&after=2025-01-01T00%3A00%3A00Z"


@pytest.mark.parametrize("text", [
    "".join(map(chr, range(128))),  # every ASCII character, the unreserved ones among them
    "+/+/JEVWbyb5tV9u3B1teyJpYXQiOjE3OTYwNjM0MjIuMTE5OTk4NSwibiI6MTAw==",  # a next token
    "plain-token_1.2~", "", "%41", "ü ä/é", "日本+語", "a\u0000b\x7f", "🛒=1",
])
def test_quote_unreserved_is_urllib_quote_with_unreserved_safe(text):
    from urllib.parse import quote

    assert enc.quote_unreserved(text) == quote(text, safe="-_.~")


def test_query_other_collection_formats():
    q = enc.encode_query([("a", ["x", "y"], "pipes"), ("b", ("x", "y"), "csv")])
    assert q == "a=x%7Cy&b=x%2Cy"


def test_path_params_are_percent_encoded():
    o = op("/orders/v0/orders/{orderId}/items", P("orderId", "path"))
    r = enc.encode_operation(o, {"orderId": "902-1/2 3?x"}, None)
    assert r.path == "/orders/v0/orders/902-1%2F2%203%3Fx/items"
    assert r.query == ""


def test_greedy_path_param_keeps_slashes():
    o = op("/fba/{key}", P("key", "path", greedy=True))
    assert enc.encode_operation(o, {"key": "a/b c"}, None).path == "/fba/a/b%20c"


def test_missing_path_param_is_a_usage_error():
    o = op("/orders/v0/orders/{orderId}", P("orderId", "path"))
    with pytest.raises(UsageError, match="testApi.testOp: missing path parameter orderId"):
        enc.encode_operation(o, {}, None)
    with pytest.raises(UsageError):
        enc.encode_operation(o, {"orderId": None}, None)


def test_params_split_by_location():
    o = op(
        "/x/{id}",
        P("id", "path"),
        P("ids", "query", type="array", collection_format="multi"),
        P("x-amzn-idempotency-token", "header"),
        P("body", "body"),
    )
    r = enc.encode_operation(
        o,
        {"id": 7, "ids": [1, 2], "x-amzn-idempotency-token": "k", "unknown": "u", "body": {"a": 1}},
        None,
    )
    assert r.path == "/x/7"
    assert r.query == "ids=1&ids=2&unknown=u"
    assert r.headers == {"x-amzn-idempotency-token": "k"}
    assert orjson.loads(r.body) == {"a": 1}


def test_explicit_body_wins_and_datetimes_in_bodies_are_z():
    o = op("/x")
    r = enc.encode_operation(o, None, {"at": datetime(2025, 1, 1, tzinfo=UTC)})
    assert r.body == b'{"at":"2025-01-01T00:00:00Z"}'
    assert enc.encode_body(None) is None
    assert enc.encode_body('{"a":1}') == b'{"a":1}'
    assert enc.encode_body(b"raw") == b"raw"


def test_raw_query_uses_matched_operation_collection_format():
    o = op("/x", P("ids", "query", collection_format="multi"))
    assert enc.encode_raw_query({"ids": ["a", "b"]}, o) == "ids=a&ids=b"
    assert enc.encode_raw_query({"ids": ["a", "b"]}, None) == "ids=a%2Cb"
    assert enc.encode_raw_query(None, None) == ""


def test_parse_body():
    assert enc.parse_body(b"", "application/json", strict=True) is None
    assert enc.parse_body(b'{"a":1}', "application/json", strict=True) == {"a": 1}
    assert enc.parse_body(b'{"a":1}', "text/plain", strict=True) == {"a": 1}  # sniffed
    assert enc.parse_body(b"hello", "text/plain", strict=True) == "hello"
    with pytest.raises(ValueError, match="not valid JSON"):
        enc.parse_body(b'{"a":', "application/json", strict=True)
    assert enc.parse_body(b'{"a":', "application/json", strict=False) == '{"a":'


EXPIRED = {
    "errors": [
        {
            "code": "Unauthorized",
            "message": "Access to requested resource is denied.",
            "details": "The access token you provided has expired.",
        }
    ]
}


def test_token_rejected():
    assert enc.token_rejected(403, EXPIRED)
    assert enc.token_rejected(
        403, {"errors": [{"code": "Unauthorized", "message": "The access token you provided has expired."}]}
    )
    assert enc.token_rejected(
        403, {"errors": [{"code": "InvalidInput", "message": "x", "details": "Access token is invalid"}]}
    )
    assert enc.token_rejected(401, None)
    assert not enc.token_rejected(
        403, {"errors": [{"code": "Unauthorized", "message": "Access to requested resource is denied."}]}
    )
    assert not enc.token_rejected(400, EXPIRED)


def test_retry_after():
    assert enc.retry_after({"Retry-After": "3"}) == 3.0
    assert enc.retry_after({"retry-after": "0.5"}) == 0.5
    assert enc.retry_after({}) is None
    assert enc.retry_after({"Retry-After": "soon"}) is None
    future = (datetime.now(UTC) + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 25 <= enc.retry_after({"Retry-After": future}) <= 31


def test_header_rate():
    assert enc.header_rate("0.0167") == 0.0167
    assert enc.header_rate("10") == 10.0
    assert enc.header_rate(None) is None
    assert enc.header_rate("nope") is None
    assert enc.header_rate("0") is None


def test_api_error_message_and_errors():
    body = {"errors": [{"code": "InvalidInput", "message": "Bad CreatedAfter", "details": ""}]}
    resp = SimpleNamespace(status=400, body=body, request_id="rid-1")
    err = enc.api_error("ordersV0.getOrders", resp)
    assert str(err) == "ordersV0.getOrders: HTTP 400 InvalidInput: Bad CreatedAfter"
    assert err.errors == body["errors"]
    assert err.status == 400 and err.request_id == "rid-1" and not err.retriable
    resp = SimpleNamespace(status=502, body="Bad\ngateway", request_id=None)
    text = enc.api_error("GET /x", resp, attempts=3, retriable=True)
    assert str(text) == "GET /x: HTTP 502: Bad gateway (gave up after 3 attempts)"
    assert text.retriable
