"""The simulator's static sandbox (`spd sim --sandbox --models DIR`) over loopback: Amazon's
`x-amzn-api-sandbox` cases answered by request parameters, 400/404 otherwise.

Also holds the helpers the exec and request tests share: a sandbox simulator, a config for it,
and every static case of Amazon's models read straight from the model files.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.sim import SimThread, call
from support.spd import SHARED_MODELS, run_spd, spd_cmd, spd_env
from support.static_sandbox import NO_MATCH, static_cases


pytestmark = pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")


# --- shared helpers ---------------------------------------------------------------------------


# --- the sandbox itself -----------------------------------------------------------------------


def test_every_static_case_is_loaded() -> None:
    from spd.sim.sandbox import load_sandbox

    index = load_sandbox(SHARED_MODELS)
    cases = list(static_cases())
    assert (index.case_count, index.route_count) == (len(cases), 290)
    assert index.case_count == 913


def test_matching_query_parameters_get_the_case_response(sandbox: SimThread) -> None:
    expected = next(c for api, m, p, s, i, c in static_cases()
                    if (api, p, s) == ("ordersV0", "/orders/v0/orders", 200))
    status, headers, body = call(sandbox, "GET", "/orders/v0/orders?CreatedAfter=TEST_CASE_200"
                                                 "&MarketplaceIds=ATVPDKIKX0DER")
    assert status == 200
    assert json.loads(body) == expected["response"]
    assert headers["x-amzn-RequestId"]


def test_unmatched_parameters_get_amazons_400(sandbox: SimThread) -> None:
    status, _, body = call(sandbox, "GET", "/orders/v0/orders?CreatedAfter=2020-01-01T00:00:00Z"
                                           "&MarketplaceIds=ATVPDKIKX0DER")
    assert (status, json.loads(body)) == (400, NO_MATCH)


def test_error_cases_answer_with_their_status(sandbox: SimThread) -> None:
    status, _, body = call(sandbox, "GET", "/orders/v0/orders?CreatedAfter=TEST_CASE_400")
    assert status == 400
    assert json.loads(body) == {"errors": [{"code": "InvalidInput", "message": "Invalid Input"}]}


def test_unknown_path_is_a_404(sandbox: SimThread) -> None:
    status, _, body = call(sandbox, "GET", "/nothing/v1/here")
    assert status == 404
    assert json.loads(body)["errors"][0]["code"] == "NotFound"
    # a known path with a method the sandbox does not serve
    assert call(sandbox, "PATCH", "/orders/v0/orders")[0] == 404


def test_path_parameters_and_json_bodies_match(sandbox: SimThread) -> None:
    path = ("/inbound/fba/2024-03-20/inboundPlans/wf1234abcd-1234-abcd-5678-1234abcd5678/shipments/"
            "sh1234abcd-1234-abcd-5678-1234abcd5678/selfShipAppointmentCancellation")
    status, _, body = call(sandbox, "PUT", path, {"reasonComment": "OTHER"})
    assert (status, json.loads(body)) == (202, {"operationId": "1234abcd-1234-abcd-5678-1234abcd5678"})
    assert call(sandbox, "PUT", path, {"reasonComment": "ANOTHER"})[0] == 400
    assert call(sandbox, "PUT", path.replace("wf1234", "wf9999"), {"reasonComment": "OTHER"})[0] == 400


def test_a_204_carries_no_content(sandbox: SimThread) -> None:
    body = {"regulatedOrderVerificationStatus": {
        "status": "Rejected", "externalReviewerId": "reviewer1234",
        "rejectionReasonId": "shield_pom_vps_reject_incorrect_weight"}}
    status, _, raw = call(sandbox, "PATCH", "/orders/v0/orders/902-3159896-1390916/regulatedInfo", body)
    assert (status, raw) == (204, b"")


def test_response_headers_of_a_case_are_sent(sandbox: SimThread) -> None:
    case = next(c for api, m, p, s, i, c in static_cases()
                if (api, m, p) == ("awd_2024-05-09", "POST", "/awd/2024-05-09/inboundOrders")
                and "responseHeaders" in c)
    status, headers, body = call(sandbox, "POST", "/awd/2024-05-09/inboundOrders",
                                 case["request"]["parameters"]["body"]["value"])
    assert status == 201
    assert headers["Location"] == "TestOrderId"
    assert json.loads(body) == case["response"]


def test_the_most_specific_case_wins(sandbox: SimThread) -> None:
    # cancelReport: 200 for reportId "ID", a catch-all 400 case for everything else
    assert call(sandbox, "DELETE", "/reports/2021-06-30/reports/ID")[0] == 200
    status, _, body = call(sandbox, "DELETE", "/reports/2021-06-30/reports/other")
    assert status == 400 and json.loads(body)["errors"][0]["message"] == "Invalid input"


def test_array_query_parameters_match_element_by_element(sandbox: SimThread) -> None:
    ok = "/reports/2021-06-30/schedules?reportTypes=FEE_DISCOUNTS_REPORT,GET_FBA_FULFILLMENT_CUSTOMER_TAXES_DATA"
    assert call(sandbox, "GET", ok)[0] == 200
    assert call(sandbox, "GET", ok.replace(",GET_FBA_FULFILLMENT_CUSTOMER_TAXES_DATA", ""))[0] == 400


def test_the_sandbox_needs_an_access_token(sandbox: SimThread) -> None:
    status, _, body = call(sandbox, "GET", "/sellers/v1/marketplaceParticipations", token=False)
    assert status == 403
    assert json.loads(body)["errors"][0]["code"] == "Unauthorized"
    assert call(sandbox, "GET", "/sellers/v1/marketplaceParticipations")[0] == 200


def test_sim_command_needs_models_for_the_sandbox() -> None:
    result = run_spd("sim", "--sandbox", "--port", "0")
    assert result.returncode == 2
    assert "--sandbox needs --models DIR" in result.stderr


def test_sim_command_serves_the_sandbox(tmp_path: Path) -> None:
    proc = subprocess.Popen(spd_cmd("sim", "--sandbox", "--models", str(SHARED_MODELS), "--port", "0"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=spd_env())
    try:
        lines = [proc.stdout.readline() for _ in range(5)]  # type: ignore[union-attr]
    finally:
        proc.terminate()
        proc.wait(10)
    assert lines[0].startswith("spd simulator listening on http://127.0.0.1:")
    assert f"static sandbox: 913 cases of 290 operations from {SHARED_MODELS}" in "".join(lines)


def test_multi_arrays_are_repeated_parameters(sandbox: SimThread) -> None:
    base = "/inbound/fba/2024-03-20/items/prepDetails?marketplaceId=ATVPDKIKX0DER&"
    assert call(sandbox, "GET", base + "mskus=msku1&mskus=msku2")[0] == 200
    assert call(sandbox, "GET", base + "mskus=msku1%2Cmsku2")[0] == 400  # one value with a comma
