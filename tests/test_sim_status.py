"""The simulator answers each operation it serves with the success status Amazon's model declares
(createReport: 202 Accepted), judged against the model files read directly; and spd's own flows
(`spd exec`, a report poller under `spd once`) take those answers, over loopback."""

from __future__ import annotations

import http.client
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from spd.sim.app import OPERATIONS, SimSettings, make_app
from spd.sim.pager import paged_operations
from spd.sim.success import SUCCESS_STATUS, success_status
from support.amazon_models import ModelOp, model_ops
from support.config import write_config
from support.sim import SimThread, access_token, call
from support.spd import SHARED_MODELS, iso, read_jsonl, run_spd
from support.static_sandbox import write_sandbox_config

pytestmark = pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")

REPORTS = "reports_2021-06-30"
ORDERS_REPORT = "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL"
NOT_SP_API = ("/_sim/", "/auth/o2/token")  # control endpoints, report documents, LWA


def model_success(op: ModelOp) -> set[int]:
    """The 2xx codes of the operation's "responses" in Amazon's model file."""
    return {int(code) for code in op.raw.get("responses") or {} if code.startswith("2")}


def model_op(name: str) -> ModelOp:
    return model_ops()[name]


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def routed_operations(settings: SimSettings) -> dict[str, ModelOp]:
    """Every SP-API route of the simulator's app, as the model operation of its method and path."""
    by_route = {(op.method.upper(), _shape(op.path)): op for op in model_ops().values()}
    app = make_app(settings)
    found: dict[str, ModelOp] = {}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in ("HEAD", "*") or path.startswith(NOT_SP_API):
            continue
        op = by_route.get((route.method, _shape(path)))
        assert op is not None, f"{route.method} {path} is no operation of Amazon's models"
        found[op.name] = op
    return found


@pytest.mark.parametrize("mode", ["plain", "pager"])
def test_every_routed_operation_answers_its_models_success_status(mode: str) -> None:
    routed = routed_operations(SimSettings(pager=mode == "pager", orders=0, purchase_orders=0))
    served = set(OPERATIONS) if mode == "plain" else {op.name for op in paged_operations()}
    assert set(routed) == served  # the sim's operation names are the models' api.operationId
    wrong = {name: (success_status(name), sorted(model_success(op))) for name, op in routed.items()
             if success_status(name) not in model_success(op)
             or (len(model_success(op)) == 1 and success_status(name) != min(model_success(op)))}
    assert wrong == {}, "the simulator's status differs from the model's success status"


def test_the_table_names_only_served_operations_whose_model_success_is_not_200() -> None:
    served = set(OPERATIONS) | {op.name for op in paged_operations()}
    for name, status in SUCCESS_STATUS.items():
        assert name in served, f"{name} is not served by the simulator"
        assert status != 200 and model_success(model_op(name)) == {status}


# -- over loopback -----------------------------------------------------------------------------

def report_body(days: int = 2) -> dict[str, Any]:
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=days)
    return {"reportType": ORDERS_REPORT, "marketplaceIds": ["ATVPDKIKX0DER"], "dataStartTime": iso(start)}


def test_create_report_is_a_202_and_get_report_a_200_over_http(sim_factory: Any) -> None:
    sim = sim_factory(orders=50, purchase_orders=0)
    status, _, raw = call(sim, "POST", model_op(f"{REPORTS}.createReport").path, report_body())
    assert status == min(model_success(model_op(f"{REPORTS}.createReport"))) == 202
    report_id = json.loads(raw)["reportId"]
    status, _, raw = call(sim, "GET", f"/reports/2021-06-30/reports/{report_id}")
    assert status == min(model_success(model_op(f"{REPORTS}.getReport"))) == 200
    assert json.loads(raw)["reportId"] == report_id
    stats = sim.get("/_sim/stats")["operations"]
    assert stats[f"{REPORTS}.createReport"]["ok"] == 1


def test_a_truncated_create_report_keeps_its_202(sim_factory: Any) -> None:
    sim = sim_factory(orders=0, purchase_orders=0, truncate_rate=1.0)
    host, port = sim.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", "/reports/2021-06-30/reports", json.dumps(report_body()),
                 {"x-amz-access-token": access_token(sim), "Content-Type": "application/json"})
    response = conn.getresponse()  # the status line and headers; the body is cut short
    assert response.status == 202
    conn.close()
    assert sim.get("/_sim/stats")["operations"][f"{REPORTS}.createReport"]["truncated"] == 1


def test_spd_exec_create_report_prints_the_answer_and_exits_0(sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory(orders=50, purchase_orders=0)
    config = write_sandbox_config(tmp_path, sim.url)
    result = run_spd("exec", REPORTS, "createReport", "--body", json.dumps(report_body()), "-c", str(config))
    assert result.returncode == 0, result.stderr
    report_id = json.loads(result.stdout)["reportId"]
    assert [r["reportId"] for r in sim.get("/_sim/reports")["reports"]
            if r["reportType"] == ORDERS_REPORT] == [report_id]


def test_a_report_poller_under_spd_once_takes_the_202(sim_factory: Any, tmp_path: Path) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=300, purchase_orders=0, start=now - timedelta(days=2), end=now, live=False)
    sim.post("/_sim/reports", {"processing_seconds": 0.1})
    start = now - timedelta(days=1)
    config = write_config(tmp_path, sim.url, {"p": {
        "object": f"report:{ORDERS_REPORT}", "timestamp_field": "updated", "start_time": iso(start)}})
    result = run_spd("once", "-c", str(config))
    assert result.returncode == 0, result.stderr
    ids = {m["data"]["amazon-order-id"] for m in read_jsonl(tmp_path / "out" / "p.jsonl")}
    truth = sim.get("/_sim/objects", type="ordersV0.getOrders", field="updated", after=iso(start))
    assert ids and ids <= {o["id"] for o in truth["objects"]}
    assert sim.get("/_sim/stats")["operations"][f"{REPORTS}.createReport"]["ok"] >= 1


def test_the_static_sandbox_answers_the_examples_202(sandbox: SimThread, tmp_path: Path) -> None:
    op = model_op(f"{REPORTS}.createReport")
    case = op.raw["responses"]["202"]["x-amzn-api-sandbox"]["static"][0]
    body = case["request"]["parameters"]["body"]["value"]
    status, _, raw = call(sandbox, "POST", "/reports/2021-06-30/reports", body)
    assert (status, json.loads(raw)) == (202, case["response"])
    config = write_sandbox_config(tmp_path, sandbox.url)
    result = run_spd("exec", REPORTS, "createReport", "--body", json.dumps(body), "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == case["response"]

