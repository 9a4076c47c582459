"""`spd exec` applies the contract table's `forbids` rows (getOrders: "`LastUpdatedAfter` and
`LastUpdatedBefore` cannot be set when `CreatedAfter` is set") and `requires_with` rows
(getInvoices: "If you provide a value for this field, you must also provide a value for the
`transactionIdentifierId` field") before sending anything.

Amazon's model files are read directly: every sentence of a parameter's description that ties it
to another parameter is either a row of the table or left out below with the reason. Real
`spd exec` subprocesses run against the simulator, whose /_sim/stats counts what reached it and
which refuses the date combinations by its own rules (spd.sim.orders), not by these rows.
Whether spd's own pollers keep these rows is tests/test_contract.py's `required_problems`."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from spd.catalog import contract
from spd.catalog.contract_types import EXACTLY_ONE, FORBIDS, REQUIRES_WITH, Rule
from spd.catalog.model import Operation, Param, load_catalog
from spd.catalog.requests import ExecRequest, check_contract, prepare
from spd.core.errors import UsageError
from support.amazon_models import description_at, model_ops
from support.exec_cases import exec_args, placeholder
from support.sim import SimThread
from support.spd import SHARED_MODELS, run_spd

pytestmark = pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")

GIVEN_ROWS = [r for r in contract.RULES if r.kind in (FORBIDS, REQUIRES_WITH)]
ACCOUNT_MARKET = "ATVPDKIKX0DER"  # the exec_config account's
NOW = datetime.now(timezone.utc)
EARLY = (NOW - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
LATE = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
GET_ORDERS, SEARCH_ORDERS = "ordersV0.getOrders", "orders_2026-01-01.searchOrders"

# Sentences of a parameter's description that name another parameter of the operation and say
# when it may or must go with it (the survey of the models, as patterns).
TYING = re.compile(
    r"cannot be (set|used|specified)|cannot (include|use)|can ?not use|may be provided|"
    r"specifying both|mutually exclusive|only if|required (if|when)|required only when|"
    r"is required when|must also|should also be provided|must be specified", re.I)
# What the survey finds that is not a `forbids`/`requires_with` row, and why.
LEFT_OUT = {
    ("ordersV0.getOrders", "CreatedAfter"): "`requires` row (Either ... or ...)",
    ("ordersV0.getOrders", "LastUpdatedAfter"): "`requires` row (Either ... or ...)",
    ("financesV0.listFinancialEvents", "PostedBefore"): "`requires` row (must also specify PostedAfter)",
    ("financesV0.listFinancialEventsByGroupId", "PostedBefore"): "`requires` row (must also specify PostedAfter)",
    ("externalFulfillmentReturns_2024-09-11.listReturns", "lastUpdatedSince"): "`requires` row",
    ("externalFulfillmentReturns_2024-09-11.listReturns", "lastUpdatedUntil"): "`requires` row",
    ("services.getServiceJobs", "lastUpdatedAfter"): "the same sentence as createdAfter's row; "
                                                      "'Required if' is the `requires` row",
    ("orders_2026-01-01.searchOrders", "createdAfter"): "`exactly_one` row beside the forbids row",
    ("orders_2026-01-01.searchOrders", "lastUpdatedAfter"): "`exactly_one` row beside the forbids row",
    ("fulfillmentInbound_2024-03-20.listTransportationOptions", "placementOptionId"):
        "at least one of two, not one given another; an operation spd does not poll",
    ("fulfillmentInbound_2024-03-20.listTransportationOptions", "shipmentId"):
        "at least one of two, not one given another; an operation spd does not poll",
    ("services.getAppointmentSlots", "startTime"): "'should also be provided': advice, not a refusal",
    ("services.getAppointmentSlots", "endTime"): "'should also be provided': advice, not a refusal",
    ("services.getAppointmmentSlotsByJobId", "startTime"): "'should also be provided': advice, not a refusal",
    ("services.getAppointmmentSlotsByJobId", "endTime"): "'should also be provided': advice, not a refusal",
    ("sales.getOrderMetrics", "sku"): "the same sentence as asin's row",
    ("sales.getOrderMetrics", "granularity"): "how far back `interval` may reach per granularity: "
                                               "a value's limit, not a parameter given another",
    ("sales.getOrderMetrics", "granularityTimeZone"): "'a granularity value greater than Hour': "
                                                       "whether Total is greater is not said",
}


def op_of(row: Rule) -> Operation:
    return load_catalog().operation(*row.op.split(".", 1))


def value(param: Param | None) -> str:
    assert param is not None
    return EARLY if param.format == "date-time" else placeholder(param)


def cond(op: Operation, when: str) -> dict[str, str]:
    name, eq, wanted = when.partition("=")
    return {name: wanted if eq else value(op.param(name))}


def base(op: Operation) -> dict[str, str]:
    """The model's required parameters (the marketplace is the account's)."""
    return {p.name: value(p) for p in op.params if p.required and p.location != "body"
            and not p.name.lower().startswith("marketplaceid")}


def refusal(row: Rule, params: dict[str, str]) -> Rule | None:
    """The row of `row.op` whose words the contract check refuses `params` in, or None."""
    try:
        check_contract(op_of(row), params)
    except UsageError as exc:
        # three rows of searchCatalogItems share "Cannot be used with `identifiers`."
        quoting = [r for r in contract.rules_for(row.op) if f'(the model: "{r.quote}")' in str(exc)]
        return next((r for r in quoting if breaks(r, params)), quoting[0])
    return None


def breaks(row: Rule, params: dict[str, str]) -> bool:
    """This test's own reading of a `forbids`, `requires_with` or `exactly_one` row."""
    if row.kind == EXACTLY_ONE:
        return sum(n in params for n in row.value.names) != 1
    if row.kind not in (FORBIDS, REQUIRES_WITH):
        return False
    name, eq, wanted = row.value.when.partition("=")
    if params.get(name) is None or eq and params[name] != wanted:
        return False
    inside = [n in params for n in row.value.names]
    return any(inside) if row.kind == FORBIDS else not all(inside)


