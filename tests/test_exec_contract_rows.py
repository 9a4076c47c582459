"""`spd exec` applies the contract table's `exactly_one` rows (searchOrders: "You must provide
exactly one of `createdAfter` and `lastUpdatedAfter`") and `same_marketplace` rows
(fbaInventory's granularityId) before sending anything, and the simulator, reading its rules
from its own table, refuses the same requests.

Amazon's model files are read for the sentences; real `spd exec` subprocesses run against the
simulator, whose /_sim/stats counts what reached it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from spd.catalog import contract
from spd.catalog.contract_types import EXACTLY_ONE, REQUIRES, SAME_MARKETPLACE, OneOf, Rule
from spd.catalog.model import Operation, load_catalog
from spd.catalog.requests import ExecRequest, prepare
from spd.core.errors import UsageError
from spd.sim.orders import V0_ONE_OF, V26_ONE_OF
from support.exec_cases import exec_args, placeholder
from support.sim import SimThread
from support.spd import SHARED_MODELS, run_spd

pytestmark = pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")

SEARCH = "orders_2026-01-01.searchOrders"
INVENTORY = "fbaInventory.getInventorySummaries"
WHEN = (datetime.now(timezone.utc) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
ACCOUNT_MARKET, OTHER_MARKET = "ATVPDKIKX0DER", "A1F83G8C2ARO7P"  # the config's; Germany
EXACTLY_ONE_ROWS = [r for r in contract.RULES if r.kind == EXACTLY_ONE]
SAME_MARKETPLACE_ROWS = [r for r in contract.RULES if r.kind == SAME_MARKETPLACE]


def model_param(file: str, path: str, name: str) -> str:
    """A GET parameter's description, read from Amazon's model file."""
    assert SHARED_MODELS is not None
    doc = json.loads((Path(SHARED_MODELS) / "orders-api-model" / file).read_text())
    params = doc["paths"][path]["get"]["parameters"]
    return str(next(p for p in params if p.get("name") == name)["description"])


def search_param(name: str) -> str:
    return model_param("orders_2026-01-01.json", "/orders/2026-01-01/orders", name)


# --- searchOrders: exactly one of createdAfter and lastUpdatedAfter ---------------------------


def test_the_row_quotes_amazons_exactly_one_sentence() -> None:
    row = contract.rule(SEARCH, EXACTLY_ONE)
    assert row is not None and row.value == OneOf(("createdAfter", "lastUpdatedAfter"))
    assert row.quote in search_param(str(row.where))
    assert "exactly one of `createdAfter` and `lastUpdatedAfter`" in search_param("lastUpdatedAfter")
    assert contract.rules_for(SEARCH, REQUIRES) == []  # no "at least one" reading beside it


def test_the_simulator_words_its_rule_in_the_models_sentences() -> None:
    """The simulator's own table (spd.sim.orders), not spd's contract, against Amazon's files."""
    sentence, exactly = V26_ONE_OF
    assert sentence in search_param("createdAfter") and exactly
    sentence, exactly = V0_ONE_OF
    assert sentence in model_param("ordersV0.json", "/orders/v0/orders", "CreatedAfter")
    assert not exactly and "exactly" not in sentence


def test_both_lower_bounds_are_refused_before_sending(exec_sim: SimThread, exec_config: Path) -> None:
    before = exec_sim.reached()
    both = {"createdAfter": WHEN, "lastUpdatedAfter": WHEN}
    result = run_spd(*exec_args(SEARCH, both, exec_config))
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr == (
        f"spd: {SEARCH}: createdAfter and lastUpdatedAfter were both given: give only one of them "
        '(the model: "You must provide exactly one of `createdAfter` and `lastUpdatedAfter` in '
        'your request.")\n')
    neither = run_spd(*exec_args(SEARCH, {}, exec_config))
    assert (neither.returncode, neither.stdout) == (2, "")
    assert neither.stderr.startswith(f"spd: {SEARCH}: createdAfter or lastUpdatedAfter is required (")
    assert exec_sim.reached() == before  # nothing sent, not even a token exchange


def test_either_lower_bound_alone_is_served(exec_sim: SimThread, exec_config: Path) -> None:
    before = exec_sim.requests(SEARCH)
    for name in ("createdAfter", "lastUpdatedAfter"):
        result = run_spd(*exec_args(SEARCH, {name: WHEN}, exec_config))
        assert result.returncode == 0, result.stderr
        assert "orders" in json.loads(result.stdout)
    assert exec_sim.requests(SEARCH) == before + 2


