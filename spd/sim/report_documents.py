"""Report documents of the simulator: gzipped TSV encoded as Amazon does per marketplace
(Cp1252 for North America and Europe, Shift_JIS for Japan), built from the simulated orders."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from typing import Any

import orjson

from spd.sim.common import iso
from spd.sim.data import PRODUCTS, Record

JP = "A1VC38T7YXB528"
ORDER_REPORTS = {"GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL": "updated",
                 "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL": "created"}
LISTINGS = "GET_MERCHANT_LISTINGS_ALL_DATA"
SETTLEMENT = "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2"
ANALYTICS = ("GET_VENDOR_", "GET_BRAND_ANALYTICS_", "GET_SALES_AND_TRAFFIC")

# Localized text, so that documents carry what each encoding must get right.
JP_TITLES = ("エコードット 第4世代 スマートスピーカー", "ステンレス製 真空断熱ボトル 1リットル",
             "有機栽培コットン バスタオル 6枚セット", "鋳鉄スキレット 30cm")
EU_CITIES = ("Montréal", "Köln", "São Paulo", "Málaga", "Zürich", "Besançon")
ORDER_COLUMNS = ("amazon-order-id", "merchant-order-id", "purchase-date", "last-updated-date",
                 "order-status", "fulfillment-channel", "sales-channel", "product-name", "sku",
                 "asin", "item-status", "quantity", "currency", "item-price", "ship-city",
                 "ship-state", "ship-postal-code", "ship-country")
SETTLEMENT_COLUMNS = ("settlement-id", "settlement-start-date", "settlement-end-date",
                      "deposit-date", "total-amount", "currency", "transaction-type", "order-id",
                      "merchant-order-id", "adjustment-id", "shipment-id", "marketplace-name",
                      "amount-type", "amount-description", "amount", "fulfillment-id",
                      "posted-date", "posted-date-time", "order-item-code",
                      "merchant-order-item-id", "merchant-adjustment-item-id", "sku",
                      "quantity-purchased", "promotion-id")



def analytics_document(report: Any) -> dict[str, Any]:
    """A JSON analytics report: its specification and one row per product for its dates."""
    start = iso(report.data_start)[:10] if report.data_start is not None else None
    end = iso(report.data_end)[:10] if report.data_end is not None else None
    spec = {"reportType": report.report_type, "reportOptions": report.options,
            "dataStartTime": start, "dataEndTime": end, "marketplaceIds": report.marketplace_ids}
    rows = [{"startDate": start, "endDate": end, "asin": asin, "orderedUnits": i + 1}
            for i, (asin, _title, _price) in enumerate(PRODUCTS[:5])]
    return {"reportSpecification": spec, "dataByAsin": rows}


def encoding_for(markets: list[str]) -> tuple[str, str]:
    """(Python codec, charset as Amazon names it) of a report's marketplaces."""
    return ("shift_jis", "Shift_JIS") if JP in markets else ("cp1252", "Cp1252")


def render_document(state: Any, report: Any) -> tuple[bytes, str]:
    """The gzipped document of a finished report and its Content-Type."""
    if report.outcome == "FATAL":
        body = orjson.dumps({"errorDetails": f"Report {report.report_id} could not be "
                             "generated: an internal error occurred."})
        return body, "application/json"
    if report.options.get("reportPeriod") or report.report_type.startswith(ANALYTICS):
        return gzip.compress(orjson.dumps(analytics_document(report))), "application/json"
    codec, charset = encoding_for(report.marketplace_ids)
    if report.report_type == SETTLEMENT:
        rows = settlement_rows(state, report)
        columns: tuple[str, ...] = SETTLEMENT_COLUMNS
    elif report.report_type == LISTINGS:
        rows, columns = listing_rows(report), ("item-name", "listing-id", "seller-sku", "price",
                                               "quantity", "open-date", "asin1", "status")
    else:
        rows, columns = order_rows(state, report), ORDER_COLUMNS
    lines = ["\t".join(columns)] + ["\t".join(str(row.get(c, "")) for c in columns) for row in rows]
    text = "\r\n".join(lines) + "\r\n"  # Amazon's flat files end lines with CRLF
    return gzip.compress(text.encode(codec, errors="replace")), f"text/plain;charset={charset}"


