"""The registry of pollable object types."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

import orjson
import pytest

from spd.sources import describe, registry
from spd.catalog.model import load_catalog
from spd.core.errors import UsageError
from spd.sources.object_type import UnknownObjectType, object_cursor, object_id
from spd.sources.registry import build_registry, object_types, resolve_object_type

from spd.sources.type_table import TYPES, Declared, PagingDecl
from support.spd import run_spd


def test_every_declared_type_is_supported() -> None:
    types = object_types()
    assert {ot.name for ot in types if ot.supported} == set(TYPES)
    assert len(types) == 39
    assert [ot.name for ot in types] == sorted(ot.name for ot in types)


def test_orders_v0() -> None:
    ot = resolve_object_type("ordersV0.getOrders")
    assert (ot.api, ot.operation) == ("ordersV0", "getOrders")
    assert ot.window.created == ("CreatedAfter", "CreatedBefore")
    assert ot.window.updated == ("LastUpdatedAfter", "LastUpdatedBefore")
    assert (ot.paging.size_param, ot.paging.size_max) == ("MaxResultsPerPage", 100)
    assert (ot.paging.token_param, ot.paging.token_path) == ("NextToken", ("payload", "NextToken"))
    assert ot.extraction.results_path == ("payload", "Orders")
    assert (ot.extraction.id_field, ot.extraction.created_field, ot.extraction.updated_field) == (
        "AmazonOrderId", "PurchaseDate", "LastUpdateDate")
    assert ot.window.lag == timedelta(minutes=2) and ot.window.max_window is None
    assert dict(ot.window.echo) == {"created": ("payload", "CreatedBefore"),
                                    "updated": ("payload", "LastUpdatedBefore")}
    assert ot.partitioning.marketplace_param == "MarketplaceIds" and ot.paging.token_alone
    assert ot.timestamp_fields() == ["created", "updated"]
    assert hash(ot) == hash(resolve_object_type("Orders v0 getOrders"))  # usable as a key


def test_orders_2026() -> None:
    ot = resolve_object_type("orders_2026-01-01.searchOrders")
    assert ot.window.created == ("createdAfter", "createdBefore")
    assert ot.window.updated == ("lastUpdatedAfter", "lastUpdatedBefore")
    assert (ot.paging.size_param, ot.paging.size_max) == ("maxResultsPerPage", 100)
    assert (ot.paging.token_param, ot.paging.token_path) == ("paginationToken", ("pagination", "nextToken"))
    assert ot.extraction.results_path == ("orders",)
    assert (ot.extraction.id_field, ot.extraction.created_field, ot.extraction.updated_field) == (
        "orderId", "createdTime", "lastUpdatedTime")
    assert ot.window.lag == timedelta(minutes=2)
    assert dict(ot.window.echo) == {"created": ("createdBefore",), "updated": ("lastUpdatedBefore",)}
    assert ot.partitioning.marketplace_param == "marketplaceIds" and not ot.paging.token_alone


def test_vendor_orders() -> None:
    ot = resolve_object_type("vendorOrders.getPurchaseOrders")
    assert ot.window.created == ("createdAfter", "createdBefore")
    assert ot.window.updated == ("changedAfter", "changedBefore")
    assert (ot.paging.size_param, ot.paging.size_max) == ("limit", 100)
    assert ot.paging.token_path == ("payload", "pagination", "nextToken")
    assert ot.extraction.results_path == ("payload", "orders")
    assert ot.extraction.id_field == "purchaseOrderNumber"
    assert ot.extraction.created_field == "orderDetails.purchaseOrderDate"
    assert ot.extraction.updated_field == ("orderDetails.purchaseOrderChangedDate",
                                           "orderDetails.purchaseOrderStateChangedDate",
                                           "orderDetails.purchaseOrderDate")
    assert ot.window.max_window == timedelta(days=7) and ot.window.lag == timedelta(0)
    assert ot.partitioning.marketplace_param is None and ot.window.echo == ()


def test_declared_fields_exist_in_the_response_schemas() -> None:
    cat = load_catalog()
    for ot in object_types():
        if ot.extraction.flatten:
            continue
        name = ot.name
        schema = describe.object_schema(name, cat)
        props = registry._properties(schema, schema.get("definitions", {}))
        ext = ot.extraction
        updated = ext.updated_field if isinstance(ext.updated_field, tuple) else (ext.updated_field,)
        for spec in (ext.id_field, ext.created_field, *updated):
            if spec is None:
                continue
            head = spec.split(".")[0]
            assert head in props, (name, spec)


@pytest.mark.parametrize("alias,name", [
    ("Orders v0 getOrders", "ordersV0.getOrders"),
    ("Orders 2026-01-01 searchOrders", "orders_2026-01-01.searchOrders"),
    ("Retail Procurement Orders v1 getPurchaseOrders", "vendorOrders.getPurchaseOrders"),
    ("retail procurement  orders v1 getpurchaseorders", "vendorOrders.getPurchaseOrders"),
    ("Amazon Warehousing and Distribution 2024-05-09 listInboundShipments",
     "awd_2024-05-09.listInboundShipments"),
])
def test_aliases(alias: str, name: str) -> None:
    assert resolve_object_type(alias).name == name


def test_unknown_names_raise_key_error_with_close_matches() -> None:
    with pytest.raises(KeyError) as err:
        resolve_object_type("ordersV0.getOrder")
    message = str(err.value)
    assert "ordersV0.getOrders" in message and message.startswith("unknown object type")
    assert isinstance(err.value, UnknownObjectType)
    try:  # report:TYPE names are delegated to spd.reports where it exists
        import spd.sources.reports.registry  # noqa: F401
    except ImportError:
        with pytest.raises(KeyError, match="not supported in this version"):
            resolve_object_type("report:GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL")
    else:
        assert resolve_object_type("report:GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL").kind == "report"
    with pytest.raises(UsageError, match="unknown object type"):
        describe.describe_object_type("nope")


def test_vendor_order_cursor_falls_back() -> None:
    ot = resolve_object_type("vendorOrders.getPurchaseOrders")
    details = {"purchaseOrderDate": "2025-03-01T10:00:00Z",
               "purchaseOrderStateChangedDate": "2025-03-02T10:00:00Z",
               "purchaseOrderChangedDate": "2025-03-03T10:00:00Z"}
    order = {"purchaseOrderNumber": "4Z32PABC", "orderDetails": dict(details)}
    assert object_cursor(ot, order, "updated") == "2025-03-03T10:00:00Z"
    del order["orderDetails"]["purchaseOrderChangedDate"]
    assert object_cursor(ot, order, "updated") == "2025-03-02T10:00:00Z"
    del order["orderDetails"]["purchaseOrderStateChangedDate"]
    assert object_cursor(ot, order, "updated") == "2025-03-01T10:00:00Z"
    assert object_cursor(ot, order, "created") == "2025-03-01T10:00:00Z"
    assert object_cursor(ot, {"purchaseOrderNumber": "X"}, "updated") is None


def test_cursor_is_normalised_to_utc_z() -> None:
    ot = resolve_object_type("ordersV0.getOrders")
    order = {"PurchaseDate": "2025-03-01T12:00:00+02:00", "LastUpdateDate": "2025-03-01T10:00:00.250Z"}
    assert object_cursor(ot, order, "created") == "2025-03-01T10:00:00Z"
    assert object_cursor(ot, order, "updated") == "2025-03-01T10:00:00.250Z"
    assert object_cursor(ot, {"PurchaseDate": "2025-03-01T10:00:00"}, "created") == "2025-03-01T10:00:00Z"
    assert object_cursor(ot, {"PurchaseDate": "yesterday"}, "created") is None
    assert object_cursor(ot, {"PurchaseDate": 17}, "created") is None


def test_object_id_and_content_hash() -> None:
    ot = resolve_object_type("ordersV0.getOrders")
    assert object_id(ot, {"AmazonOrderId": "902-1845936-5435065"}) == "902-1845936-5435065"
    a = {"x": 1, "y": {"b": 2, "a": [1, 2]}}
    b = orjson.loads(b'{"y": {"a": [1, 2], "b": 2}, "x": 1}')  # other key order
    hashed = object_id(ot, a)  # no AmazonOrderId: falls back to the hash
    assert hashed == object_id(ot, b)
    assert hashed.startswith("sha256:") and len(hashed) == len("sha256:") + 64
    assert hashed == "sha256:" + hashlib.sha256(b'{"x":1,"y":{"a":[1,2],"b":2}}').hexdigest()
    assert object_id(ot, {**a, "x": 2}) != hashed
    no_id = resolve_object_type("financesV0.listFinancialEvents")
    assert no_id.extraction.id_field is None
    assert object_id(no_id, {"AmazonOrderId": "1", "z": 0}).startswith("sha256:")


def test_describe_list_and_schema_are_json() -> None:
    listed = describe.list_object_types()
    assert {"name": "ordersV0.getOrders", "kind": "operation", "supported": True,
            "timestamp_fields": ["created", "updated"], "only": None,
            "aliases": ["Orders v0 getOrders"]} in listed
    described = describe.describe_object_type("Retail Procurement Orders v1 getPurchaseOrders")
    assert described["max_window"] == "7d" and described["results_path"] == "payload.orders"
    assert described["timestamp_fields"]["updated"]["after_param"] == "changedAfter"
    assert orjson.loads(orjson.dumps(described)) == described
    schema = describe.object_schema("ordersV0.getOrders")
    assert "AmazonOrderId" in schema["properties"] and "Money" in schema["definitions"]


def test_every_type_is_consistent_with_its_operation() -> None:
    cat = load_catalog()
    for ot in object_types():
        op = cat.operation(ot.api, ot.operation)
        assert op.pagination is not None and op.pagination.token_param == ot.paging.token_param
        assert ot.window.created or ot.window.updated
        assert registry.item_schema(op, ot.extraction.results_path, ot.extraction.flatten) is not None, ot.name
        assert ot.aliases and ot.aliases[0].endswith(" " + ot.operation)


def test_bad_overrides_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    cat = load_catalog()
    bad = dict(registry.TYPES)
    orders = bad["ordersV0.getOrders"]
    bad["ordersV0.getOrders"] = replace(orders, paging=PagingDecl({**orders.paging, "size_param": "PageSize"}))
    monkeypatch.setattr(registry, "TYPES", bad)
    with pytest.raises(ValueError, match="PageSize"):
        build_registry(cat)
    monkeypatch.setattr(registry, "TYPES", {"ordersV0.getOrder": Declared()})
    with pytest.raises(ValueError, match="not pollable"):
        build_registry(cat)
    colour = Declared(paging={"colour": "red"})  # type: ignore[typeddict-unknown-key]
    monkeypatch.setattr(registry, "TYPES", {"ordersV0.getOrders": colour})
    with pytest.raises(ValueError, match="colour"):
        build_registry(cat)


def test_spd_objects_json_says_the_kind_of_every_row() -> None:
    # The table's KIND column reads "operation" for the 39 operation types, but their JSON rows had no
    # "kind" at all (only report rows did): a script selecting by kind saw null where a person saw a word.
    result = run_spd("objects", "--json")
    assert result.returncode == 0, result.stderr
    kinds = {row["name"]: row.get("kind") for row in orjson.loads(result.stdout)}
    assert kinds["ordersV0.getOrders"] == "operation"
    assert kinds["report:GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL"] == "report"
    assert set(kinds.values()) == {"operation", "report"}