def test_the_simulator_refuses_both_in_the_models_words(exec_sim: SimThread, exec_config: Path) -> None:
    before = exec_sim.requests(SEARCH)
    both = {"createdAfter": WHEN, "lastUpdatedAfter": WHEN}
    result = run_spd(*exec_args(SEARCH, both, exec_config, "--no-validate"))
    assert (result.returncode, result.stdout) == (1, "")
    warning, document = result.stderr.splitlines()
    assert warning.startswith(f"spd: warning: {SEARCH}: createdAfter and lastUpdatedAfter were both")
    details = json.loads(document)["errors"][0]["details"]
    assert "exactly one" in details and details in search_param("createdAfter")
    assert exec_sim.requests(SEARCH) == before + 1


@pytest.mark.parametrize("row", EXACTLY_ONE_ROWS, ids=lambda r: f"{r.op}:{r.where}")
def test_every_exactly_one_row_refuses_all_and_none(row: Rule) -> None:
    op = load_catalog().operation(*row.op.split(".", 1))
    base = {p.name: placeholder(p) for p in op.params if p.required and p.location != "body"}
    names = row.value.names
    for params in (dict.fromkeys(names, WHEN), {}):
        with pytest.raises(UsageError, match=f'the model: "{row.quote}"'):
            prepare(load_catalog(), ExecRequest(op.api, op.id, {**base, **params}), [ACCOUNT_MARKET])
    for name in names:
        prepare(load_catalog(), ExecRequest(op.api, op.id, {**base, name: WHEN}), [ACCOUNT_MARKET])


# --- fbaInventory: granularityId is the marketplace of marketplaceIds --------------------------


def inventory_params(op: Operation, row: Rule, market: str) -> dict[str, str]:
    params = {p.name: placeholder(p) for p in op.params if p.required and p.location == "query"
              and p.name not in ("marketplaceIds", "MarketplaceIds")}
    return {**params, str(row.value): market}  # the marketplace comes from the account


def test_fba_inventory_has_its_row() -> None:
    assert [r.op for r in SAME_MARKETPLACE_ROWS] == [INVENTORY]


@pytest.mark.parametrize("row", SAME_MARKETPLACE_ROWS, ids=lambda r: r.op)
def test_another_marketplace_is_refused_before_sending(exec_sim: SimThread, exec_config: Path,
                                                       row: Rule) -> None:
    op = load_catalog().operation(*row.op.split(".", 1))
    before = exec_sim.reached()
    result = run_spd(*exec_args(op.name, inventory_params(op, row, OTHER_MARKET), exec_config))
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr == (
        f"spd: {op.name}: {row.value} {OTHER_MARKET} is not the marketplace of marketplaceIds "
        f'({ACCOUNT_MARKET}); give the same marketplace to both (the model: "{row.quote}")\n')
    assert exec_sim.reached() == before


@pytest.mark.parametrize("row", SAME_MARKETPLACE_ROWS, ids=lambda r: r.op)
def test_the_same_marketplace_is_served(exec_sim: SimThread, exec_config: Path, row: Rule) -> None:
    op = load_catalog().operation(*row.op.split(".", 1))
    before = exec_sim.requests(op.name)
    result = run_spd(*exec_args(op.name, inventory_params(op, row, ACCOUNT_MARKET), exec_config))
    assert result.returncode == 0, result.stderr
    # given explicitly, both name the same marketplace too
    explicit = {**inventory_params(op, row, OTHER_MARKET), "marketplaceIds": OTHER_MARKET}
    prepare(load_catalog(), ExecRequest(op.api, op.id, explicit), [ACCOUNT_MARKET])
    assert exec_sim.requests(op.name) == before + 1


@pytest.mark.parametrize("row", SAME_MARKETPLACE_ROWS, ids=lambda r: r.op)
def test_the_simulator_refuses_another_marketplace_too(exec_sim: SimThread, exec_config: Path,
                                                       row: Rule) -> None:
    op = load_catalog().operation(*row.op.split(".", 1))
    result = run_spd(*exec_args(op.name, inventory_params(op, row, OTHER_MARKET), exec_config,
                                "--no-validate"))
    assert (result.returncode, result.stdout) == (1, "")
    warning, document = result.stderr.splitlines()
    assert warning.startswith(f"spd: warning: {op.name}: {row.value} {OTHER_MARKET} is not")
    assert json.loads(document)["errors"][0]["details"] == (
        f"{row.value} must be the marketplace of marketplaceIds.")
