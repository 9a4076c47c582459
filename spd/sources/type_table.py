"""The declaration table of pollable object types: what the models say only in prose, part by
part (the parts of `spd.sources.object_type.ObjectType`).

Everything else (token parameter and location, result location, marketplace parameter, bound
parameters the names give away) is derived from the catalog by `spd.sources.registry`, and a
row changes only the keys it names. A type with a row is supported. These are spd's
declarations: `tests/test_contract.py` checks each against Amazon's models and the reviewed
table of prose rules (`spd.catalog.contract`), which quotes the sentence behind each limit, and
the simulator enforces that table, not this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypedDict

Bounds = tuple[str, str | None]
Pairs = tuple[tuple[str, Any], ...]


class WindowDecl(TypedDict, total=False):
    """Keys of `Windowing` a row sets."""

    created: Bounds | None
    updated: Bounds | None
    max_window: timedelta | None
    max_age: timedelta | None
    lag: timedelta
    echo: tuple[tuple[str, tuple[str, ...]], ...]


class PagingDecl(TypedDict, total=False):
    """Keys of `Paging` a row sets."""

    size_param: str | None
    size_max: int | None
    token_alone: bool
    token_params: Pairs
    token_ttl: timedelta | None


class ExtractionDecl(TypedDict, total=False):
    """Keys of `Extraction` a row sets."""

    results_path: tuple[str, ...]
    id_field: str | None
    created_field: str | tuple[str, ...] | None
    updated_field: str | tuple[str, ...] | None
    flatten: str | None


class PartitionDecl(TypedDict, total=False):
    """Keys of `Partitioning` a row sets."""

    marketplace_param: str | None
    per_marketplace: bool


class ParamsDecl(TypedDict, total=False):
    """Keys of `Parameters` a row sets."""

    fixed: Pairs
    needs: tuple[str, ...]
    field_needs: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Declared:
    """One row: the keys of each part that the models state only in prose, the enrichments a
    poller may `include:` (name, hook), and nothing else."""

    window: WindowDecl = field(default_factory=lambda: WindowDecl())
    paging: PagingDecl = field(default_factory=lambda: PagingDecl())
    extraction: ExtractionDecl = field(default_factory=lambda: ExtractionDecl())
    partitioning: PartitionDecl = field(default_factory=lambda: PartitionDecl())
    params: ParamsDecl = field(default_factory=lambda: ParamsDecl())
    includes: tuple[tuple[str, str], ...] = ()


def ids(id_field: str | None, created: str | tuple[str, ...] | None = None,
        updated: str | tuple[str, ...] | None = None) -> ExtractionDecl:
    """The id and timestamp fields of the result items (the usual extraction row)."""
    out = ExtractionDecl(id_field=id_field)
    if created is not None:
        out["created_field"] = created
    if updated is not None:
        out["updated_field"] = updated
    return out


LAG_2M = timedelta(minutes=2)  # "*Before must be more than two minutes before the request"
DAYS_7 = timedelta(days=7)
DAYS_90 = timedelta(days=90)
DAYS_180 = timedelta(days=180)
SIZE_100 = PagingDecl(size_max=100)

# Windows of 7 days only where Amazon says so: the DF shipping and vendor orders models. The DF
# orders guides give no window, only "six months" of reach.
_VENDOR_DF = Declared(window=WindowDecl(max_window=DAYS_7), paging=SIZE_100,
                      extraction=ids("purchaseOrderNumber"))
_VENDOR_DF_ORDERS = Declared(window=WindowDecl(max_age=DAYS_180), paging=SIZE_100,
                             extraction=ids("purchaseOrderNumber", "orderDetails.orderDate"))


def _fin_events(needs: tuple[str, ...] = ()) -> Declared:
    return Declared(
        window=WindowDecl(created=("PostedAfter", "PostedBefore"), lag=LAG_2M, max_window=DAYS_180),
        paging=SIZE_100, params=ParamsDecl(needs=needs),
        extraction=ExtractionDecl(results_path=("payload", "FinancialEvents"),
                                  flatten="financial_events", id_field=None, created_field="PostedDate"))


def _inbound_v0(id_field: str | None) -> Declared:
    return Declared(
        window=WindowDecl(updated=("LastUpdatedAfter", "LastUpdatedBefore")),
        paging=PagingDecl(token_alone=True, token_params=(("QueryType", "NEXT_TOKEN"),)),
        params=ParamsDecl(fixed=(("QueryType", "DATE_RANGE"),)), extraction=ids(id_field))


def _awd(id_field: str) -> Declared:
    return Declared(extraction=ids(id_field, "createdAt", "updatedAt"))


TYPES: dict[str, Declared] = {
    # -- Orders -----------------------------------------------------------------------------
    "ordersV0.getOrders": Declared(
        window=WindowDecl(created=("CreatedAfter", "CreatedBefore"),
                          updated=("LastUpdatedAfter", "LastUpdatedBefore"), lag=LAG_2M,
                          echo=(("created", ("payload", "CreatedBefore")),
                                ("updated", ("payload", "LastUpdatedBefore")))),
        paging=PagingDecl(size_param="MaxResultsPerPage", size_max=100, token_alone=True),
        extraction=ids("AmazonOrderId", "PurchaseDate", "LastUpdateDate"),
        includes=(("items", "order_items"),)),
    "orders_2026-01-01.searchOrders": Declared(
        window=WindowDecl(created=("createdAfter", "createdBefore"),
                          updated=("lastUpdatedAfter", "lastUpdatedBefore"), lag=LAG_2M,
                          echo=(("created", ("createdBefore",)), ("updated", ("lastUpdatedBefore",)))),
        paging=PagingDecl(size_param="maxResultsPerPage", size_max=100, token_alone=False),
        extraction=ids("orderId", "createdTime", "lastUpdatedTime")),
    # -- Finances ---------------------------------------------------------------------------
    "financesV0.listFinancialEvents": _fin_events(),
    "financesV0.listFinancialEventsByGroupId": _fin_events(needs=("eventGroupId",)),
    "financesV0.listFinancialEventGroups": Declared(
        window=WindowDecl(created=("FinancialEventGroupStartedAfter", "FinancialEventGroupStartedBefore"),
                          lag=LAG_2M, max_window=DAYS_180),
        extraction=ids("FinancialEventGroupId", "FinancialEventGroupStart")),
    # US MFN transactions come only without marketplaceId: one series for the whole account;
    # `params: {marketplaceId: X}` filters.
    "finances_2024-06-19.listTransactions": Declared(
        window=WindowDecl(lag=LAG_2M, max_window=DAYS_180), extraction=ids("transactionId", "postedDate"),
        partitioning=PartitionDecl(marketplace_param=None, per_marketplace=False)),
    "transfers_2024-06-01.listPayouts": Declared(extraction=ids("id", "creationDate")),
    "financesInvoices_2026-06-25.getInvoiceHeaders": Declared(
        window=WindowDecl(created=("fromIssueDate", "toIssueDate"),
                          updated=("invoicesModifiedAfter", None), max_window=DAYS_90),
        extraction=ids("invoiceNumber", "issueDate", "lastUpdatedDate")),
    "InvoicesApiModel_2024-06-19.getInvoices": Declared(
        window=WindowDecl(created=("dateStart", "dateEnd")), paging=PagingDecl(size_max=200),
        extraction=ids("id", "date")),
    "InvoicesApiModel_2024-06-19.getInvoicesExports": Declared(
        window=WindowDecl(created=("dateStart", "dateEnd")), paging=SIZE_100,
        extraction=ids("exportId", "generateExportStartedAt")),
    # -- Reports, feeds, queries (retained 90 days; reports/feeds want the token alone) -------
    "reports_2021-06-30.getReports": Declared(
        window=WindowDecl(max_age=DAYS_90), paging=PagingDecl(token_alone=True),
        extraction=ids("reportId", "createdTime"), params=ParamsDecl(needs=("reportTypes",))),
    "feeds_2021-06-30.getFeeds": Declared(
        window=WindowDecl(max_age=DAYS_90), paging=PagingDecl(token_alone=True),
        extraction=ids("feedId", "createdTime"), params=ParamsDecl(needs=("feedTypes",))),
    "dataKiosk_2023-11-15.getQueries": Declared(extraction=ids("queryId", "createdTime")),
    # -- Listings, inventory, catalog -------------------------------------------------------
    "listingsItems_2021-08-01.searchListingsItems": Declared(
        paging=PagingDecl(size_max=20),
        extraction=ids("sku", "summaries.0.createdDate", "summaries.0.lastUpdatedDate"),
        params=ParamsDecl(needs=("sellerId",)), partitioning=PartitionDecl(per_marketplace=True)),
    "fbaInventory.getInventorySummaries": Declared(
        window=WindowDecl(updated=("startDateTime", None), max_age=timedelta(days=540)),
        paging=PagingDecl(token_ttl=timedelta(seconds=30)),
        extraction=ids("sellerSku", updated="lastUpdatedTime"),
        params=ParamsDecl(fixed=(("granularityType", "Marketplace"), ("granularityId", "{marketplace}")))),
    "vehicles_2024-11-01.getVehicles": Declared(
        window=WindowDecl(updated=("updatedAfter", None)),
        extraction=ids(None, updated="lastProcessedDate"), params=ParamsDecl(needs=("vehicleType",))),
    # -- Fulfillment ------------------------------------------------------------------------
    "fulfillmentInboundV0.getShipments": _inbound_v0("ShipmentId"),
    "fulfillmentInboundV0.getShipmentItems": _inbound_v0(None),
    "fulfillmentOutbound_2020-07-01.listAllFulfillmentOrders": Declared(
        window=WindowDecl(updated=("queryStartDate", None)),
        extraction=ids("sellerFulfillmentOrderId", "receivedDate", "statusUpdatedDate")),
    "fulfillmentOutbound_2020-07-01.getFeatureInventory": Declared(
        window=WindowDecl(updated=("queryStartDate", None)), extraction=ids("sellerSku"),
        params=ParamsDecl(needs=("featureName",))),
    "fulfillmentOutbound_2026-07-04.listOrders": Declared(
        extraction=ids("orderId", "receiveTime", "statusUpdateTime")),
    "awd_2024-05-09.listInboundShipments": _awd("shipmentId"),
    "awd_2024-05-09.listOutbounds": _awd("orderId"),
    "awd_2024-05-09.listReplenishmentOrders": _awd("orderId"),
    "externalFulfillmentReturns_2024-09-11.listReturns": Declared(
        window=WindowDecl(created=("createdSince", "createdUntil"),
                          updated=("lastUpdatedSince", "lastUpdatedUntil")),
        extraction=ids("id", "creationDateTime", "lastUpdatedDateTime"),
        params=ParamsDecl(field_needs=(("updated", ("returnLocationId", "status")),))),
    "externalFulfillmentShipments_2024-09-11.getShipments": Declared(
        extraction=ids("id", "creationDateTime", "lastUpdatedDateTime"),
        params=ParamsDecl(needs=("status",))),
    "services.getServiceJobs": Declared(
        paging=PagingDecl(size_max=20), extraction=ids("serviceJobId", "createTime"),
        partitioning=PartitionDecl(per_marketplace=True)),
    # -- Vendor -----------------------------------------------------------------------------
    "vendorOrders.getPurchaseOrders": Declared(
        window=WindowDecl(created=("createdAfter", "createdBefore"),
                          updated=("changedAfter", "changedBefore"), max_window=DAYS_7, max_age=DAYS_180),
        paging=PagingDecl(size_param="limit", size_max=100, token_alone=False),
        extraction=ids("purchaseOrderNumber", "orderDetails.purchaseOrderDate",
                       ("orderDetails.purchaseOrderChangedDate",
                        "orderDetails.purchaseOrderStateChangedDate", "orderDetails.purchaseOrderDate"))),
    "vendorOrders.getPurchaseOrdersStatus": Declared(
        window=WindowDecl(max_window=DAYS_7),
        extraction=ids("purchaseOrderNumber", "purchaseOrderDate", "lastUpdatedDate")),
    "vendorShipments.GetShipmentDetails": Declared(
        extraction=ids("vendorShipmentIdentifier", "shipmentCreateDate")),
    "vendorShipments.GetShipmentLabels": Declared(extraction=ids(None, "labelCreateDateTime")),
    "vendorDirectFulfillmentOrdersV1.getOrders": _VENDOR_DF_ORDERS,
    "vendorDirectFulfillmentOrders_2021-12-28.getOrders": _VENDOR_DF_ORDERS,
    "vendorDirectFulfillmentShippingV1.getShippingLabels": _VENDOR_DF,
    "vendorDirectFulfillmentShippingV1.getPackingSlips": _VENDOR_DF,
    "vendorDirectFulfillmentShippingV1.getCustomerInvoices": _VENDOR_DF,
    "vendorDirectFulfillmentShipping_2021-12-28.getShippingLabels": _VENDOR_DF,
    "vendorDirectFulfillmentShipping_2021-12-28.getPackingSlips": _VENDOR_DF,
    "vendorDirectFulfillmentShipping_2021-12-28.getCustomerInvoices": _VENDOR_DF,
}