def _title(rec: Record, line_no: int, title: str) -> str:
    if rec.marketplace == JP:
        return JP_TITLES[(zlib.crc32(rec.id.encode()) + line_no) % len(JP_TITLES)]
    return title


def order_rows(state: Any, report: Any) -> list[dict[str, Any]]:
    """One row per order line in the report's data range, as the flat-file orders reports."""
    data = state.orders
    now = report.created
    data.ensure(now)
    lo = report.data_start if report.data_start is not None else now - 30 * 86400
    hi = report.data_end if report.data_end is not None else now
    walk = data.walk_updated if ORDER_REPORTS.get(report.report_type) == "updated" else data.walk_created
    rows = []
    for rec, idx in walk(now, lo, hi, None):
        if rec.marketplace not in report.marketplace_ids:
            continue
        a, v = rec.attrs, rec.versions[idx]
        city = EU_CITIES[rec.created % len(EU_CITIES)] if rec.marketplace != JP else "東京都渋谷区"
        for n, line in enumerate(a["lines"]):
            rows.append({
                "amazon-order-id": rec.id, "merchant-order-id": "", "purchase-date": iso(rec.created),
                "last-updated-date": iso(v.time), "order-status": v.status,
                "fulfillment-channel": "Amazon" if a["afn"] else "Merchant",
                "sales-channel": a["channel"], "product-name": _title(rec, n, line["title"]),
                "sku": line["sku"], "asin": line["asin"], "item-status": v.status,
                "quantity": line["qty"], "currency": a["currency"], "item-price": line["price"],
                "ship-city": city, "ship-state": a["state"], "ship-postal-code": a["postal"],
                "ship-country": a["country"]})
    return rows


def listing_rows(report: Any) -> list[dict[str, Any]]:
    jp = JP in report.marketplace_ids
    return [{"item-name": JP_TITLES[i % len(JP_TITLES)] if jp else f"{title} – édition spéciale",
             "listing-id": f"0{1000000000 + i}", "seller-sku": f"SKU-{asin[-6:]}", "price": price,
             "quantity": 10 + i, "open-date": "2024-03-01 10:00:00 PST", "asin1": asin,
             "status": "Active"} for i, (asin, title, price) in enumerate(PRODUCTS)]


def settlement_rows(state: Any, report: Any) -> list[dict[str, Any]]:
    """A settlement: a summary row, then the principal and fees of every order line."""
    start, end = report.data_start or 0.0, report.data_end or 0.0
    market = report.marketplace_ids[0]
    eu = market not in ("ATVPDKIKX0DER", JP)
    stamp: Callable[[float], str] = (_eu_time if eu else
                                     lambda t: iso(t).replace("T", " ").replace("Z", " UTC"))
    rows: list[dict[str, Any]] = []
    total, currency = 0.0, "USD"
    state.orders.ensure(report.created)
    for rec, _idx in state.orders.walk_created(report.created, start, end - 1, None):
        if rec.marketplace != market:
            continue
        currency = rec.attrs["currency"]
        for line in rec.attrs["lines"]:
            price = round(line["price"] * line["qty"], 2)
            fee = round(-0.15 * price, 2)
            total += price + fee
            for kind, desc, amount in (("ItemPrice", "Principal", price),
                                       ("ItemFees", "Commission", fee)):
                rows.append({"settlement-id": report.report_id, "transaction-type": "Order",
                             "order-id": rec.id, "marketplace-name": rec.attrs["channel"],
                             "amount-type": kind, "amount-description": desc, "amount": amount,
                             "fulfillment-id": "AFN" if rec.attrs["afn"] else "MFN",
                             "posted-date": stamp(rec.created).split(" ")[0],
                             "posted-date-time": stamp(rec.created), "sku": line["sku"],
                             "order-item-code": line["item_id"],
                             "quantity-purchased": line["qty"]})
    summary = {"settlement-id": report.report_id, "settlement-start-date": stamp(start),
               "settlement-end-date": stamp(end), "deposit-date": stamp(end + 3 * 86400),
               "total-amount": round(total, 2), "currency": currency}
    return [summary] + rows


def _eu_time(t: float) -> str:
    day, clock = iso(t).rstrip("Z").split("T")
    y, m, d = day.split("-")
    return f"{d}.{m}.{y} {clock[:8]} UTC"
