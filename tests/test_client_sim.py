"""SpClient with the real catalog against the real simulator (spd.sim) on loopback."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from spd.catalog.model import load_catalog
from spd.client.http import SpClient
from spd.client.policy import RetryPolicy
from spd.core.errors import ApiError, AuthError
from spd.sim import SimSettings, Simulator
from spd.sim.limits import TokenBucket as SimBucket
from support.quota import record_grants

MARKETPLACE = "ATVPDKIKX0DER"


def account(sim: Simulator, rate_limits: dict | None = None, refresh_token: str = "Atzr|rt"):
    return SimpleNamespace(
        base_url=sim.url,
        marketplace_ids=[MARKETPLACE],
        region="us-east-1",
        rate_limits=rate_limits or {},
        lwa=SimpleNamespace(
            client_id="amzn1.application-oa2-client.sim",
            client_secret=SecretStr("sim-secret"),
            refresh_token=SecretStr(refresh_token),
            token_url=sim.token_url,
        ),
    )


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture
async def sim():
    async with Simulator(SimSettings(orders=200, purchase_orders=0, live=False)) as s:
        yield s


def orders_params(**extra):
    after = datetime.now(UTC) - timedelta(days=2)
    return {"MarketplaceIds": [MARKETPLACE], "CreatedAfter": after, **extra}


def sim_stats(sim: Simulator, op: str) -> dict:
    return dict(sim.state.stats[op])


async def test_get_orders_from_the_real_catalog(sim, catalog):
    op = catalog.operation("ordersV0", "getOrders")
    async with SpClient({"acme": account(sim)}, catalog) as client:
        assert (client.bucket("acme", op).rate, client.bucket("acme", op).burst) == (0.0167, 20)
        resp = await client.call("acme", op, orders_params(MaxResultsPerPage=100))
        assert resp.status == 200
        orders = resp.body["payload"]["Orders"]
        assert orders and all(o["MarketplaceId"] == MARKETPLACE for o in orders)
        assert resp.request_id
        token = resp.body["payload"].get("NextToken")
        if token:
            page2 = await client.call("acme", op, {"MarketplaceIds": [MARKETPLACE], "NextToken": token})
            assert page2.status == 200
        # the header repeats the Usage Plan rate; the burst is the catalog's
        assert client.bucket("acme", op).burst == 20


async def test_raw_request_uses_the_catalog_bucket(sim, catalog):
    async with SpClient({"acme": account(sim)}, catalog) as client:
        query = {"MarketplaceIds": [MARKETPLACE], "CreatedAfter": "2020-01-01T00:00:00Z"}
        resp = await client.raw("acme", "GET", "/orders/v0/orders", query)
        assert resp.status == 200 and resp.body["payload"]["Orders"]
        assert resp.headers["x-amzn-RateLimit-Limit"] == "0.0167"
        assert client.bucket_stats()["acme"]["ordersV0.getOrders"]["requests"] == 1


async def test_unknown_resource_fails_at_once_with_errors(sim, catalog):
    op = catalog.operation("ordersV0", "getOrder")
    async with SpClient({"acme": account(sim)}, catalog) as client:
        with pytest.raises(ApiError) as info:
            await client.call("acme", op, {"orderId": "902-0000000-0000000"})
        assert client.bucket_stats()["acme"]["ordersV0.getOrder"]["requests"] == 1
    assert info.value.status == 404 and info.value.errors[0]["code"] == "NotFound"


async def test_bad_parameters_fail_with_amazon_errors(sim, catalog):
    op = catalog.operation("ordersV0", "getOrders")
    async with SpClient({"acme": account(sim)}, catalog) as client:
        with pytest.raises(ApiError) as info:
            await client.call("acme", op, {"MarketplaceIds": [MARKETPLACE]})  # no date filter
    assert info.value.status == 400 and info.value.errors
    assert str(info.value).startswith("ordersV0.getOrders: HTTP 400 InvalidInput")


async def test_runs_at_the_quota_without_429(catalog, monkeypatch):
    # The simulator enforces 20/s burst 2; the account override tells spd the same.
    limits = {"ordersV0.getOrders": (20.0, 2)}
    settings = SimSettings(orders=50, purchase_orders=0, live=False, rate_limits=limits)
    async with Simulator(settings) as sim:
        override = {"ordersV0.getOrders": SimpleNamespace(rate=20.0, burst=2)}
        op = catalog.operation("ordersV0", "getOrders")
        async with SpClient({"acme": account(sim, override)}, catalog) as client:
            granted = record_grants(monkeypatch, client.bucket("acme", op))
            await client.call("acme", op, orders_params())  # token fetched, bucket used
            await asyncio.sleep(0.2)  # both buckets full again
            await asyncio.gather(*(client.call("acme", op, orders_params()) for _ in range(40)))
            ours = client.bucket_stats()["acme"]["ordersV0.getOrders"]
        stats = sim_stats(sim, "ordersV0.getOrders")
        plan = sim.state.limiter.plan("ordersV0.getOrders")
    # Sent at the quota: replayed through the simulator's own bucket model, the times spd's
    # bucket granted its tokens (retries included) draw no 429, and cover 38 intervals after the
    # burst. Not the simulator's live 429 count: it stamps arrivals in this same busy process,
    # where a stall of 50 ms delays one arrival and not the next and squeezes two correctly
    # spaced sends together (the pacing itself is checked exactly in test_client_ratelimit.py).
    bucket = SimBucket(*plan, float(plan[1]), granted[0])
    assert [t for t in granted if not bucket.take(t)] == []
    assert granted[-1] - granted[1] >= (40 - 2) / 20
    assert stats["ok"] == 41 and len(granted) == 41 + ours["throttled"]
    assert stats.get("throttled", 0) == ours["throttled"]  # every 429 seen was retried


async def test_throttled_by_the_simulator_then_succeeds(catalog):
    # spd believes the catalog's burst of 20; the simulator allows 2: 429s, drain, retry.
    limits = {"ordersV0.getOrders": (10.0, 2)}
    settings = SimSettings(orders=50, purchase_orders=0, live=False, rate_limits=limits)
    async with Simulator(settings) as sim:
        op = catalog.operation("ordersV0", "getOrders")
        async with SpClient({"acme": account(sim)}, catalog) as client:
            results = await asyncio.gather(*(client.call("acme", op, orders_params()) for _ in range(6)))
            stats = client.bucket_stats()["acme"]["ordersV0.getOrders"]
        sim_counts = sim_stats(sim, "ordersV0.getOrders")
    assert all(r.status == 200 for r in results)
    assert stats["rate"] == 10.0 and stats["burst"] == 20  # rate from the header
    assert stats["throttled"] == sim_counts["throttled"] > 0


async def test_faults_are_retried_for_get(catalog):
    settings = SimSettings(orders=50, purchase_orders=0, live=False, rate_limit=False,
                           error_rate=0.3, drop_rate=0.1, truncate_rate=0.1)  # fmt: skip
    async with Simulator(settings) as sim:
        op = catalog.operation("ordersV0", "getOrders")
        async with SpClient({"acme": account(sim)}, catalog,
                            retry=RetryPolicy(max_attempts=12, backoff_base=0.01)) as client:  # fmt: skip
            results = await asyncio.gather(*(client.call("acme", op, orders_params()) for _ in range(20)))
        counts = sim_stats(sim, "ordersV0.getOrders")
    assert all(r.status == 200 and "Orders" in r.body["payload"] for r in results)
    assert counts["ok"] == 20
    assert counts["server_errors"] + counts["dropped"] + counts["truncated"] > 0


async def test_expired_access_tokens_are_refreshed(sim, catalog):
    op = catalog.operation("ordersV0", "getOrders")
    async with SpClient({"acme": account(sim)}, catalog) as client:
        await client.call("acme", op, orders_params())
        async with client.session.post(f"{sim.url}/_sim/auth", json={"expire_access_tokens": True}):
            pass
        resp = await client.call("acme", op, orders_params())
    assert resp.status == 200
    assert sim.state.auth.issued == 2


async def test_revoked_refresh_token_is_invalid_grant(sim, catalog):
    sim.state.auth.settings.revoked.add("Atzr|revoked")
    op = catalog.operation("ordersV0", "getOrders")
    async with SpClient({"acme": account(sim, refresh_token="Atzr|revoked")}, catalog) as client:
        with pytest.raises(AuthError, match=r"\(invalid_grant\)$"):
            await client.call("acme", op, orders_params())


async def test_requests_beyond_the_in_flight_cap_wait_without_timing_out(catalog, monkeypatch):
    """Thousands of pollers due at once: requests queue before the wire, and each one's timeout
    starts when it goes out, so a slow SP-API makes them wait, not fail. (A cap of 4 and a pool
    of 8 stand for 96 and 128.)"""
    from spd.client import http

    monkeypatch.setattr(http, "MAX_IN_FLIGHT", 4)
    monkeypatch.setattr(http, "POOL_SIZE", 8)
    settings = SimSettings(orders=0, purchase_orders=0, live=False, rate_limit=False, latency_ms=1000)
    limits = {"ordersV0.getOrders": SimpleNamespace(rate=1000.0, burst=1000)}
    calls = 32
    op = catalog.operation("ordersV0", "getOrders")
    async with Simulator(settings) as sim:
        # 4 rounds of 1 s in the pool of 8 would exceed a 2.5 s timeout that counted the wait
        async with SpClient({"acme": account(sim, rate_limits=limits)}, catalog, timeout=2.5,
                            retry=RetryPolicy(max_attempts=1)) as client:
            await client.call("acme", op, orders_params())  # the LWA token, once
            began = time.monotonic()
            replies = await asyncio.gather(*(client.call("acme", op, orders_params())
                                             for _ in range(calls)))
            elapsed = time.monotonic() - began
    assert [r.status for r in replies] == [200] * calls
    assert elapsed >= 7.5  # they did queue: at most 4 at a time


async def test_a_slow_lwa_round_trip_before_the_first_request_costs_no_429(catalog, monkeypatch):
    """Amazon's bucket refills from when the first request arrives, spd's from when it takes the
    token (plus a 150 ms guard for jitter). The first request's LWA round trip (here 400 ms, as a
    new TLS connection to LWA may take) must not fall between the two: paging on at the full
    rate, spd would then run ahead of the simulator's bucket and meet a 429."""
    settings = SimSettings(orders=0, purchase_orders=300, live=False)
    async with Simulator(settings) as sim, SpClient({"acme": account(sim)}, catalog) as client:
        post = client.auth._post

        async def slow_lwa(*args, **kwargs):
            await asyncio.sleep(0.4)
            return await post(*args, **kwargs)

        monkeypatch.setattr(client.auth, "_post", slow_lwa)
        op = catalog.operation("vendorOrders", "getPurchaseOrders")
        assert (client.bucket("acme", op).rate, client.bucket("acme", op).burst) == (10.0, 10)
        window = {"limit": 1, "createdAfter": datetime.now(UTC) - timedelta(days=6),
                  "createdBefore": datetime.now(UTC)}
        for _ in range(25):  # the burst of 10, then 15 at 10/s
            assert (await client.call("acme", op, window)).status == 200
        stats = sim_stats(sim, "vendorOrders.getPurchaseOrders")
        assert stats["requests"] == 25 and stats.get("throttled", 0) == 0, stats


