"""The places where spd broke Amazon's contract, each shown against the simulator (which enforces
the contract table, spd.catalog.contract) or through `spd validate`."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest

from spd.sim import SimSettings, Simulator
from support.config import write_config
from support.runtime import start_runtime, stop_runtime, truth
from support.spd import iso, run_spd

NOW = datetime.now(timezone.utc).replace(microsecond=0)
TRANSACTIONS = "finances_2024-06-19.listTransactions"
US = "ATVPDKIKX0DER"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    settings = SimSettings(orders=0, purchase_orders=0, objects_per_type=200, start=NOW - timedelta(days=20),
                           end=NOW, live=False, rate_limit=False, marketplaces=(US, "A2EUQ1WTGCTBG2"))
    async with Simulator(settings) as simulator:
        yield simulator


async def poll(tmp_path: Path, url: str, poller: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    runtime, recorder = await start_runtime(tmp_path, url, {"p": poller})
    try:
        result = await asyncio.wait_for(runtime.pollers["p"].run(), 120)
    finally:
        await stop_runtime(runtime)
    return result, recorder.messages


async def test_us_mfn_transactions_come_only_without_marketplace_id(tmp_path: Path, sim: Simulator) -> None:
    start = NOW - timedelta(days=19)
    rows = await truth(sim.url, TRANSACTIONS, "created", start, NOW)
    hidden = {r["id"] for r in rows if r["omitted_only"]}
    assert hidden  # the simulator holds transactions Amazon serves only without marketplaceId
    _, messages = await poll(tmp_path / "all", sim.url, {"object": TRANSACTIONS, "start_time": iso(start)})
    emitted = {m["id"] for m in messages}
    assert {r["id"] for r in rows} <= emitted  # one series for the account: nothing is missing
    _, filtered = await poll(tmp_path / "us", sim.url, {"object": TRANSACTIONS, "start_time": iso(start),
                                                         "params": {"marketplaceId": US}})
    assert not hidden & {m["id"] for m in filtered}  # a marketplaceId filter hides them, as Amazon does
    assert {m["data"]["transactionId"] for m in filtered}


async def test_no_window_split_without_an_upper_bound(tmp_path: Path, sim: Simulator) -> None:
    """getInvoiceHeaders by invoicesModifiedAfter has no upper bound: one window to now, not
    90-day windows that each fetch everything since their start again."""
    result, messages = await poll(tmp_path, sim.url, {
        "object": "financesInvoices_2026-06-25.getInvoiceHeaders", "timestamp_field": "updated",
        "start_time": iso(NOW - timedelta(days=200))})
    assert result.caught_up and result.windows == 1
    ids = [m["id"] for m in messages]
    assert ids and len(ids) == len(set(ids))


async def test_windows_overlap_where_amazon_does_not_say_a_bound_includes_its_instant(
        tmp_path: Path, sim: Simulator) -> None:
    """DF packing slips: "became available after/before": the simulator reads both ends as
    excluding their instant, and an object exactly on a window boundary is still emitted."""
    name = "vendorDirectFulfillmentShipping_2021-12-28.getPackingSlips"
    rows = await truth(sim.url, name, "created", NOW - timedelta(days=12), NOW - timedelta(days=2))
    on_boundary = rows[len(rows) // 2]
    boundary = datetime.fromisoformat(on_boundary["version_time"].replace("Z", "+00:00"))
    start = boundary - timedelta(days=7)  # the first 7-day window ends exactly on it
    async with aiohttp.ClientSession() as session:
        token = await _token(session, sim.url)
        async with session.get(sim.url + "/vendor/directFulfillment/shipping/2021-12-28/packingSlips",
                               params={"createdAfter": iso(start), "createdBefore": iso(boundary)},
                               headers={"x-amz-access-token": token}) as resp:
            first = await resp.json()
    assert on_boundary["id"] not in {s["purchaseOrderNumber"] for s in first["packingSlips"]}
    _, messages = await poll(tmp_path, sim.url, {"object": name, "start_time": iso(start)})
    assert on_boundary["id"] in {m["id"] for m in messages}


async def _token(session: aiohttp.ClientSession, url: str) -> str:
    async with session.post(f"{url}/auth/o2/token", data={
            "grant_type": "refresh_token", "refresh_token": "r", "client_id": "c", "client_secret": "s"}) as resp:
        return (await resp.json())["access_token"]


@pytest.mark.parametrize("poller, message", [
    ({"object": "feeds_2021-06-30.getFeeds"},
     "pollers.p.params (line 11): feeds_2021-06-30.getFeeds needs feedTypes; add feedTypes: VALUE to params"),
    ({"object": "externalFulfillmentReturns_2024-09-11.listReturns", "timestamp_field": "updated"},
     "pollers.p.params (line 11): externalFulfillmentReturns_2024-09-11.listReturns by updated needs "
     "returnLocationId, status; add returnLocationId: VALUE, status: VALUE to params"),
])
def test_validate_demands_what_amazon_requires_in_prose(tmp_path: Path, poller: dict[str, str],
                                                        message: str) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", {"p": poller})
    result = run_spd("validate", "-c", str(config))
    assert result.returncode == 78
    assert result.stderr == f"spd: {config}: {message}\n"
    by_created = write_config(tmp_path, "http://127.0.0.1:9", {"p": {
        "object": "externalFulfillmentReturns_2024-09-11.listReturns"}})
    assert run_spd("validate", "-c", str(by_created)).returncode == 0


@pytest.mark.parametrize("message, details, expired", [
    ("Invalid nextToken.", "The nextToken has expired; repeat the request without nextToken to start over.", True),
    ("We could not decode your NextToken. Possible reasons include: a transmission error.", "", True),
    ("The input you have submitted is not valid. Please check your input and try again.",
     "nextToken must be the only parameter; got ['createdSince'].", False),
    ("The input you have submitted is not valid. Please check your input and try again.",
     "Send nextToken with the same arguments as the request that produced it.", False),
])
def test_a_refused_next_page_is_an_error_not_an_expired_token(message: str, details: str, expired: bool) -> None:
    """Restarting the window on a refusal would repeat the refused request forever."""
    from spd.core.errors import ApiError
    from spd.pipeline.poller_support import is_expired_token_error

    error = ApiError("x", status=400, errors=[{"code": "InvalidInput", "message": message, "details": details}])
    assert is_expired_token_error(error) is expired
