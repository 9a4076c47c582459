"""spd's declarations judged against Amazon's own documents, never against spd's registry.

Amazon's model files are read directly (tests/amazon_models.py); what they say only in prose is
the reviewed table `spd.catalog.contract.RULES`, whose every quote is checked here against the model
files. For every pollable type: the time bounds, required parameters (the model's and the
prose's), the page size at the model's maximum, the next-token parameter and response path, the
result list, id and timestamp fields, what each bound includes, windows, reach, the 2-minute
rule, what a next page carries, the marketplace parameter. A mutation test breaks declarations
on purpose and checks that each is caught.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from support.amazon_models import ModelOp, description_at, model_ops
from spd.catalog import contract
from spd.catalog.contract_types import (BOUND, EXACTLY_ONE, FORBIDS, ID, LAG, MAX_AGE, MAX_WINDOW,
                                OMIT_MARKETPLACE, PAGE_SIZE, REQUIRES, REQUIRES_WITH, TOKEN_TTL,
                                Given, Requires, Rule)
from spd.sources.describe import describe_object_type
from spd.sources.object_type import ObjectType
from spd.sources.registry import object_types
from support.spd import SHARED_MODELS

pytestmark = pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")

TYPES = [ot for ot in object_types() if ot.supported and ot.kind == "operation"]
MARKETPLACE_NAMES = ("MarketplaceIds", "marketplaceIds", "MarketplaceId", "marketplaceId")
GUIDE_HOSTS = ("https://developer-docs.amazon.com/sp-api/docs/",
               "https://github.com/amzn/selling-partner-api-models/blob/main/schemas/reports/")
INCLUSIVE_WORDS = ("(or at)", "at or after", "at or before", "(or on)", "on or after", "(inclusive)",
                   "(Inclusive)", "The earliest", "The latest")
EXCLUSIVE_WORDS = ("(but not on)", "(but not at)")


# --- reading the models ------------------------------------------------------------------------


def results_of(op: ModelOp, id_path: str | None = None) -> tuple[str, ...]:
    """The response path of the result list (or object of lists) beside the next token."""
    found = []

    def walk(schema: Any, path: tuple[str, ...], depth: int) -> None:
        for name, sub in op.properties(schema).items():
            node = op.resolve(sub)
            here = path + (name,)
            if node.get("type") == "array" and name not in ("errors", "warnings"):
                items = op.resolve(node.get("items"))
                if id_path is None or op.at(items, id_path.split(".")) is not None:
                    found.append(here)
            elif depth < 3:
                walk(node, here, depth + 1)

    walk(op.response(), (), 0)
    return min(found, key=len) if found else ()


def item_schema(op: ModelOp, results: tuple[str, ...]) -> dict[str, Any]:
    node = op.at(op.response(), results) or {}
    return op.resolve(node.get("items")) if node.get("type") == "array" else node


def model_max(op: ModelOp, param: str) -> int | None:
    value = op.params[param].get("maximum")
    return None if value is None else int(value)


def is_single(raw: dict[str, Any]) -> bool:
    return raw.get("type") != "array" or raw.get("maxItems") == 1


def reading(quote: str) -> bool | None:
    """What a bound's sentence says of its own instant."""
    if any(w in quote for w in EXCLUSIVE_WORDS):
        return False
    return True if any(w in quote for w in INCLUSIVE_WORDS) else None


def satisfied(req: Requires, sent: dict[str, str]) -> bool:
    def on(cond: str) -> bool:
        name, eq, value = cond.partition("=")
        return name in sent and (not eq or sent[name] == value)

    if req.when and not any(on(c) for c in req.when):
        return True
    present = [n for n in req.need if on(n)]
    return bool(present) if req.any_of else len(present) == len(req.need)


def given_problem(row: Rule, sent: dict[str, str]) -> str | None:
    """A `forbids` or `requires_with` row that `sent` breaks, in words, or None."""
    given: Given = row.value
    name, eq, value = given.when.partition("=")
    if name not in sent or (eq and sent[name] != value):
        return None
    if row.kind == FORBIDS:
        clash = [n for n in given.names if n in sent]
        return f"{row.quote!r}: sends {given.when} with {clash}" if clash else None
    missing = [n for n in given.names if n not in sent]
    return f"{row.quote!r}: sends {given.when} without {missing}" if missing else None


# --- the checks of one type ----------------------------------------------------------------------


