"""`spd validate` (and so `run` and `once`, which validate at start) applies the contract table's
rows to each poller's first pages as spd sends them and to each job's params: a poller by
`updated` with `params: {SellerOrderId: …}` is a config error (exit 78) on the params key's line,
quoting the model's sentence, before Amazon refuses every request at runtime.

The sentences are read from Amazon's model files, so a test fails if its row leaves the table.
Real `spd validate` and `spd once` subprocesses read the files; no request is sent (the account's
endpoint is a closed loopback port)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from spd.catalog import contract
from spd.catalog.contract_types import EXACTLY_ONE, FORBIDS, REQUIRES_WITH, SAME_MARKETPLACE, Rule
from spd.config.validate import validate_config
from spd.core.problems import Problem
from spd.sources.object_type import ObjectType
from spd.sources.registry import object_types
from support.config import write_config
from support.spd import SHARED_MODELS, run_spd
from support.unreachable import closed_port

pytestmark = pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")

GET_ORDERS, SEARCH_ORDERS = "ordersV0.getOrders", "orders_2026-01-01.searchOrders"
INVOICES = "InvoicesApiModel_2024-06-19.getInvoices"
WHEN = "2025-01-01T00:00:00Z"
POLLED = {ot.name: ot for ot in object_types() if ot.supported and ot.kind == "operation"}
GIVEN_ROWS = [r for r in contract.RULES if r.kind in (FORBIDS, REQUIRES_WITH) and r.op in POLLED]


def sentence(folder: str, file: str, path: str, param: str, words: str) -> str:
    """The sentence of a GET parameter's description (Amazon's model file) holding `words`."""
    assert SHARED_MODELS is not None
    doc = json.loads((Path(SHARED_MODELS) / folder / file).read_text())
    params = doc["paths"][path]["get"]["parameters"]
    text = str(next(p for p in params if p.get("name") == param)["description"])
    found = [s for s in re.split(r"(?<=\.)\s+", text) if words in s]
    assert len(found) == 1, (param, words, text)
    return found[0]


def orders_v0(param: str, words: str) -> str:
    return sentence("orders-api-model", "ordersV0.json", "/orders/v0/orders", param, words)


def search_orders(param: str, words: str) -> str:
    return sentence("orders-api-model", "orders_2026-01-01.json", "/orders/2026-01-01/orders", param, words)


def config(tmp_path: Path, poller: dict[str, Any] | None = None, job: str = "") -> Path:
    """A config of one account at a closed port and, where given, one poller `p` and one job `j`."""
    return write_config(tmp_path, f"http://127.0.0.1:{closed_port()}", {"p": poller} if poller else None,
                        emitters={"out": "{type: stdout}"}, extra=f"jobs:\n  j: {job}" if job else "")


def line_of(path: Path, text: str) -> int:
    """The 1-based line of the file holding `text` (once)."""
    lines = [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    assert len(lines) == 1, (text, lines)
    return lines[0]


def problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("spd: ")]


# --- real `spd validate` subprocesses ------------------------------------------------------------

CASES = [
    # (object, timestamp_field, params, the params key, the row's sentence (model file), other words)
    pytest.param(GET_ORDERS, "updated", {"SellerOrderId": "A-1"}, "SellerOrderId",
                 lambda: orders_v0("SellerOrderId", "cannot be specified"),
                 ("LastUpdatedAfter", "remove SellerOrderId from params or set timestamp_field: created"),
                 id="getOrders-SellerOrderId-by-updated"),
    pytest.param(GET_ORDERS, "updated", {"CreatedBefore": WHEN}, "CreatedBefore",
                 lambda: orders_v0("LastUpdatedAfter", "cannot be set when"),
                 ("CreatedBefore cannot be given with LastUpdatedAfter",
                  "spd sends LastUpdatedAfter itself by timestamp_field updated; remove CreatedBefore"),
                 id="getOrders-CreatedBefore-by-updated"),
    pytest.param(SEARCH_ORDERS, "created", {"lastUpdatedBefore": WHEN}, "lastUpdatedBefore",
                 lambda: search_orders("createdAfter", "neither"),
                 ("lastUpdatedBefore cannot be given with createdAfter",),
                 id="searchOrders-lastUpdatedBefore-by-created"),
]


@pytest.mark.parametrize("obj, field, params, key, quote, words", CASES)
def test_a_poller_breaking_a_row_is_a_config_error(tmp_path: Path, obj: str, field: str,
                                                    params: dict[str, str], key: str,
                                                    quote: Any, words: tuple[str, ...]) -> None:
    path = config(tmp_path, {"object": obj, "timestamp_field": field, "params": params})
    done = run_spd("validate", "-c", str(path))
    assert done.returncode == 78, done.stderr
    lines = problem_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    head = f"spd: {path}: pollers.p.params.{key} (line {line_of(path, 'params:')}): {obj}: "
    assert lines[0].startswith(head), lines[0]
    assert lines[0].endswith(f'(the model: "{quote()}")'), lines[0]
    for text in words:
        assert text in lines[0]


def test_the_same_params_by_the_other_field_pass(tmp_path: Path) -> None:
    """SellerOrderId forbids the updated bounds only: by created the poller is valid, as the
    error's advice says."""
    path = config(tmp_path, {"object": GET_ORDERS, "timestamp_field": "created",
                             "params": {"SellerOrderId": "A-1"}})
    done = run_spd("validate", "-c", str(path))
    assert done.returncode == 0, done.stderr
    assert problem_lines(done.stderr) == []


