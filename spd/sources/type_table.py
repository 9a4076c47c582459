"""The declaration table of pollable object types: what the models say only in prose.

Everything else (token parameter and location, result location, marketplace parameter, bound
parameters the names give away) is derived from the catalog by `spd.sources.registry`. One row per type;
keys are `ObjectType` field names. These are spd's declarations: `tests/test_contract.py` checks
each against Amazon's models and the reviewed table of prose rules (`spd.catalog.contract`), which quotes
the sentence behind each limit, and the simulator enforces that table, not this one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

LAG_2M = timedelta(minutes=2)  # "*Before must be more than two minutes before the request"
DAYS_7 = timedelta(days=7)
DAYS_90 = timedelta(days=90)
DAYS_180 = timedelta(days=180)

# Windows of 7 days only where Amazon says so: the DF shipping and vendor orders models. The DF
# orders guides give no window, only "six months" of reach.
_VENDOR_DF = dict(supported=True, max_window=DAYS_7, page_size_max=100, id_field="purchaseOrderNumber")
_VENDOR_DF_ORDERS = dict(supported=True, page_size_max=100, id_field="purchaseOrderNumber",
                         created_field="orderDetails.orderDate", max_age=DAYS_180)
_FIN_EVENTS = dict(
    supported=True, created_bounds=("PostedAfter", "PostedBefore"), page_size_max=100,
    results_path=("payload", "FinancialEvents"), flatten="financial_events", id_field=None,
    created_field="PostedDate", lag=LAG_2M, max_window=DAYS_180)
_INBOUND_V0 = dict(
    supported=True, updated_bounds=("LastUpdatedAfter", "LastUpdatedBefore"), token_alone=True,
    fixed_params=(("QueryType", "DATE_RANGE"),), token_params=(("QueryType", "NEXT_TOKEN"),))
_AWD = dict(supported=True, created_field="createdAt", updated_field="updatedAt")

TYPES: dict[str, dict[str, Any]] = {
    # -- Orders -----------------------------------------------------------------------------
    "ordersV0.getOrders": dict(
        supported=True, created_bounds=("CreatedAfter", "CreatedBefore"),
        updated_bounds=("LastUpdatedAfter", "LastUpdatedBefore"),
        page_size_param="MaxResultsPerPage", page_size_max=100,
        id_field="AmazonOrderId", created_field="PurchaseDate", updated_field="LastUpdateDate",
        lag=LAG_2M, token_alone=True, includes=("items",),
        echo_before={"created": ("payload", "CreatedBefore"),
                     "updated": ("payload", "LastUpdatedBefore")}),
    "orders_2026-01-01.searchOrders": dict(
        supported=True, created_bounds=("createdAfter", "createdBefore"),
        updated_bounds=("lastUpdatedAfter", "lastUpdatedBefore"),
        page_size_param="maxResultsPerPage", page_size_max=100,
        id_field="orderId", created_field="createdTime", updated_field="lastUpdatedTime",
        lag=LAG_2M, token_alone=False,
        echo_before={"created": ("createdBefore",), "updated": ("lastUpdatedBefore",)}),
    # -- Finances ---------------------------------------------------------------------------
    "financesV0.listFinancialEvents": dict(_FIN_EVENTS),
    "financesV0.listFinancialEventsByGroupId": dict(_FIN_EVENTS, needs_params=("eventGroupId",)),
    "financesV0.listFinancialEventGroups": dict(
        supported=True, created_bounds=("FinancialEventGroupStartedAfter", "FinancialEventGroupStartedBefore"),
        id_field="FinancialEventGroupId", created_field="FinancialEventGroupStart", lag=LAG_2M,
        max_window=DAYS_180),
    # US MFN transactions come only without marketplaceId: one series for the whole account;
    # `params: {marketplaceId: X}` filters.
    "finances_2024-06-19.listTransactions": dict(
        supported=True, id_field="transactionId", created_field="postedDate", lag=LAG_2M,
        max_window=DAYS_180, marketplace_param=None, single_marketplace=False),
    "transfers_2024-06-01.listPayouts": dict(supported=True, id_field="id", created_field="creationDate"),
    "financesInvoices_2026-06-25.getInvoiceHeaders": dict(
        supported=True, created_bounds=("fromIssueDate", "toIssueDate"),
        updated_bounds=("invoicesModifiedAfter", None), max_window=DAYS_90,
        id_field="invoiceNumber", created_field="issueDate", updated_field="lastUpdatedDate"),
    "InvoicesApiModel_2024-06-19.getInvoices": dict(
        supported=True, created_bounds=("dateStart", "dateEnd"), page_size_max=200, id_field="id",
        created_field="date"),
    "InvoicesApiModel_2024-06-19.getInvoicesExports": dict(
        supported=True, created_bounds=("dateStart", "dateEnd"), page_size_max=100,
        id_field="exportId", created_field="generateExportStartedAt"),
    # -- Reports, feeds, queries (retained 90 days; reports/feeds want the token alone) -------
    "reports_2021-06-30.getReports": dict(
        supported=True, id_field="reportId", created_field="createdTime", max_age=DAYS_90,
        token_alone=True, needs_params=("reportTypes",)),
    "feeds_2021-06-30.getFeeds": dict(
        supported=True, id_field="feedId", created_field="createdTime", max_age=DAYS_90,
        token_alone=True, needs_params=("feedTypes",)),
    "dataKiosk_2023-11-15.getQueries": dict(
        supported=True, id_field="queryId", created_field="createdTime"),
    # -- Listings, inventory, catalog -------------------------------------------------------
    "listingsItems_2021-08-01.searchListingsItems": dict(
        supported=True, page_size_max=20, id_field="sku", created_field="summaries.0.createdDate",
        updated_field="summaries.0.lastUpdatedDate", needs_params=("sellerId",),
        single_marketplace=True),
    "fbaInventory.getInventorySummaries": dict(
        supported=True, updated_bounds=("startDateTime", None), max_age=timedelta(days=540),
        id_field="sellerSku", updated_field="lastUpdatedTime", token_ttl=timedelta(seconds=30),
        fixed_params=(("granularityType", "Marketplace"), ("granularityId", "{marketplace}"))),
    "vehicles_2024-11-01.getVehicles": dict(
        supported=True, updated_bounds=("updatedAfter", None), id_field=None,
        updated_field="lastProcessedDate", needs_params=("vehicleType",)),
    # -- Fulfillment ------------------------------------------------------------------------
    "fulfillmentInboundV0.getShipments": dict(_INBOUND_V0, id_field="ShipmentId"),
    "fulfillmentInboundV0.getShipmentItems": dict(_INBOUND_V0, id_field=None),
    "fulfillmentOutbound_2020-07-01.listAllFulfillmentOrders": dict(
        supported=True, updated_bounds=("queryStartDate", None), id_field="sellerFulfillmentOrderId",
        created_field="receivedDate", updated_field="statusUpdatedDate"),
    "fulfillmentOutbound_2020-07-01.getFeatureInventory": dict(
        supported=True, updated_bounds=("queryStartDate", None), id_field="sellerSku",
        needs_params=("featureName",)),
    "fulfillmentOutbound_2026-07-04.listOrders": dict(
        supported=True, id_field="orderId", created_field="receiveTime",
        updated_field="statusUpdateTime"),
    "awd_2024-05-09.listInboundShipments": dict(_AWD, id_field="shipmentId"),
    "awd_2024-05-09.listOutbounds": dict(_AWD, id_field="orderId"),
    "awd_2024-05-09.listReplenishmentOrders": dict(_AWD, id_field="orderId"),
    "externalFulfillmentReturns_2024-09-11.listReturns": dict(
        supported=True, created_bounds=("createdSince", "createdUntil"),
        updated_bounds=("lastUpdatedSince", "lastUpdatedUntil"), id_field="id",
        created_field="creationDateTime", updated_field="lastUpdatedDateTime",
        field_needs=(("updated", ("returnLocationId", "status")),)),
    "externalFulfillmentShipments_2024-09-11.getShipments": dict(
        supported=True, id_field="id", created_field="creationDateTime",
        updated_field="lastUpdatedDateTime", needs_params=("status",)),
    "services.getServiceJobs": dict(
        supported=True, page_size_max=20, id_field="serviceJobId", created_field="createTime",
        single_marketplace=True),
    # -- Vendor -----------------------------------------------------------------------------
    "vendorOrders.getPurchaseOrders": dict(
        supported=True, created_bounds=("createdAfter", "createdBefore"),
        updated_bounds=("changedAfter", "changedBefore"),
        page_size_param="limit", page_size_max=100, id_field="purchaseOrderNumber",
        created_field="orderDetails.purchaseOrderDate",
        updated_field=("orderDetails.purchaseOrderChangedDate",
                       "orderDetails.purchaseOrderStateChangedDate",
                       "orderDetails.purchaseOrderDate"),
        max_window=DAYS_7, max_age=DAYS_180, token_alone=False),
    "vendorOrders.getPurchaseOrdersStatus": dict(
        supported=True, id_field="purchaseOrderNumber", created_field="purchaseOrderDate",
        updated_field="lastUpdatedDate", max_window=DAYS_7),
    "vendorShipments.GetShipmentDetails": dict(
        supported=True, id_field="vendorShipmentIdentifier", created_field="shipmentCreateDate"),
    "vendorShipments.GetShipmentLabels": dict(
        supported=True, id_field=None, created_field="labelCreateDateTime"),
    "vendorDirectFulfillmentOrdersV1.getOrders": dict(_VENDOR_DF_ORDERS),
    "vendorDirectFulfillmentOrders_2021-12-28.getOrders": dict(_VENDOR_DF_ORDERS),
    "vendorDirectFulfillmentShippingV1.getShippingLabels": dict(_VENDOR_DF),
    "vendorDirectFulfillmentShippingV1.getPackingSlips": dict(_VENDOR_DF),
    "vendorDirectFulfillmentShippingV1.getCustomerInvoices": dict(_VENDOR_DF),
    "vendorDirectFulfillmentShipping_2021-12-28.getShippingLabels": dict(_VENDOR_DF),
    "vendorDirectFulfillmentShipping_2021-12-28.getPackingSlips": dict(_VENDOR_DF),
    "vendorDirectFulfillmentShipping_2021-12-28.getCustomerInvoices": dict(_VENDOR_DF),
}
