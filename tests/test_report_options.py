"""Reports with options: `report_options` sent as reportOptions and checked where Amazon documents
the keys, period-aligned windows (a WEEK report runs Sunday to Saturday, or the simulator ends it
FATAL as Amazon does), snapshot reports requested once without data times, and `spd objects`
listing the known report types."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest

from spd.sources.reports.periods import aligned_window, period_start
from spd.sim import SimSettings, Simulator
from support.config import write_config
from support.runtime import start_runtime, stop_runtime
from support.spd import iso, run_spd

NOW = datetime.now(timezone.utc).replace(microsecond=0)
SALES = {"reportPeriod": "WEEK", "distributorView": "MANUFACTURING", "sellingProgram": "RETAIL"}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    settings = SimSettings(orders=50, purchase_orders=0, objects_per_type=10, start=NOW - timedelta(days=5),
                           end=NOW, live=False, rate_limit=False)
    async with Simulator(settings) as simulator:
        async with aiohttp.ClientSession() as session:
            await session.post(f"{simulator.url}/_sim/reports", json={"processing_seconds": 0})
        yield simulator


async def reports(sim: Simulator, report_type: str) -> list[dict[str, Any]]:
    """The reports of one type the simulator made (Amazon makes settlements on its own)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim.url}/_sim/reports") as resp:
            return [r for r in (await resp.json())["reports"] if r["reportType"] == report_type]


async def poll(tmp_path: Path, url: str, poller: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    runtime, recorder = await start_runtime(tmp_path, url, {"p": poller})
    try:
        result = await asyncio.wait_for(runtime.pollers["p"].run(), 120)
        state = await runtime.store.get("p")
    finally:
        await stop_runtime(runtime)
    return state, recorder.messages


def day(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("report_type, options, spans", [
    ("GET_VENDOR_SALES_REPORT", SALES, True),
    ("GET_BRAND_ANALYTICS_SEARCH_TERMS_REPORT", {"reportPeriod": "WEEK"}, False),
])
async def test_week_reports_run_sunday_to_saturday(tmp_path: Path, sim: Simulator, report_type: str,
                                                   options: dict[str, str], spans: bool) -> None:
    start = NOW - timedelta(days=40)
    state, messages = await poll(tmp_path, sim.url, {"object": f"report:{report_type}",
                                                     "start_time": iso(start), "report_options": options})
    made = await reports(sim, report_type)
    assert made and all(r["processingStatus"] == "DONE" for r in made)  # misaligned dates end FATAL
    for r in made:
        first, last = day(r["dataStartTime"]), day(r["dataEndTime"])
        assert r["reportOptions"] == options
        assert first.isoweekday() == 7 and first.time().isoformat() == "00:00:00"  # a Sunday
        assert last.isoweekday() == 6 and last.time().isoformat() == "23:59:59"  # a Saturday
        assert spans or last - first == timedelta(days=7, seconds=-1)
    assert min(day(r["dataStartTime"]) for r in made) == period_start(start, "WEEK")
    assert state.watermark == period_start(NOW - timedelta(minutes=2), "WEEK")  # the week in progress waits
    assert {m["data"]["asin"] for m in messages}


async def test_a_week_report_that_does_not_start_on_sunday_ends_fatal(sim: Simulator) -> None:
    wednesday = period_start(NOW - timedelta(days=14), "WEEK") + timedelta(days=3)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sim.url}/auth/o2/token", data={
                "grant_type": "refresh_token", "refresh_token": "r", "client_id": "c", "client_secret": "s"}) as resp:
            token = (await resp.json())["access_token"]
        body = {"reportType": "GET_VENDOR_SALES_REPORT", "marketplaceIds": ["ATVPDKIKX0DER"],
                "reportOptions": SALES, "dataStartTime": iso(wednesday),
                "dataEndTime": iso(wednesday + timedelta(days=7, seconds=-1))}
        async with session.post(f"{sim.url}/reports/2021-06-30/reports", json=body,
                                headers={"x-amz-access-token": token}) as resp:
            report_id = (await resp.json())["reportId"]
    made = await reports(sim, "GET_VENDOR_SALES_REPORT")
    assert {r["reportId"]: r["processingStatus"] for r in made}[report_id] == "FATAL"