def test_a_poller_lacking_a_required_companion(tmp_path: Path) -> None:
    path = config(tmp_path, {"object": INVOICES, "timestamp_field": "created",
                             "params": {"transactionIdentifierName": "ORDER_ID"}})
    done = run_spd("validate", "-c", str(path))
    assert done.returncode == 78, done.stderr
    [line] = problem_lines(done.stderr)
    row = next(r for r in contract.rules_for(INVOICES, REQUIRES_WITH)
               if r.value.when == "transactionIdentifierName")
    assert line.startswith(f"spd: {path}: pollers.p.params.transactionIdentifierName "
                           f"(line {line_of(path, 'params:')}): ")
    assert ("transactionIdentifierId is required with transactionIdentifierName: add "
            "transactionIdentifierId to params or remove transactionIdentifierName") in line
    assert line.endswith(f'(the model: "{row.quote}")')


def test_a_job_breaking_a_row_names_its_params_key(tmp_path: Path) -> None:
    path = config(tmp_path, job=("{api: ordersV0, operation: getOrders, interval: 1h, emitters: [out],\n"
                                 f"      params: {{CreatedAfter: '{WHEN}', LastUpdatedBefore: '{WHEN}'}}}}"))
    done = run_spd("validate", "-c", str(path))
    assert done.returncode == 78, done.stderr
    [line] = problem_lines(done.stderr)
    quote = orders_v0("CreatedAfter", "cannot be set when")
    assert line == (f"spd: {path}: jobs.j.params.CreatedAfter (line {line_of(path, 'params:')}): "
                    f"{GET_ORDERS}: LastUpdatedBefore cannot be given with CreatedAfter: leave out one "
                    f'of them (the model: "{quote}")')


def test_once_refuses_to_start_with_the_same_line(tmp_path: Path) -> None:
    """`spd once` validates at start: exit 78 with validate's line, nothing polled."""
    path = config(tmp_path, {"object": GET_ORDERS, "timestamp_field": "updated",
                             "params": {"SellerOrderId": "A-1"}})
    validated = problem_lines(run_spd("validate", "-c", str(path)).stderr)
    done = run_spd("once", "-c", str(path))
    assert done.returncode == 78, done.stderr
    assert problem_lines(done.stderr) == validated
    assert orders_v0("SellerOrderId", "cannot be specified") in validated[0]
    assert not (tmp_path / "state.db").exists()  # nothing ran: not even the state was opened


# --- every `forbids` / `requires_with` row of a polled operation, in process ------------------------


def on(cond: str, sent: dict[str, str]) -> bool:
    """Whether `NAME` or `NAME=VALUE` is sent."""
    name, eq, value = cond.partition("=")
    return name in sent and (not eq or sent[name] == value)