def first_page(ot: ObjectType, field: str) -> dict[str, str]:
    """What spd sends on a first page by `field`, or demands in `params` (`spd validate`); the
    upper bound is sent on most first pages, not all (see `first_pages`)."""
    bounds = ot.window.created if field == "created" else ot.window.updated
    sent = {name: "T" for name in bounds or () if name}
    sent.update({name: str(value) for name, value in ot.params.fixed})
    sent.update({name: "X" for name in ot.needs(field)})
    if ot.partitioning.marketplace_param:
        sent[ot.partitioning.marketplace_param] = "ATVPDKIKX0DER"
    if ot.paging.size_param:
        sent[ot.paging.size_param] = str(ot.paging.size_max)
    return sent


def first_pages(ot: ObjectType, field: str) -> list[dict[str, str]]:
    """Every first page spd sends by `field`: with the upper bound and, where it is left out
    (an open window, or an upper bound Amazon echoes), without."""
    sent = first_page(ot, field)
    bounds = ot.window.created if field == "created" else ot.window.updated
    before = bounds[1] if bounds else None
    return [sent] + ([{k: v for k, v in sent.items() if k != before}] if before else [])


def bound_problems(ot: ObjectType, op: ModelOp) -> list[str]:
    out = []
    ends = contract.bounds(ot.name)
    for field in ("created", "updated"):
        declared = ot.window.created if field == "created" else ot.window.updated
        stated = ends.get(field, {})
        expected = (stated["after"][0], stated["before"][0] if "before" in stated else None) if stated else None
        if declared != expected:
            out.append(f"{field} bounds {declared}, Amazon's {expected}")
        for param in declared or ():
            if param and op.params.get(param, {}).get("in") != "query":
                out.append(f"{param} is not a query parameter of the model")
        if declared and not any(inc for f, _, inc in ot.window.inclusive if f == field) \
                and not ot.boundary_overlap(field) and stated:
            out.append(f"{field}: neither bound is said to include its instant and windows do not overlap")
    return out


def required_problems(ot: ObjectType, op: ModelOp) -> list[str]:
    out = []
    for field in ot.timestamp_fields():
        sent = first_page(ot, field)
        for name, raw in op.params.items():
            if raw.get("required") and raw.get("in") in ("query", "path") and name != ot.paging.token_param \
                    and name not in sent:
                out.append(f"by {field}: the model requires {name}, spd neither sends nor demands it")
        for r in contract.rules_for(ot.name, REQUIRES):
            if not satisfied(r.value, sent):
                out.append(f"by {field}: {r.quote!r} is not met by {sorted(sent)}")
        for r in contract.rules_for(ot.name, EXACTLY_ONE):
            if sum(name in sent for name in r.value.names) != 1:
                out.append(f"by {field}: {r.quote!r} is not met by {sorted(sent)}")
        for variant in first_pages(ot, field):
            for r in contract.rules_for(ot.name, FORBIDS) + contract.rules_for(ot.name, REQUIRES_WITH):
                problem = given_problem(r, variant)
                if problem:
                    out.append(f"by {field}: {problem}")
    return out


def paging_problems(ot: ObjectType, op: ModelOp) -> list[str]:
    out = []
    size = contract.rule(ot.name, PAGE_SIZE)
    want_param = size.where if size else None
    want_max = (size.value if size.value is not None else model_max(op, str(size.where))) if size else None
    if (ot.paging.size_param, ot.paging.size_max) != (want_param, want_max):
        out.append(f"page size {ot.paging.size_param}={ot.paging.size_max}, Amazon's maximum "
                   f"{want_param}={want_max}")
    if op.params.get(ot.paging.token_param, {}).get("in") != "query":
        out.append(f"token parameter {ot.paging.token_param} is not in the model")
    token = op.at(op.response(), ot.paging.token_path)
    if token is None or token.get("type") != "string":
        out.append(f"no next token at {'.'.join(ot.paging.token_path)} in the model's response")
    mode = contract.page2(ot.name)
    alone = mode.mode in ("only", "ignores")
    if ot.paging.token_alone != alone or tuple(ot.paging.token_params) != tuple(mode.set):
        out.append(f"next page: token_alone={ot.paging.token_alone} token_params={ot.paging.token_params}, "
                   f"Amazon's {mode}")
    ttl = contract.rule(ot.name, TOKEN_TTL)
    if ot.paging.token_ttl != (ttl.value if ttl else None):
        out.append(f"token_ttl {ot.paging.token_ttl}, Amazon's {ttl.value if ttl else None}")
    return out


