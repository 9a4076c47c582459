"""Report object types: `report:REPORT_TYPE` names resolve here (spd.sources.registry delegates).

Every report type Amazon lets a seller request can be polled; the `REPORTS` table declares what
Amazon documents in its guides and report schemas rather than its models, one row per report
type with its source: the kind (windowed: a report per data time range; snapshot: the current
state, requested once per interval without dataStartTime/dataEndTime), the report options and
their values, whether the dates must align with a reporting period (a WEEK report runs Sunday to
Saturday), the format, which columns identify a row and the row's own timestamps (the cursor).
Report types not listed still work: windowed, format sniffed, rows identified by content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from spd.core.paths import dig
from spd.core.times import format_ts, normalize_timestamp
from spd.sources.object_type import (Extraction, ObjectType, Paging, Partitioning, UnknownObjectType,
                                     Windowing, content_hash)

API = "reports_2021-06-30"
REPORT_PREFIX = "report:"
SETTLEMENT_V2 = "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2"
MAX_AGE = timedelta(days=730)  # how far back Amazon's report data reaches
PERIOD_OPTION = "reportPeriod"
_NAME = re.compile(r"[A-Z][A-Z0-9_]{2,127}")
_ORDERS: dict[str, Any] = dict(fmt="tsv", id_fields=("amazon-order-id", "sku"), created_field="purchase-date",
               updated_field="last-updated-date")
GUIDE = "https://developer-docs.amazon.com/sp-api/docs/report-type-values-"
SCHEMA = "https://github.com/amzn/selling-partner-api-models/blob/main/schemas/reports/"
PERIODS = ("DAY", "WEEK", "MONTH", "QUARTER", "YEAR")
DISTRIBUTOR = ("distributorView", ("MANUFACTURING", "SOURCING"))


@dataclass(frozen=True)
class ReportSpec:
    """What spd knows about one report type, and where Amazon says so (`source`)."""

    report_type: str
    fmt: str | None = None  # tsv | csv | json | xml; None: sniffed from the document
    id_fields: tuple[str, ...] = ()  # dotted paths joined into the row id; () → content hash
    created_field: str | tuple[str, ...] | None = None  # dotted path(s), first present wins
    updated_field: str | tuple[str, ...] | None = None
    snapshot: bool = False  # no data time range: each run requests the current state once
    creatable: bool = True  # False: Amazon generates it (settlements): poll getReports instead
    max_window: timedelta = timedelta(days=30)
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()  # reportOptions keys -> allowed values
    required_options: tuple[str, ...] = ()
    span_periods: bool = True  # False: one report covers exactly one reporting period
    source: str = ""

    @property
    def kind(self) -> str:
        return "snapshot" if self.snapshot else "windowed"


def _snapshot(report_type: str, section: str, **kw: Any) -> ReportSpec:
    return ReportSpec(report_type, snapshot=True, source=GUIDE + section, **kw)


def _analytics(report_type: str, schema: str, periods: tuple[str, ...], *extra: tuple[str, tuple[str, ...]],
               span: bool = True, ids: tuple[str, ...] = ("_section", "asin", "startDate")) -> ReportSpec:
    """A report whose reportOptions.reportPeriod aligns its dates (vendor and Brand Analytics)."""
    options = ((PERIOD_OPTION, periods), *extra)
    return ReportSpec(report_type, fmt="json", id_fields=ids, created_field="startDate",
                      options=options, required_options=tuple(k for k, _ in options),
                      span_periods=span, source=SCHEMA + schema)


REPORTS: dict[str, ReportSpec] = {spec.report_type: spec for spec in (
    # -- windowed: a report per data time range ------------------------------------------------
    ReportSpec("GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL", **_ORDERS, source=GUIDE + "order"),
    ReportSpec("GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL", **_ORDERS, source=GUIDE + "order"),
    ReportSpec("GET_XML_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL", fmt="xml",
               id_fields=("Order.AmazonOrderID",), created_field="Order.PurchaseDate",
               updated_field="Order.LastUpdatedDate", source=GUIDE + "order"),
    ReportSpec("GET_XML_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL", fmt="xml",
               id_fields=("Order.AmazonOrderID",), created_field="Order.PurchaseDate",
               updated_field="Order.LastUpdatedDate", source=GUIDE + "order"),
    ReportSpec("GET_AMAZON_FULFILLED_SHIPMENTS_DATA_GENERAL", fmt="tsv",
               id_fields=("amazon-order-id", "shipment-item-id"), created_field="purchase-date",
               updated_field="reporting-date", source=GUIDE + "fba"),
    ReportSpec("GET_FLAT_FILE_RETURNS_DATA_BY_RETURN_DATE", fmt="tsv",
               id_fields=("Order ID", "Merchant SKU", "Return request date"),
               created_field="Return request date", source=GUIDE + "returns"),
    ReportSpec("GET_XML_RETURNS_DATA_BY_RETURN_DATE", fmt="xml", source=GUIDE + "returns"),
    ReportSpec("GET_FBA_FULFILLMENT_CUSTOMER_RETURNS_DATA", fmt="tsv", created_field="return-date",
               source=GUIDE + "fba"),
    ReportSpec("GET_FBA_REIMBURSEMENTS_DATA", fmt="tsv", id_fields=("reimbursement-id", "sku"),
               created_field="approval-date", source=GUIDE + "fba"),
    ReportSpec("GET_LEDGER_DETAIL_VIEW_DATA", fmt="tsv", created_field="Date", source=GUIDE + "fba"),
    ReportSpec("GET_LEDGER_SUMMARY_VIEW_DATA", fmt="tsv", created_field="Date", source=GUIDE + "fba",
               options=(("aggregateByLocation", ("COUNTRY", "FC")),
                        ("aggregatedByTimePeriod", ("DAILY", "WEEKLY", "MONTHLY")))),
    ReportSpec("GET_SELLER_FEEDBACK_DATA", fmt="tsv", created_field="Date", source=GUIDE + "performance"),
    ReportSpec("GET_SALES_AND_TRAFFIC_REPORT", fmt="json", created_field="date",
               options=(("dateGranularity", ("DAY", "WEEK", "MONTH")),
                        ("asinGranularity", ("PARENT", "CHILD", "SKU"))),
               source=SCHEMA + "sellerSalesAndTrafficReport.json"),
    _analytics("GET_VENDOR_SALES_REPORT", "vendorSalesReport.json", PERIODS, DISTRIBUTOR,
               ("sellingProgram", ("RETAIL", "BUSINESS", "FRESH"))),
    _analytics("GET_VENDOR_TRAFFIC_REPORT", "vendorTrafficReport.json", PERIODS),
    _analytics("GET_VENDOR_INVENTORY_REPORT", "vendorInventoryReport.json", PERIODS, DISTRIBUTOR,
               ("sellingProgram", ("RETAIL", "FRESH"))),
    _analytics("GET_VENDOR_NET_PURE_PRODUCT_MARGIN_REPORT", "vendorNetPureProductMarginReport.json", PERIODS),
    _analytics("GET_BRAND_ANALYTICS_SEARCH_TERMS_REPORT", "sellingPartnerSearchTermsReport.json",
               PERIODS[:4], span=False, ids=("departmentName", "searchTerm", "clickedAsin")),
    _analytics("GET_BRAND_ANALYTICS_MARKET_BASKET_REPORT", "sellingPartnerMarketBasketAnalysisReport.json",
               PERIODS[:4], ids=("asin", "purchasedWithAsin", "startDate")),
    _analytics("GET_BRAND_ANALYTICS_REPEAT_PURCHASE_REPORT", "sellingPartnerRepeatPurchaseReport.json",
               PERIODS[1:4]),
    # -- snapshots: the current state, no data time range -------------------------------------
    _snapshot("GET_MERCHANT_LISTINGS_ALL_DATA", "inventory", fmt="tsv", id_fields=("listing-id",),
              created_field="open-date"),
    _snapshot("GET_MERCHANT_LISTINGS_DATA", "inventory", fmt="tsv", id_fields=("listing-id",),
              created_field="open-date"),
    _snapshot("GET_MERCHANT_LISTINGS_INACTIVE_DATA", "inventory", fmt="tsv", id_fields=("listing-id",)),
    _snapshot("GET_MERCHANT_LISTINGS_DATA_BACK_COMPAT", "inventory", fmt="tsv", id_fields=("listing-id",)),
    _snapshot("GET_MERCHANT_LISTINGS_DATA_LITE", "inventory", fmt="tsv", id_fields=("seller-sku",)),
    _snapshot("GET_MERCHANT_LISTINGS_DATA_LITER", "inventory", fmt="tsv", id_fields=("seller-sku",)),
    _snapshot("GET_MERCHANT_CANCELLED_LISTINGS_DATA", "inventory", fmt="tsv"),
    _snapshot("GET_FLAT_FILE_OPEN_LISTINGS_DATA", "inventory", fmt="tsv", id_fields=("sku",)),
    _snapshot("GET_FBA_MYI_UNSUPPRESSED_INVENTORY_DATA", "fba", fmt="tsv", id_fields=("sku",)),
    _snapshot("GET_FBA_MYI_ALL_INVENTORY_DATA", "fba", fmt="tsv", id_fields=("sku",)),
    _snapshot("GET_AFN_INVENTORY_DATA", "fba", fmt="tsv", id_fields=("seller-sku",)),
    _snapshot("GET_AFN_INVENTORY_DATA_BY_COUNTRY", "fba", fmt="tsv", id_fields=("seller-sku", "country")),
    _snapshot("GET_RESERVED_INVENTORY_DATA", "fba", fmt="tsv", id_fields=("sku",)),
    _snapshot("GET_STRANDED_INVENTORY_UI_DATA", "fba", fmt="tsv", id_fields=("sku",)),
    _snapshot("GET_FBA_INVENTORY_PLANNING_DATA", "fba", fmt="tsv", id_fields=("sku",)),
    _snapshot("GET_RESTOCK_INVENTORY_RECOMMENDATIONS_REPORT", "fba", fmt="tsv", id_fields=("Merchant SKU",)),
    _snapshot("GET_FBA_ESTIMATED_FBA_FEES_TXT_DATA", "fba", fmt="tsv", id_fields=("sku",)),
    _snapshot("GET_REFERRAL_FEE_PREVIEW_REPORT", "fba", fmt="tsv", id_fields=("seller-sku",)),
    _snapshot("GET_FLAT_FILE_ACTIONABLE_ORDER_DATA_SHIPPING", "order", fmt="tsv",
              id_fields=("order-id", "order-item-id")),
    _snapshot("GET_V2_SELLER_PERFORMANCE_REPORT", "performance", fmt="json"),
    ReportSpec("GET_VENDOR_FORECASTING_REPORT", fmt="json", snapshot=True,
               options=(("sellingProgram", ("RETAIL", "FRESH")),), required_options=("sellingProgram",),
               source=SCHEMA + "vendorForecastingReport.json"),
    # -- generated by Amazon (poll getReports with download: true) ------------------------------
    ReportSpec(SETTLEMENT_V2, fmt="tsv", created_field=("posted-date-time", "posted-date"),
               creatable=False, source=GUIDE + "settlement"),
    ReportSpec("GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE", fmt="tsv",
               created_field=("posted-date-time", "posted-date"), creatable=False, source=GUIDE + "settlement"),
    ReportSpec("GET_V2_SETTLEMENT_REPORT_DATA_XML", fmt="xml", creatable=False, source=GUIDE + "settlement"),
)}


def check_report_options(report_type: str, options: dict[str, Any]) -> list[tuple[str | None, str]]:
    """Problems of a poller's `report_options` as (key or None, message); [] when they fit what
    Amazon documents for the report type (any string keys and values for types not listed)."""
    spec = report_spec(report_type)
    problems: list[tuple[str | None, str]] = []
    allowed = dict(spec.options)
    for key, value in options.items():
        if not isinstance(value, str):
            problems.append((key, f"{value!r} is not text; reportOptions values are strings"))
        elif spec.options and key not in allowed:
            problems.append((key, f"{report_type} takes no option {key}; options: {', '.join(allowed)}"))
        elif allowed.get(key) and value not in allowed[key]:
            problems.append((key, f"{value!r} is not a {key} of {report_type}; use one of "
                                  f"{', '.join(allowed[key])}"))
    missing = [k for k in spec.required_options if k not in options]
    if missing:
        problems.append((None, f"{report_type} needs {', '.join(missing)}; add "
                               + ", ".join(f"{k}: {allowed[k][0]}" for k in missing)))
    return problems


def list_report_types() -> list[dict[str, Any]]:
    """`spd objects`: the report types spd knows, with their kind, options and source."""
    return [describe_report_spec(spec) for spec in REPORTS.values()]


def describe_report_spec(spec: ReportSpec) -> dict[str, Any]:
    """One report type as JSON: name, kind, options, what identifies a row, where Amazon says so."""
    return {"name": REPORT_PREFIX + spec.report_type, "kind": "report", "report_kind": spec.kind,
            "requestable": spec.creatable, "supported": spec.creatable,
            "options": {k: list(v) for k, v in spec.options} or None,
            "required_options": list(spec.required_options) or None,
            "period_aligned": PERIOD_OPTION in dict(spec.options),
            "spans_periods": spec.span_periods if PERIOD_OPTION in dict(spec.options) else None,
            "format": spec.fmt, "row_id": list(spec.id_fields) or None, "source": spec.source}


def report_spec(report_type: str) -> ReportSpec:
    """The declared spec, or a generic one (format sniffed, content-hash ids, no cursor)."""
    return REPORTS.get(report_type) or ReportSpec(report_type)


def resolve_report_type(name: str) -> ObjectType:
    """The object type `report:REPORT_TYPE`; UnknownObjectType (a KeyError: one line, says what
    is allowed) otherwise."""
    report_type = name[len(REPORT_PREFIX):] if name.startswith(REPORT_PREFIX) else name
    if not _NAME.fullmatch(report_type):
        raise UnknownObjectType(f"object type {name!r}: a report type is upper case, such as "
                       f"report:{next(iter(REPORTS))}")
    spec = report_spec(report_type)
    if not spec.creatable:
        raise UnknownObjectType(f"object type {name!r}: Amazon generates {report_type} itself; poll "
                       f"{API}.getReports with report_types: [{report_type}] and download: true")
    bounds = ("dataStartTime", "dataEndTime")
    return ObjectType(
        name=REPORT_PREFIX + report_type, api=API, operation="createReport",
        window=Windowing(created=bounds, updated=bounds, lag=timedelta(minutes=2),
                         max_window=None if spec.snapshot else spec.max_window,
                         max_age=None if spec.snapshot else MAX_AGE),
        paging=Paging(token_param="reportId", token_path=()),
        extraction=Extraction(results_path=(),
                              id_field=spec.id_fields[0] if len(spec.id_fields) == 1 else None,
                              created_field=spec.created_field, updated_field=spec.updated_field),
        # one report (and one watermark, one encoding) per marketplace
        partitioning=Partitioning(marketplace_param="marketplaceIds", per_marketplace=True),
        supported=True, kind="report")


def report_type_of(object_type: ObjectType) -> str:
    """REPORT_TYPE of a `report:REPORT_TYPE` object type."""
    return object_type.name[len(REPORT_PREFIX):]


def row_id(spec: ReportSpec, row: dict[str, Any]) -> str:
    """The row's id columns joined with `|`, or a content hash when any is missing."""
    values = [dig(row, path) for path in spec.id_fields]
    if values and all(isinstance(v, (str, int, float)) and v != "" for v in values):
        return "|".join(str(v) for v in values)
    return content_hash(row)