def page(ot: ObjectType, field: str, params: dict[str, str]) -> dict[str, str]:
    """The parameters of a first page by `field` (values only where the params give them)."""
    sent = {name: str(value) for name, value in ot.params.fixed}
    sent.update({b: "T" for b in ot.window.bounds(field) or () if b})
    return {**sent, **params}


def breaks(row: Rule, sent: dict[str, str]) -> bool:
    """This test's own reading of a row of these kinds."""
    if row.kind == EXACTLY_ONE:
        return sum(n in sent for n in row.value.names) != 1
    if row.kind not in (FORBIDS, REQUIRES_WITH) or not on(row.value.when, sent):
        return False
    if row.kind == FORBIDS:
        return any(n in sent for n in row.value.names)
    return any(n not in sent for n in row.value.names)


def breaking_params(ot: ObjectType, row: Rule, field: str) -> dict[str, str] | None:
    """Params a poller by `field` can give that break `row` (with what the type needs and what
    the other rows ask to go with them), or None where only spd's own bounds could."""
    managed = {p for p in (*(ot.window.bounds(field) or ()), ot.paging.token_param) if p}
    name, _, value = row.value.when.partition("=")
    params = {} if name in managed else {name: value or "X"}
    if row.kind == FORBIDS and not any(n in managed for n in row.value.names):
        params[row.value.names[0]] = "X"
    for other in contract.rules_for(ot.name, REQUIRES_WITH):
        if other != row and on(other.value.when, params):
            params.update({n: "X" for n in other.value.names if n not in managed and n not in params
                           and (row.kind == FORBIDS or n not in row.value.names)})
    params.update({n: "X" for n in ot.needs(field) if n not in params})
    if not params or any(n in managed for n in params) or not breaks(row, page(ot, field, params)):
        return None
    return params


def errors_of(tmp_path: Path, poller: dict[str, Any]) -> list[Problem]:
    path = config(tmp_path, poller)
    return [p for p in validate_config(path).problems if p.is_error]


@pytest.mark.parametrize("row", GIVEN_ROWS, ids=[f"{r.op}:{r.value.when}" for r in GIVEN_ROWS])
def test_every_row_of_a_polled_operation_is_applied(tmp_path: Path, row: Rule) -> None:
    """Params breaking the row are one error on one of their keys, quoting a row they break:
    this one, or one met first about the same parameters (a symmetric pair, searchOrders'
    `exactly_one`)."""
    ot = POLLED[row.op]
    tried = 0
    for field in ot.timestamp_fields():
        params = breaking_params(ot, row, field)
        if params is None:
            continue
        tried += 1
        errors = errors_of(tmp_path, {"object": ot.name, "timestamp_field": field, "params": params})
        assert len(errors) == 1, (field, params, errors)
        [problem] = errors
        assert problem.path[:3] == ("pollers", "p", "params") and problem.path[3] in params, problem
        quoted = [r for r in contract.rules_for(ot.name) if f'(the model: "{r.quote}")' in problem.message]
        assert quoted and breaks(quoted[0], page(ot, field, params)), (params, problem.message)
    assert tried, f"no poller of {ot.name} can break this row by its params"


def test_a_granularity_of_another_marketplace_than_polled(tmp_path: Path) -> None:
    """fbaInventory polls each of the account's marketplaces on its own (marketplaceIds is
    spd's): a granularityId of another is the `same_marketplace` row broken on its key."""
    row = next(r for r in contract.RULES if r.kind == SAME_MARKETPLACE)
    poller = {"object": row.op, "timestamp_field": "updated", "params": {str(row.value): "A1F83G8C2ARO7P"}}
    [problem] = errors_of(tmp_path, poller)
    assert problem.path == ("pollers", "p", "params", str(row.value))
    assert problem.message.startswith(f"{row.op}: {row.value} A1F83G8C2ARO7P is not the marketplace of ")
    assert problem.message.endswith(f'(the model: "{row.quote}")')
    poller["params"] = {str(row.value): "ATVPDKIKX0DER"}  # the account's (support.config)
    assert errors_of(tmp_path, poller) == []