def item_problems(ot: ObjectType, op: ModelOp) -> list[str]:
    out = []
    node = op.at(op.response(), ot.extraction.results_path)
    kind = "object" if ot.extraction.flatten else "array"
    if node is None or node.get("type", "object") != kind:
        return [f"no result {kind} at {'.'.join(ot.extraction.results_path)}"]
    ident = contract.rule(ot.name, ID)
    if ot.extraction.id_field != (ident.value if ident else None):
        out.append(f"id {ot.extraction.id_field}, Amazon's identifier {ident.value if ident else None}")
    schemas = ([op.resolve(op.resolve(s).get("items")) for s in op.properties(node).values()]
               if ot.extraction.flatten else [item_schema(op, ot.extraction.results_path)])
    for field, spec in (("created", ot.extraction.created_field), ("updated", ot.extraction.updated_field)):
        stated = contract.bounds(ot.name).get(field, {})
        item = next(iter(stated.values()))[1].item_field if stated else None
        if stated and item is not None and spec != item:
            out.append(f"{field} field {spec}, Amazon's {item}")
        for path in (spec,) if isinstance(spec, str) else spec or ():
            if not any(op.at(s, path.split(".")) is not None for s in schemas):
                out.append(f"{path} is not in the model's result item")
    if ot.extraction.id_field and op.at(schemas[0], ot.extraction.id_field.split(".")) is None:
        out.append(f"{ot.extraction.id_field} is not in the model's result item")
    return out


def limit_problems(ot: ObjectType) -> list[str]:
    out = []
    for kind, declared in ((MAX_WINDOW, ot.window.max_window), (MAX_AGE, ot.window.max_age)):
        stated = contract.rule(ot.name, kind)
        limit = stated.value.delta if stated else None
        if declared is not None and (limit is None or declared > limit):
            out.append(f"{kind} {declared}, Amazon documents {limit}")
        windowed = any(ot.has_upper_bound(f) for f in ot.timestamp_fields())
        if limit is not None and declared is None and (kind == MAX_AGE or windowed):
            out.append(f"{kind}: Amazon limits it to {limit}, spd does not")
    lags = [r.value.delta for r in contract.rules_for(ot.name, LAG)]
    if ot.window.lag != max(lags, default=timedelta(0)):
        out.append(f"lag {ot.window.lag}, Amazon's {max(lags, default=timedelta(0))}")
    return out


def marketplace_problems(ot: ObjectType, op: ModelOp) -> list[str]:
    market = next((m for m in MARKETPLACE_NAMES if op.params.get(m, {}).get("in") == "query"), None)
    if contract.rule(ot.name, OMIT_MARKETPLACE) is not None:
        return [] if ot.partitioning.marketplace_param is None else [
            f"sends {ot.partitioning.marketplace_param}, which Amazon says hides data when given"]
    if market and op.params[market].get("required") and ot.partitioning.marketplace_param != market:
        return [f"the model requires {market}, spd sends {ot.partitioning.marketplace_param}"]
    if ot.partitioning.marketplace_param and is_single(op.params[ot.partitioning.marketplace_param]) and not ot.partitioning.per_marketplace:
        return [f"{ot.partitioning.marketplace_param} takes one marketplace; spd sends several"]
    return []


def problems(ot: ObjectType) -> list[str]:
    """Every way a declaration of spd's differs from Amazon's documents."""
    op = model_ops().get(ot.name)
    if op is None:
        return [f"{ot.name} is not an operation of Amazon's models"]
    return (bound_problems(ot, op) + required_problems(ot, op) + paging_problems(ot, op)
            + item_problems(ot, op) + limit_problems(ot) + marketplace_problems(ot, op))


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ot", TYPES, ids=[ot.name for ot in TYPES])
def test_declaration_follows_amazons_contract(ot: ObjectType) -> None:
    assert problems(ot) == []


def test_every_supported_type_is_in_the_contract() -> None:
    assert len(TYPES) == 39
    assert {ot.name for ot in TYPES} <= set(contract.operations())


@pytest.mark.parametrize("row", contract.RULES, ids=[f"{r.op}:{r.kind}:{r.where}" for r in contract.RULES])
def test_every_quote_is_amazons(row: Rule) -> None:
    if row.source is not None:  # a guide or report schema: named, not stored here
        assert row.source.startswith(GUIDE_HOSTS), row.source
        return
    op = model_ops()[row.op]
    ident = contract.rule(row.op, ID)
    results = results_of(op, ident.value if ident else None)
    assert row.quote and row.quote in description_at(op, row.where, results)
    if row.kind == BOUND:
        assert row.value.inclusive is reading(row.quote), "the sentence says otherwise"
        assert op.params[str(row.where)]["in"] == "query"


def test_the_table_quotes_guides_only_where_the_models_are_silent() -> None:
    from_guides = [r for r in contract.RULES if r.source]
    assert len(from_guides) == 3  # DF orders reach (two guides) and report periods (report schemas)
    assert all(r.kind in (MAX_AGE, "report_period") for r in from_guides)