def row_cursor(spec: ReportSpec, row: dict[str, Any], timestamp_field: str) -> str | None:
    """The row's own created/updated time as UTC `...Z` (first present field), or None."""
    fields = spec.created_field if timestamp_field == "created" else spec.updated_field
    for path in (fields,) if isinstance(fields, str) else (fields or ()):
        value = dig(row, path)
        cursor = normalize_report_time(value) if isinstance(value, str) else None
        if cursor:
            return cursor
    return None


_ZONES = {"UTC": 0, "GMT": 0, "Z": 0, "PST": -8, "PDT": -7, "MST": -7, "MDT": -6, "CST": -6,
          "CDT": -5, "EST": -5, "EDT": -4, "BST": 1, "CET": 1, "CEST": 2, "MEZ": 1, "MESZ": 2,
          "JST": 9, "IST": 5.5, "AEST": 10, "AEDT": 11}
_REPORT_TIME = re.compile(
    r"^(?:(\d{4})-(\d{2})-(\d{2})|(\d{2})\.(\d{2})\.(\d{4}))"  # 2024-03-01 or 01.03.2024 (EU)
    r"(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?\s*([A-Z]{1,4})?$")


def normalize_report_time(value: str) -> str | None:
    """Report timestamps as UTC `...Z`: ISO 8601, `2024-03-01 10:00:00 UTC`, `01.03.2024 10:00:00
    UTC` (EU settlements), `2024-03-01 10:00:00 PST`, dates alone (midnight UTC)."""
    iso = normalize_timestamp(value)
    if iso is not None:
        return iso
    m = _REPORT_TIME.match(value.strip())
    if m is None:
        return None
    g = m.groups()
    year, month, day = (g[0], g[1], g[2]) if g[0] else (g[5], g[4], g[3])
    offset = _ZONES.get(g[9] or "UTC")
    if offset is None:
        return None
    try:
        ts = datetime(int(year), int(month), int(day), int(g[6] or 0), int(g[7] or 0),
                      int(g[8] or 0), tzinfo=timezone(timedelta(hours=offset)))
    except ValueError:
        return None
    return format_ts(ts)
