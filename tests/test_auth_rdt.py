"""Restricted Data Tokens against the simulator's Tokens API: personal data only with an RDT
for the exact method and path, cached until expiresIn, a clear error without the role."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from support.aws_peer import ROLE_ARN, MotoSts, account_yaml, write_accounts_config
from spd.catalog.model import load_catalog
from spd.client.http import SpClient
from spd.client.rdt import RestrictedTokens
from spd.config.validate import load_config
from spd.core.errors import ApiError, AuthError, UsageError
from spd.sim import SimSettings, Simulator
from support.spd import read_jsonl, run_spd

MARKETPLACE = "ATVPDKIKX0DER"
GET_ORDERS = ("ordersV0", "getOrders")


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def settings(**extra) -> SimSettings:
    return SimSettings(orders=150, purchase_orders=0, live=False, rate_limit=False, **extra)


@pytest.fixture
async def sim():
    async with Simulator(settings()) as s:
        yield s


def load_accounts(tmp_path: Path, sim_url: str, pollers: dict | None = None, **aws: str):
    path = write_accounts_config(
        tmp_path, [account_yaml("acme", sim_url, aws=aws or None)],
        pollers or {"orders": {"account": "acme", "object": "ordersV0.getOrders"}})
    return load_config(path)


def params(**extra) -> dict:
    after = datetime.now(timezone.utc) - timedelta(days=5)
    return {"MarketplaceIds": [MARKETPLACE], "CreatedAfter": after, **extra}


def rdt_grants(sim: Simulator) -> list[tuple]:
    return [g.rdt for g in sim.state.auth._grants.values() if g.rdt is not None]


async def test_personal_data_only_with_an_rdt(sim, catalog, tmp_path):
    op = catalog.operation(*GET_ORDERS)
    async with SpClient(dict(load_accounts(tmp_path, sim.url).accounts), catalog) as c:
        plain = (await c.call("acme", op, params())).body["payload"]["Orders"]
        assert plain and all(o["BuyerInfo"] == {} for o in plain)
        assert all("AddressLine1" not in o["ShippingAddress"] for o in plain)
        restricted = await c.call("acme", op, params(), restricted=["shippingAddress", "buyerInfo"])
        orders = restricted.body["payload"]["Orders"]
        assert orders and all(o["BuyerInfo"].get("BuyerEmail") for o in orders)
        assert all(o["ShippingAddress"].get("AddressLine1") for o in orders)
        # the next page (NextToken) and later calls reuse the same RDT
        token = restricted.body["payload"].get("NextToken")
        if token:
            page = await c.call("acme", op, {"MarketplaceIds": [MARKETPLACE], "NextToken": token},
                                restricted=["buyerInfo", "shippingAddress"])
            assert all(o["BuyerInfo"].get("BuyerEmail") for o in page.body["payload"]["Orders"])
        await c.call("acme", op, params(), restricted=["buyerInfo", "shippingAddress"])
        assert c.rdt.requested == 1
    # asked for the generic getOrders path (no query), with the data elements
    assert rdt_grants(sim) == [(("GET", "/orders/v0/orders",
                                 frozenset({"buyerInfo", "shippingAddress"})),)]
    assert sim.state.auth.rdt_issued == 1


async def test_rdt_for_one_element_grants_only_that_element(sim, catalog, tmp_path):
    async with SpClient(dict(load_accounts(tmp_path, sim.url).accounts), catalog) as c:
        resp = await c.call("acme", catalog.operation(*GET_ORDERS), params(),
                            restricted=["shippingAddress"])
    orders = resp.body["payload"]["Orders"]
    assert all(o["ShippingAddress"].get("AddressLine1") for o in orders)
    assert all(o["BuyerInfo"] == {} for o in orders)


async def test_rdt_asked_for_the_exact_path_of_other_operations(sim, catalog, tmp_path):
    """getOrderAddress: the concrete path with the order id, no dataElements."""
    op = catalog.operation("ordersV0", "getOrderAddress")
    async with SpClient(dict(load_accounts(tmp_path, sim.url).accounts), catalog) as c:
        with pytest.raises(ApiError):  # the simulator does not serve getOrderAddress
            await c.call("acme", op, {"orderId": "902-1845936-5435065"}, restricted=[])
    assert rdt_grants(sim) == [(("GET", "/orders/v0/orders/902-1845936-5435065/address",
                                 frozenset()),)]


async def test_rdt_cached_until_expires_in(sim, catalog, tmp_path):
    op = catalog.operation(*GET_ORDERS)
    now = [1000.0]
    async with SpClient(dict(load_accounts(tmp_path, sim.url).accounts), catalog) as c:
        c.rdt = RestrictedTokens(c.rdt._create, clock=lambda: now[0])
        await c.call("acme", op, params(), restricted=["buyerInfo"])
        now[0] += 3600 - 61  # expiresIn is 3600; used until a minute before
        await c.call("acme", op, params(), restricted=["buyerInfo"])
        assert c.rdt.requested == 1
        now[0] += 2
        await c.call("acme", op, params(), restricted=["buyerInfo"])
        assert c.rdt.requested == 2
        await asyncio.gather(*(c.call("acme", op, params(), restricted=["shippingAddress"])
                               for _ in range(5)))
        assert c.rdt.requested == 3  # one request however many wait


async def test_expired_rdt_is_replaced_once(sim, catalog, tmp_path):
    op = catalog.operation(*GET_ORDERS)
    async with SpClient(dict(load_accounts(tmp_path, sim.url).accounts), catalog) as c:
        await c.call("acme", op, params(), restricted=["buyerInfo"])
        sim.state.auth.expire_all()  # the RDT and the LWA token behind it
        resp = await c.call("acme", op, params(), restricted=["buyerInfo"])
        assert all(o["BuyerInfo"].get("BuyerEmail") for o in resp.body["payload"]["Orders"])
        assert c.rdt.requested == 2
    assert sim.state.auth.rdt_issued == 2


async def test_missing_role_names_the_role_to_request(catalog, tmp_path):
    async with Simulator(settings(denied_data_elements=frozenset({"buyerTaxInformation"}))) as s:
        async with SpClient(dict(load_accounts(tmp_path, s.url).accounts), catalog) as c:
            with pytest.raises(AuthError) as info:
                await c.call("acme", catalog.operation(*GET_ORDERS), params(),
                             restricted=["buyerInfo", "buyerTaxInformation"])
    message = str(info.value)
    assert message.startswith("account acme: the application may not read restricted data "
                              "(buyerTaxInformation); request the Tax Invoicing (Restricted)")
    assert "\n" not in message


async def test_unknown_data_element_is_a_usage_error(sim, catalog, tmp_path):
    async with SpClient(dict(load_accounts(tmp_path, sim.url).accounts), catalog) as c:
        with pytest.raises(UsageError, match="allowed: buyerInfo, shippingAddress, "
                                             "buyerTaxInformation"):
            await c.call("acme", catalog.operation(*GET_ORDERS), params(), restricted=["ssn"])
    assert sim.state.auth.issued == 0


def test_pollers_accept_restricted_in_the_config(tmp_path):
    cfg = load_accounts(tmp_path, "http://127.0.0.1:9", {"orders": {
        "account": "acme", "object": "ordersV0.getOrders",
        "restricted": "[buyerInfo, shippingAddress]"}})
    assert cfg.pollers["orders"].restricted == ["buyerInfo", "shippingAddress"]


async def test_restricted_call_on_a_signed_account(catalog, tmp_path):
    """The Tokens API call and the restricted call are both SigV4-signed."""
    moto = MotoSts().start()
    try:
        sim_settings = settings(aws_credentials=MotoSts.credentials, aws_region="us-east-1")
        async with Simulator(sim_settings) as s:
            aws = {"access_key_id": moto.good[0], "secret_access_key": moto.good[1],
                   "role_arn": ROLE_ARN, "sts_endpoint": moto.url}
            accts = dict(load_accounts(tmp_path, s.url, **aws).accounts)
            async with SpClient(accts, catalog) as c:
                resp = await c.call("acme", catalog.operation(*GET_ORDERS), params(),
                                    restricted=["buyerInfo"])
                assert c.signer.roles.assumed == 1
            assert all(o["BuyerInfo"].get("BuyerEmail") for o in resp.body["payload"]["Orders"])
            assert s.state.stats["tokens_2021-03-01.createRestrictedDataToken"]["ok"] == 1
    finally:
        moto.stop()


def test_exec_restricted_subprocess(tmp_path, sim_factory):
    """`spd exec --restricted` prints personal data; an unknown element is a usage error."""
    sim = sim_factory(orders=40, purchase_orders=0, live=False, rate_limit=False)
    config = write_accounts_config(tmp_path, [account_yaml("acme", sim.url)], {})
    base = ("exec", "ordersV0", "getOrders", "-p", f"MarketplaceIds={MARKETPLACE}",
            "-p", "CreatedAfter=2020-01-01T00:00:00Z", "-c", str(config))
    ok = run_spd(*base, "--restricted", "buyerInfo,shippingAddress")
    assert ok.returncode == 0, ok.stderr
    orders = json.loads(ok.stdout)["payload"]["Orders"]
    assert orders and all(o["BuyerInfo"].get("BuyerEmail") for o in orders)
    bad = run_spd(*base, "--restricted", "ssn")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].endswith(
        "unknown restricted data element ssn; allowed: buyerInfo, shippingAddress, "
        "buyerTaxInformation")
    assert sim.get("/_sim/stats")["lwa"]["rdt_issued"] == 1


def test_poller_with_restricted_emits_personal_data(tmp_path, sim_factory):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=60, purchase_orders=0, start=now - timedelta(days=1), end=now,
                      rate_limit=False)
    start = (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = write_accounts_config(tmp_path, [account_yaml("acme", sim.url)], {"orders": {
        "account": "acme", "object": "ordersV0.getOrders", "start_time": start,
        "restricted": "[buyerInfo, shippingAddress]"}})
    result = run_spd("once", "-c", str(config))
    assert result.returncode == 0, result.stderr
    messages = read_jsonl(tmp_path / "out" / "orders.jsonl")
    assert messages and all(m["data"]["BuyerInfo"].get("BuyerEmail") for m in messages)
    assert sim.get("/_sim/stats")["lwa"]["rdt_issued"] == 1


def test_refusal_of_a_resource_without_elements_names_the_operation():
    from spd.client.rdt import rdt_error

    exc = ApiError("HTTP 400", status=400, errors=[{
        "code": "InvalidInput",
        "message": "Application do not have access to some or all requested resource"}])
    err = rdt_error("acme", "GET", "/orders/v0/orders/1/address", (), exc)
    assert isinstance(err, AuthError)
    assert str(err) == ("account acme: the application may not read restricted data "
                        "(GET /orders/v0/orders/1/address); request the restricted role it "
                        "needs for the app, then re-authorize the selling partner")
