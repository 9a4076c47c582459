"""`spd request` (Make Raw Request) as real subprocesses against the sandbox simulator: every
method, 404 with and without --allow-404, other errors, bad methods and paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.sim import SimThread
from support.spd import SHARED_MODELS, run_spd
from support.static_sandbox import NO_MATCH, write_sandbox_config


pytestmark = pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")

PLAN = "wf1234abcd-1234-abcd-5678-1234abcd5678"
SHIPMENT = "sh1234abcd-1234-abcd-5678-1234abcd5678"
OPERATION_ID = {"operationId": "1234abcd-1234-abcd-5678-1234abcd5678"}
REJECTED = {"regulatedOrderVerificationStatus": {
    "status": "Rejected", "externalReviewerId": "reviewer1234",
    "rejectionReasonId": "shield_pom_vps_reject_incorrect_weight"}}

# method, path, body -> status, body
METHODS = [
    ("GET", "/fba/outbound/brazil/v0/shipments/shipmentId1/invoice/status", None, 200,
     {"payload": {"Shipments": {"AmazonShipmentId": "shipmentId1", "InvoiceStatus": "Accepted"}}}),
    ("POST", f"/inbound/fba/2024-03-20/inboundPlans/{PLAN}/placementOptions/"
             "pl1234abcd-1234-abcd-5678-1234abcd5678/confirmation", None, 202, OPERATION_ID),
    ("PUT", f"/inbound/fba/2024-03-20/inboundPlans/{PLAN}/shipments/{SHIPMENT}/selfShipAppointmentCancellation",
     {"reasonComment": "OTHER"}, 202, OPERATION_ID),
    ("PATCH", "/orders/v0/orders/902-3159896-1390916/regulatedInfo", REJECTED, 204, None),
    ("DELETE", "/finances/transfers/wallet/2024-03-01/transferSchedules/transferScheduleIdCase200"
               "?marketplaceId=A1RKKUPIHCS9HS", None, 200,
     {"code": "Successful", "message": "Deleted transfer schedule",
      "details": "Deleted transfer schedule for ID transferScheduleIdCase200"}),
]


@pytest.fixture
def config(sandbox: SimThread, tmp_path: Path) -> Path:
    return write_sandbox_config(tmp_path, sandbox.url)


def request(config: Path, *args: str) -> Any:
    return run_spd("request", *args, "-c", str(config))


@pytest.mark.parametrize("method, path, body, status, answer", METHODS, ids=[m[0] for m in METHODS])
def test_each_method(config: Path, method: str, path: str, body: Any, status: int, answer: Any) -> None:
    args = [method, path] + (["--body", json.dumps(body)] if body is not None else [])
    result = request(config, *args)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"statusCode", "headers", "body"}
    assert (out["statusCode"], out["body"]) == (status, answer)
    assert out["headers"]["x-amzn-RequestId"]
    # the same with --allow-404 changes nothing for an answer that is not a 404
    again = request(config, *args, "--allow-404")
    assert (again.returncode, json.loads(again.stdout)["body"]) == (0, answer)


def test_body_from_a_file_and_lower_case_method(config: Path, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"reasonComment": "OTHER"}))
    result = request(config, "put", METHODS[2][1], "--body", f"@{body}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["body"] == OPERATION_ID


def test_404_is_an_error_without_allow_404(config: Path) -> None:
    result = request(config, "GET", "/no/such/v1/thing")
    assert result.returncode == 1
    assert result.stdout == ""
    assert json.loads(result.stderr) == {"errors": [{"code": "NotFound", "message": "Resource not found",
                                                     "details": ""}]}


def test_404_is_an_answer_with_allow_404(config: Path) -> None:
    result = request(config, "GET", "/no/such/v1/thing", "--allow-404")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["statusCode"] == 404
    assert out["body"]["errors"][0]["code"] == "NotFound"


@pytest.mark.parametrize("flag", [[], ["--allow-404"]], ids=["plain", "allow-404"])
def test_other_errors_exit_1_with_amazons_error_json(config: Path, flag: list[str]) -> None:
    result = request(config, "GET", "/orders/v0/orders?CreatedAfter=2020-01-01T00:00:00Z", *flag)
    assert result.returncode == 1
    assert (result.stdout, json.loads(result.stderr)) == ("", NO_MATCH)


@pytest.mark.parametrize("method", ["TRACE", "HEAD", "OPTIONS", "FETCH"])
def test_other_methods_are_usage_errors(tmp_path: Path, method: str) -> None:
    # checked before the config is read: no config needed for the message
    result = run_spd("request", method, "/orders/v0/orders", "-c", str(tmp_path / "none.yaml"))
    assert result.returncode == 2
    assert result.stderr == (f"spd: method {method!r} is not supported; use one of GET, POST, PUT, "
                             "PATCH, DELETE\n")


def test_a_url_is_not_a_path(tmp_path: Path) -> None:
    result = run_spd("request", "GET", "https://sellingpartnerapi-na.amazon.com/orders/v0/orders",
                     "-c", str(tmp_path / "none.yaml"))
    assert result.returncode == 2
    assert "must be a path such as /orders/v0/orders" in result.stderr


def test_malformed_body_is_a_usage_error(config: Path) -> None:
    result = request(config, "POST", "/reports/2021-06-30/reports", "--body", "{nope")
    assert result.returncode == 2
    assert result.stderr.startswith("spd: --body is not valid JSON: ")
