"""Amazon's contract for the operations spd polls and pages, where the models state it in prose.

The models' structure (parameter names, `required`, schema maxima, response schemas, the next
token and where the results are) is machine-readable: spd reads it from its catalog, the
contract tests from Amazon's files. What the models say only in sentences is this one reviewed
table, `RULES`: one row per rule, the sentence that states it quoted verbatim beside it. A quote
comes from the model file of the row's API (the description of the operation, of the parameter
named by `where`, of `item.PATH` in a result item or of `body.PATH` in the request body) or,
where `source` names one, from an Amazon guide or report schema. The row kinds and their values
are in `spd.catalog.contract_types`.

`tests/test_contract.py` checks every quote against Amazon's files and spd's own declarations
(`spd.sources.type_table`) against the rows; the simulator (`spd.sim`) enforces the rows, except
`forbids` and `requires_with`: spd exec applies those and the simulator keeps its own rules for
them (spd.sim.orders, spd.sim.vendor), so that a wrong row shows as a disagreement. Where a model
says nothing, two defaults apply: a next token goes with the same arguments as the request that
produced it, and a bound whose sentence does not say whether its own instant is included is
served as if it were not (the reading that can lose data, so spd must cover it). Months are read
as their shortest span (6 months: 181 days; 18 months: 546 days).
"""

from __future__ import annotations

from datetime import timedelta

from spd.catalog.contract_types import (BOUND, DEFAULT_REACH, EXACTLY_ONE, FORBIDS, ID, LAG,
                                MAX_AGE, MAX_WINDOW, OFFSET, OMIT_MARKETPLACE, PAGE2, PAGE_SIZE,
                                REPORT_PERIOD, REQUIRES, REQUIRES_WITH, SAME_MARKETPLACE,
                                TOKEN_TTL, Bound, Given, Limit, Offset, OneOf, Page2, Requires, Rule)

I, X, U = True, False, None  # the bound's own instant: included, excluded, not said
TWO_MINUTES = Limit(timedelta(minutes=2))
C, UPD = "created", "updated"


def _bounds(op: str, field: str, item: str | tuple[str, ...] | None,
            after: tuple[str, bool | None, str], before: tuple[str, bool | None, str] | None = None
            ) -> list[Rule]:
    """The rows of one time filter: (parameter, inclusive, quote) of each end."""
    rows = [Rule(op, BOUND, Bound(field, "after", item, after[1]), after[2], after[0])]
    if before is not None:
        rows.append(Rule(op, BOUND, Bound(field, "before", item, before[1]), before[2], before[0]))
    return rows


def _id(op: str, path: str, quote: str) -> Rule:
    return Rule(op, ID, path, quote, f"item.{path}")


def _size(op: str, param: str, quote: str, maximum: int | None = None) -> Rule:
    return Rule(op, PAGE_SIZE, maximum, quote, param)


def _forbids(op: str, when: str, names: tuple[str, ...], quote: str, where: str | None = None,
             note: str = "") -> Rule:
    """With `when` sent, none of `names` may be; the sentence is in `where`'s description
    (by default `when`'s)."""
    return Rule(op, FORBIDS, Given(when, names), quote, where or when.partition("=")[0], note=note)


def _with(op: str, when: str, names: tuple[str, ...], quote: str, where: str) -> Rule:
    """With `when` sent, each of `names` must be too; the sentence is in `where`'s description."""
    return Rule(op, REQUIRES_WITH, Given(when, names), quote, where)


def _days(n: int, beyond: str = "error") -> Limit:
    return Limit(timedelta(days=n), beyond)


