"""Report object types: `report:REPORT_TYPE` names resolve here (spd.objects delegates).

Every report type Amazon lets a seller request can be polled; the `REPORTS` table declares what
the documents do not say: the format, which columns identify a row, the row's own timestamps
(the cursor), and whether the report takes a data time range or is a snapshot of "now".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from spd.objects import ObjectType, content_hash, dig, normalize_timestamp

API = "reports_2021-06-30"
REPORT_PREFIX = "report:"
SETTLEMENT_V2 = "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2"
MAX_AGE = timedelta(days=730)  # how far back Amazon's report data reaches
_NAME = re.compile(r"[A-Z][A-Z0-9_]{2,127}")
_ORDERS = dict(fmt="tsv", id_fields=("amazon-order-id", "sku"), created_field="purchase-date",
               updated_field="last-updated-date")


@dataclass(frozen=True)
class ReportSpec:
    """What spd knows about one report type."""

    report_type: str
    fmt: str | None = None  # tsv | csv | json | xml; None: sniffed from the document
    id_fields: tuple[str, ...] = ()  # dotted paths joined into the row id; () → content hash
    created_field: str | tuple[str, ...] | None = None  # dotted path(s), first present wins
    updated_field: str | tuple[str, ...] | None = None
    snapshot: bool = False  # no data time range: each run requests the current state once
    creatable: bool = True  # False: Amazon generates it (settlements): poll getReports instead
    max_window: timedelta = timedelta(days=30)


REPORTS: dict[str, ReportSpec] = {spec.report_type: spec for spec in (
    ReportSpec("GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL", **_ORDERS),
    ReportSpec("GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL", **_ORDERS),
    ReportSpec("GET_XML_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL", fmt="xml",
               id_fields=("Order.AmazonOrderID",), created_field="Order.PurchaseDate",
               updated_field="Order.LastUpdatedDate"),
    ReportSpec("GET_XML_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL", fmt="xml",
               id_fields=("Order.AmazonOrderID",), created_field="Order.PurchaseDate",
               updated_field="Order.LastUpdatedDate"),
    ReportSpec("GET_AMAZON_FULFILLED_SHIPMENTS_DATA_GENERAL", fmt="tsv",
               id_fields=("amazon-order-id", "shipment-item-id"), created_field="purchase-date",
               updated_field="reporting-date"),
    ReportSpec("GET_FLAT_FILE_RETURNS_DATA_BY_RETURN_DATE", fmt="tsv",
               id_fields=("Order ID", "Merchant SKU", "Return request date"),
               created_field="Return request date"),
    ReportSpec("GET_MERCHANT_LISTINGS_ALL_DATA", fmt="tsv", id_fields=("listing-id",),
               created_field="open-date", snapshot=True),
    ReportSpec("GET_MERCHANT_LISTINGS_DATA", fmt="tsv", id_fields=("listing-id",),
               created_field="open-date", snapshot=True),
    ReportSpec("GET_FBA_MYI_UNSUPPRESSED_INVENTORY_DATA", fmt="tsv", id_fields=("sku",),
               snapshot=True),
    ReportSpec("GET_FBA_MYI_ALL_INVENTORY_DATA", fmt="tsv", id_fields=("sku",), snapshot=True),
    ReportSpec("GET_SALES_AND_TRAFFIC_REPORT", fmt="json", created_field="date"),
    ReportSpec(SETTLEMENT_V2, fmt="tsv", created_field=("posted-date-time", "posted-date"),
               creatable=False),
    ReportSpec("GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE", fmt="tsv",
               created_field=("posted-date-time", "posted-date"), creatable=False),
    ReportSpec("GET_V2_SETTLEMENT_REPORT_DATA_XML", fmt="xml", creatable=False),
)}


def report_spec(report_type: str) -> ReportSpec:
    """The declared spec, or a generic one (format sniffed, content-hash ids, no cursor)."""
    return REPORTS.get(report_type) or ReportSpec(report_type)


def resolve_report_type(name: str) -> ObjectType:
    """The object type `report:REPORT_TYPE`; KeyError (one line, says what is allowed) otherwise."""
    report_type = name[len(REPORT_PREFIX):] if name.startswith(REPORT_PREFIX) else name
    if not _NAME.fullmatch(report_type):
        raise KeyError(f"object type {name!r}: a report type is upper case, such as "
                       f"report:{next(iter(REPORTS))}")
    spec = report_spec(report_type)
    if not spec.creatable:
        raise KeyError(f"object type {name!r}: Amazon generates {report_type} itself; poll "
                       f"{API}.getReports with report_types: [{report_type}] and download: true")
    bounds = ("dataStartTime", "dataEndTime")
    return ObjectType(
        name=REPORT_PREFIX + report_type, api=API, operation="createReport",
        created_bounds=bounds, updated_bounds=bounds, page_size_param=None, page_size_max=None,
        token_param="reportId", token_path=(), results_path=(),
        id_field=spec.id_fields[0] if len(spec.id_fields) == 1 else None,
        created_field=spec.created_field, updated_field=spec.updated_field,
        max_window=None if spec.snapshot else spec.max_window, lag=timedelta(minutes=2),
        echo_before=None, marketplace_param="marketplaceIds", token_alone=False,
        aliases=(), supported=True, kind="report", max_age=None if spec.snapshot else MAX_AGE,
        single_marketplace=True,  # one report (and one watermark, one encoding) per marketplace
    )


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
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
