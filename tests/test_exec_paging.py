"""`spd exec --all-pages` against the simulator's pager mode: every operation of the catalog that
pages (73 by next token, 3 by offset) answers two pages, and the second request must follow
Amazon's rules as the contract table (spd.catalog.contract) states them, not as spd declares them: the
token alone (getReports, getFeeds), with QueryType=NEXT_TOKEN (Fulfillment Inbound v0), with the
same arguments (everything else), or the offset moved by the page size."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from spd.catalog import contract
from spd.catalog.model import Operation, load_catalog
from spd.config.validate import load_config
from spd.catalog.contract_types import OFFSET, REQUIRES
from spd.core.errors import ApiError
from spd.app.execute import exec_command
from spd.catalog.requests import ExecRequest
from support.exec_cases import minimal_body, placeholder
from support.sim import SimThread
from support.static_sandbox import write_sandbox_config

TOKEN_PAGED = [op for op in load_catalog().operations() if op.pagination is not None]
OFFSET_PAGED = [op for op in load_catalog().operations() if contract.rule(op.name, OFFSET)]
WHEN = (datetime.now(timezone.utc) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
OFFSET_ARGS = {"fulfillmentInboundV0.getLabels": {"PageStartIndex": "0", "PageSize": "1",
                                                  "NumberOfPackages": "2"}}


@pytest.fixture(scope="module")
def pager() -> Iterator[SimThread]:
    sim = SimThread(pager=True, orders=0, purchase_orders=0, rate_limit=False).start()
    yield sim
    sim.stop()


def first_request(op: Operation) -> tuple[dict[str, Any], Any]:
    """A valid first page: the required parameters, what the prose requires, a time filter where
    the operation has one (so that `same` and `only` are put to the test), the smallest body."""
    params = {p.name: placeholder(p) for p in op.params if p.required and p.location != "body"}
    ends = contract.bounds(op.name)
    for field in ("created", "updated"):
        if field in ends and not any(p in params for p, _ in ends[field].values()):
            params[ends[field]["after"][0]] = WHEN
            if "before" in ends[field]:
                params[ends[field]["before"][0]] = WHEN
            break
    for r in contract.rules_for(op.name, REQUIRES):
        if r.value.any_of and not r.value.when and not any(n in params for n in r.value.need):
            params[r.value.need[0]] = placeholder(op.param(r.value.need[0]))  # type: ignore[arg-type]
    params.update(OFFSET_ARGS.get(op.name, {}))
    body_param = next((p for p in op.params if p.location == "body"), None)
    wanted = body_param is not None and (body_param.required or contract.rule(op.name, OFFSET))
    body = minimal_body(op.body_schema, op.definitions) if wanted else None
    return params, body


def count_results(op: Operation, merged: Any) -> int:
    offset = contract.rule(op.name, OFFSET)
    if offset is not None and offset.value.results is None:
        return len(merged)  # one document per page
    path = tuple(offset.value.results.split(".")) if offset else op.pagination.result_path  # type: ignore[union-attr]
    node = merged
    for key in path or ():
        node = node[key]
    return len(node) if isinstance(node, list) else sum(len(v) for v in node.values())


def test_every_paged_operation_of_the_catalog_is_covered() -> None:
    assert len(TOKEN_PAGED) == 73
    assert [op.name for op in OFFSET_PAGED] == [
        "fulfillmentInboundV0.getLabels", "replenishment-2022-11-07.listOfferMetrics",
        "replenishment-2022-11-07.listOffers"]


@pytest.mark.parametrize("op", TOKEN_PAGED + OFFSET_PAGED, ids=lambda op: op.name)
async def test_all_pages_follows_amazons_rule_for_page_two(pager: SimThread, tmp_path: Path,
                                                           op: Operation) -> None:
    config = load_config(write_sandbox_config(tmp_path, pager.url))
    params, body = first_request(op)
    before = pager.get("/_sim/stats")["operations"].get(op.name, {}).get("page2_ok", 0)
    merged = await exec_command(config, ExecRequest(op.api, op.id, params, body, all_pages=True))
    stats = pager.get("/_sim/stats")["operations"][op.name]
    assert stats.get("page2_ok", 0) == before + 1, stats
    assert count_results(op, merged) == 2


async def test_a_wrong_next_page_is_refused(pager: SimThread, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The pager is Amazon's referee, not spd's: a registry that sent getReports' filters with
    the token, or dropped QueryType, is refused."""
    from dataclasses import replace

    from spd.sources import registry as objects

    config = load_config(write_sandbox_config(tmp_path, pager.url))
    registry = dict(objects._registry())
    for name, change in (("reports_2021-06-30.getReports", {"token_alone": False}),
                         ("fulfillmentInboundV0.getShipments", {"token_params": ()})):
        ot = registry[name]
        monkeypatch.setitem(registry, name, replace(ot, paging=replace(ot.paging, **change)))
    monkeypatch.setattr(objects, "_REGISTRY", registry)
    for api, op_id in (("reports_2021-06-30", "getReports"), ("fulfillmentInboundV0", "getShipments")):
        op = load_catalog().operation(api, op_id)
        params, body = first_request(op)
        with pytest.raises(ApiError) as err:
            await exec_command(config, ExecRequest(api, op_id, params, body, all_pages=True))
        assert err.value.status == 400
