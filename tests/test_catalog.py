"""The generated catalog (models/), its builder and its loader."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import orjson
import pytest

from spd.catalog import ops
from spd.catalog.model import Catalog, load_catalog
from spd.catalog.build import build_catalog, parse_usage_plan
from spd.core.errors import CatalogError, UsageError

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
SHARED = next((p for p in (Path(__file__).resolve().parents[2] / "shared" / "sp-api-models",
                           Path("/work/shared/sp-api-models")) if p.is_dir()), None)
needs_models = pytest.mark.skipif(
    SHARED is None, reason="Amazon's SP-API model files (../shared/sp-api-models) are not here")


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return load_catalog()


@needs_models
def test_regenerated_catalog_is_byte_identical_to_committed(tmp_path: Path) -> None:
    report = build_catalog(SHARED, tmp_path)
    generated = sorted(p.name for p in tmp_path.glob("*.json"))
    committed = sorted(p.name for p in MODELS.glob("*.json"))
    assert generated == committed
    for name in generated:
        assert (tmp_path / name).read_bytes() == (MODELS / name).read_bytes(), name
    assert (report.apis, report.operations) == (66, 370)
    assert (report.usage_plans, report.numeric_rates) == (305, 300)
    assert report.warnings == []


@needs_models
def test_rebuild_removes_files_of_apis_that_are_gone(tmp_path: Path) -> None:
    dest = tmp_path / "models"
    build_catalog(SHARED, dest)
    subset = tmp_path / "src"
    subset.mkdir()
    for name in ("ordersV0.json", "vendorOrders.json"):
        shutil.copy(next(SHARED.rglob(name)), subset / name)
    report = build_catalog(subset, dest)
    assert report.apis == 2
    assert sorted(p.name for p in dest.glob("*.json")) == [
        "index.json", "ordersV0.catalog.json", "vendorOrders.catalog.json"]


def test_build_refuses_a_directory_without_models(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"not": "a model"}')
    with pytest.raises(CatalogError, match="no SP-API model files"):
        build_catalog(tmp_path, tmp_path / "out")
    with pytest.raises(CatalogError, match="not a directory"):
        build_catalog(tmp_path / "missing", tmp_path / "out")


def test_figures(cat: Catalog) -> None:
    all_ops = list(cat.operations())
    assert len(cat.apis) == 66
    assert len(all_ops) == 370
    assert sum(op.usage_plan for op in all_ops) == 305
    assert sum(op.rate is not None for op in all_ops) == 300
    # 65 without any Usage Plan + 5 whose table holds placeholders (`| n | n |`)
    assert sum(not op.usage_plan for op in all_ops) == 65
    assert sum(op.usage_plan and op.rate is None for op in all_ops) == 5
    assert all((op.rate is None) == (op.burst is None) for op in all_ops)


@pytest.mark.parametrize("api,op,rate,burst", [
    ("ordersV0", "getOrders", 0.0167, 20),
    ("reports_2021-06-30", "createReport", 0.0167, 15),
    ("vendorOrders", "getPurchaseOrders", 10.0, 10),
])
def test_rates(cat: Catalog, api: str, op: str, rate: float, burst: int) -> None:
    operation = cat.operation(api, op)
    assert (operation.rate, operation.burst) == (rate, burst)


def test_usage_plan_parsing_variants() -> None:
    table = "x\n\n**Usage Plan:**\n\n| Rate (requests per second) | Burst |\n| ---- | ---- |\n"
    assert parse_usage_plan(table + "| .5 | 30 |\n\nmore") == (True, 0.5, 30)
    assert parse_usage_plan(table.replace("\n", "\\n") + "| 2 | 5 |\\n") == (True, 2.0, 5)
    assert parse_usage_plan(table + "| n | n |") == (True, None, None)
    three = ("**Usage Plans:**\n\n| Plan type | Rate (requests per second) | Burst |\n"
             "| ---- | ---- | ---- |\n|Default| 10 | 20 |\n|Selling partner specific| Variable "
             "| Variable |\n")
    assert parse_usage_plan(three) == (True, 10.0, 20)
    assert parse_usage_plan("Returns things. See usage plans and rate limits.") == (False, None, None)


def test_link_carrier_account_clash(cat: Catalog) -> None:
    put = cat.operation("shippingV2", "linkCarrierAccount@PUT")
    post = cat.operation("shippingV2", "linkCarrierAccount@POST")
    assert (put.method, post.method) == ("PUT", "POST")
    assert put.operation_id == post.operation_id == "linkCarrierAccount"
    with pytest.raises(UsageError) as err:
        cat.operation("shippingV2", "linkCarrierAccount")
    assert "linkCarrierAccount@PUT" in str(err.value) and "linkCarrierAccount@POST" in str(err.value)
    ids = [op.id for op in cat.api("shippingV2").operations.values()]
    assert len(ids) == len(set(ids))


def test_get_orders_details(cat: Catalog) -> None:
    op = cat.operation("ordersV0", "getOrders")
    assert (op.method, op.path, op.has_body) == ("GET", "/orders/v0/orders", False)
    pag = op.pagination
    assert pag is not None
    assert pag.token_param == "NextToken"
    assert pag.token_path == ("payload", "NextToken")
    assert pag.result_path == ("payload", "Orders")
    market = op.param("MarketplaceIds")
    assert market is not None and market.required and market.type == "array"
    assert (market.items_type, market.collection_format, market.max_items) == ("string", "csv", 50)
    assert op.param("nope") is None
    assert op.restricted and op.grantless_scope is None


def test_paginations_elsewhere(cat: Catalog) -> None:
    search = cat.operation("orders_2026-01-01", "searchOrders").pagination
    assert search is not None
    assert (search.token_param, search.token_path, search.result_path) == (
        "paginationToken", ("pagination", "nextToken"), ("orders",))
    vendor = cat.operation("vendorOrders", "getPurchaseOrders").pagination
    assert vendor is not None
    assert vendor.token_path == ("payload", "pagination", "nextToken")
    assert vendor.result_path == ("payload", "orders")
    aplus = cat.operation("aplusContent_2020-11-01", "searchContentDocuments").pagination
    assert aplus is not None and aplus.result_path == ("contentMetadataRecords",)  # allOf
    assert cat.operation("ordersV0", "getOrder").pagination is None


def test_params_limits_and_enums(cat: Catalog) -> None:
    limit = cat.operation("vendorOrders", "getPurchaseOrders").param("limit")
    assert limit is not None and (limit.type, limit.minimum, limit.maximum) == ("integer", 1, 100)
    statuses = cat.operation("orders_2026-01-01", "searchOrders").param("fulfillmentStatuses")
    assert statuses is not None and statuses.enum is not None and "SHIPPED" in statuses.enum
    body = cat.operation("reports_2021-06-30", "createReport")
    assert body.has_body and [p.location for p in body.params] == ["body"]


def test_find_matches_concrete_paths(cat: Catalog) -> None:
    assert cat.find("GET", "/orders/v0/orders/123-45").name == "ordersV0.getOrder"
    assert cat.find("get", "/orders/v0/orders/123-45/address?x=1").name == "ordersV0.getOrderAddress"
    assert cat.find("GET", "/orders/v0/orders").name == "ordersV0.getOrders"
    assert cat.find("DELETE", "/orders/v0/orders/123-45") is None
    assert cat.find("GET", "/nothing/here") is None
    upload = cat.find("POST", "/uploads/2020-11-01/uploadDestinations/a/b/c")
    assert upload is not None and upload.param("resource").greedy
    for op in cat.operations():  # every template routes to itself
        assert cat.find(op.method, op.path.replace("{", "x").replace("}", "")) is op


def test_unknown_names_list_close_ones(cat: Catalog) -> None:
    with pytest.raises(UsageError, match=r"unknown API 'orders'.*ordersV0.*orders_2026-01-01"):
        cat.api("orders")
    with pytest.raises(UsageError, match=r"did you mean getOrders"):
        cat.operation("ordersV0", "getorders")  # lookups are case-sensitive
    with pytest.raises(UsageError, match=r"known APIs: .*vendorOrders"):
        cat.api("zzzzzzzzzzzz")


def test_grantless_and_restricted(cat: Catalog) -> None:
    assert cat.operation("notifications", "getDestinations").grantless_scope == \
        "sellingpartnerapi::notifications"
    assert cat.operation("notifications", "getSubscription").grantless_scope is None
    restricted = {op.name for op in cat.operations() if op.restricted and op.api == "ordersV0"}
    assert {"ordersV0.getOrders", "ordersV0.getOrder", "ordersV0.getOrderItems",
            "ordersV0.getOrderAddress", "ordersV0.getOrderBuyerInfo",
            "ordersV0.getOrderItemsBuyerInfo"} <= restricted
    assert not cat.operation("ordersV0", "confirmShipment").restricted


def test_safe_to_retry(cat: Catalog) -> None:
    assert cat.operation("ordersV0", "getOrders").safe
    assert cat.operation("productPricingV0", "getItemOffersBatch").safe  # a read-only POST
    assert not cat.operation("reports_2021-06-30", "createReport").safe
    assert not cat.operation("ordersV0", "confirmShipment").safe


def _resolvable(doc: dict) -> bool:
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(doc)
    return all(r.rsplit("/", 1)[-1] in doc.get("definitions", {}) for r in refs)


def test_body_schemas_are_self_contained(cat: Catalog) -> None:
    with_body = [op for op in cat.operations() if op.body_schema is not None]
    assert len(with_body) > 100
    for op in with_body:
        schema = ops.operation_schema(cat, op.api, op.id)
        assert _resolvable(schema), op.name
    report = ops.operation_schema(cat, "reports_2021-06-30", "createReport")
    assert "reportType" in report["required"] and "$ref" not in report
    with pytest.raises(UsageError, match="takes no request body"):
        ops.operation_schema(cat, "ordersV0", "getOrders")


def test_no_prose_and_small_files() -> None:
    words = []
    for path in MODELS.glob("*.json"):
        assert path.stat().st_size < 1_000_000, path.name

        def walk(node: object, key: str = "") -> None:
            if isinstance(node, dict):
                assert "description" not in node or not isinstance(node["description"], str)
                assert "example" not in node and "x-example" not in node
                for k, v in node.items():
                    walk(v, k)
            elif isinstance(node, list):
                for v in node:
                    walk(v, key)
            elif isinstance(node, str) and key not in ("title",) and len(node.split()) > 3:
                words.append(node)
        walk(orjson.loads(path.read_bytes()))
    assert words == []
    assert sum(p.stat().st_size for p in MODELS.glob("*.json")) < 2_000_000


def test_ops_listings(cat: Catalog) -> None:
    apis = ops.list_apis(cat)
    assert len(apis) == 66
    orders = next(a for a in apis if a["id"] == "ordersV0")
    assert orders == {"id": "ordersV0", "title": "Selling Partner API for Orders",
                      "version": "v0", "operations": 10}
    listed = {o["id"]: o for o in ops.list_operations(cat, "ordersV0")}
    assert listed["getOrders"] == {"id": "getOrders", "method": "GET",
                                   "path": "/orders/v0/orders", "rate": 0.0167, "burst": 20}
    described = ops.describe_operation(cat, "ordersV0", "getOrders")
    assert described["pagination"] == {"token_param": "NextToken",
                                       "token_path": "payload.NextToken",
                                       "result_path": "payload.Orders"}
    assert described["restricted"] is True and described["has_body"] is False
    assert orjson.loads(orjson.dumps(described)) == described
    with pytest.raises(UsageError):
        ops.list_operations(cat, "nope")


def test_load_from_a_directory_is_cached(tmp_path: Path, cat: Catalog) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(MODELS, copy)
    start = time.perf_counter()
    fresh = load_catalog(copy)  # not cached yet: a new directory
    elapsed = time.perf_counter() - start
    print(f"catalog load: {elapsed * 1000:.1f} ms")  # informative only, not asserted
    assert load_catalog(copy) is fresh and load_catalog() is cat
    assert fresh is not cat and len(list(fresh.operations())) == 370
    with pytest.raises(CatalogError, match="spd models build"):
        load_catalog(tmp_path / "empty")
    (copy / "ordersV0.catalog.json").write_bytes(b"{broken")
    broken = load_catalog(copy / ".." / "copy")  # an API's file is read when the API is first used
    assert broken.operation("sellers", "getMarketplaceParticipations")
    with pytest.raises(CatalogError, match="ordersV0.catalog.json"):
        broken.operation("ordersV0", "getOrders")


def test_catalog_keeps_defaults_item_limits_and_sandbox_only() -> None:
    """What the models say of a parameter's default and of each array item, and which
    operations Amazon serves only in its sandbox (x-amzn-api-sandbox-only, on the operation or
    on its path)."""
    cat = load_catalog()
    listings = cat.operation("listingsItems_2021-08-01", "searchListingsItems")
    assert listings.param("includedData").default == ["summaries"]
    assert listings.param("pageSize").default == 10
    asins = cat.operation("services", "getServiceJobs").param("asins")
    assert (asins.item_min_length, asins.item_max_length, asins.max_items) == (10, 10, 20)
    assert cat.operation("services", "getServiceJobs").param("serviceOrderIds").item_pattern == "^[0-9\\-]+$"
    only = sorted(op.name for op in cat.operations() if op.sandbox_only)
    assert "notifications.sendTestNotification" in only and len(only) == 9
    assert not cat.operation("ordersV0", "getOrders").sandbox_only