def _congested(monkeypatch, slow_rate: float, latency_ms: float) -> tuple[SimSettings, dict]:
    """A cap of 4 in-flight slots (standing for 96), slow answers, and two operations: getOrders
    at `slow_rate` (the simulator allows a burst of 2, spd believes 1: one interval of slack for
    loopback jitter) and getPurchaseOrders at 1000/s."""
    from spd.client import http

    monkeypatch.setattr(http, "MAX_IN_FLIGHT", 4)
    monkeypatch.setattr(http, "POOL_SIZE", 8)
    plans = {"ordersV0.getOrders": (slow_rate, 2), "vendorOrders.getPurchaseOrders": (1000.0, 1000)}
    settings = SimSettings(orders=0, purchase_orders=0, live=False, latency_ms=latency_ms,
                           rate_limits=plans)
    limits = {"ordersV0.getOrders": SimpleNamespace(rate=slow_rate, burst=1),
              "vendorOrders.getPurchaseOrders": SimpleNamespace(rate=1000.0, burst=1000)}
    return settings, limits


def vendor_window() -> dict:
    return {"limit": 1, "createdAfter": datetime.now(UTC) - timedelta(days=6),
            "createdBefore": datetime.now(UTC)}


async def test_requests_queued_for_a_slot_still_reach_amazon_at_the_bucket_pace(catalog, monkeypatch):
    """More requests ready than in-flight slots (a restart, a schedule burst): getOrders' tokens
    come every 250 ms, the slots free up 4 at a time every 300 ms. A request that took its token
    and then queued for a slot would leave with the others that did, 4 at once, and meet 429s
    from a bucket that refills from each arrival. The take must stay next to the send."""
    settings, limits = _congested(monkeypatch, slow_rate=4.0, latency_ms=300)
    slow = catalog.operation("ordersV0", "getOrders")
    fast = catalog.operation("vendorOrders", "getPurchaseOrders")
    async with Simulator(settings) as sim, SpClient({"acme": account(sim, limits)}, catalog) as client:
        await client.auth.token("acme", client._account("acme"))  # the LWA token, once
        calls = [client.call("acme", slow, orders_params()) for _ in range(12)]
        calls += [client.call("acme", fast, vendor_window()) for _ in range(40)]
        replies = await asyncio.gather(*calls)
        ours = client.bucket_stats()["acme"]["ordersV0.getOrders"]
    stats = sim_stats(sim, "ordersV0.getOrders")
    assert [r.status for r in replies] == [200] * len(calls)
    assert (stats.get("throttled", 0), ours["throttled"], ours["retries"]) == (0, 0, 0), stats
    assert stats["ok"] == 12 and sim_stats(sim, "vendorOrders.getPurchaseOrders")["ok"] == 40


async def test_requests_waiting_for_their_token_hold_no_in_flight_slot(catalog, monkeypatch):
    """getOrders at 2/s with 8 requests ready waits 3.5 s for its tokens; those waiters must not
    sit on the 4 slots meanwhile, or every other operation would queue behind them."""
    settings, limits = _congested(monkeypatch, slow_rate=2.0, latency_ms=50)
    slow = catalog.operation("ordersV0", "getOrders")
    fast = catalog.operation("vendorOrders", "getPurchaseOrders")
    async with Simulator(settings) as sim, SpClient({"acme": account(sim, limits)}, catalog) as client:
        await client.auth.token("acme", client._account("acme"))
        waiting = [asyncio.create_task(client.call("acme", slow, orders_params())) for _ in range(8)]
        await asyncio.sleep(0.1)  # the slow requests are queued first
        fast_replies = await asyncio.gather(*(client.call("acme", fast, vendor_window())
                                              for _ in range(16)))
        slow_sent = sim_stats(sim, "ordersV0.getOrders")["requests"]
        slow_replies = await asyncio.gather(*waiting)
    assert [r.status for r in fast_replies + slow_replies] == [200] * 24
    assert slow_sent < 8  # the 16 fast requests were done while getOrders still waited for quota
