"""Every supported object type, polled from the simulator: nothing in the window is lost, nothing
outside it is invented, and the watermark advances. Plus the registry's declarations."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from spd.config.validate import load_config
from spd.core.errors import ConfigError
from spd.sources.describe import list_object_types, object_schema
from spd.sources.object_type import object_id
from spd.sources.registry import object_types, resolve_object_type
from spd.sim import SimSettings, Simulator
from support.runtime import start_runtime, stop_runtime, truth
from support.spd import iso
from support.config import write_config

NOW = datetime.now(timezone.utc).replace(microsecond=0)
START = NOW - timedelta(days=15)
SUPPORTED = [ot.name for ot in object_types() if ot.supported and ot.kind == "operation"]
# What types with `needs_params` must be given.
NEEDED = {
    "financesV0.listFinancialEventsByGroupId": {"eventGroupId": "GROUP-1"},
    "listingsItems_2021-08-01.searchListingsItems": {"sellerId": "A2SELLER"},
    "vehicles_2024-11-01.getVehicles": {"vehicleType": "CAR"},
    "fulfillmentOutbound_2020-07-01.getFeatureInventory": {"featureName": "BLANK_BOX"},
    "externalFulfillmentShipments_2024-09-11.getShipments": {"status": "CREATED"},
    "reports_2021-06-30.getReports": {"reportTypes": ["GET_SPD_GENERIC_TEST_DATA"]},
    "feeds_2021-06-30.getFeeds": {"feedTypes": ["POST_PRODUCT_DATA"]},
    "externalFulfillmentReturns_2024-09-11.listReturns": {"returnLocationId": "LOC-1", "status": "CREATED"},
}


@pytest.fixture(scope="module")
def sim_settings() -> SimSettings:
    return SimSettings(orders=300, purchase_orders=150, objects_per_type=260, start=NOW - timedelta(days=20),
                       end=NOW, live=False, rate_limit=False,
                       marketplaces=("ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"))


@pytest.fixture
async def sim(sim_settings: SimSettings) -> AsyncIterator[Simulator]:
    async with Simulator(sim_settings) as simulator:
        yield simulator


@pytest.mark.parametrize("name", SUPPORTED)
async def test_every_type_loses_nothing_and_advances(tmp_path: Path, sim: Simulator, name: str) -> None:
    ot = resolve_object_type(name)
    field = ot.timestamp_fields()[-1]  # "updated" where the type has it
    runtime, recorder = await start_runtime(tmp_path, sim.url, {"p": {
        "object": name, "timestamp_field": field, "start_time": iso(START),
        "params": NEEDED.get(name, {})}})
    try:
        result = await asyncio.wait_for(runtime.pollers["p"].run(), 120)
        state = await runtime.store.get("p")
    finally:
        await stop_runtime(runtime)
    assert result.caught_up and state is not None and state.watermark > START + timedelta(days=14)
    market = "ATVPDKIKX0DER" if ot.partitioning.marketplace_param else None
    expected = {object_id(ot, row["data"]) for row in
                await truth(sim.url, name, field, START, state.watermark, market)}
    emitted = {m["id"] for m in recorder.messages}
    assert len(expected) > 20, name  # the window holds data
    assert expected <= emitted, (name, len(expected - emitted))
    anywhere = {object_id(ot, row["data"]) for row in
                await truth(sim.url, name, field, START - timedelta(days=1), NOW + timedelta(days=1), market)}
    assert emitted <= anywhere  # nothing invented, nothing from another marketplace
    assert all(m["object_type"] == name and m["poller"] == "p" for m in recorder.messages)


def test_the_registry_covers_the_issue() -> None:
    names = {ot.name for ot in object_types() if ot.supported}
    assert len(names) == 39
    for wanted in ("financesV0.listFinancialEvents", "financesV0.listFinancialEventsByGroupId",
                   "finances_2024-06-19.listTransactions", "transfers_2024-06-01.listPayouts",
                   "reports_2021-06-30.getReports", "feeds_2021-06-30.getFeeds",
                   "dataKiosk_2023-11-15.getQueries", "fbaInventory.getInventorySummaries",
                   "vendorDirectFulfillmentShipping_2021-12-28.getShippingLabels"):
        assert wanted in names


def test_declarations_prose_only_facts() -> None:
    inv = resolve_object_type("fbaInventory.getInventorySummaries")
    assert inv.window.updated == ("startDateTime", None) and not inv.has_upper_bound("updated")
    assert inv.partitioning.per_marketplace and inv.paging.token_ttl == timedelta(seconds=30)
    assert inv.window.max_age == timedelta(days=540)
    assert resolve_object_type("reports_2021-06-30.getReports").paging.token_alone
    assert resolve_object_type("vendorDirectFulfillmentShipping_2021-12-28.getPackingSlips").window.max_window == timedelta(days=7)
    assert resolve_object_type("vendorDirectFulfillmentOrders_2021-12-28.getOrders").window.max_window is None
    assert resolve_object_type("listingsItems_2021-08-01.searchListingsItems").paging.size_max == 20
    fin = resolve_object_type("financesV0.listFinancialEvents")
    assert fin.extraction.flatten == "financial_events" and fin.extraction.id_field is None and fin.window.lag == timedelta(minutes=2)
    listed = {row["name"]: row for row in list_object_types()}
    assert listed["feeds_2021-06-30.getFeeds"]["only"] == "created only"
    assert "no upper bound" in listed["fbaInventory.getInventorySummaries"]["only"]
    assert listed["ordersV0.getOrders"]["only"] is None


def test_financial_event_schema_names_the_event_type() -> None:
    schema = object_schema("financesV0.listFinancialEvents")
    consts = {v["allOf"][1]["properties"]["eventType"]["const"] for v in schema["anyOf"]}
    assert {"ShipmentEvent", "RefundEvent", "ServiceFeeEvent"} <= consts


async def test_missing_needed_params_is_a_config_error(tmp_path: Path, sim: Simulator) -> None:
    with pytest.raises(ConfigError, match="eventGroupId"):
        await start_runtime(tmp_path, sim.url, {"p": {"object": "financesV0.listFinancialEventsByGroupId"}})


async def test_an_unsupported_type_is_refused_by_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from spd.sources import registry as objects

    registry = dict(objects._registry())
    registry["feeds_2021-06-30.getFeeds"] = replace(registry["feeds_2021-06-30.getFeeds"], supported=False)
    monkeypatch.setattr(objects, "_REGISTRY", registry)
    with pytest.raises(ConfigError, match="getFeeds is not supported in this version"):
        load_config(write_config(tmp_path, "http://127.0.0.1:9", {"p": {"object": "feeds_2021-06-30.getFeeds"}}))


@pytest.mark.parametrize("path,query,message", [
    ("/vendor/directFulfillment/shipping/2021-12-28/packingSlips",
     {"createdAfter": iso(NOW - timedelta(days=9)), "createdBefore": iso(NOW - timedelta(days=1))}, "must not exceed 7 days"),
    ("/vendor/directFulfillment/orders/2021-12-28/purchaseOrders", {"createdAfter": iso(NOW - timedelta(days=1))},
     "Missing required parameter(s): createdBefore"),
    ("/feeds/2021-06-30/feeds", {"feedTypes": "X", "createdSince": iso(NOW - timedelta(days=100))},
     "no earlier than 90 days"),
    ("/feeds/2021-06-30/feeds", {"feedTypes": "X", "pageSize": "101"}, "pageSize must be an integer from 1 to 100"),
    ("/feeds/2021-06-30/feeds", {"createdSince": iso(NOW - timedelta(days=1))}, "Either feedTypes or nextToken is required."),
    ("/externalFulfillment/2024-09-11/returns", {"lastUpdatedSince": iso(NOW - timedelta(days=1)), "status": "CREATED"},
     "you must also supply `returnLocationId` and `status`"),
    ("/service/v1/serviceJobs", {"marketplaceIds": "ATVPDKIKX0DER,A2EUQ1WTGCTBG2",
                                 "createdAfter": iso(NOW - timedelta(days=1))}, "takes exactly one marketplace id"),
    ("/finances/v0/financialEvents", {"PostedAfter": iso(NOW - timedelta(days=1)),
                                      "PostedBefore": iso(NOW + timedelta(days=1))},
     "more than 2 minutes before"),
    ("/fba/inventory/v1/summaries", {"granularityType": "Marketplace", "granularityId": "A2EUQ1WTGCTBG2",
                                     "marketplaceIds": "ATVPDKIKX0DER"}, "granularityId must be the marketplace"),
])
async def test_the_simulator_enforces_amazons_rules(sim: Simulator, path: str, query: dict[str, str],
                                                    message: str) -> None:
    token = await _access_token(sim.url)
    async with aiohttp.ClientSession() as session:
        async with session.get(sim.url + path, params=query, headers={"x-amz-access-token": token}) as resp:
            body = await resp.json()
    assert resp.status == 400, body
    assert message in body["errors"][0]["details"], body


async def test_a_token_sent_with_filters_is_refused_where_amazon_wants_it_alone(sim: Simulator) -> None:
    token = await _access_token(sim.url)
    headers = {"x-amz-access-token": token}
    since = {"feedTypes": "POST_PRODUCT_DATA", "createdSince": iso(NOW - timedelta(days=15)), "pageSize": "10"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(f"{sim.url}/feeds/2021-06-30/feeds", params=since) as resp:
            next_token = (await resp.json())["nextToken"]
        async with session.get(f"{sim.url}/feeds/2021-06-30/feeds", params={**since, "nextToken": next_token}) as resp:
            refused = await resp.json()
        async with session.get(f"{sim.url}/feeds/2021-06-30/feeds", params={"nextToken": next_token}) as resp:
            alone = await resp.json()
    assert "must be the only parameter" in refused["errors"][0]["details"]
    assert len(alone["feeds"]) == 10


async def _access_token(url: str) -> str:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/auth/o2/token", data={
                "grant_type": "refresh_token", "refresh_token": "r", "client_id": "c", "client_secret": "s"}) as resp:
            return (await resp.json())["access_token"]