def test_objects_shows_each_bound_as_amazon_documents_it() -> None:
    fin = describe_object_type("financesV0.listFinancialEvents")["timestamp_fields"]["created"]
    assert fin["bounds"] == {"after": "inclusive", "before": "exclusive"}
    groups = describe_object_type("financesV0.listFinancialEventGroups")["timestamp_fields"]["created"]
    assert groups["bounds"]["before"] == "exclusive"
    po = describe_object_type("vendorOrders.getPurchaseOrders")["timestamp_fields"]["created"]
    assert po["bounds"]["after"].startswith("not stated")


MUTATIONS = [
    ("InvoicesApiModel_2024-06-19.getInvoices", "paging", {"size_max": 100}, "page size"),
    ("awd_2024-05-09.listInboundShipments", "paging", {"size_max": 100}, "page size"),
    ("finances_2024-06-19.listTransactions", "partitioning", {"marketplace_param": "marketplaceId"},
     "hides data"),
    ("feeds_2021-06-30.getFeeds", "params", {"needs": ()}, "Either feedTypes or nextToken"),
    ("externalFulfillmentReturns_2024-09-11.listReturns", "params", {"field_needs": ()}, "returnLocationId"),
    ("vendorShipments.GetShipmentDetails", "window", {"max_window": timedelta(days=7)}, "max_window"),
    ("vendorOrders.getPurchaseOrders", "window", {"max_window": None}, "max_window"),
    ("feeds_2021-06-30.getFeeds", "window", {"max_age": timedelta(days=120)}, "max_age"),
    ("reports_2021-06-30.getReports", "paging", {"token_alone": False}, "next page"),
    ("fulfillmentInboundV0.getShipments", "paging", {"token_params": ()}, "next page"),
    ("fbaInventory.getInventorySummaries", "paging", {"token_ttl": None}, "token_ttl"),
    ("financesV0.listFinancialEvents", "window", {"lag": timedelta(0)}, "lag"),
    ("financesV0.listFinancialEvents", "window", {"created": ("PostedAfter", None)}, "bounds"),
    ("ordersV0.getOrders", "extraction", {"id_field": "AmazonOrderID"}, "id"),
    ("orders_2026-01-01.searchOrders", "extraction", {"updated_field": "lastUpdateTime"}, "updated field"),
    ("orders_2026-01-01.searchOrders", "extraction", {"results_path": ("order",)}, "no result"),
    ("orders_2026-01-01.searchOrders", "paging", {"token_path": ("nextToken",)}, "no next token"),
    ("services.getServiceJobs", "partitioning", {"per_marketplace": False}, "takes one marketplace"),
    ("vehicles_2024-11-01.getVehicles", "params", {"needs": ()}, "vehicleType"),
    ("orders_2026-01-01.searchOrders", "params", {"needs": ("lastUpdatedAfter",)}, "exactly one"),
    ("ordersV0.getOrders", "window", {"created": ("CreatedAfter", "LastUpdatedBefore")},
     "cannot be set when `CreatedAfter` is set"),
    ("orders_2026-01-01.searchOrders", "params", {"fixed": (("lastUpdatedBefore", "T"),)},
     "neither `lastUpdatedAfter` nor `lastUpdatedBefore` may be provided"),
    ("ordersV0.getOrders", "params", {"fixed": (("SellerOrderId", "X"),)}, "cannot be specified"),
    ("services.getServiceJobs", "params", {"needs": ("createdAfter",)}, "Specifying both"),
    ("InvoicesApiModel_2024-06-19.getInvoices", "params", {"fixed": (("transactionIdentifierName", "ORDER_ID"),)},
     "without ['transactionIdentifierId']"),
    ("listingsItems_2021-08-01.searchListingsItems", "params", {"needs": ("sellerId", "identifiers")},
     "`identifiers` is provided"),
    ("vendorOrders.getPurchaseOrders", "window",
     {"inclusive": (("created", "after", None), ("created", "before", None))}, "do not overlap"),
]


@pytest.mark.parametrize("name, part, change, message", MUTATIONS,
                         ids=[f"{n}:{p}.{next(iter(c))}" for n, p, c, _ in MUTATIONS])
def test_a_wrong_declaration_is_caught(name: str, part: str, change: dict[str, Any], message: str) -> None:
    ot = next(t for t in TYPES if t.name == name)
    assert problems(ot) == []
    wrong = replace(ot, **{part: replace(getattr(ot, part), **change)})
    if "inclusive" in change:  # a registry that ignored what the bounds include
        wrong = _NoOverlap(wrong)
    found = problems(wrong)
    assert any(message in p for p in found), found


class _NoOverlap:
    """An object type whose windows never overlap (as spd's were before this table)."""

    def __init__(self, ot: ObjectType) -> None:
        self._ot = ot

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ot, name)

    def boundary_overlap(self, field: str) -> bool:
        return False