ORDERS_V0 = "ordersV0.getOrders"
LISTINGS = "listingsItems_2021-08-01.searchListingsItems"
SEARCH_ORDERS = "orders_2026-01-01.searchOrders"
EVENTS = ("financesV0.listFinancialEvents", "financesV0.listFinancialEventsByGroupId")
GROUPS = "financesV0.listFinancialEventGroups"
TRANSACTIONS = "finances_2024-06-19.listTransactions"
HEADERS = "financesInvoices_2026-06-25.getInvoiceHeaders"
INVOICES = "InvoicesApiModel_2024-06-19.getInvoices"
EXPORTS = "InvoicesApiModel_2024-06-19.getInvoicesExports"
REPORTS = "reports_2021-06-30.getReports"
FEEDS = "feeds_2021-06-30.getFeeds"
QUERIES = "dataKiosk_2023-11-15.getQueries"
INVENTORY = "fbaInventory.getInventorySummaries"
INBOUND = ("fulfillmentInboundV0.getShipments", "fulfillmentInboundV0.getShipmentItems")
AWD = "awd_2024-05-09."
RETURNS = "externalFulfillmentReturns_2024-09-11.listReturns"
PO = "vendorOrders.getPurchaseOrders"
PO_STATUS = "vendorOrders.getPurchaseOrdersStatus"
DF_ORDERS = ("vendorDirectFulfillmentOrdersV1.getOrders", "vendorDirectFulfillmentOrders_2021-12-28.getOrders")
DF_V1, DF_2021 = "vendorDirectFulfillmentShippingV1.", "vendorDirectFulfillmentShipping_2021-12-28."
DF_ORDERS_GUIDES = (
    ("Data retrieval can only go back six months, meaning that createdBefore cannot be more than "
     "six months in the past.",
     "https://developer-docs.amazon.com/sp-api/docs/vendor-direct-fulfillment-orders-api-use-case-guide"),
    ("You can retrieve data for up to six months.",
     "https://developer-docs.amazon.com/sp-api/docs/vendor-direct-fulfillment-orders-api-2021-12-28-use-case-guide"),
)
CATALOG = "catalogItems_2022-04-01.searchCatalogItems"
REPORT_SCHEMAS = "https://github.com/amzn/selling-partner-api-models/blob/main/schemas/reports/"