def violating(row: Rule) -> tuple[dict[str, str], Rule]:
    """Parameters that break this row, and the row they are refused by: this one, or, where a
    sentence says the same of the same pair and comes first in the table (searchOrders' four,
    both halves of "Cannot be used with"), that one. They are the row's condition with one of
    the parameters it forbids or without those it requires, plus what the operation's other
    rows need (getOrders: an updated bound alone needs LastUpdatedAfter)."""
    op = op_of(row)
    start = {**base(op), **cond(op, row.value.when)}
    if row.kind == REQUIRES_WITH:
        start = {k: v for k, v in start.items() if k not in row.value.names}
    tries = [{n: value(op.param(n))} for n in row.value.names] if row.kind == FORBIDS else [{}]
    helpers = [{}] + [{p.name: value(p)} for p in op.params if p.location == "query"]
    found = [(params, refusal(row, params)) for clash in tries for helper in helpers
             for params in [{**start, **helper, **clash}] if breaks(row, params)]
    mine = [(params, by) for params, by in found if by == row]
    other = sorted(((params, by) for params, by in found if by is not None and breaks(by, params)),
                   key=lambda pair: pair[1].kind != row.kind)  # the same pair's other sentence first
    assert mine or other, f"no request breaking {row.op}'s row {row.quote!r} is refused for it"
    return (mine or other)[0]  # type: ignore[return-value]


def allowed(row: Rule, params: dict[str, str]) -> dict[str, str]:
    """The violating parameters made right: without what the row forbids (and with what the
    operation's other rows then need: searchOrders' createdBefore wants createdAfter), with
    what it requires."""
    op = op_of(row)
    if row.kind == REQUIRES_WITH:
        return {**params, **{n: value(op.param(n)) for n in row.value.names}}
    kept = {k: v for k, v in params.items() if k not in row.value.names}
    helpers = [{}] + [{p.name: value(p)} for p in op.params
                      if p.location == "query" and p.name not in row.value.names]
    for helper in helpers:
        if refusal(row, {**kept, **helper}) is None:
            return {**kept, **helper}
    raise AssertionError(f"nothing without what {row.quote!r} forbids passes")


# --- the rows are Amazon's ------------------------------------------------------------------------


def test_the_table_has_the_date_combination_rows() -> None:
    forbidden = {(r.op, r.value.when, n) for r in GIVEN_ROWS if r.kind == FORBIDS for n in r.value.names}
    assert {(GET_ORDERS, "CreatedAfter", "LastUpdatedBefore"), (GET_ORDERS, "LastUpdatedAfter", "CreatedBefore"),
            (SEARCH_ORDERS, "createdBefore", "lastUpdatedAfter"),
            (SEARCH_ORDERS, "lastUpdatedBefore", "createdBefore"),
            ("services.getServiceJobs", "createdAfter", "lastUpdatedAfter")} <= forbidden
    assert len(GIVEN_ROWS) >= 20


@pytest.mark.parametrize("row", GIVEN_ROWS, ids=lambda r: f"{r.op}:{r.kind}:{r.value.when}")
def test_every_row_quotes_its_parameters_description(row: Rule) -> None:
    op = model_ops()[row.op]
    assert row.where is not None and row.quote in description_at(op, row.where)
    names = [row.value.when.partition("=")[0], *row.value.names]
    for name in names:
        assert op.params[name]["in"] == "query", name
        # each is the parameter described or named in the sentence (`PaymentMethod` is PaymentMethods)
        assert name == row.where or name.rstrip("s").lower() in row.quote.lower(), name


