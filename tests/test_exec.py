"""`spd exec`: parameter and body validation (exact messages), --all-pages against the simulator's
ground truth, API errors, and the conformance run of every 2xx static sandbox case of Amazon's
models through `spd exec` against the simulator in sandbox mode."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from spd.catalog.model import Operation, load_catalog
from spd.config.validate import load_config
from spd.core.errors import SpdError, UsageError
from spd.app.execute import exec_command
from spd.catalog.requests import ExecRequest, prepare, read_body
from spd.catalog.bodies import validate_body
from spd.catalog.params import parse_pairs
from support.sim import SimThread
from support.spd import SHARED_MODELS, run_spd
from support.static_sandbox import NO_MATCH, write_sandbox_config
from support.exec_cases import SUCCESS_CASES, case_request, expected_output

R = "reports_2021-06-30"
MARKETS = {"MarketplaceIds": "ATVPDKIKX0DER"}

# (api, operation, params, body, all_pages) -> the exact one-line message
VALIDATION = [
    (("sellers", "getMarketplaceParticipations", {"Foo": "1"}),
     "sellers.getMarketplaceParticipations: unknown parameter 'Foo'; parameters: none"),
    ((R, "getReport", {"reportid": "1"}),
     f"{R}.getReport: unknown parameter 'reportid'; did you mean reportId?"),
    ((R, "getReport", {}),
     f"{R}.getReport: missing required parameter reportId (path); see `spd ops {R} getReport`"),
    (("ordersV0", "getOrders", {**MARKETS, "MaxResultsPerPage": "abc"}),
     "ordersV0.getOrders: parameter MaxResultsPerPage must be an integer, not 'abc'"),
    (("ordersV0", "getOrders", {**MARKETS, "IsISPU": "maybe"}),
     "ordersV0.getOrders: parameter IsISPU must be true or false, not 'maybe'"),
    (("fulfillmentInboundV0", "getShipmentItems", {"QueryType": "SHIPMENT", "MarketplaceId": "A"}),
     "fulfillmentInboundV0.getShipmentItems: parameter QueryType must be one of DATE_RANGE, "
     "NEXT_TOKEN; got 'SHIPMENT'"),
    ((R, "getReports", {"processingStatuses": "DONE,NOPE"}),
     f"{R}.getReports: parameter processingStatuses must be one of CANCELLED, DONE, FATAL, "
     "IN_PROGRESS, IN_QUEUE; got 'NOPE'"),
    (("ordersV0", "getOrders", {"MarketplaceIds": ",".join(f"M{i}" for i in range(51))}),
     "ordersV0.getOrders: parameter MarketplaceIds takes at most 50 values, got 51"),
    (("awd_2024-05-09", "listInventory", {"maxResults": "0"}),
     "awd_2024-05-09.listInventory: parameter maxResults must be at least 1, got 0"),
    (("awd_2024-05-09", "listInventory", {"maxResults": "201"}),
     "awd_2024-05-09.listInventory: parameter maxResults must be at most 200, got 201"),
    (("easyShip_2022-03-23", "getScheduledPackage", {"amazonOrderId": "x" * 256, "marketplaceId": "A"}),
     "easyShip_2022-03-23.getScheduledPackage: parameter amazonOrderId must be at most 255 "
     "characters, got 256"),
    (("services", "getServiceJobs", {"marketplaceIds": "A", "asins": "B0SHORT"}),
     "services.getServiceJobs: parameter asins item 'B0SHORT' must be at least 10 characters, got 7"),
    (("services", "getServiceJobs", {"marketplaceIds": "A", "serviceOrderIds": "123,AB"}),
     "services.getServiceJobs: parameter serviceOrderIds item 'AB' does not match the pattern ^[0-9\\-]+$"),
    ((R, "getReport", {"reportId": ["a", "b"]}),
     f"{R}.getReport: parameter reportId takes one value, got 2"),
    ((R, "createReport", {}),
     f"{R}.createReport: a request body is required; give it with --body JSON (its schema: "
     f"`spd ops {R} createReport --schema`)"),
    ((R, "createReport", {"body": "{}"}),
     f"{R}.createReport: body is the request body; give it with --body JSON"),
    ((R, "getReport", {"reportId": "1"}, {}),
     f"{R}.getReport: takes no request body; remove --body"),
    ((R, "createReport", {}, {"marketplaceIds": ["A"]}),
     f"{R}.createReport: body: missing required property reportType"),
    ((R, "createReport", {}, {"reportType": "X", "marketplaceIds": "A"}),
     f"{R}.createReport: body.marketplaceIds: must be an array, not 'A'"),
    ((R, "createReport", {}, {"reportType": "X", "marketplaceIds": ["A"] * 26}),
     f"{R}.createReport: body.marketplaceIds: takes at most 25 items, got 26"),
    ((R, "createReport", {}, {"reportType": "X", "marketplaceIds": []}),
     f"{R}.createReport: body.marketplaceIds: takes at least 1 items, got 0"),
    ((R, "createReport", {}, {"reportType": "X", "marketplaceIds": ["A"], "reportOptions": {"a": 1}}),
     f"{R}.createReport: body.reportOptions.a: must be a string, not 1"),
    ((R, "createReportSchedule", {}, {"reportType": "X", "marketplaceIds": ["A"], "period": "PT1S"}),
     f"{R}.createReportSchedule: body.period: must be one of PT5M, PT15M, PT30M, PT1H, PT2H, PT4H, "
     "PT8H, PT12H, P1D, P2D, P3D, PT84H, P7D, P14D, P15D, P18D, P30D, P1M; got 'PT1S'"),
    ((R, "getReport", {"reportId": "1"}, None, True),
     f"{R}.getReport does not page; remove --all-pages"),
    (("ordersV0", "getOrderz", {}),
     "unknown operation 'getOrderz' of API ordersV0; did you mean getOrder, getOrders, getOrderItems, "
     "getOrderAddress, getOrderBuyerInfo? (see `spd ops ordersV0`)"),
    (("orderz", "getOrders", {}), "unknown API 'orderz'; did you mean ordersV0? (see `spd ops`)"),
]


@pytest.mark.parametrize("args, message", VALIDATION, ids=[m.split(": ", 1)[-1][:40] for _, m in VALIDATION])
def test_validation_errors(args: tuple[Any, ...], message: str) -> None:
    api, op, params, *rest = args
    body = rest[0] if rest else None
    all_pages = rest[1] if len(rest) > 1 else False
    with pytest.raises(UsageError) as err:
        prepare(load_catalog(), ExecRequest(api, op, params, body, all_pages))
    assert str(err.value) == message


def test_command_line_text_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^-p 'novalue' is not NAME=VALUE$"):
        parse_pairs(["novalue"])
    with pytest.raises(UsageError) as err:
        read_body('{"a":')
    assert str(err.value) == "--body is not valid JSON: unexpected end of data: line 1 column 6 (char 5)"
    missing = tmp_path / "nope.json"
    with pytest.raises(UsageError) as err:
        read_body(f"@{missing}")
    assert str(err.value) == f"--body @{missing}: cannot read {missing}: No such file or directory"
    good = tmp_path / "body.json"
    good.write_text('{"reportType": "X"}')
    assert read_body(f"@{good}") == {"reportType": "X"}


def test_parameters_are_converted_to_their_types() -> None:
    op, params = prepare(load_catalog(), ExecRequest("ordersV0", "getOrders", parse_pairs([
        "MarketplaceIds=A,B", "MarketplaceIds=C", "MaxResultsPerPage=5", "IsISPU=true",
        "CreatedAfter=2025-01-01T00:00:00Z"])))
    assert params == {"MarketplaceIds": ["A", "B", "C"], "MaxResultsPerPage": 5, "IsISPU": True,
                      "CreatedAfter": "2025-01-01T00:00:00Z"}
    _, params = prepare(load_catalog(), ExecRequest("ordersV0", "getOrders", {
        "MarketplaceIds": '["A,1", "B"]', "LastUpdatedAfter": "2025-01-01T00:00:00Z"}))
    assert params["MarketplaceIds"] == ["A,1", "B"]  # a JSON array keeps commas in items


def test_schema_validator_keywords() -> None:
    defs = {"Item": {"type": "object", "required": ["sku"], "additionalProperties": False,
                     "properties": {"sku": {"type": "string", "pattern": "^[A-Z]+$"},
                                    "qty": {"type": "integer", "minimum": 1}}}}
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": "#/definitions/Item"}},
                                               "note": {"allOf": [{"type": "string", "maxLength": 3}]}}}

    def problem(value: Any) -> str | None:
        try:
            validate_body(value, schema, defs, "op")
        except UsageError as exc:
            return str(exc)
        return None

    assert problem({"items": [{"sku": "AB", "qty": 2}], "note": "ok"}) is None
    assert problem({"items": [{"qty": 2}]}) == "op: body.items[0]: missing required property sku"
    assert problem({"items": [{"sku": "AB", "x": 1}]}) == "op: body.items[0].x: unknown property; allowed: sku, qty"
    assert problem({"items": [{"sku": "ab"}]}) == "op: body.items[0].sku: 'ab' does not match the pattern ^[A-Z]+$"
    assert problem({"items": [{"sku": "AB", "qty": 0}]}) == "op: body.items[0].qty: must be at least 1, got 0"
    assert problem({"items": [{"sku": "AB", "qty": True}]}) == "op: body.items[0].qty: must be an integer, not True"
    assert problem({"note": "long"}) == "op: body.note: must be at most 3 characters, got 4"


def test_body_problems_are_all_reported_formats_included() -> None:
    """jsonschema reports every problem at once, in body order; formats are checked (ISO 8601
    date-times as Amazon's examples write them pass)."""
    body = {"reportType": 7, "marketplaceIds": ["A", 2], "dataStartTime": "yesterday",
            "dataEndTime": "2025-13-01T00:00:00Z", "reportOptions": {"a": 1}}
    with pytest.raises(UsageError) as err:
        prepare(load_catalog(), ExecRequest(R, "createReport", {}, body))
    assert str(err.value) == (
        f"{R}.createReport: body.dataEndTime: '2025-13-01T00:00:00Z' is not a valid date-time "
        "(ISO 8601, such as 2025-01-01T00:00:00Z); body.dataStartTime: 'yesterday' is not a valid "
        "date-time (ISO 8601, such as 2025-01-01T00:00:00Z); body.marketplaceIds[1]: must be a "
        "string, not 2; body.reportOptions.a: must be a string, not 1; body.reportType: must be "
        "a string, not 7")
    for good in ("2025-01-01T00:00:00Z", "2020-01-01T23:59:00.00-07", "2019-01-01T00:00:00.000+0000"):
        prepare(load_catalog(), ExecRequest(R, "createReport", {}, {"reportType": "X", "marketplaceIds": ["A"],
                                                                     "dataStartTime": good}))
    with pytest.raises(UsageError, match=r"body\.marketplaceIds: has repeated items; each must be different$"):
        validate_body({"marketplaceIds": ["A", "A"]},
                      {"properties": {"marketplaceIds": {"type": "array", "uniqueItems": True}}}, {}, "op")


def test_ops_schema_prints_the_body_schema() -> None:
    result = run_spd("ops", R, "createReport", "--schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["required"] == ["marketplaceIds", "reportType"]
    assert schema["definitions"]["ReportOptions"]["additionalProperties"] == {"type": "string"}


def test_invalid_parameters_exit_2_before_any_request(tmp_path: Path) -> None:
    # no config exists: validation comes first, so the message is about the parameter
    result = run_spd("exec", "ordersV0", "getOrders", "-p", "MarketplaceIds=A", "-p", "IsISPU=maybe",
                     "-c", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert result.stderr == "spd: ordersV0.getOrders: parameter IsISPU must be true or false, not 'maybe'\n"


def test_exec_needs_a_config(tmp_path: Path) -> None:
    result = run_spd("exec", "sellers", "getMarketplaceParticipations", "-c", str(tmp_path / "missing.yaml"))
    assert result.returncode == 78
    assert "no such file" in result.stderr


# --- against the simulator --------------------------------------------------------------------


def test_api_error_exits_1_with_amazons_error_json(sandbox: SimThread, tmp_path: Path) -> None:
    config = write_sandbox_config(tmp_path, sandbox.url)
    result = run_spd("exec", "ordersV0", "getOrders", "-p", "MarketplaceIds=ATVPDKIKX0DER",
                     "-p", "CreatedAfter=2020-01-01T00:00:00Z", "-c", str(config))
    assert result.returncode == 1
    assert result.stdout == ""
    assert json.loads(result.stderr) == NO_MATCH


async def test_all_pages_follows_next_tokens_and_merges_results(sim_factory: Any, tmp_path: Path) -> None:
    end = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    start = end - timedelta(days=2)
    sim = sim_factory(orders=450, start=start - timedelta(days=1), end=end, rate_limit=False)
    config = load_config(write_sandbox_config(tmp_path, sim.url))
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    params = {"MarketplaceIds": "ATVPDKIKX0DER", "CreatedAfter": iso(start), "CreatedBefore": iso(end),
              "MaxResultsPerPage": "50"}
    merged = await exec_command(config, ExecRequest("ordersV0", "getOrders", params, all_pages=True))
    first = await exec_command(config, ExecRequest("ordersV0", "getOrders", params))
    truth = sim.get("/_sim/objects", type="ordersV0.getOrders", field="created",
                    after=iso(start), before=iso(end))
    ids = [o["AmazonOrderId"] for o in merged["payload"]["Orders"]]
    assert len(ids) == len(set(ids)) == truth["count"] > 100
    assert set(ids) == {o["id"] for o in truth["objects"]}
    assert "NextToken" not in merged["payload"] and "NextToken" in first["payload"]
    assert len(first["payload"]["Orders"]) == 50
    stats = sim.get("/_sim/stats")["operations"]["ordersV0.getOrders"]
    assert stats["requests"] == -(-truth["count"] // 50) + 1


def paged_orders(sim_factory: Any, tmp_path: Path) -> tuple[Any, Path, list[str], int]:
    """A simulator with orders in a window of several pages of 50: it, a config, the -p pairs of
    the window and how many pages it takes."""
    end = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    start = end - timedelta(days=2)
    sim = sim_factory(orders=450, start=start - timedelta(days=1), end=end, rate_limit=False)
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    pairs = [f"MarketplaceIds={MARKETS['MarketplaceIds']}", f"CreatedAfter={iso(start)}",
             f"CreatedBefore={iso(end)}", "MaxResultsPerPage=50"]
    truth = sim.get("/_sim/objects", type="ordersV0.getOrders", field="created", after=iso(start),
                    before=iso(end))["count"]
    assert truth > 200
    return sim, write_sandbox_config(tmp_path, sim.url), pairs, -(-truth // 50)


async def test_all_pages_stops_at_max_pages_with_more_to_fetch(sim_factory: Any, tmp_path: Path) -> None:
    sim, config_path, pairs, needed = paged_orders(sim_factory, tmp_path)
    config = load_config(config_path)
    params = parse_pairs(pairs)
    with pytest.raises(SpdError, match=r"^ordersV0.getOrders: stopped after 3 pages \(150 results\) "
                                       r"with more to fetch; raise --max-pages \(default 1000\)"):
        await exec_command(config, ExecRequest("ordersV0", "getOrders", params, all_pages=True, max_pages=3))
    assert sim.get("/_sim/stats")["operations"]["ordersV0.getOrders"]["requests"] == 3  # not one more
    # a cap just big enough is no error
    merged = await exec_command(config, ExecRequest("ordersV0", "getOrders", params, all_pages=True,
                                                    max_pages=needed))
    assert len(merged["payload"]["Orders"]) > 50 * (needed - 1)


def test_exec_max_pages_is_one_line_on_stderr_and_nothing_on_stdout(sim_factory: Any, tmp_path: Path) -> None:
    _, config, pairs, needed = paged_orders(sim_factory, tmp_path)
    argv = ["exec", "ordersV0", "getOrders", *[a for p in pairs for a in ("-p", p)], "--all-pages", "-c", str(config)]
    capped = run_spd(*argv, "--max-pages", "2")
    assert capped.returncode == 1 and capped.stdout == "", capped
    assert capped.stderr.startswith("spd: ordersV0.getOrders: stopped after 2 pages (100 results) with more")
    assert len(capped.stderr.strip().splitlines()) == 1, capped.stderr
    refused = run_spd(*argv, "--max-pages", "0")
    assert refused.returncode == 2 and "--max-pages 0: give a number of pages, 1 or more" in refused.stderr
    whole = run_spd(*argv, "--max-pages", str(needed))
    assert whole.returncode == 0, whole.stderr
    assert len(json.loads(whole.stdout)["payload"]["Orders"]) > 50 * (needed - 1)
    assert "(default 1000)" in run_spd("exec", "--help").stdout  # the help states the cap in force


# --- conformance with Amazon's static sandbox -------------------------------------------------


def exec_argv(op: Operation, params: dict[str, Any], body: Any, config: Path) -> list[str]:
    argv = ["exec", op.api, op.id, "-c", str(config)]
    for name, value in params.items():
        if isinstance(value, list):
            if any("," in v for v in value):
                argv += ["-p", f"{name}={json.dumps(value)}"]
            else:
                argv += [arg for v in value for arg in ("-p", f"{name}={v}")]
        else:
            argv += ["-p", f"{name}={value}"]
    if body is not None:
        argv += ["--body", json.dumps(body)]
    return argv


SUBPROCESS_SAMPLE = [
    ("ordersV0", "GET", "/orders/v0/orders"),                                   # query arrays
    ("reports_2021-06-30", "POST", "/reports/2021-06-30/reports"),               # JSON body
    ("ordersV0", "PATCH", "/orders/v0/orders/{orderId}/regulatedInfo"),          # 204
    ("reports_2021-06-30", "GET", "/reports/2021-06-30/schedules"),              # csv array
    ("fulfillmentInbound_2024-03-20", "GET", "/inbound/fba/2024-03-20/items/prepDetails"),  # multi array
    ("fulfillmentInbound_2024-03-20", "GET",
     "/inbound/fba/2024-03-20/inboundPlans/{inboundPlanId}/shipments/{shipmentId}/selfShipAppointmentSlots"),
]


@pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")
async def test_conformance_with_amazons_static_sandbox(sandbox: SimThread, tmp_path: Path) -> None:
    config = load_config(write_sandbox_config(tmp_path, sandbox.url))
    matched, misses = 0, []
    for api, method, path, status, index, case in SUCCESS_CASES:
        op, params, body = case_request(api, method, path, case)
        try:
            got = await exec_command(config, ExecRequest(api, op.id, params, body))
        except SpdError as exc:
            kind = "UsageError" if isinstance(exc, UsageError) else type(exc).__name__  # ContractError too
            misses.append(f"{api}.{op.id} {status} case {index}: {kind}: {exc}")
            continue
        if got == expected_output(status, case):
            matched += 1
        else:
            misses.append(f"{api}.{op.id} {status} case {index}: different output {json.dumps(got)[:200]}")
    total = len(SUCCESS_CASES)
    print(f"\nconformance: {matched} of {total} static 2xx sandbox cases match exactly "
          f"({100 * matched / total:.1f}%)")
    print("\n".join(misses))
    assert total == 411
    assert matched >= 0.95 * total
    # Every miss is spd refusing, before any request, an example that breaks Amazon's own schema.
    assert all(": UsageError: " in m for m in misses), misses


@pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")
@pytest.mark.parametrize("api, method, path", SUBPROCESS_SAMPLE, ids=[s[2] for s in SUBPROCESS_SAMPLE])
def test_conformance_sample_as_real_subprocesses(sandbox: SimThread, tmp_path: Path, api: str,
                                                 method: str, path: str) -> None:
    config = write_sandbox_config(tmp_path, sandbox.url)
    for _, _, _, status, _, case in [c for c in SUCCESS_CASES if c[:3] == (api, method, path)]:
        op, params, body = case_request(api, method, path, case)
        result = run_spd(*exec_argv(op, params, body, config))
        assert result.returncode == 0, result.stderr
        expected = expected_output(status, case)
        assert (json.loads(result.stdout) if result.stdout else None) == expected


async def test_restricted_sends_a_restricted_data_token(sim_factory: Any, tmp_path: Path) -> None:
    end = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    sim = sim_factory(orders=50, start=end - timedelta(days=1), end=end, rate_limit=False)
    config = write_sandbox_config(tmp_path, sim.url)
    args = ["exec", "ordersV0", "getOrders", "-p", "MarketplaceIds=ATVPDKIKX0DER",
            "-p", f"CreatedAfter={(end - timedelta(days=2)).strftime('%Y-%m-%dT%H:%M:%SZ')}",
            "-c", str(config)]
    plain = run_spd(*args)
    restricted = run_spd(*args, "--restricted", "buyerInfo,shippingAddress")
    assert plain.returncode == restricted.returncode == 0, plain.stderr + restricted.stderr
    plain_orders = json.loads(plain.stdout)["payload"]["Orders"]
    full_orders = json.loads(restricted.stdout)["payload"]["Orders"]
    assert [o["AmazonOrderId"] for o in plain_orders] == [o["AmazonOrderId"] for o in full_orders]
    assert all(o["BuyerInfo"] == {} for o in plain_orders)
    assert all(o["BuyerInfo"].get("BuyerEmail") and o["ShippingAddress"].get("AddressLine1")
               for o in full_orders)
    assert sim.get("/_sim/stats")["lwa"]["rdt_issued"] == 1