RULES: list[Rule] = [
    # -- Orders ------------------------------------------------------------------------------
    *_bounds(ORDERS_V0, C, "PurchaseDate",
             ("CreatedAfter", I, "Use this date to select orders created after (or at) a specified time."),
             ("CreatedBefore", I, "Use this date to select orders created before (or at) a specified time.")),
    *_bounds(ORDERS_V0, UPD, "LastUpdateDate",
             ("LastUpdatedAfter", I, "Use this date to select orders that were last updated after (or at) a specified time."),
             ("LastUpdatedBefore", I, "Use this date to select orders that were last updated before (or at) a specified time.")),
    Rule(ORDERS_V0, LAG, TWO_MINUTES, "at least two minutes before current time", "CreatedBefore"),
    Rule(ORDERS_V0, LAG, TWO_MINUTES, "at least two minutes before current time", "LastUpdatedBefore"),
    Rule(ORDERS_V0, REQUIRES, Requires(("CreatedAfter", "LastUpdatedAfter"), any_of=True),
         "Either the `CreatedAfter` parameter or the `LastUpdatedAfter` parameter is required.", "CreatedAfter"),
    _forbids(ORDERS_V0, "CreatedAfter", ("LastUpdatedAfter", "LastUpdatedBefore"),
             "`LastUpdatedAfter` and `LastUpdatedBefore` cannot be set when `CreatedAfter` is set."),
    _forbids(ORDERS_V0, "LastUpdatedAfter", ("CreatedAfter", "CreatedBefore"),
             "`CreatedAfter` or `CreatedBefore` cannot be set when `LastUpdatedAfter` is set."),
    _forbids(ORDERS_V0, "SellerOrderId", ("FulfillmentChannels", "OrderStatuses", "PaymentMethods",
                                          "LastUpdatedAfter", "LastUpdatedBefore", "BuyerEmail"),
             "If `SellerOrderId` is specified, then `FulfillmentChannels`, `OrderStatuses`, `PaymentMethod`, "
             "`LastUpdatedAfter`, `LastUpdatedBefore`, and `BuyerEmail` cannot be specified.",
             note="the sentence's `PaymentMethod` is the parameter PaymentMethods"),
    _size(ORDERS_V0, "MaxResultsPerPage", "Value must be 1 - 100.", 100),
    Rule(ORDERS_V0, PAGE2, Page2("ignores"),
         "`NextToken` doesn't affect any filters that you include in your request; it only impacts "
         "the pagination for the filtered orders response.",
         note="the filters of the first request stay in force, sent again or not"),
    _id(ORDERS_V0, "AmazonOrderId", "An Amazon-defined order identifier, in 3-7-7 format."),
    *_bounds(SEARCH_ORDERS, C, "createdTime",
             ("createdAfter", I, "The response includes orders created at or after this time."),
             ("createdBefore", I, "The response includes orders created at or before this time.")),
    *_bounds(SEARCH_ORDERS, UPD, "lastUpdatedTime",
             ("lastUpdatedAfter", I, "The response includes orders updated at or after this time."),
             ("lastUpdatedBefore", I, "The response includes orders updated at or before this time.")),
    Rule(SEARCH_ORDERS, LAG, TWO_MINUTES, "at least two minutes before the time of the request", "createdBefore"),
    Rule(SEARCH_ORDERS, LAG, TWO_MINUTES, "at least two minutes before the time of the request", "lastUpdatedBefore"),
    Rule(SEARCH_ORDERS, EXACTLY_ONE, OneOf(("createdAfter", "lastUpdatedAfter")),
         "You must provide exactly one of `createdAfter` and `lastUpdatedAfter` in your request.", "createdAfter"),
    *[_forbids(SEARCH_ORDERS, when, others,
               f"If `{when}` is provided, neither `{others[0]}` nor `{others[1]}` may be provided.")
      for ends, others in ((("createdAfter", "createdBefore"), ("lastUpdatedAfter", "lastUpdatedBefore")),
                           (("lastUpdatedAfter", "lastUpdatedBefore"), ("createdAfter", "createdBefore")))
      for when in ends],
    _size(SEARCH_ORDERS, "maxResultsPerPage", "The value must be between 1 and 100.", 100),
    _id(SEARCH_ORDERS, "orderId", "An Amazon-defined order identifier."),
    # -- Finances ----------------------------------------------------------------------------
    *[row for op in EVENTS for row in (
        *_bounds(op, C, "PostedDate",
                 ("PostedAfter", I, "The response includes financial events posted after (or on) this date."),
                 ("PostedBefore", X, "The response includes financial events posted before (but not on) this date.")),
        Rule(op, LAG, TWO_MINUTES, "The date-time must be more than two minutes before the time of the request.", "PostedAfter"),
        Rule(op, LAG, TWO_MINUTES, "more than two minutes before the request was submitted", "PostedBefore"),
        Rule(op, MAX_WINDOW, _days(180, "empty"),
             "If `PostedAfter` and `PostedBefore` are more than 180 days apart, the response is empty.", "PostedBefore"),
        Rule(op, REQUIRES, Requires(("PostedAfter",), when=("PostedBefore",)),
             "If you include the `PostedBefore` parameter in your request, you must also specify the "
             "`PostedAfter` parameter.", "PostedBefore"),
        _size(op, "MaxResultsPerPage", "The maximum number of results to return per page."),
    )],
    *_bounds(GROUPS, C, "FinancialEventGroupStart",
             ("FinancialEventGroupStartedAfter", I, "A date that selects financial event groups that opened after (or at) a specified date and time"),
             ("FinancialEventGroupStartedBefore", X, "A date that selects financial event groups that opened before (but not at) a specified date and time")),
    Rule(GROUPS, LAG, TWO_MINUTES, "The date-time must be more than two minutes before you submit the request.", "FinancialEventGroupStartedAfter"),
    Rule(GROUPS, LAG, TWO_MINUTES, "more than two minutes before the time of request", "FinancialEventGroupStartedBefore"),
    Rule(GROUPS, MAX_WINDOW, _days(180, "empty"),
         "If `FinancialEventGroupStartedAfter` and `FinancialEventGroupStartedBefore` are more than 180 "
         "days apart, no financial event groups are returned.", "FinancialEventGroupStartedBefore"),
    _size(GROUPS, "MaxResultsPerPage", "The maximum number of results per page."),
    _id(GROUPS, "FinancialEventGroupId", "A unique identifier for the financial event group."),
    *_bounds(TRANSACTIONS, C, "postedDate",
             ("postedAfter", I, "The response includes financial events posted on or after this date."),
             ("postedBefore", X, "The response includes financial events posted before (but not on) this date.")),
    Rule(TRANSACTIONS, LAG, TWO_MINUTES, "The date-time must be more than two minutes before the time of the request.", "postedAfter"),
    Rule(TRANSACTIONS, LAG, TWO_MINUTES, "more than two minutes before the request was submitted", "postedBefore"),
    Rule(TRANSACTIONS, MAX_WINDOW, _days(180, "empty"),
         "If `PostedAfter` and `PostedBefore` are more than 180 days apart, the response is empty.", "postedBefore"),
    Rule(TRANSACTIONS, REQUIRES, Requires(("postedAfter", "relatedIdentifierName"), any_of=True),
         "This field is required if you do not specify a related identifier.", "postedAfter"),
    Rule(TRANSACTIONS, OMIT_MARKETPLACE, "marketplaceId",
         "If you want to retrieve MFN orders in the US store, do not supply the `marketplaceId` parameter."),
    _id(TRANSACTIONS, "transactionId", "The unique identifier of the transaction."),
    *_bounds("transfers_2024-06-01.listPayouts", C, "creationDate",
             ("createdAfter", I, "The response only includes payouts created on or after this date-time."),
             ("createdBefore", U, "The response only includes payouts created before this date-time.")),
    _id("transfers_2024-06-01.listPayouts", "id", "The unique identifier of the payout."),
    *_bounds(HEADERS, C, "issueDate",
             ("fromIssueDate", U, "Retrieve invoice headers issued after this date."),
             ("toIssueDate", U, "Retrieve invoice headers issued before this date.")),
    *_bounds(HEADERS, UPD, "lastUpdatedDate",
             ("invoicesModifiedAfter", U, "Retrieve invoices that were modified after this date-time.")),
    Rule(HEADERS, MAX_WINDOW, _days(90),
         "The range between `fromIssueDate` and `toIssueDate` must not exceed 90 days.", "fromIssueDate"),
    Rule(HEADERS, REQUIRES, Requires(("fromIssueDate", "toIssueDate"), when=("fromIssueDate", "toIssueDate")),
         "Either provide both dates or leave both empty.", "fromIssueDate"),
    Rule(HEADERS, DEFAULT_REACH, ("fromIssueDate", timedelta(days=90)),
         "If you do not provide these dates, `fromIssueDate` defaults to 90 days before the date of the request.",
         "fromIssueDate", note="polled by invoicesModifiedAfter, only invoices issued in the last 90 days are seen"),
    _id(HEADERS, "invoiceNumber", "The invoice number provided when the invoice was created."),
    *_bounds(INVOICES, C, "date",
             ("dateStart", I, "The earliest invoice creation date for invoices that you want to include in the response."),
             ("dateEnd", I, "The latest invoice creation date for invoices that you want to include in the response.")),
    *[_with(INVOICES, name, (other,), "If you provide a value for this field, you must also provide a "
            f"value for the `{other}` field.", name)
      for name, other in (("transactionIdentifierName", "transactionIdentifierId"),
                          ("transactionIdentifierId", "transactionIdentifierName"))],
    _size(INVOICES, "pageSize", "Maximum: 200", 200),
    _id(INVOICES, "id", "The invoice identifier."),
    *_bounds(EXPORTS, C, "generateExportStartedAt",
             ("dateStart", I, "The earliest export creation date and time for exports that you want to include in the response."),
             ("dateEnd", I, "The latest export creation date and time for exports that you want to include in the response.")),
    _size(EXPORTS, "pageSize", "Maximum: 100", 100),
    _id(EXPORTS, "exportId", "The export identifier."),
    # -- Reports, feeds, queries -------------------------------------------------------------
    *_bounds(REPORTS, C, "createdTime",
             ("createdSince", I, "The earliest report creation date and time for reports to include in the response"),
             ("createdUntil", I, "The latest report creation date and time for reports to include in the response")),
    Rule(REPORTS, MAX_AGE, _days(90), "Reports are retained for a maximum of 90 days.", "createdSince"),
    Rule(REPORTS, REQUIRES, Requires(("reportTypes", "nextToken"), any_of=True),
         "Either reportTypes or nextToken is required.", "reportTypes"),
    Rule(REPORTS, PAGE2, Page2("only"),
         "To get the next page of results, call the `getReports` operation and include this token as the only parameter.", "nextToken"),
    _size(REPORTS, "pageSize", "The maximum number of reports to return in a single call."),
    _id(REPORTS, "reportId", "The identifier for the report."),
    *_bounds(FEEDS, C, "createdTime",
             ("createdSince", I, "The earliest feed creation date and time for feeds included in the response"),
             ("createdUntil", I, "The latest feed creation date and time for feeds included in the response")),
    Rule(FEEDS, MAX_AGE, _days(90), "Feeds are retained for a maximum of 90 days.", "createdSince"),
    Rule(FEEDS, REQUIRES, Requires(("feedTypes", "nextToken"), any_of=True),
         "Either feedTypes or nextToken is required.", "feedTypes"),
    Rule(FEEDS, PAGE2, Page2("only"),
         "To get the next page of results, call the getFeeds operation and include this token as the only parameter.", "nextToken"),
    _size(FEEDS, "pageSize", "The maximum number of feeds to return in a single call."),
    _id(FEEDS, "feedId", "The identifier for the feed."),
    *_bounds(QUERIES, C, "createdTime",
             ("createdSince", I, "The earliest query creation date and time for queries to include in the response"),
             ("createdUntil", I, "The latest query creation date and time for queries to include in the response")),
    Rule(QUERIES, PAGE2, Page2("same", except_=("pageSize",)),
         "All other parameters must be provided with the same values that were provided with the request "
         "that generated this token, with the exception of `pageSize` which can be modified between calls "
         "to `getQueries`.", "paginationToken"),
    _size(QUERIES, "pageSize", "The maximum number of queries to return in a single call."),
    _id(QUERIES, "queryId", "The query identifier."),
    # -- Listings, inventory, catalog --------------------------------------------------------
    *_bounds("listingsItems_2021-08-01.searchListingsItems", C, "summaries.0.createdDate",
             ("createdAfter", I, "The response includes listings items that were created at or after this time."),
             ("createdBefore", I, "The response includes listings items that were created at or before this time.")),
    *_bounds("listingsItems_2021-08-01.searchListingsItems", UPD, "summaries.0.lastUpdatedDate",
             ("lastUpdatedAfter", I, "The response includes listings items that were last updated at or after this time."),
             ("lastUpdatedBefore", I, "The response includes listings items that were last updated at or before this time.")),
    _with(LISTINGS, "identifiersType", ("identifiers",), "This is required when you specify `identifiersType`.",
          "identifiers"),
    _with(LISTINGS, "identifiers", ("identifiersType",), "This is required when `identifiers` is provided.",
          "identifiersType"),
    _forbids(LISTINGS, "identifiers", ("variationParentSku", "packageHierarchySku"),
             "You cannot use 'identifiers' if you specify `variationParentSku` or `packageHierarchySku`."),
    _forbids(LISTINGS, "variationParentSku", ("identifiers", "packageHierarchySku"),
             "You cannot use `variationParentSku` if you include `identifiers` or `packageHierarchySku` in your request."),
    _forbids(LISTINGS, "packageHierarchySku", ("identifiers", "variationParentSku"),
             "You cannot use `packageHierarchySku` if you include `identifiers` or `variationParentSku` in your request."),
    _size("listingsItems_2021-08-01.searchListingsItems", "pageSize", "The number of results that you want to include on each page."),
    _id("listingsItems_2021-08-01.searchListingsItems", "sku", "A selling partner-provided identifier for an Amazon listing."),
    *_bounds(INVENTORY, UPD, "lastUpdatedTime",
             ("startDateTime", U, "If specified, all inventory summaries that have changed since then are returned.")),
    Rule(INVENTORY, MAX_AGE, _days(546),
         "You must specify a date and time that is no earlier than 18 months prior to the date and time "
         "when you call the API.", "startDateTime"),
    Rule(INVENTORY, TOKEN_TTL, timedelta(seconds=30), "The string token will expire 30 seconds after being created.", "nextToken"),
    Rule(INVENTORY, PAGE2, Page2("same"),
         "To avoid errors, use both startDateTime and nextToken to get the next page of inventory "
         "summaries that have changed after the date and time specified."),
    Rule(INVENTORY, SAME_MARKETPLACE, "granularityId", "The granularity ID for the inventory aggregation level.",
         "granularityId", note="with granularityType Marketplace, the ID is the marketplace of marketplaceIds"),
    _id(INVENTORY, "sellerSku", "The seller SKU of the item."),
    *_bounds("vehicles_2024-11-01.getVehicles", UPD, "lastProcessedDate",
             ("updatedAfter", U, "if provided only vehicles which are modified/added to Amazon's catalog after this date will be returned.")),
    # -- Fulfillment -------------------------------------------------------------------------
    *[row for op, what in zip(INBOUND, ("inbound shipments", "inbound shipment items")) for row in (
        *_bounds(op, UPD, None,
                 ("LastUpdatedAfter", I, f"A date used for selecting {what} that were last updated after (or at) a specified time."),
                 ("LastUpdatedBefore", I, f"A date used for selecting {what} that were last updated before (or at) a specified time.")),
        Rule(op, REQUIRES, Requires(("LastUpdatedAfter", "LastUpdatedBefore"), when=("QueryType=DATE_RANGE",)),
             "using a date range (by providing the LastUpdatedAfter and LastUpdatedBefore parameters)", "QueryType"),
    )],
    Rule(INBOUND[0], PAGE2, Page2("ignores", set=(("QueryType", "NEXT_TOKEN"),)),
         "or by using NextToken to continue returning items specified in a previous request.", "QueryType"),
    Rule(INBOUND[1], PAGE2, Page2("ignores", set=(("QueryType", "NEXT_TOKEN"),)),
         "or using NextToken, which continues returning items specified in a previous request.", "QueryType"),
    _id(INBOUND[0], "ShipmentId", "The shipment identifier submitted in the request."),
    Rule("fulfillmentInboundV0.getLabels", OFFSET, Offset("query:PageStartIndex", "query:PageSize", "param:NumberOfPackages", None),
         "The page start index for paginating through the total packages' labels.", "PageStartIndex"),
    _size("fulfillmentInboundV0.getLabels", "PageSize", "Max value:1000.", 1000),
    *_bounds("fulfillmentOutbound_2020-07-01.listAllFulfillmentOrders", UPD, "statusUpdatedDate",
             ("queryStartDate", I, "A date used to select fulfillment orders that were last updated after (or at) a specified time.")),
    _id("fulfillmentOutbound_2020-07-01.listAllFulfillmentOrders", "sellerFulfillmentOrderId",
        "The fulfillment order identifier submitted with the `createFulfillmentOrder` operation."),
    *_bounds("fulfillmentOutbound_2020-07-01.getFeatureInventory", UPD, None,
             ("queryStartDate", U, "A date that you can use to select inventory that has been updated since a specified date.")),
    _id("fulfillmentOutbound_2020-07-01.getFeatureInventory", "sellerSku", "Used to identify an item in the given marketplace."),
    *_bounds("fulfillmentOutbound_2026-07-04.listOrders", UPD, "statusUpdateTime",
             ("updatedAfter", U, "The response includes orders updated after this time.")),
    _id("fulfillmentOutbound_2026-07-04.listOrders", "orderId",
        "The fulfillment order identifier submitted with the `createOrder` operation."),
    *_bounds(AWD + "listInboundShipments", UPD, "updatedAt",
             ("updatedAfter", I, "List the inbound shipments that were updated after a certain time (inclusive)."),
             ("updatedBefore", I, "List the inbound shipments that were updated before a certain time (inclusive).")),
    _size(AWD + "listInboundShipments", "maxResults", "Maximum number of results to return."),
    _id(AWD + "listInboundShipments", "shipmentId", "A unique shipment ID."),
    *_bounds(AWD + "listOutbounds", UPD, "updatedAt",
             ("updatedAfter", I, "Get the outbound orders updated after a certain time (inclusive)."),
             ("updatedBefore", I, "Get the outbound orders updated before a certain time (inclusive).")),
    _size(AWD + "listOutbounds", "maxResults", "Maximum number of results to return."),
    _id(AWD + "listOutbounds", "orderId", "Order ID for the outbound order."),
    *_bounds(AWD + "listReplenishmentOrders", UPD, "updatedAt",
             ("updatedAfter", I, "Get the replenishment orders updated after certain time (Inclusive)"),
             ("updatedBefore", I, "Get the replenishment orders updated before certain time (Inclusive)")),
    _size(AWD + "listReplenishmentOrders", "maxResults", "Maximum results to be returned in a single response."),
    _id(AWD + "listReplenishmentOrders", "orderId", "Order Id of the replenishment order."),
    *_bounds(RETURNS, C, "creationDateTime",
             ("createdSince", U, "Return items created after the specified date are included in the response."),
             ("createdUntil", U, "Return items created before the specified date are included in the response.")),
    *_bounds(RETURNS, UPD, "lastUpdatedDateTime",
             ("lastUpdatedSince", U, "Return items updated after the specified date are included in the response."),
             ("lastUpdatedUntil", U, "Return items whose most recent update is before the specified date are included in the response.")),
    *[Rule(RETURNS, REQUIRES, Requires(("returnLocationId", "status"), when=(param,)),
           "If you supply this parameter, you must also supply `returnLocationId` and `status`.", param)
      for param in ("lastUpdatedSince", "lastUpdatedUntil")],
    _size(RETURNS, "maxResults", "The number of return items you want to include in the response."),
    _id(RETURNS, "id", "The return item's ID."),
    *_bounds("externalFulfillmentShipments_2024-09-11.getShipments", UPD, "lastUpdatedDateTime",
             ("lastUpdatedAfter", U, "The response includes shipments whose latest update is after the specified time."),
             ("lastUpdatedBefore", U, "The response includes shipments whose latest update is before the specified time.")),
    _size("externalFulfillmentShipments_2024-09-11.getShipments", "maxResults", "The maximum number of shipments to include in the response."),
    _id("externalFulfillmentShipments_2024-09-11.getShipments", "id", "The shipment's ID."),
    *_bounds("services.getServiceJobs", C, "createTime",
             ("createdAfter", I, "A date used for selecting jobs created at or after a specified time."),
             ("createdBefore", I, "A date used for selecting jobs created at or before a specified time.")),
    *_bounds("services.getServiceJobs", UPD, None,
             ("lastUpdatedAfter", I, "A date used for selecting jobs updated at or after a specified time."),
             ("lastUpdatedBefore", I, "A date used for selecting jobs updated at or before a specified time.")),
    Rule("services.getServiceJobs", REQUIRES, Requires(("createdAfter", "lastUpdatedAfter"), any_of=True),
         "Required if `LastUpdatedAfter` is not specified.", "createdAfter"),
    _forbids("services.getServiceJobs", "createdAfter", ("lastUpdatedAfter",),
             "Specifying both `CreatedAfter` and `LastUpdatedAfter` returns an error."),
    _size("services.getServiceJobs", "pageSize", "A non-negative integer that indicates the maximum number of jobs to return in the list"),
    _id("services.getServiceJobs", "serviceJobId", "The service job identifier."),
    *[Rule(f"replenishment-2022-11-07.{op}", OFFSET,
           Offset("body:pagination.offset", "body:pagination.limit", "response:pagination.totalResults", "offers"),
           "The offset from which to retrieve the number of results specified by the `limit` value. The "
           "first result is at offset 0.", "body.pagination.offset") for op in ("listOffers", "listOfferMetrics")],
    # -- Vendor ------------------------------------------------------------------------------
    *_bounds(PO, C, "orderDetails.purchaseOrderDate",
             ("createdAfter", U, "Purchase orders that became available after this time will be included in the result."),
             ("createdBefore", U, "Purchase orders that became available before this time will be included in the result.")),
    *_bounds(PO, UPD, ("orderDetails.purchaseOrderChangedDate", "orderDetails.purchaseOrderStateChangedDate",
                       "orderDetails.purchaseOrderDate"),
             ("changedAfter", U, "Purchase orders that changed after this timestamp will be included in the result."),
             ("changedBefore", U, "Purchase orders that changed before this timestamp will be included in the result.")),
    Rule(PO, MAX_WINDOW, _days(7), "The date range must not exceed 7 days"),
    Rule(PO, MAX_AGE, _days(181), "is available to pull data from the past 6 months"),
    _size(PO, "limit", "The limit to the number of records returned."),
    _id(PO, "purchaseOrderNumber", "The purchase order number for this order."),
    *_bounds(PO_STATUS, C, "purchaseOrderDate",
             ("createdAfter", U, "Purchase orders that became available after this timestamp will be included in the result."),
             ("createdBefore", U, "Purchase orders that became available before this timestamp will be included in the result.")),
    *_bounds(PO_STATUS, UPD, "lastUpdatedDate",
             ("updatedAfter", U, "Purchase orders for which the last purchase order update happened after this timestamp will be included in the result."),
             ("updatedBefore", U, "Purchase orders for which the last purchase order update happened before this timestamp will be included in the result.")),
    Rule(PO_STATUS, MAX_WINDOW, _days(7), "Date range to search must not be more than 7 days."),
    _size(PO_STATUS, "limit", "The limit to the number of records returned."),
    _id(PO_STATUS, "purchaseOrderNumber", "The buyer's purchase order number for this order."),
    *_bounds("vendorShipments.GetShipmentDetails", C, "shipmentCreateDate",
             ("createdAfter", U, "Get Shipment Details that became available after this timestamp will be included in the result."),
             ("createdBefore", U, "Get Shipment Details that became available before this timestamp will be included in the result.")),
    _size("vendorShipments.GetShipmentDetails", "limit", "The limit to the number of records returned."),
    _id("vendorShipments.GetShipmentDetails", "vendorShipmentIdentifier", "Unique Transportation ID created by Vendor"),
    *_bounds("vendorShipments.GetShipmentLabels", C, "labelCreateDateTime",
             ("labelCreatedAfter", U, "Shipment labels created after this time will be included in the result."),
             ("labelCreatedBefore", U, "Shipment labels created before this time will be included in the result.")),
    _size("vendorShipments.GetShipmentLabels", "limit", "The limit to the number of records returned."),
    *[row for op, (quote, url) in zip(DF_ORDERS, DF_ORDERS_GUIDES) for row in (
        *_bounds(op, C, "orderDetails.orderDate",
                 ("createdAfter", U, "Purchase orders that became available after this date and time will be included in the result."),
                 ("createdBefore", U, "Purchase orders that became available before this date and time will be included in the result.")),
        Rule(op, MAX_AGE, _days(181), quote, source=url),
        _size(op, "limit", "The limit to the number of purchase orders returned."),
        _id(op, "purchaseOrderNumber", "The purchase order number for this order."),
    )],
    *[row for op, window, ident in (
        (DF_V1 + "getShippingLabels", "The date range to search must not be more than 7 days.",
         "This field will contain the Purchase Order Number for this order."),
        (DF_V1 + "getPackingSlips", "Date range to search must not be more than 7 days.",
         "Purchase order number of the shipment that corresponds to the packing slip."),
        (DF_V1 + "getCustomerInvoices", "The date range to search must be no more than 7 days.",
         "The purchase order number for this order."),
        (DF_2021 + "getShippingLabels", "The date range to search must not be more than seven days.",
         "This field will contain the Purchase Order Number for this order."),
        (DF_2021 + "getPackingSlips", "Date range to search must not be more than 7 days.",
         "Purchase order number of the shipment that the packing slip is for."),
        (DF_2021 + "getCustomerInvoices", "The date range to search must be no more than 7 days.",
         "The purchase order number for this order."),
    ) for row in (
        *_bounds(op, C, None,
                 ("createdAfter", U, "available after this date and time will be included in the result."),
                 ("createdBefore", U, "available before this date and time will be included in the result.")),
        Rule(op, MAX_WINDOW, _days(7), window),
        _size(op, "limit", "The maximum number of records to return." if op == DF_2021 + "getPackingSlips"
              else "The limit to the number of records returned"),
        _id(op, "purchaseOrderNumber", ident),
    )],
    # -- Parameters of operations spd does not poll that go together, or never ------------------
    _with(CATALOG, "identifiers", ("identifiersType",),
          "`identifiersType` is required when `identifiers` is in the request.", "identifiersType"),
    _with(CATALOG, "identifiersType=SKU", ("sellerId",), "Required when `identifiersType` is `SKU`.", "sellerId"),
    _forbids(CATALOG, "identifiers", ("keywords",),
             "You cannot include `identifiers` and `keywords` in the same request."),
    _forbids(CATALOG, "keywords", ("identifiers",),
             "You cannot include `keywords` and `identifiers` in the same request."),
    *[_forbids(CATALOG, name, ("identifiers",), "Cannot be used with `identifiers`.")
      for name in ("brandNames", "classificationIds", "keywordsLocale")],
    *[_forbids("definitionsProductTypes_2020-09-01.searchDefinitionsProductTypes", name, (other,),
               f"Cannot be used with `{other}`.") for name, other in (("keywords", "itemName"), ("itemName", "keywords"))],
    _forbids("sales.getOrderMetrics", "asin", ("sku",), "Specifying both ASIN and SKU returns an error."),
    _with("fbaInbound.getItemEligibilityPreview", "program=INBOUND", ("marketplaceIds",),
          "Required only when program=INBOUND.", "marketplaceIds"),
    # -- Reports (createReport) ----------------------------------------------------------------
    Rule("reports_2021-06-30.createReport", REPORT_PERIOD,
         {"DAY": ("day", "day"), "WEEK": ("Sunday", "Saturday"), "MONTH": ("first day", "last day"),
          "QUARTER": ("first day", "last day"), "YEAR": ("first day", "last day")},
         "For WEEK, MONTH, QUARTER, and YEAR reportPeriods, this value must correspond to the first day in "
         "the specified reportPeriod. For example, dataStartTime must be a Sunday for the WEEK reportPeriod.",
         source=REPORT_SCHEMAS + "vendorSalesReport.json",
         note="the Brand Analytics schemas say the same for WEEK, MONTH and QUARTER; dataEndTime is the last day"),
]


