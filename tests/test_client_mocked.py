"""SpClient unit tests with aioresponses (no sockets): error mapping and edge cases."""

from __future__ import annotations

import re
from types import SimpleNamespace

import aiohttp
import pytest
from aioresponses import aioresponses
from pydantic import SecretStr

from spd.client.http import SpClient
from spd.client.policy import RetryPolicy
from spd.core.errors import ApiError, AuthError

BASE = "https://sellingpartnerapi-na.amazon.com"
TOKEN_URL = "https://api.amazon.com/auth/o2/token"
ORDERS = re.compile(r"^https://sellingpartnerapi-na\.amazon\.com/orders/v0/orders.*$")
REPORTS = f"{BASE}/reports/2021-06-30/reports"

GET_ORDERS = SimpleNamespace(api="ordersV0", id="getOrders", operation_id="getOrders",
                             method="GET", path="/orders/v0/orders", params=(), rate=50.0,
                             burst=50, grantless_scope=None, safe=True)  # fmt: skip
CREATE_REPORT = SimpleNamespace(api="reports", id="createReport", operation_id="createReport",
                                method="POST", path="/reports/2021-06-30/reports", params=(),
                                rate=50.0, burst=50, grantless_scope=None, safe=False)  # fmt: skip


def account():
    return SimpleNamespace(
        base_url=BASE,
        rate_limits={},
        lwa=SimpleNamespace(client_id="cid", client_secret=SecretStr("cs"),
                            refresh_token=SecretStr("rt"), token_url=TOKEN_URL),  # fmt: skip
    )


@pytest.fixture
async def client():
    async with SpClient({"acme": account()}, None, retry=RetryPolicy(backoff_base=0.001, max_attempts=3)) as c:
        yield c


def token_ok(m: aioresponses) -> None:
    m.post(TOKEN_URL, payload={"access_token": "Atza|t", "expires_in": 3600}, repeat=True)


async def test_success_and_request_shape(client):
    with aioresponses() as m:
        token_ok(m)
        m.get(ORDERS, payload={"payload": {"Orders": []}}, headers={"x-amzn-RequestId": "r1"})
        resp = await client.call("acme", GET_ORDERS, {"MarketplaceIds": ["A", "B"]})
        assert resp.status == 200 and resp.body == {"payload": {"Orders": []}}
        assert resp.request_id == "r1"
        (key, calls), = [(k, v) for k, v in m.requests.items() if k[0] == "GET"]
        assert key[1].path == "/orders/v0/orders" and key[1].query["MarketplaceIds"] == "A,B"
        assert calls[0].kwargs["headers"]["x-amz-access-token"] == "Atza|t"


async def test_lwa_non_json_5xx_is_retriable(client):
    with aioresponses() as m:
        m.post(TOKEN_URL, status=502, body="<html>bad gateway</html>", repeat=True)
        with pytest.raises(AuthError) as info:
            await client.call("acme", GET_ORDERS)
    assert info.value.retriable
    assert str(info.value) == "account acme: LWA token endpoint answered HTTP 502"


async def test_lwa_unknown_error_code_is_reported(client):
    with aioresponses() as m:
        m.post(TOKEN_URL, status=400, payload={"error": "invalid_request",
                                               "error_description": "Missing parameter"})  # fmt: skip
        with pytest.raises(AuthError, match=r"HTTP 400 invalid_request: Missing parameter\)$"):
            await client.call("acme", GET_ORDERS)


async def test_lwa_connection_error_is_retriable(client):
    with aioresponses() as m:
        m.post(TOKEN_URL, exception=aiohttp.ClientConnectionError("boom"), repeat=True)
        with pytest.raises(AuthError, match="unreachable") as info:
            await client.call("acme", GET_ORDERS)
    assert info.value.retriable


async def test_connect_failure_is_retried_even_for_post(client):
    # The request never left, so a POST may be retried safely.
    refused = aiohttp.ClientConnectorError(
        SimpleNamespace(ssl=False, host="h", port=443), OSError(111, "refused")
    )
    with aioresponses() as m:
        token_ok(m)
        m.post(REPORTS, exception=refused)
        m.post(REPORTS, payload={"reportId": "1"}, status=202)
        resp = await client.call("acme", CREATE_REPORT, body={"reportType": "X"})
    assert resp.status == 202 and resp.body == {"reportId": "1"}


async def test_disconnect_after_sending_post_is_not_retried(client):
    with aioresponses() as m:
        token_ok(m)
        m.post(REPORTS, exception=aiohttp.ServerDisconnectedError())
        m.post(REPORTS, payload={"reportId": "1"}, status=202)
        with pytest.raises(ApiError, match="reports.createReport: request failed: ServerDisconnected"):
            await client.call("acme", CREATE_REPORT, body={})


async def test_safe_get_exhausts_connection_retries(client):
    with aioresponses() as m:
        token_ok(m)
        m.get(ORDERS, exception=aiohttp.ServerDisconnectedError(), repeat=True)
        with pytest.raises(ApiError) as info:
            await client.call("acme", GET_ORDERS)
    assert info.value.retriable
    assert "after 3 attempts" in str(info.value)


async def test_retry_after_http_date(client):
    with aioresponses() as m:
        token_ok(m)
        m.get(ORDERS, status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
              payload={"errors": [{"code": "QuotaExceeded", "message": "x"}]})  # fmt: skip
        m.get(ORDERS, payload={"ok": True})
        resp = await client.call("acme", GET_ORDERS)  # a past date means: retry now
    assert resp.body == {"ok": True}
    assert client.bucket_stats()["acme"]["ordersV0.getOrders"]["throttled"] == 1


async def test_empty_body(client):
    with aioresponses() as m:
        token_ok(m)
        m.get(ORDERS, status=204, body=b"")
        resp = await client.call("acme", GET_ORDERS)
    assert resp.status == 204 and resp.body is None


def test_start_is_required():
    c = SpClient({"acme": account()}, None)
    with pytest.raises(RuntimeError, match="before start"):
        _ = c.session
