"""`spd exec` as a user expects it: a config with only `accounts`, a required marketplace filled
from the account, sandbox-only operations refused on production before any request, and
`--no-validate` for the requests Amazon's own sandbox examples make but its models refuse."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from spd.catalog.model import load_catalog
from spd.config.validate import load_config
from spd.core.errors import UsageError
from spd.app.execute import exec_command
from spd.catalog.requests import ExecRequest, prepare
from support.exec_cases import SUCCESS_CASES, case_request, expected_output
from support.sim import SimThread
from support.spd import SHARED_MODELS, run_spd

US, CA = "ATVPDKIKX0DER", "A2EUQ1WTGCTBG2"


def accounts_only(tmp_path: Path, url: str, endpoint: str | None = None, markets: str = US) -> Path:
    """A config with nothing but one account."""
    path = tmp_path / "exec.yaml"
    path.write_text(
        "accounts:\n  me:\n"
        f"    endpoint: {endpoint or url}\n"
        f"    marketplace_ids: [{markets}]\n"
        f"    lwa: {{client_id: c, client_secret: s, refresh_token: r, token_url: {url}/auth/o2/token}}\n")
    return path


@pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")
def test_exec_request_and_validate_need_only_accounts(sandbox: SimThread, tmp_path: Path) -> None:  # noqa: F811
    config = accounts_only(tmp_path, sandbox.url)
    result = run_spd("exec", "sellers", "getMarketplaceParticipations", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["payload"]
    raw = run_spd("request", "GET", "/sellers/v1/marketplaceParticipations", "-c", str(config))
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout)["statusCode"] == 200
    checked = run_spd("validate", "-c", str(config))
    assert checked.returncode == 0, checked.stderr
    assert {"what": "state", "detail": "none (exec and request only)"} in json.loads(checked.stdout)["items"]
    once = run_spd("status", "-c", str(config))
    assert once.returncode == 78 and 'missing required key "state"' in once.stderr


def test_pollers_without_state_are_a_config_error(tmp_path: Path) -> None:
    config = accounts_only(tmp_path, "http://127.0.0.1:9")
    config.write_text(config.read_text() + "emitters: {out: {type: stdout}}\npollers:\n"
                      "  p: {object: ordersV0.getOrders, emitters: [out]}\n")
    result = run_spd("validate", "-c", str(config))
    assert result.returncode == 78
    assert result.stderr.startswith(f"spd: {config}: ") and 'missing required key "state"' in result.stderr


async def test_a_required_marketplace_is_filled_from_the_account(sim_factory: Any, tmp_path: Path) -> None:
    end = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    sim = sim_factory(orders=200, start=end - timedelta(days=1), end=end, rate_limit=False,
                      marketplaces=(US, CA))
    config = load_config(accounts_only(tmp_path, sim.url, markets=CA))
    after = (end - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = await exec_command(config, ExecRequest("ordersV0", "getOrders", {"CreatedAfter": after},
                                                  all_pages=True))
    orders = body["payload"]["Orders"]
    assert orders and {o["MarketplaceId"] for o in orders} == {CA}


def test_a_single_marketplace_parameter_needs_a_choice() -> None:
    req = ExecRequest("fbaInventory", "getInventorySummaries",
                      {"granularityType": "Marketplace", "granularityId": US})
    _, params = prepare(load_catalog(), req, [US])
    assert params["marketplaceIds"] == [US]
    with pytest.raises(UsageError) as err:
        prepare(load_catalog(), req, [US, CA])
    assert str(err.value) == (
        "fbaInventory.getInventorySummaries: parameter marketplaceIds takes one marketplace and the "
        f"account has 2 ({US}, {CA}); choose one with -p marketplaceIds=ID")
    prepare(load_catalog(), req)  # before the account is known, the gap is not an error
    with pytest.raises(UsageError, match="missing required parameter marketplaceIds"):
        prepare(load_catalog(), req, [])


def test_sandbox_only_operations_are_refused_on_production(tmp_path: Path) -> None:
    config = accounts_only(tmp_path, "http://127.0.0.1:9", endpoint="na")
    result = run_spd("exec", "notifications", "sendTestNotification", "-p", "notificationType=ANY_OFFER_CHANGED",
                     "--body", '{"destinationId": "d-1"}', "-c", str(config), timeout=30)
    assert result.returncode == 2
    assert result.stderr == (
        "spd: notifications.sendTestNotification is a sandbox-only operation (x-amzn-api-sandbox-only) "
        "and account me uses the production endpoint na; use an account with endpoint sandbox-na, "
        "sandbox-eu or sandbox-fe\n")
    assert load_catalog().operation("fbaInventory", "createInventoryItem").sandbox_only


def _refused(case: tuple[Any, ...]) -> bool:
    api, method, path, _status, _index, raw = case
    op, params, body = case_request(api, method, path, raw)
    try:
        prepare(load_catalog(), ExecRequest(api, op.id, params, body))
    except UsageError:
        return True
    return False


NOT_VALID = [c for c in SUCCESS_CASES if _refused(c)] if SHARED_MODELS else []


@pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")
async def test_no_validate_sends_what_the_models_refuse(sandbox: SimThread, tmp_path: Path,  # noqa: F811
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(accounts_only(tmp_path, sandbox.url))
    # Amazon's own 2xx examples that break its models: 13 break the schema, getServiceJobs'
    # ({marketplaceIds} alone) the sentence "Required if `LastUpdatedAfter` is not specified." and
    # getItemEligibilityPreview's (program=INBOUND alone) "Required only when program=INBOUND."
    assert len(NOT_VALID) == 15
    for api, method, path, status, _index, raw in NOT_VALID:
        op, params, body = case_request(api, method, path, raw)
        got = await exec_command(config, ExecRequest(api, op.id, params, body, validate=False))
        assert got == expected_output(status, raw), (api, op.id)
    assert capsys.readouterr().err.count("sending it anyway (--no-validate)") == 15


@pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")
def test_no_validate_on_the_command_line_warns(sandbox: SimThread, tmp_path: Path) -> None:  # noqa: F811
    config = accounts_only(tmp_path, sandbox.url)
    args = ["exec", "fulfillmentInboundV0", "getShipmentItems", "-p", "QueryType=SHIPMENT",
            "-p", f"MarketplaceId={US}", "-c", str(config)]
    refused = run_spd(*args)
    assert refused.returncode == 2 and "QueryType must be one of DATE_RANGE, NEXT_TOKEN" in refused.stderr
    sent = run_spd(*args, "--no-validate")
    assert sent.stderr.startswith("spd: warning: fulfillmentInboundV0.getShipmentItems: parameter "
                                  "QueryType must be one of DATE_RANGE, NEXT_TOKEN; got 'SHIPMENT'; "
                                  "sending it anyway (--no-validate)")
    assert sent.returncode in (0, 1)  # Amazon's answer, whatever it is: the request was sent
    assert "payload" in sent.stdout or "errors" in sent.stderr