async def test_snapshot_reports_are_requested_once_without_data_times(tmp_path: Path, sim: Simulator) -> None:
    state, messages = await poll(tmp_path, sim.url, {"object": "report:GET_MERCHANT_LISTINGS_ALL_DATA",
                                                     "start_time": iso(NOW - timedelta(days=700))})
    made = await reports(sim, "GET_MERCHANT_LISTINGS_ALL_DATA")
    assert len(made) == 1  # not 24 windows of 30 days back to 730 days
    assert "dataStartTime" not in made[0] and "dataEndTime" not in made[0]
    assert messages and state.watermark > NOW - timedelta(minutes=10)


def test_periods() -> None:
    wednesday = datetime(2026, 3, 4, 15, 30, tzinfo=timezone.utc)
    assert period_start(wednesday, "WEEK") == datetime(2026, 3, 1, tzinfo=timezone.utc)  # Sunday
    assert period_start(wednesday, "QUARTER") == datetime(2026, 1, 1, tzinfo=timezone.utc)
    newest = datetime(2026, 4, 2, tzinfo=timezone.utc)
    one = aligned_window(wednesday, "MONTH", newest, timedelta(days=30), span=True)
    assert one == (datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 4, 1, tzinfo=timezone.utc))
    weeks = aligned_window(wednesday, "WEEK", newest, timedelta(days=30), span=True)
    assert weeks == (datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 3, 29, tzinfo=timezone.utc))
    assert aligned_window(wednesday, "WEEK", datetime(2026, 3, 7, tzinfo=timezone.utc),
                          timedelta(days=30), span=False) is None  # the week is not over


@pytest.mark.parametrize("poller, message", [
    ({"object": "report:GET_VENDOR_SALES_REPORT", "report_options": {"reportPeriod": "WEEK"}},
     "pollers.p.report_options (line 13): GET_VENDOR_SALES_REPORT needs distributorView, sellingProgram; "
     "add distributorView: MANUFACTURING, sellingProgram: RETAIL"),
    ({"object": "report:GET_SALES_AND_TRAFFIC_REPORT", "report_options": {"dateGranularity": "HOUR"}},
     "pollers.p.report_options.dateGranularity (line 13): 'HOUR' is not a dateGranularity of "
     "GET_SALES_AND_TRAFFIC_REPORT; use one of DAY, WEEK, MONTH"),
    ({"object": "report:GET_BRAND_ANALYTICS_SEARCH_TERMS_REPORT", "report_options": {"reportPeriod": "YEAR"}},
     "pollers.p.report_options.reportPeriod (line 13): 'YEAR' is not a reportPeriod of "
     "GET_BRAND_ANALYTICS_SEARCH_TERMS_REPORT; use one of DAY, WEEK, MONTH, QUARTER"),
    ({"object": "report:GET_SALES_AND_TRAFFIC_REPORT", "report_options": {"granularity": "DAY"}},
     "pollers.p.report_options.granularity (line 13): GET_SALES_AND_TRAFFIC_REPORT takes no option "
     "granularity; options: dateGranularity, asinGranularity"),
    ({"object": "ordersV0.getOrders", "report_options": {"a": "b"}},
     "pollers.p.report_options (line 13): only report:TYPE objects take report options; remove it"),
])
def test_report_options_are_checked_where_amazon_documents_them(tmp_path: Path, poller: dict[str, Any],
                                                                message: str) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", {"p": poller})
    result = run_spd("validate", "-c", str(config))
    assert result.returncode == 78, result.stdout
    assert result.stderr == f"spd: {config}: {message}\n"


def test_objects_lists_the_known_report_types() -> None:
    import json

    result = run_spd("objects")
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["report:GET_MERCHANT_LISTINGS_ALL_DATA"]["report_kind"] == "snapshot"
    vendor = rows["report:GET_VENDOR_SALES_REPORT"]
    assert vendor["report_kind"] == "windowed" and vendor["period_aligned"]
    assert vendor["options"]["sellingProgram"] == ["RETAIL", "BUSINESS", "FRESH"]
    assert vendor["source"].endswith("schemas/reports/vendorSalesReport.json")
    assert rows["ordersV0.getOrders"]["supported"]
    described = json.loads(run_spd("objects", "report:GET_SALES_AND_TRAFFIC_REPORT").stdout)
    assert described["report"]["options"]["asinGranularity"] == ["PARENT", "CHILD", "SKU"]