def rules_for(op: str, kind: str | None = None) -> list[Rule]:
    """The rows of one operation (of one kind)."""
    return [r for r in _INDEX.get(op, ()) if kind is None or r.kind == kind]


def rule(op: str, kind: str) -> Rule | None:
    """The one row of a kind for an operation, or None."""
    found = rules_for(op, kind)
    return found[0] if found else None


def bounds(op: str) -> dict[str, dict[str, tuple[str, Bound]]]:
    """{"created": {"after": (param, Bound), "before": (param, Bound)}, "updated": {...}}."""
    out: dict[str, dict[str, tuple[str, Bound]]] = {}
    for r in rules_for(op, BOUND):
        out.setdefault(r.value.field, {})[r.value.end] = (str(r.where), r.value)
    return out


def page2(op: str) -> Page2:
    """How a next page of `op` is requested (by default: the same arguments and the token)."""
    found = rule(op, PAGE2)
    return found.value if found is not None else Page2("same")


def boundary_overlap(op: str, field: str) -> bool:
    """Whether windows of `op` by `field` must overlap by an instant: the lower bound may exclude
    its instant and the upper bound (or the request time, without one) may too."""
    ends = bounds(op).get(field, {})
    lower = ends.get("after")
    upper = ends.get("before")
    return lower is not None and lower[1].inclusive is not True and (
        upper is None or upper[1].inclusive is not True)


def operations() -> list[str]:
    """Every operation the table has rows for."""
    return sorted(_INDEX)


_INDEX: dict[str, list[Rule]] = {}
for _row in RULES:
    _INDEX.setdefault(_row.op, []).append(_row)
