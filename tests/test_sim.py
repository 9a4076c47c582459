"""The SP-API simulator, exercised over real loopback HTTP with an aiohttp client."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import orjson
import pytest

from spd.sim import SimSettings, Simulator
from spd.sim.cli import build_parser, settings_from_args
from spd.sim.common import LAG_MESSAGE, UNDECODABLE_TOKEN
from spd.sim.data import order_factory
from spd.sim.render import RenderCache, render_v0

UTC = timezone.utc
US = "ATVPDKIKX0DER"
ORDERS = "/orders/v0/orders"
SEARCH = "/orders/2026-01-01/orders"
POS = "/vendor/orders/v1/purchaseOrders"


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Api:
    """A tiny SP-API caller: LWA token once, then GETs with x-amz-access-token."""

    def __init__(self, sim: Simulator, session: aiohttp.ClientSession) -> None:
        self.sim, self.session, self.token = sim, session, ""

    async def login(self) -> None:
        form = {"grant_type": "refresh_token", "client_id": "amzn1.application-oa2-client.x",
                "client_secret": "secret", "refresh_token": "Atzr|sim"}
        async with self.session.post(self.sim.token_url, data=form) as resp:
            assert resp.status == 200
            self.token = (await resp.json())["access_token"]

    async def get(self, path: str, params: dict[str, Any] | None = None,
                  token: str | None = None) -> tuple[int, dict[str, str], Any]:
        headers = {"x-amz-access-token": self.token if token is None else token}
        async with self.session.get(self.sim.url + path, params=params or {},
                                    headers=headers) as resp:
            return resp.status, dict(resp.headers), await resp.json()

    async def truth(self, type_: str, field: str, after: datetime, before: datetime
                    ) -> list[dict[str, Any]]:
        params = {"type": type_, "field": field, "after": iso(after), "before": iso(before)}
        async with self.session.get(self.sim.url + "/_sim/objects", params=params) as resp:
            assert resp.status == 200
            return (await resp.json())["objects"]


def settings(**kw: Any) -> SimSettings:
    base: dict[str, Any] = {"seed": 7, "orders": 600, "purchase_orders": 200}
    return SimSettings(**{**base, **kw})


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def api(session: aiohttp.ClientSession) -> AsyncIterator[Api]:
    # Usage plans are tested on their own; here pages are fetched as fast as possible. The
    # clock is frozen so that no live update lands between paging and reading the truth.
    frozen = datetime.now(UTC)
    async with Simulator(settings(rate_limit=False, clock=lambda: frozen)) as sim:
        client = Api(sim, session)
        await client.login()
        yield client


async def start_api(session: aiohttp.ClientSession, sim: Simulator) -> Api:
    client = Api(sim, session)
    await client.login()
    return client


def assert_amazon_error(body: Any, code: str) -> dict[str, str]:
    assert set(body) == {"errors"} and len(body["errors"]) == 1
    err = body["errors"][0]
    assert err["code"] == code and err["message"] and "details" in err
    return err


# -- LWA ----------------------------------------------------------------------------------------

async def test_token_endpoint_issues_expiring_bearer_tokens(api: Api) -> None:
    form = {"grant_type": "refresh_token", "client_id": "c", "client_secret": "s",
            "refresh_token": "Atzr|abc"}
    async with api.session.post(api.sim.token_url, data=form) as resp:
        body = await resp.json()
    assert resp.status == 200 and resp.headers["x-amzn-RequestId"]
    assert body["access_token"].startswith("Atza|sim-") and body["token_type"] == "bearer"
    assert body["expires_in"] == 3600 and body["refresh_token"] == "Atzr|abc"


@pytest.mark.parametrize(("form", "status", "error"), [
    ({"grant_type": "password", "client_id": "c", "client_secret": "s"}, 400,
     "unsupported_grant_type"),
    ({"grant_type": "refresh_token", "client_id": "c", "client_secret": "s"}, 400,
     "invalid_request"),
    ({"grant_type": "refresh_token", "client_id": "c", "client_secret": "s",
      "refresh_token": "Atzr|revoked"}, 400, "invalid_grant"),
    ({"grant_type": "refresh_token", "client_id": "app", "client_secret": "wrong",
      "refresh_token": "Atzr|ok"}, 401, "invalid_client"),
])
async def test_token_endpoint_refuses_bad_grants(
    session: aiohttp.ClientSession, form: dict[str, str], status: int, error: str
) -> None:
    s = settings(clients={"app": "right", "c": "s"},
                 revoked_refresh_tokens=frozenset({"Atzr|revoked"}))
    async with Simulator(s) as sim, session.post(sim.token_url, data=form) as resp:
        body = await resp.json()
    assert resp.status == status and body["error"] == error and body["error_description"]


async def test_missing_unknown_and_expired_access_tokens_get_403(
    session: aiohttp.ClientSession
) -> None:
    # The simulator's clock is stepped past the token's life rather than slept through: a
    # loaded machine could otherwise spend the whole half second before the first request.
    clock = [datetime.now(UTC)]
    async with Simulator(settings(access_token_ttl=timedelta(seconds=0.5),
                                  clock=lambda: clock[0])) as sim:
        api = await start_api(session, sim)
        params = {"MarketplaceIds": US, "CreatedAfter": iso(datetime.now(UTC) - timedelta(hours=1))}
        status, _, body = await api.get(ORDERS, params)
        assert status == 200
        for token in ("", "Atza|forged"):
            status, headers, body = await api.get(ORDERS, params, token=token)
            assert status == 403 and "x-amzn-RequestId" in headers
            err = assert_amazon_error(body, "Unauthorized")
            assert err["message"] == "Access to requested resource is denied."
        clock[0] += timedelta(seconds=0.6)
        status, _, body = await api.get(ORDERS, params)
        assert status == 403
        assert assert_amazon_error(body, "Unauthorized")["message"] == (
            "The access token you provided has expired.")


async def test_sim_auth_expires_tokens_at_run_time(api: Api) -> None:
    async with api.session.post(api.sim.url + "/_sim/auth",
                                json={"expire_access_tokens": True}) as resp:
        assert (await resp.json())["expired"] >= 1
    params = {"MarketplaceIds": US, "CreatedAfter": iso(datetime.now(UTC) - timedelta(hours=1))}
    status, _, body = await api.get(ORDERS, params)
    assert status == 403 and "expired" in body["errors"][0]["message"]


# -- getOrders parameter rules ------------------------------------------------------------------

def hour_ago() -> str:
    return iso(datetime.now(UTC) - timedelta(hours=1))


@pytest.mark.parametrize("params", [
    {"CreatedAfter": "2025-01-01T00:00:00Z"},  # no MarketplaceIds
    {"MarketplaceIds": US},  # neither CreatedAfter nor LastUpdatedAfter
    {"MarketplaceIds": US, "CreatedAfter": "2025-01-01T00:00:00Z",
     "LastUpdatedAfter": "2025-01-01T00:00:00Z"},
    {"MarketplaceIds": US, "CreatedAfter": "2025-01-01T00:00:00Z",
     "LastUpdatedBefore": "2025-01-02T00:00:00Z"},
    {"MarketplaceIds": US, "CreatedAfter": "yesterday"},
    {"MarketplaceIds": US, "CreatedAfter": "2025-01-02T00:00:00Z",
     "CreatedBefore": "2025-01-01T00:00:00Z"},  # Before earlier than After
    {"MarketplaceIds": US, "CreatedAfter": "2025-01-01T00:00:00Z", "MaxResultsPerPage": "0"},
    {"MarketplaceIds": US, "CreatedAfter": "2025-01-01T00:00:00Z", "MaxResultsPerPage": "101"},
    {"MarketplaceIds": US, "CreatedAfter": "2025-01-01T00:00:00Z", "MaxResultsPerPage": "ten"},
    {"MarketplaceIds": US, "CreatedAfter": "2025-01-01T00:00:00Z", "OrderStatuses": "Lost"},
    {"MarketplaceIds": "NOTAMARKET", "CreatedAfter": "2025-01-01T00:00:00Z"},
])
async def test_get_orders_rejects_what_amazon_rejects(api: Api, params: dict[str, str]) -> None:
    status, headers, body = await api.get(ORDERS, params)
    assert status == 400
    assert_amazon_error(body, "InvalidInput")
    assert headers["x-amzn-RateLimit-Limit"] == "1000.0" and headers["x-amzn-RequestId"]  # limits off


@pytest.mark.parametrize("field", ["Created", "LastUpdated"])
async def test_before_must_be_two_minutes_in_the_past(api: Api, field: str) -> None:
    now = datetime.now(UTC)
    params = {"MarketplaceIds": US, f"{field}After": hour_ago(),
              f"{field}Before": iso(now - timedelta(seconds=60))}
    status, _, body = await api.get(ORDERS, params)
    assert status == 400 and assert_amazon_error(body, "InvalidInput")["message"] == LAG_MESSAGE
    params[f"{field}Before"] = iso(now - timedelta(seconds=150))
    status, _, body = await api.get(ORDERS, params)
    assert status == 200 and body["payload"][f"{field}Before"] == params[f"{field}Before"]


async def test_omitted_before_is_applied_as_now_minus_two_minutes_and_echoed(
    session: aiohttp.ClientSession,
) -> None:
    async with Simulator(settings()) as sim:
        api = await start_api(session, sim)
        t0 = datetime.now(UTC)
        status, _, body = await api.get(ORDERS, {"MarketplaceIds": US, "CreatedAfter": hour_ago()})
        t1 = datetime.now(UTC)
    assert status == 200
    echoed = parse(body["payload"]["CreatedBefore"])
    assert t0 - timedelta(minutes=2, seconds=1) <= echoed <= t1 - timedelta(minutes=2)
    assert "LastUpdatedBefore" not in body["payload"]
    for order in body["payload"]["Orders"]:
        assert parse(order["PurchaseDate"]) <= echoed


# -- pagination against the ground truth --------------------------------------------------------

async def collect_v0(api: Api, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    status, _, body = await api.get(ORDERS, params)
    assert status == 200, body
    orders, pages = list(body["payload"]["Orders"]), 1
    while body["payload"].get("NextToken"):
        # Other filters are ignored with a NextToken; MarketplaceIds stays required.
        status, _, body = await api.get(
            ORDERS, {"MarketplaceIds": US, "NextToken": body["payload"]["NextToken"]})
        assert status == 200, body
        orders.extend(body["payload"]["Orders"])
        pages += 1
    return orders, pages


@pytest.mark.parametrize(("field", "stamp", "truth_field"), [
    ("LastUpdated", "LastUpdateDate", "updated"),
    ("Created", "PurchaseDate", "created"),
])
async def test_get_orders_pages_give_exactly_the_ground_truth(
    api: Api, field: str, stamp: str, truth_field: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    after, before = now - timedelta(days=2), now - timedelta(hours=3)
    orders, pages = await collect_v0(api, {"MarketplaceIds": US, f"{field}After": iso(after),
                                           f"{field}Before": iso(before),
                                           "MaxResultsPerPage": 37})
    got = [(o["AmazonOrderId"], o[stamp]) for o in orders]
    assert pages > 3 and len(got) == len(set(got))
    keys = [(parse(t), i) for i, t in got]
    assert keys == sorted(keys), "ordered by the filter field, then id"
    assert all(after <= parse(t) <= before for _, t in got), "bounds are inclusive"
    truth = await api.truth("ordersV0.getOrders", truth_field, after, before)
    expected = {(r["id"], r["version_time"]) for r in truth if r["current"]}
    assert set(got) == expected


async def test_bounds_are_inclusive_on_exact_timestamps(api: Api) -> None:
    truth = await api.truth("ordersV0.getOrders", "updated", datetime(2000, 1, 1, tzinfo=UTC),
                            datetime.now(UTC) - timedelta(hours=1))
    current = [r for r in truth if r["current"]]
    stamp = Counter(r["version_time"] for r in current).most_common(1)[0][0]
    orders, _ = await collect_v0(api, {"MarketplaceIds": US, "LastUpdatedAfter": stamp,
                                       "LastUpdatedBefore": stamp})
    assert len(orders) == sum(1 for r in current if r["version_time"] == stamp) >= 2


async def test_data_has_bursts_on_one_second_including_whole_hours(api: Api) -> None:
    truth = await api.truth("ordersV0.getOrders", "created", datetime(2000, 1, 1, tzinfo=UTC),
                            datetime.now(UTC))
    per_second = Counter(r["version_time"] for r in truth)
    assert max(per_second.values()) >= 5
    assert any(n >= 5 and t.endswith(":00:00Z") for t, n in per_second.items())
    updated = await api.truth("ordersV0.getOrders", "updated", datetime(2000, 1, 1, tzinfo=UTC),
                              datetime.now(UTC))
    assert len(updated) > len(truth), "orders are updated, every version is kept"


async def test_search_orders_pagination_and_its_token_rules(api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    after = now - timedelta(days=2)
    params = {"lastUpdatedAfter": iso(after), "maxResultsPerPage": "50",
              "includedData": "FULFILLMENT"}
    status, _, body = await api.get(SEARCH, params)
    assert status == 200 and set(body) == {"orders", "pagination", "lastUpdatedBefore"}
    echoed = body["lastUpdatedBefore"]
    assert "fulfillmentStatus" in body["orders"][0]["fulfillment"]
    token = body["pagination"]["nextToken"]
    status, _, alone = await api.get(SEARCH, {"paginationToken": token})
    assert status == 400 and assert_amazon_error(alone, "InvalidInput")
    orders = list(body["orders"])
    while "pagination" in body:
        nxt = {**params, "paginationToken": body["pagination"]["nextToken"],
               "maxResultsPerPage": "100", "includedData": "BUYER"}
        status, _, body = await api.get(SEARCH, nxt)
        assert status == 200, body
        orders.extend(body["orders"])
    got = {(o["orderId"], o["lastUpdatedTime"]) for o in orders}
    truth = await api.truth("orders_2026-01-01.searchOrders", "updated", after, parse(echoed))
    assert got == {(r["id"], r["version_time"]) for r in truth if r["current"]}
    status, _, body = await api.get(SEARCH, {"createdAfter": hour_ago(),
                                             "createdBefore": iso(now - timedelta(seconds=30))})
    assert status == 400 and body["errors"][0]["message"] == LAG_MESSAGE


# -- next tokens --------------------------------------------------------------------------------

async def test_next_tokens_expire(session: aiohttp.ClientSession) -> None:
    clock = [datetime.now(UTC)]  # stepped past the token's life, not slept (see above)
    async with Simulator(settings(next_token_ttl=timedelta(seconds=0.5),
                                  clock=lambda: clock[0])) as sim:
        api = await start_api(session, sim)
        _, _, body = await api.get(ORDERS, {"MarketplaceIds": US, "MaxResultsPerPage": 5,
                                            "LastUpdatedAfter": "2000-01-01T00:00:00Z"})
        token = body["payload"]["NextToken"]
        status, _, _ = await api.get(ORDERS, {"MarketplaceIds": US, "NextToken": token})
        assert status == 200
        clock[0] += timedelta(seconds=0.6)
        status, _, body = await api.get(ORDERS, {"MarketplaceIds": US, "NextToken": token})
    assert status == 400
    err = assert_amazon_error(body, "InvalidInput")
    assert err["message"] == "Invalid NextToken." and "expired" in err["details"]


async def test_mangled_next_tokens_are_rejected(api: Api) -> None:
    _, _, body = await api.get(ORDERS, {"MarketplaceIds": US, "MaxResultsPerPage": 5,
                                        "LastUpdatedAfter": "2000-01-01T00:00:00Z"})
    token = body["payload"]["NextToken"]
    assert "+" in token and "/" in token, "real tokens need URL-encoding"
    for bad in (token.replace("+", " "), token[:-8], "not-a-token"):
        status, _, body = await api.get(ORDERS, {"MarketplaceIds": US, "NextToken": bad})
        assert status == 400 and body["errors"][0]["message"] == UNDECODABLE_TOKEN


# -- vendor orders ------------------------------------------------------------------------------

def po_cursor(po: dict[str, Any]) -> str:
    d = po["orderDetails"]
    return (d.get("purchaseOrderChangedDate") or d.get("purchaseOrderStateChangedDate")
            or d["purchaseOrderDate"])


async def test_purchase_orders_window_rules(api: Api) -> None:
    now = datetime.now(UTC)
    for params in (
        {"createdAfter": iso(now - timedelta(days=8)), "createdBefore": iso(now)},
        # 7 days and 10 minutes: still over the limit when this request lands seconds later
        {"changedAfter": iso(now - timedelta(days=7, minutes=10))},
        {"createdAfter": iso(now - timedelta(days=1)), "changedBefore": iso(now)},
        {"limit": "10"},
        {"createdAfter": iso(now - timedelta(days=1)), "limit": "0"},
        {"createdAfter": iso(now - timedelta(days=1)), "sortOrder": "UP"},
    ):
        status, headers, body = await api.get(POS, params)
        assert status == 400, params
        assert_amazon_error(body, "InvalidInput")
        assert headers["x-amzn-RateLimit-Limit"] == "1000.0"  # limits off
    status, _, _ = await api.get(POS, {"createdAfter": iso(now - timedelta(days=7)),
                                       "createdBefore": iso(now)})
    assert status == 200


@pytest.mark.parametrize(("field", "sort"), [("changed", "ASC"), ("created", "DESC")])
async def test_purchase_orders_pages_give_exactly_the_ground_truth(
    api: Api, field: str, sort: str
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    after = before - timedelta(days=3)
    params = {f"{field}After": iso(after), f"{field}Before": iso(before), "limit": "17",
              "sortOrder": sort}
    status, _, body = await api.get(POS, params)
    pos = list(body["payload"]["orders"])
    while "pagination" in body["payload"]:
        token = body["payload"]["pagination"]["nextToken"]
        status, _, body = await api.get(POS, {"nextToken": token})
        assert status == 200, body
        pos.extend(body["payload"]["orders"])
    dates = [(p["orderDetails"]["purchaseOrderDate"], p["purchaseOrderNumber"]) for p in pos]
    assert dates == sorted(dates, reverse=sort == "DESC"), "sorted by purchaseOrderDate"
    truth = await api.truth("vendorOrders.getPurchaseOrders",
                            "updated" if field == "changed" else "created", after, before)
    expected = {(r["id"], r["version_time"]) for r in truth if r["current"]}
    stamp = po_cursor if field == "changed" else (
        lambda p: p["orderDetails"]["purchaseOrderDate"])
    assert {(p["purchaseOrderNumber"], stamp(p)) for p in pos} == expected
    assert len(pos) == len(expected) > 17


# -- rate limits and faults ---------------------------------------------------------------------

async def test_burst_then_429_with_amazon_body_and_header(session: aiohttp.ClientSession) -> None:
    s = settings(rate_limits={"ordersV0.getOrders": (0.5, 3)})
    async with Simulator(s) as sim:
        api = await start_api(session, sim)
        params = {"MarketplaceIds": US, "CreatedAfter": hour_ago()}
        statuses = [(await api.get(ORDERS, params))[0] for _ in range(3)]
        status, headers, body = await api.get(ORDERS, params)
        assert statuses == [200, 200, 200] and status == 429
        assert headers["x-amzn-RateLimit-Limit"] == "0.5"
        err = assert_amazon_error(body, "QuotaExceeded")
        assert err["message"] == "You exceeded your quota for the requested resource."
        await asyncio.sleep(2.1)  # one token back at 0.5/s
        assert (await api.get(ORDERS, params))[0] == 200
        async with session.get(sim.url + "/_sim/stats") as resp:
            stats = (await resp.json())["operations"]["ordersV0.getOrders"]
    assert stats["requests"] == 5 and stats["throttled"] == 1 and stats["ok"] == 4


async def test_default_usage_plan_and_switching_limits_off(session: aiohttp.ClientSession) -> None:
    for limited in (True, False):
        async with Simulator(settings(rate_limit=limited)) as sim:
            api = await start_api(session, sim)
            params = {"MarketplaceIds": US, "CreatedAfter": hour_ago()}
            statuses = [(await api.get(ORDERS, params))[0] for _ in range(21)]
        assert statuses[:20] == [200] * 20
        assert statuses[20] == (429 if limited else 200)


async def test_fault_knobs_set_at_run_time(api: Api) -> None:
    url, params = api.sim.url, {"MarketplaceIds": US, "CreatedAfter": hour_ago()}
    async with api.session.post(url + "/_sim/faults", json={"error_rate": 1}) as resp:
        assert (await resp.json())["error_rate"] == 1.0
    status, _, body = await api.get(ORDERS, params)
    assert status in (500, 503) and body["errors"][0]["code"] in ("InternalFailure",
                                                                  "ServiceUnavailable")
    await api.session.post(url + "/_sim/faults", json={"error_rate": 0, "drop_rate": 1})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.get(ORDERS, params)
    await api.session.post(url + "/_sim/faults", json={"drop_rate": 0, "truncate_rate": 1})
    for _ in range(4):  # both kinds: a short body, and a complete message with cut JSON
        with pytest.raises((aiohttp.ClientPayloadError, ValueError)):
            await api.get(ORDERS, params)
    async with api.session.post(url + "/_sim/faults", json={"bogus": 1}) as resp:
        assert resp.status == 400
    await api.session.post(url + "/_sim/faults", json={"truncate_rate": 0, "latency_ms": 200})
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert (await api.get(ORDERS, params))[0] == 200
    assert loop.time() - t0 >= 0.2
    async with api.session.get(url + "/_sim/stats") as resp:
        stats = (await resp.json())["operations"]["ordersV0.getOrders"]
    # aiohttp retries a GET once when a reused connection is dropped, hence >= 1.
    assert stats["server_errors"] == 1 and stats["dropped"] >= 1 and stats["truncated"] == 4


# -- data: determinism, live updates, restricted data --------------------------------------------

async def test_same_seed_same_data(session: aiohttp.ClientSession) -> None:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    fixed = {"start": end - timedelta(days=2), "end": end, "live": False}
    seen = []
    for seed in (11, 11, 12):
        async with Simulator(settings(seed=seed, **fixed)) as sim:
            params = {"type": "vendorOrders.getPurchaseOrders", "field": "updated", "data": "1"}
            async with session.get(sim.url + "/_sim/objects", params=params) as resp:
                pos = (await resp.json())["objects"]
            params["type"] = "ordersV0.getOrders"
            async with session.get(sim.url + "/_sim/objects", params=params) as resp:
                orders = (await resp.json())["objects"]
            seen.append((pos, orders))
    assert seen[0] == seen[1] and seen[0] != seen[2]
    assert len({o["id"] for o in seen[0][1]}) == 600


def test_live_data_appears_and_the_past_stays_stable() -> None:
    from spd.sim.app import SimState

    state = SimState(settings(orders=300, purchase_orders=50))
    data, now = state.orders, state.now()
    lag = 120
    def versions(at: float) -> set[tuple[str, int]]:
        rows = data.ground_truth("updated", 0, now - lag, at)
        return {(r["id"], r["version_time"]) for r in rows}

    before = versions(now)
    later = now + 6 * 3600
    data.ensure(later)
    assert before == versions(later), "nothing appears behind the lag"
    fresh = data.ground_truth("created", now, later, later)
    assert len(fresh) > 5, "new orders keep coming"
    assert any(not r["current"] for r in data.ground_truth("updated", 0, later, later))


async def test_stepping_the_clock_brings_new_orders_and_updates(
    session: aiohttp.ClientSession,
) -> None:
    clock = [datetime.now(UTC).replace(microsecond=0)]
    async with Simulator(settings(rate_limit=False, clock=lambda: clock[0])) as sim:
        api = await start_api(session, sim)
        mark = clock[0] - timedelta(minutes=2)
        first, _ = await collect_v0(api, {"MarketplaceIds": US, "LastUpdatedBefore": iso(mark),
                                          "LastUpdatedAfter": iso(mark - timedelta(hours=6))})
        clock[0] += timedelta(days=1)
        await api.login()  # a day later the access token has expired
        params = {"MarketplaceIds": US, "LastUpdatedAfter": iso(mark)}
        later, _ = await collect_v0(api, params)
        truth = await api.truth("ordersV0.getOrders", "updated", mark,
                                clock[0] - timedelta(minutes=2))
    assert {(o["AmazonOrderId"], o["LastUpdateDate"]) for o in later} == {
        (r["id"], r["version_time"]) for r in truth if r["current"]}
    new = [o for o in later if parse(o["PurchaseDate"]) > mark]
    updated = [o for o in later if parse(o["PurchaseDate"]) < mark]
    assert len(new) > 50 and len(updated) > 50
    assert {o["AmazonOrderId"] for o in first} & {o["AmazonOrderId"] for o in updated}


async def test_restricted_data_token_adds_buyer_info(api: Api) -> None:
    body = {"restrictedResources": [{"method": "GET", "path": ORDERS,
                                     "dataElements": ["buyerInfo", "shippingAddress"]}]}
    async with api.session.post(api.sim.url + "/tokens/2021-03-01/restrictedDataToken",
                                json=body, headers={"x-amz-access-token": api.token}) as resp:
        assert resp.status == 200
        rdt = (await resp.json())["restrictedDataToken"]
    params = {"MarketplaceIds": US, "CreatedAfter": "2000-01-01T00:00:00Z",
              "MaxResultsPerPage": 3}
    _, _, plain = await api.get(ORDERS, params)
    _, _, restricted = await api.get(ORDERS, params, token=rdt)
    _, _, plain_again = await api.get(ORDERS, params)  # the simulator renders each order once
    assert plain["payload"]["Orders"][0]["BuyerInfo"] == {}
    assert "@" in restricted["payload"]["Orders"][0]["BuyerInfo"]["BuyerEmail"]
    assert "AddressLine1" in restricted["payload"]["Orders"][0]["ShippingAddress"]
    assert plain_again == plain


def test_render_cache_gives_each_version_its_own_json_and_stays_bounded() -> None:
    make = order_factory(0)
    rng = random.Random(5)
    records = [make(rng, 1_700_000_000 + n, US, set()) for n in range(3)]
    cache = RenderCache(limit=4)
    for rec in records:
        for idx in range(len(rec.versions)):
            rendered = cache.get(render_v0, rec, idx, frozenset())
            assert orjson.loads(orjson.dumps([rendered])) == [render_v0(rec, idx)]
            assert cache.get(render_v0, rec, idx, frozenset()) is rendered
    assert len(cache) == 4
    rec = records[0]
    restricted = frozenset({"buyerInfo"})
    with_buyer = orjson.loads(orjson.dumps(cache.get(render_v0, rec, 0, restricted)))
    assert with_buyer == render_v0(rec, 0, restricted) != render_v0(rec, 0)


# -- CLI ----------------------------------------------------------------------------------------

def test_cli_arguments_become_settings() -> None:
    args = build_parser().parse_args(
        ["--port", "0", "--orders", "10", "--purchase-orders", "3", "--seed", "5",
         "--error-rate", "0.1", "--latency", "20", "--drop-rate", "0.2", "--truncate-rate",
         "0.3", "--no-rate-limit", "--next-token-ttl", "5", "--no-live"])
    s = settings_from_args(args)
    assert (s.port, s.orders, s.purchase_orders, s.seed) == (0, 10, 3, 5)
    assert (s.error_rate, s.latency_ms, s.drop_rate, s.truncate_rate) == (0.1, 20, 0.2, 0.3)
    assert not s.rate_limit and s.next_token_ttl == timedelta(seconds=5) and not s.live
    assert settings_from_args(build_parser().parse_args([])).live  # live data by default
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--error-rate", "2"])


def test_spd_sim_runs_in_the_foreground_until_sigterm() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "spd.sim.cli", "--port", "0", "--orders", "50"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert "listening on http://127.0.0.1:" in line
        url = line.split()[-1]

        async def probe() -> int:
            async with aiohttp.ClientSession() as s, s.get(url + "/_sim/info") as resp:
                return resp.status

        assert asyncio.run(probe()) == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
