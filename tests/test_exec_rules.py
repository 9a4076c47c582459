"""`spd exec` applies the rules Amazon's models state only in sentences (the contract table's
`requires` rows) before sending anything, and words a connection failure as one plain line.

Real `spd exec` / `spd check` subprocesses against the simulator (its /_sim/stats counts what
reached it) and against a closed port; the rows are iterated from spd.catalog.contract, so a new
row is exercised without a new test."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from spd.catalog import contract
from spd.catalog.contract_types import REQUIRES, Rule
from spd.catalog.model import Operation, load_catalog
from spd.catalog.requests import ExecRequest, prepare
from spd.client.http import SpClient
from spd.client.policy import RetryPolicy
from spd.config.validate import load_config
from spd.core.errors import ApiError
from support.exec_cases import placeholder
from support.sim import SimThread
from support.spd import run_spd
from support.unreachable import closed_port, config_to

REQUIRES_ROWS = [r for r in contract.RULES if r.kind == REQUIRES]
WHEN = (datetime.now(timezone.utc) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
ORDERS_LINE = ('spd: ordersV0.getOrders: CreatedAfter or LastUpdatedAfter is required (the model: '
               '"Either the `CreatedAfter` parameter or the `LastUpdatedAfter` parameter is required.")\n')


def argv(op: Operation, params: dict[str, str], config: Path) -> list[str]:
    return ["exec", op.api, op.id, *[a for k, v in params.items() for a in ("-p", f"{k}={v}")],
            "-c", str(config)]


# --- getOrders: the case in README ------------------------------------------------------------


@pytest.mark.parametrize("all_pages", [False, True], ids=["one-page", "all-pages"])
def test_get_orders_without_either_time_is_refused_before_sending(exec_sim: SimThread, exec_config: Path,
                                                                  all_pages: bool) -> None:
    before = exec_sim.reached()
    result = run_spd("exec", "ordersV0", "getOrders", "-c", str(exec_config),
                     *(["--all-pages"] if all_pages else []))
    assert (result.returncode, result.stdout, result.stderr) == (2, "", ORDERS_LINE)
    assert exec_sim.reached() == before  # nothing sent, not even a token exchange


def test_get_orders_with_either_time_still_works(exec_sim: SimThread, exec_config: Path) -> None:
    before = exec_sim.get("/_sim/stats")["operations"]["ordersV0.getOrders"].get("requests", 0)
    for name in ("CreatedAfter", "LastUpdatedAfter"):
        result = run_spd("exec", "ordersV0", "getOrders", "-p", f"{name}={WHEN}", "-c", str(exec_config))
        assert result.returncode == 0, result.stderr
        assert "Orders" in json.loads(result.stdout)["payload"]
    assert exec_sim.get("/_sim/stats")["operations"]["ordersV0.getOrders"]["requests"] == before + 2


def test_a_next_page_is_not_held_to_first_page_rules() -> None:
    # with its token a page is Amazon's to judge (getOrders' NextToken keeps the first filters)
    op, params = prepare(load_catalog(), ExecRequest("ordersV0", "getOrders", {"NextToken": "t"}),
                         ["ATVPDKIKX0DER"])
    assert params["NextToken"] == "t"


def test_no_validate_sends_it_anyway_with_a_warning(exec_sim: SimThread, exec_config: Path) -> None:
    before = exec_sim.get("/_sim/stats")["operations"]["ordersV0.getOrders"].get("requests", 0)
    result = run_spd("exec", "ordersV0", "getOrders", "--no-validate", "-c", str(exec_config))
    assert result.returncode == 1  # Amazon's (the simulator's) 400 with its error JSON
    assert result.stderr.startswith("spd: warning: ordersV0.getOrders: CreatedAfter or "
                                    "LastUpdatedAfter is required (the model: ")
    assert exec_sim.get("/_sim/stats")["operations"]["ordersV0.getOrders"]["requests"] == before + 1


# --- every requires row of the contract table -------------------------------------------------


def violating(row: Rule) -> tuple[Operation, dict[str, str]]:
    """The model's required parameters and the row's first condition, without what it needs."""
    op = load_catalog().operation(*row.op.split(".", 1))
    params = {p.name: placeholder(p) for p in op.params if p.required and p.location != "body"}
    for cond in row.value.when[:1]:
        name, _, value = cond.partition("=")
        params[name] = value or WHEN
    for name in row.value.need:
        if name not in row.value.when[:1]:
            params.pop(name, None)
    return op, params


def test_the_contract_has_requires_rows() -> None:
    assert len(REQUIRES_ROWS) >= 12
    assert {r.op for r in REQUIRES_ROWS} >= {"ordersV0.getOrders", "reports_2021-06-30.getReports"}


@pytest.mark.parametrize("row", REQUIRES_ROWS, ids=lambda r: f"{r.op}:{r.where}")
def test_every_requires_row_refuses_before_sending(exec_sim: SimThread, exec_config: Path, row: Rule) -> None:
    op, params = violating(row)
    before = exec_sim.reached()
    result = run_spd(*argv(op, params, exec_config))
    assert result.returncode == 2, result
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    line = result.stderr
    assert line.startswith(f"spd: {op.name}: ") and f'(the model: "{row.quote}")' in line
    missing = [n for n in row.value.need if n not in params]
    assert all(name in line.split(" (the model")[0] for name in missing)
    assert exec_sim.reached() == before
    # what the row asks for, given, passes this check (the first alternative of `any_of` alone)
    for name in missing[:1] if row.value.any_of else missing:
        params[name] = placeholder(op.param(name))
    prepare(load_catalog(), ExecRequest(op.api, op.id, params), ["ATVPDKIKX0DER"])


# --- connection errors as one plain line -------------------------------------------------------


def check_details(config: Path) -> dict[str, str]:
    result = run_spd("check", "-c", str(config))
    assert result.returncode == 1, result
    return {row["check"]: row["detail"] for row in json.loads(result.stdout)}


def test_refused_connections_read_as_one_plain_line(exec_sim: SimThread, tmp_path: Path) -> None:
    port = closed_port()
    dead = f"http://127.0.0.1:{port}"
    refused = f"cannot connect to 127.0.0.1:{port}: connection refused"
    token = check_details(config_to(tmp_path / "lwa", dead, f"{dead}/auth/o2/token"))
    assert token["LWA token exchange"] == (
        f"account acme: LWA token endpoint {dead}/auth/o2/token unreachable ({refused})")
    calls = check_details(config_to(tmp_path / "api", dead, f"{exec_sim.url}/auth/o2/token"))
    assert calls["sellers.getMarketplaceParticipations"] == (
        f"sellers.getMarketplaceParticipations: request failed after 2 attempts: {refused}")
    # `spd exec` and `spd request`: tests/test_exec_unreachable.py


def test_unresolvable_host_reads_as_one_plain_line(tmp_path: Path) -> None:
    host = "no-such-host.invalid"  # .invalid never resolves (RFC 6761)
    details = check_details(config_to(tmp_path, f"http://{host}", f"http://{host}/auth/o2/token"))
    assert details["LWA token exchange"].startswith(
        f"account acme: LWA token endpoint http://{host}/auth/o2/token unreachable "
        f"(cannot resolve {host}: ")
    assert "ssl:" not in details["LWA token exchange"]


async def test_no_answer_reads_as_one_plain_line(exec_sim: SimThread, tmp_path: Path) -> None:
    """A real peer that takes the connection and never answers: the timeout, in words."""
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # holds the connection until the client gives up

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = load_config(config_to(tmp_path, f"http://127.0.0.1:{port}", f"{exec_sim.url}/auth/o2/token"))
    try:
        async with SpClient(config.accounts, load_catalog(), timeout=0.5,
                            retry=RetryPolicy(max_attempts=1)) as client:
            with pytest.raises(ApiError) as info:
                await client.call("acme", load_catalog().operation("sellers", "getMarketplaceParticipations"))
    finally:
        server.close()
    assert str(info.value) == ("sellers.getMarketplaceParticipations: request failed: "
                               f"127.0.0.1:{port}: no answer within the timeout")

