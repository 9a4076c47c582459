"""SpClient against a tiny fake SP-API and LWA token endpoint on loopback (real HTTP)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr
from structlog.testing import capture_logs

from spd.client.http import SpClient
from spd.client.policy import RetryPolicy
from spd.core.errors import ApiError, AuthError, UsageError
from spd.sim.limits import TokenBucket as SimBucket
from support.quota import record_grants

CLIENT_SECRET = "amzn1.oa2-cs.v1.TOPSECRETclientsecret"
REFRESH_TOKEN = "Atzr|TOPSECRETrefreshtoken"


@dataclass(frozen=True)
class Param:
    name: str
    location: str
    required: bool = False
    type: str | None = None
    collection_format: str | None = None
    items_type: str | None = None


@dataclass(frozen=True)
class Op:
    api: str
    id: str
    method: str
    path: str
    params: tuple[Param, ...] = ()
    has_body: bool = False
    rate: float | None = None
    burst: int | None = None
    grantless_scope: str | None = None
    restricted: bool = False
    safe: bool = False

    @property
    def operation_id(self) -> str:
        return self.id


GET_ORDERS = Op(
    "ordersV0", "getOrders", "GET", "/orders/v0/orders",
    (Param("MarketplaceIds", "query", True, "array"),
     Param("OrderStatuses", "query", False, "array"),
     Param("CreatedAfter", "query", False, "string"),
     Param("Flag", "query", False, "boolean")),
    rate=50.0, burst=50,
)  # fmt: skip
GET_ORDER = Op(
    "ordersV0", "getOrder", "GET", "/orders/v0/orders/{orderId}",
    (Param("orderId", "path", True, "string"),), rate=50.0, burst=50,
)  # fmt: skip
MULTI = Op(
    "fbaInventory", "getThings", "GET", "/things",
    (Param("ids", "query", False, "array", "multi"), Param("csv", "query", False, "array")),
    rate=50.0, burst=50,
)  # fmt: skip
CREATE_REPORT = Op(
    "reports", "createReport", "POST", "/reports/2021-06-30/reports", has_body=True,
    rate=50.0, burst=50,
)  # fmt: skip
SAFE_POST = Op("pricing", "getBatch", "POST", "/batches/pricing", has_body=True,
               rate=50.0, burst=50, safe=True)  # fmt: skip
SLOW = Op("ordersV0", "slow", "GET", "/slow", rate=20.0, burst=1)
GRANTLESS = Op("notifications", "getDestinations", "GET", "/notifications/v1/destinations",
               rate=50.0, burst=50, grantless_scope="sellingpartnerapi::notifications")  # fmt: skip
OPS = [GET_ORDERS, GET_ORDER, MULTI, CREATE_REPORT, SAFE_POST, SLOW, GRANTLESS]

EXPIRED = {"errors": [{"code": "Unauthorized", "message": "Access to requested resource is denied.",
                       "details": "The access token you provided has expired."}]}  # fmt: skip


class FakeCatalog:
    def find(self, method: str, path: str) -> Op | None:
        for op in OPS:
            if op.method == method and op.path == path:
                return op
        return None


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class FakeSpApi:
    """Scripted answers per path; anything unscripted answers 200 {"payload": {}}."""

    scripts: dict[str, deque[Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    token_delay: float = 0.0
    token_answer: tuple[int, Any] | None = None
    expires_in: int = 3600
    issued: int = 0
    valid_tokens: set[str] = field(default_factory=set)
    check_tokens: bool = False
    url: str = ""

    def script(self, path: str, *answers: Any) -> None:
        self.scripts.setdefault(path, deque()).extend(answers)

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def token(self, request: web.Request) -> web.StreamResponse:
        form = dict(await request.post())
        self.token_forms.append(form)
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        if self.token_answer is not None:
            status, body = self.token_answer
            return web.json_response(body, status=status)
        self.issued += 1
        token = f"Atza|access-{self.issued}"
        self.valid_tokens = {token}  # a refresh invalidates older tokens
        return web.json_response(
            {"access_token": token, "token_type": "bearer", "expires_in": self.expires_in}
        )

    async def api(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, request.rel_url.raw_query_string,
                              dict(request.headers), body, time.monotonic()))  # fmt: skip
        raw_path = request.rel_url.raw_path
        answers = self.scripts.get(raw_path) or self.scripts.get(request.path)
        answer = answers.popleft() if answers else None
        if self.check_tokens and request.headers.get("x-amz-access-token") not in self.valid_tokens:
            return web.json_response(EXPIRED, status=403)
        if answer is None:
            return web.json_response({"payload": {"path": raw_path}},
                                     headers={"x-amzn-RequestId": "rid-ok"})  # fmt: skip
        if callable(answer):
            return await answer(request)
        status, payload, *rest = answer
        headers = {"x-amzn-RequestId": f"rid-{status}", **(rest[0] if rest else {})}
        if isinstance(payload, bytes):
            return web.Response(status=status, body=payload, headers=headers)
        return web.json_response(payload, status=status, headers=headers)


async def drop_connection(request: web.Request) -> web.StreamResponse:
    request.transport.close()  # the client sees the server disconnect before any response
    await asyncio.sleep(0.05)
    return web.Response()


async def truncated_body(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                   "Content-Length": "1000"})  # fmt: skip
    await resp.prepare(request)
    await resp.write(b'{"payload": {"Orders": [')
    await asyncio.sleep(0.01)
    request.transport.close()
    return resp


async def slow_answer(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(2.0)
    return web.json_response({"payload": "late"})


@pytest.fixture
async def fake():
    server = FakeSpApi()
    app = web.Application()
    app.router.add_post("/auth/o2/token", server.token)
    app.router.add_route("*", "/{tail:.*}", server.api)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


def account(url: str, token_url: str | None = None, rate_limits: dict | None = None):
    return SimpleNamespace(
        base_url=url,
        marketplace_ids=["ATVPDKIKX0DER"],
        region="us-east-1",
        rate_limits=rate_limits or {},
        lwa=SimpleNamespace(
            client_id="amzn1.application-oa2-client.abc",
            client_secret=SecretStr(CLIENT_SECRET),
            refresh_token=SecretStr(REFRESH_TOKEN),
            token_url=token_url or f"{url}/auth/o2/token",
        ),
    )


@pytest.fixture
async def client(fake):
    async with SpClient({"acme": account(fake.url)}, FakeCatalog(), retry=RetryPolicy(backoff_base=0.01)) as c:
        yield c


# --- auth -----------------------------------------------------------------------------------


async def test_token_cached_and_single_flight_for_20_concurrent_calls(fake, client):
    fake.token_delay = 0.1  # every caller arrives while the one refresh is in flight
    results = await asyncio.gather(*(client.call("acme", GET_ORDERS) for _ in range(20)))
    assert all(r.status == 200 for r in results)
    assert len(fake.token_forms) == 1
    assert fake.token_forms[0] == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH_TOKEN,
        "client_id": "amzn1.application-oa2-client.abc",
        "client_secret": CLIENT_SECRET,
    }
    await client.call("acme", GET_ORDERS)  # cached: no new refresh
    assert len(fake.token_forms) == 1
    headers = fake.seen[0].headers
    assert headers["x-amz-access-token"] == "Atza|access-1"
    assert len(headers["x-amz-date"]) == 16 and headers["x-amz-date"].endswith("Z")
    assert headers["User-Agent"].startswith("spd/") and "(Language=Python)" in headers["User-Agent"]


async def test_token_refreshed_60s_before_expiry(fake, client):
    now = [0.0]
    client.auth._clock = lambda: now[0]
    await client.call("acme", GET_ORDERS)
    now[0] = 3600 - 61
    await client.call("acme", GET_ORDERS)
    assert len(fake.token_forms) == 1
    now[0] = 3600 - 59
    await client.call("acme", GET_ORDERS)
    assert len(fake.token_forms) == 2
    assert fake.seen[-1].headers["x-amz-access-token"] == "Atza|access-2"


async def test_expired_token_403_forces_one_refresh_and_one_retry(fake, client):
    await client.call("acme", GET_ORDERS)
    fake.valid_tokens = set()  # Amazon expired our cached token early
    fake.check_tokens = True
    resp = await client.call("acme", GET_ORDERS)
    assert resp.status == 200
    assert len(fake.token_forms) == 2
    assert [s.headers["x-amz-access-token"] for s in fake.seen[-2:]] == [
        "Atza|access-1", "Atza|access-2"
    ]  # fmt: skip


async def test_expired_token_refresh_is_shared_by_concurrent_403s(fake, client):
    await client.call("acme", GET_ORDERS)
    fake.valid_tokens = set()
    fake.check_tokens = True
    results = await asyncio.gather(*(client.call("acme", GET_ORDERS) for _ in range(10)))
    assert all(r.status == 200 for r in results)
    assert len(fake.token_forms) == 2  # one initial, one forced refresh for all ten


async def test_persistent_403_gives_up_after_one_refresh(fake, client):
    fake.script("/orders/v0/orders", *[(403, EXPIRED)] * 5)
    with pytest.raises(ApiError) as info:
        await client.call("acme", GET_ORDERS)
    assert info.value.status == 403
    assert "Unauthorized" in str(info.value)
    assert len(fake.requests("/orders/v0/orders")) == 2
    assert len(fake.token_forms) == 2


async def test_plain_403_is_not_retried(fake, client):
    denied = {"errors": [{"code": "Unauthorized", "message": "Access to requested resource is denied."}]}
    fake.script("/orders/v0/orders", (403, denied))
    with pytest.raises(ApiError, match="HTTP 403 Unauthorized"):
        await client.call("acme", GET_ORDERS)
    assert len(fake.requests("/orders/v0/orders")) == 1


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ("invalid_client", "account acme: LWA rejected the client id/secret (invalid_client)"),
        ("invalid_grant", "account acme: LWA rejected the refresh token: refresh token revoked "
                          "or issued for another application (invalid_grant)"),
    ],
)  # fmt: skip
async def test_lwa_errors_are_one_line_auth_errors(fake, client, error, message):
    fake.token_answer = (400 if error == "invalid_grant" else 401,
                         {"error": error, "error_description": "nope"})  # fmt: skip
    with pytest.raises(AuthError) as info:
        await client.call("acme", GET_ORDERS)
    assert str(info.value) == message
    assert info.value.retriable is False
    assert len(fake.token_forms) == 1  # not retried
    assert fake.seen == []


async def test_lwa_unreachable_is_retriable_and_retried(fake):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}/auth/o2/token"
    sock.close()
    acct = account(fake.url, token_url=dead)
    async with SpClient({"acme": acct}, None, retry=RetryPolicy(backoff_base=0.01, max_attempts=3)) as c:
        with pytest.raises(AuthError) as info:
            await c.call("acme", GET_ORDERS)
    assert info.value.retriable is True
    assert "unreachable" in str(info.value)
    assert c.bucket_stats()["acme"]["ordersV0.getOrders"]["retries"] == 2


async def test_lwa_5xx_then_success(fake, client):
    fake.token_answer = (503, {"message": "busy"})

    async def heal():
        await asyncio.sleep(0.05)
        fake.token_answer = None

    healer = asyncio.create_task(heal())
    client.retry = replace(client.retry, backoff_base=0.05)
    resp = await client.call("acme", GET_ORDERS)
    await healer
    assert resp.status == 200
    assert len(fake.token_forms) >= 2


async def test_grantless_operation_uses_client_credentials_with_scope(fake, client):
    await client.call("acme", GRANTLESS)
    assert fake.token_forms[0]["grant_type"] == "client_credentials"
    assert fake.token_forms[0]["scope"] == "sellingpartnerapi::notifications"
    assert "refresh_token" not in fake.token_forms[0]
    await client.call("acme", GET_ORDERS)  # a separate token for the seller's grant
    assert [f["grant_type"] for f in fake.token_forms] == ["client_credentials", "refresh_token"]


# --- rate limits and 429 ----------------------------------------------------------------------


async def test_429_without_retry_after_drains_bucket_and_retries(fake, client):
    quota = {"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota."}]}
    fake.script("/slow", (429, quota), (429, quota), (200, {"payload": "ok"}))
    with capture_logs() as logs:
        resp = await client.call("acme", SLOW)
    assert resp.body == {"payload": "ok"}
    seen = fake.requests("/slow")
    assert len(seen) == 3
    # drained: each retry waits at least one interval (1/20 s) after the 429
    assert seen[1].at - seen[0].at >= 0.045
    assert seen[2].at - seen[1].at >= 0.045
    stats = client.bucket_stats()["acme"]["ordersV0.slow"]
    assert (stats["requests"], stats["throttled"], stats["retries"]) == (3, 2, 2)
    limited = [e for e in logs if e["event"] == "rate_limited"]
    assert len(limited) == 2 and limited[0]["request_id"] == "rid-429"
    assert limited[0]["operation"] == "ordersV0.slow" and limited[0]["account"] == "acme"


async def test_429_with_retry_after_waits_that_long(fake, client):
    fake.script("/orders/v0/orders", (429, {"errors": []}, {"Retry-After": "1"}))
    resp = await client.call("acme", GET_ORDERS)
    assert resp.status == 200
    seen = fake.requests("/orders/v0/orders")
    assert 0.95 <= seen[1].at - seen[0].at < 1.6
    assert client.bucket("acme", GET_ORDERS).tokens() < 50  # drained, refilling


async def test_429_storm_gives_up_with_retriable_error(fake):
    fake.script("/slow", *[(429, {"errors": [{"code": "QuotaExceeded", "message": "m"}]})] * 4)
    async with SpClient({"acme": account(fake.url)}, None, retry=RetryPolicy(max_attempts=3)) as c:
        with pytest.raises(ApiError) as info:
            await c.call("acme", SLOW)
    assert info.value.retriable is True and info.value.status == 429
    assert str(info.value) == (
        "ordersV0.slow: HTTP 429 QuotaExceeded: m (gave up after 3 attempts)"
    )
    assert c.bucket_stats()["acme"]["ordersV0.slow"]["throttled"] == 3


async def test_bucket_follows_rate_limit_header_but_keeps_burst(fake, client):
    fake.script("/orders/v0/orders", (200, {"payload": {}}, {"x-amzn-RateLimit-Limit": "7.5"}))
    await client.call("acme", GET_ORDERS)
    bucket = client.bucket("acme", GET_ORDERS)
    assert bucket.rate == 7.5 and bucket.burst == 50


async def test_config_override_and_default_limits(fake):
    overrides = {"ordersV0.getOrders": SimpleNamespace(rate=0.0167, burst=20)}
    async with SpClient({"acme": account(fake.url, rate_limits=overrides)}, None) as c:
        assert (c.bucket("acme", GET_ORDERS).rate, c.bucket("acme", GET_ORDERS).burst) == (0.0167, 20)
        no_plan = Op("x", "y", "GET", "/y")
        assert (c.bucket("acme", no_plan).rate, c.bucket("acme", no_plan).burst) == (0.5, 1)


def throttled_by_amazon(rate: float, burst: int, times: list[float]) -> int:
    """How many of requests arriving at `times` Amazon's bucket (the simulator's model) refuses."""
    bucket = SimBucket(rate, burst, float(burst), times[0])
    return sum(not bucket.take(t) for t in times)


async def test_requests_run_at_the_quota_without_429(fake, client, monkeypatch):
    # burst 1 at 20/s: 11 requests on one bucket get their tokens never closer than 1/rate, so
    # Amazon's bucket would refuse none. Timed where the bucket grants them (the clock reading of
    # each take): the fake's arrival times add the delay between the send and its handler
    # running, which a loaded machine stretches for one request and not the next (gaps of
    # 0.028 s seen, all sends correct). The bucket counts a token within 1e-9 of whole as whole.
    granted = record_grants(monkeypatch, client.bucket("acme", SLOW))
    await asyncio.gather(*(client.call("acme", SLOW) for _ in range(11)))
    gaps = [b - a for a, b in zip(granted, granted[1:], strict=False)]
    assert len(granted) == len(fake.requests("/slow")) == 11  # none sent without a token
    assert min(gaps) >= (1 - 1e-9) / 20
    assert throttled_by_amazon(20.0, 1, granted) == 0
    # The exact pacing (no idle tokens, the guard's size) is checked on an injected clock in
    # test_client_ratelimit.py; here load could only stretch the total, so it is not bounded.


# --- server errors, transport failures ------------------------------------------------------


async def test_5xx_retried_for_get(fake, client):
    fake.script("/orders/v0/orders", (503, b"busy"), (500, {"errors": []}), (502, b""))
    with capture_logs() as logs:
        resp = await client.call("acme", GET_ORDERS)
    assert resp.status == 200
    assert len(fake.requests("/orders/v0/orders")) == 4
    retries = [e for e in logs if e["event"] == "request_retry"]
    assert [e["reason"] for e in retries] == ["HTTP 503", "HTTP 500", "HTTP 502"]
    assert retries[0]["request_id"] == "rid-503"
    stats = client.bucket_stats()["acme"]["ordersV0.getOrders"]
    assert (stats["requests"], stats["retries"], stats["errors"]) == (4, 3, 3)


async def test_5xx_not_retried_for_post(fake, client):
    fake.script("/reports/2021-06-30/reports", (503, {"errors": [{"code": "ServiceUnavailable",
                                                                  "message": "later"}]}))  # fmt: skip
    with pytest.raises(ApiError) as info:
        await client.call("acme", CREATE_REPORT, body={"reportType": "X"})
    assert len(fake.requests("/reports/2021-06-30/reports")) == 1
    assert info.value.status == 503 and info.value.retriable is True
    assert str(info.value) == "reports.createReport: HTTP 503 ServiceUnavailable: later"
    assert orjson.loads(fake.seen[0].body) == {"reportType": "X"}
    assert fake.seen[0].headers["Content-Type"] == "application/json"


async def test_5xx_retried_for_post_marked_safe(fake, client):
    fake.script("/batches/pricing", (503, b""))
    resp = await client.call("acme", SAFE_POST, body={"requests": []})
    assert resp.status == 200
    assert len(fake.requests("/batches/pricing")) == 2


async def test_exhausted_5xx_retries_raise_retriable(fake):
    fake.script("/orders/v0/orders", *[(503, b"down")] * 5)
    async with SpClient({"acme": account(fake.url)}, None, retry=RetryPolicy(backoff_base=0.01, max_attempts=3)) as c:
        with pytest.raises(ApiError) as info:
            await c.call("acme", GET_ORDERS)
    assert info.value.retriable is True
    assert str(info.value) == "ordersV0.getOrders: HTTP 503: down (gave up after 3 attempts)"
    assert len(fake.requests("/orders/v0/orders")) == 3


async def test_dropped_connection_retried_for_get(fake, client):
    fake.script("/orders/v0/orders", drop_connection)
    resp = await client.call("acme", GET_ORDERS)
    assert resp.status == 200
    assert len(fake.requests("/orders/v0/orders")) == 2


async def test_dropped_connection_not_retried_for_post(fake, client):
    fake.script("/reports/2021-06-30/reports", drop_connection)
    with pytest.raises(ApiError) as info:
        await client.call("acme", CREATE_REPORT, body={})
    assert info.value.retriable is True
    assert "reports.createReport: request failed" in str(info.value)
    assert len(fake.requests("/reports/2021-06-30/reports")) == 1


async def test_truncated_body_retried(fake, client):
    fake.script("/orders/v0/orders", truncated_body)
    with capture_logs() as logs:
        resp = await client.call("acme", GET_ORDERS)
    assert resp.body == {"payload": {"path": "/orders/v0/orders"}}
    assert len(fake.requests("/orders/v0/orders")) == 2
    assert "Payload" in [e for e in logs if e["event"] == "request_retry"][0]["reason"]


async def test_invalid_json_in_2xx_retried(fake, client):
    fake.script("/orders/v0/orders", (200, b'{"payload": {"Orders": [', {"Content-Type": "application/json"}))
    resp = await client.call("acme", GET_ORDERS)
    assert resp.body["payload"]
    assert len(fake.requests("/orders/v0/orders")) == 2


async def test_timeout_retried(fake):
    fake.script("/orders/v0/orders", slow_answer)
    async with SpClient({"acme": account(fake.url)}, None, timeout=0.3, retry=RetryPolicy(backoff_base=0.01)) as c:
        resp = await c.call("acme", GET_ORDERS)
    assert resp.status == 200
    assert len(fake.requests("/orders/v0/orders")) == 2


async def test_4xx_fails_at_once_with_amazon_errors(fake, client):
    errors = [{"code": "InvalidInput", "message": "Invalid CreatedAfter", "details": ""}]
    fake.script("/orders/v0/orders", (400, {"errors": errors}))
    with pytest.raises(ApiError) as info:
        await client.call("acme", GET_ORDERS)
    err = info.value
    assert str(err) == "ordersV0.getOrders: HTTP 400 InvalidInput: Invalid CreatedAfter"
    assert err.errors == errors and err.status == 400 and err.request_id == "rid-400"
    assert err.retriable is False
    assert len(fake.requests("/orders/v0/orders")) == 1
    assert client.bucket_stats()["acme"]["ordersV0.getOrders"]["errors"] == 1


async def test_4xx_returned_when_not_raising(fake, client):
    fake.script("/orders/v0/orders/1", (404, {"errors": [{"code": "NotFound", "message": "no"}]}))
    resp = await client.call("acme", GET_ORDER, {"orderId": "1"}, raise_errors=False)
    assert resp.status == 404 and resp.body["errors"][0]["code"] == "NotFound"
    assert resp.request_id == "rid-404"


# --- request building -----------------------------------------------------------------------


async def test_query_encoding_csv_and_multi(fake, client):
    from datetime import UTC, datetime

    await client.call("acme", GET_ORDERS, {
        "MarketplaceIds": ["ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"],
        "CreatedAfter": datetime(2025, 3, 1, 10, tzinfo=UTC),
        "Flag": True, "OrderStatuses": None,
    })  # fmt: skip
    await client.call("acme", MULTI, {"ids": ["a", "b"], "csv": ["c", "d"]})
    assert fake.seen[0].query == (
        "MarketplaceIds=ATVPDKIKX0DER%2CA2EUQ1WTGCTBG2&CreatedAfter=2025-03-01T10%3A00%3A00Z&Flag=true"
    )
    assert fake.seen[1].query == "ids=a&ids=b&csv=c%2Cd"


async def test_path_parameters_are_encoded(fake, client):
    resp = await client.call("acme", GET_ORDER, {"orderId": "902-1/2 3"})
    assert resp.body == {"payload": {"path": "/orders/v0/orders/902-1%2F2%203"}}
    with pytest.raises(UsageError, match="missing path parameter orderId"):
        await client.call("acme", GET_ORDER, {})
    assert len(fake.seen) == 1


async def test_unknown_account_is_a_usage_error(client):
    with pytest.raises(UsageError, match="unknown account 'nope'; configured accounts: acme"):
        await client.call("nope", GET_ORDERS)


async def test_raw_request_shares_the_operation_bucket(fake, client):
    resp = await client.raw("acme", "get", "/orders/v0/orders?MarketplaceIds=X", {"a": [1, 2]})
    assert resp.status == 200 and resp.request_id == "rid-ok"
    assert fake.seen[0].query == "MarketplaceIds=X&a=1%2C2"
    assert client.bucket_stats()["acme"]["ordersV0.getOrders"]["requests"] == 1
    await client.raw("acme", "GET", "/unknown/path")
    assert client.bucket_stats()["acme"]["raw"]["requests"] == 1
    fake.script("/missing", (404, {"errors": [{"code": "NotFound", "message": "x"}]}))
    resp = await client.raw("acme", "GET", "/missing", raise_errors=False)
    assert resp.status == 404
    fake.script("/missing", (404, {"errors": [{"code": "NotFound", "message": "x"}]}))
    with pytest.raises(ApiError, match="GET /missing: HTTP 404 NotFound: x"):
        await client.raw("acme", "GET", "/missing")


async def test_raw_post_body_and_no_retry(fake, client):
    fake.script("/reports/2021-06-30/reports", (500, b""))
    with pytest.raises(ApiError):
        await client.raw("acme", "POST", "/reports/2021-06-30/reports", body={"a": 1})
    assert len(fake.requests("/reports/2021-06-30/reports")) == 1
    assert fake.seen[0].body == b'{"a":1}'


async def test_text_response_body(fake, client):
    fake.script("/orders/v0/orders", (200, b"plain text", {"Content-Type": "text/plain"}))
    resp = await client.call("acme", GET_ORDERS)
    assert resp.body == "plain text"


async def test_download_retries_and_returns_bytes(fake, client):
    fake.script("/doc.gz", (503, b""), (200, b"\x1f\x8bdata", {"Content-Type": "application/octet-stream"}))
    data = await client.download(f"{fake.url}/doc.gz")
    assert data == b"\x1f\x8bdata"
    assert "x-amz-access-token" not in fake.requests("/doc.gz")[1].headers


async def test_proxy_environment_is_honoured(fake, monkeypatch):
    # The fake acts as the HTTP proxy for an unresolvable host: only a proxy can answer.
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", fake.url)
    acct = account("http://sellingpartnerapi.invalid")
    async with SpClient({"acme": acct}, None, retry=RetryPolicy(max_attempts=1)) as c:
        resp = await c.call("acme", GET_ORDERS)
    assert resp.status == 200
    assert fake.token_forms and fake.seen[0].path == "/orders/v0/orders"


def clear_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                 "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


async def test_proxy_credentials_and_documents_go_through_the_proxy(fake, monkeypatch):
    # Credentials in the proxy URL become Proxy-Authorization; a document download (another
    # host) takes the proxy too.
    clear_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", fake.url.replace("http://", "http://pxuser:pxpass@"))
    acct = account("http://sellingpartnerapi.invalid")
    async with SpClient({"acme": acct}, None, retry=RetryPolicy(max_attempts=1)) as c:
        assert (await c.call("acme", GET_ORDERS)).status == 200
        fake.script("/doc.gz", (200, b"doc", {"Content-Type": "application/octet-stream"}))
        assert await c.download("http://documents.invalid/doc.gz") == b"doc"
    expected = "Basic " + __import__("base64").b64encode(b"pxuser:pxpass").decode()
    assert [s.headers.get("Proxy-Authorization") for s in fake.seen] == [expected, expected]
    assert fake.token_forms  # the LWA request went through the proxy too


async def test_no_proxy_bypasses_the_proxy(fake, monkeypatch):
    # The proxy named is dead: only NO_PROXY (the fake's host) lets the request through.
    clear_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with SpClient({"acme": account(fake.url)}, None, retry=RetryPolicy(max_attempts=1)) as c:
        assert (await c.call("acme", GET_ORDERS)).status == 200
    assert "Proxy-Authorization" not in fake.seen[0].headers


async def test_requests_take_no_thread_hop(fake, client, monkeypatch):
    # aiohttp's trust_env looked up the proxy and ~/.netrc in a worker thread on every request:
    # the environment is read once per host instead, so requests never leave the event loop.
    clear_proxy_env(monkeypatch)
    loop = asyncio.get_running_loop()
    hops: list[object] = []
    real = loop.run_in_executor

    def counting(executor: Any, func: Any, *args: Any) -> Any:
        hops.append(func)
        return real(executor, func, *args)

    monkeypatch.setattr(loop, "run_in_executor", counting)
    for _ in range(5):
        assert (await client.call("acme", GET_ORDERS)).status == 200
    assert hops == []


# --- secrets never logged -------------------------------------------------------------------


async def test_secrets_and_tokens_never_logged(fake, client):
    fake.script("/slow", (429, {"errors": []}))
    fake.script("/orders/v0/orders", (503, b""), (403, EXPIRED), (400, {"errors": [{"code": "X"}]}))
    with capture_logs() as logs:
        await client.call("acme", SLOW)
        with pytest.raises(ApiError):
            await client.call("acme", GET_ORDERS)
        fake.token_answer = (401, {"error": "invalid_client", "error_description": CLIENT_SECRET})
        client.auth.invalidate("acme", "Atza|access-2")
        with pytest.raises(AuthError) as info:
            await client.call("acme", GET_ORDERS)
    events = {e["event"] for e in logs}
    assert {"token_refreshed", "request_retry", "rate_limited"} <= events
    text = repr(logs) + str(info.value)
    for secret in (CLIENT_SECRET, REFRESH_TOKEN, "Atza|access-1", "Atza|access-2", "access-1"):
        assert secret not in text
    refreshed = [e for e in logs if e["event"] == "token_refreshed"]
    assert refreshed[0]["account"] == "acme"