def test_every_sentence_tying_two_parameters_is_a_row_or_left_out_for_a_reason() -> None:
    rows = {(r.op, r.where) for r in contract.RULES}
    found = set()
    for name, op in model_ops().items():
        others = [p for p, raw in op.params.items() if raw.get("in") == "query"]
        for param, raw in op.params.items():
            text = raw.get("description") or ""
            if raw.get("in") != "query" or not TYING.search(text):
                continue
            if any(re.search(rf"\b{re.escape(o)}\b", text, re.I) for o in others if o != param):
                found.add((name, param))
    unexplained = sorted(found - rows - set(LEFT_OUT))
    assert unexplained == []
    stale = sorted(k for k in LEFT_OUT if k not in found)
    assert stale == []  # a reason for a sentence the models no longer have


# --- spd exec refuses before sending, and sends what is allowed -----------------------------------


@pytest.mark.parametrize("row", GIVEN_ROWS, ids=lambda r: f"{r.op}:{r.kind}:{r.value.when}")
def test_every_row_refuses_before_sending(exec_sim: SimThread, exec_config: Path, row: Rule) -> None:
    params, by = violating(row)
    before = exec_sim.reached()
    result = run_spd(*exec_args(row.op, params, exec_config))
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"spd: {row.op}: "), result.stderr
    said = result.stderr.split(" (the model: ")[0]
    assert f'(the model: "{by.quote}")' in result.stderr
    if by.kind == FORBIDS:
        assert re.search(rf"cannot be given with {re.escape(by.value.when)}: leave out ", said)
        assert any(n in said for n in by.value.names if n in params)
    elif by.kind == REQUIRES_WITH:
        assert f" is required with {by.value.when} " in f"{said} "
        assert all(n in said for n in by.value.names)
    else:
        assert all(n in said for n in by.value.names if n in params)
    assert exec_sim.reached() == before  # nothing sent, not even a token exchange
    # made right, the contract check passes
    prepare(load_catalog(), ExecRequest(*row.op.split(".", 1), allowed(row, params)), [ACCOUNT_MARKET])


def test_get_orders_created_with_updated_bound_is_refused_in_one_line(
        exec_sim: SimThread, exec_config: Path) -> None:
    before = exec_sim.reached()
    result = run_spd(*exec_args(GET_ORDERS, {"CreatedAfter": EARLY, "LastUpdatedBefore": LATE}, exec_config))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"spd: {GET_ORDERS}: LastUpdatedBefore cannot be given with CreatedAfter: leave out one of them "
        '(the model: "`LastUpdatedAfter` and `LastUpdatedBefore` cannot be set when `CreatedAfter` is set.")\n')
    assert exec_sim.reached() == before


@pytest.mark.parametrize("name, window", [
    (GET_ORDERS, {"CreatedAfter": EARLY, "CreatedBefore": LATE}),
    (GET_ORDERS, {"LastUpdatedAfter": EARLY, "LastUpdatedBefore": LATE}),
    (SEARCH_ORDERS, {"createdAfter": EARLY, "createdBefore": LATE}),
    (SEARCH_ORDERS, {"lastUpdatedAfter": EARLY, "lastUpdatedBefore": LATE}),
], ids=["v0-created", "v0-updated", "2026-created", "2026-updated"])
def test_one_fields_bounds_together_are_served(exec_sim: SimThread, exec_config: Path, name: str,
                                                window: dict[str, str]) -> None:
    before = exec_sim.requests(name)
    result = run_spd(*exec_args(name, window, exec_config))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)
    assert exec_sim.requests(name) == before + 1


@pytest.mark.parametrize("name, updated, created", [
    (GET_ORDERS, "LastUpdatedAfter", "CreatedBefore"), (SEARCH_ORDERS, "lastUpdatedAfter", "createdBefore"),
], ids=["v0", "2026"])
def test_no_validate_sends_it_and_the_simulator_refuses_by_its_own_rule(
        exec_sim: SimThread, exec_config: Path, name: str, updated: str, created: str) -> None:
    before = exec_sim.requests(name)
    result = run_spd(*exec_args(name, {updated: EARLY, created: LATE}, exec_config, "--no-validate"))
    assert (result.returncode, result.stdout) == (1, ""), result
    warning, document = result.stderr.splitlines()
    assert warning.startswith(f"spd: warning: {name}: ") and " cannot be given with " in warning
    assert created in warning.split(" (the model")[0] and updated in warning.split(" (the model")[0]
    assert warning.endswith("; sending it anyway (--no-validate)")
    # the simulator's own words (spd.sim.orders), not the row's quote
    details = json.loads(document)["errors"][0]["details"]
    assert "cannot be set when" in details and details not in {r.quote for r in GIVEN_ROWS}
    assert exec_sim.requests(name) == before + 1
