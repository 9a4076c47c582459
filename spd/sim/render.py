"""Turn a record version into the JSON object each SP-API model describes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from spd.sim.common import iso
from spd.sim.data import Record

V0_TO_2026 = {
    "PendingAvailability": "PENDING_AVAILABILITY", "Pending": "PENDING",
    "Unshipped": "UNSHIPPED", "PartiallyShipped": "PARTIALLY_SHIPPED", "Shipped": "SHIPPED",
    "InvoiceUnconfirmed": "SHIPPED", "Canceled": "CANCELLED", "Unfulfillable": "UNFULFILLABLE",
}
LEVEL_2026 = {"Standard": "STANDARD", "Expedited": "EXPEDITED", "NextDay": "NEXT_DAY",
              "SecondDay": "SECOND_DAY"}


def _money(amount: float, currency: str, key_amount: str, key_currency: str) -> dict[str, str]:
    text = f"{amount:.0f}" if currency == "JPY" else f"{amount:.2f}"
    return {key_currency: currency, key_amount: text}


def _order_total(attrs: dict[str, Any]) -> float:
    return float(sum(line["price"] * line["qty"] for line in attrs["lines"]))


def render_v0(rec: Record, idx: int, restricted: frozenset[str] = frozenset()) -> dict[str, Any]:
    """An Orders v0 `Order`; `restricted` holds the RDT data elements granted."""
    a, v = rec.attrs, rec.versions[idx]
    qty = sum(line["qty"] for line in a["lines"])
    t0 = rec.created
    order: dict[str, Any] = {
        "AmazonOrderId": rec.id,
        "PurchaseDate": iso(t0),
        "LastUpdateDate": iso(v.time),
        "OrderStatus": v.status,
        "FulfillmentChannel": "AFN" if a["afn"] else "MFN",
        "SalesChannel": a["channel"],
        "ShipServiceLevel": a["level"],
        "OrderTotal": _money(_order_total(a), a["currency"], "Amount", "CurrencyCode"),
        "NumberOfItemsShipped": v.extra["shipped"],
        "NumberOfItemsUnshipped": 0 if v.status == "Canceled" else qty - v.extra["shipped"],
        "PaymentMethod": "Other",
        "PaymentMethodDetails": ["Standard"],
        "IsReplacementOrder": False,
        "MarketplaceId": rec.marketplace,
        "ShipmentServiceLevelCategory": a["category"],
        "OrderType": "Preorder" if a["preorder"] else "StandardOrder",
        "EarliestShipDate": iso(t0 + 3600),
        "LatestShipDate": iso(t0 + 2 * 86400),
        "EarliestDeliveryDate": iso(t0 + 3 * 86400),
        "LatestDeliveryDate": iso(t0 + 6 * 86400),
        "IsBusinessOrder": a["business"],
        "IsPrime": a["prime"],
        "IsGlobalExpressEnabled": False,
        "IsPremiumOrder": False,
        "IsSoldByAB": False,
        "IsIBA": False,
        "IsISPU": False,
        "IsAccessPointOrder": False,
        "HasRegulatedItems": False,
        "ElectronicInvoiceStatus": "NotRequired",
        "AutomatedShippingSettings": {"HasAutomatedShippingSettings": False},
        "ShippingAddress": {"City": a["city"], "StateOrRegion": a["state"],
                            "PostalCode": a["postal"], "CountryCode": a["country"]},
        "BuyerInfo": {},
    }
    if not a["afn"]:
        order["SellerOrderId"] = rec.id
    if v.status == "Pending":
        # Amazon leaves the total out until payment is authorized.
        del order["OrderTotal"]
    if "shippingAddress" in restricted:
        order["ShippingAddress"] = {"Name": a["buyer"], "AddressLine1": a["street"],
                                    **order["ShippingAddress"], "AddressType": "Residential"}
    if "buyerInfo" in restricted:
        order["BuyerInfo"] = {"BuyerEmail": a["email"], "BuyerName": a["buyer"]}
    return order


def render_2026(rec: Record, idx: int, included: frozenset[str] = frozenset()) -> dict[str, Any]:
    """An Orders 2026-01-01 `Order`; optional sections only when `includedData` asks."""
    a, v = rec.attrs, rec.versions[idx]
    t0 = rec.created
    order: dict[str, Any] = {
        "orderId": rec.id,
        "orderAliases": [] if a["afn"] else [{"aliasId": rec.id, "aliasType": "SELLER_ORDER_ID"}],
        "createdTime": iso(t0),
        "lastUpdatedTime": iso(v.time),
        "programs": [p for p, on in (("PRIME", a["prime"]), ("AMAZON_BUSINESS", a["business"]))
                     if on],
        "associatedOrders": [],
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": rec.marketplace,
                         "marketplaceName": a["channel"]},
        "orderItems": [_item_2026(line, v, a, included) for line in a["lines"]],
    }
    if "BUYER" in included:
        order["buyer"] = {"buyerName": a["buyer"], "buyerEmail": a["email"]}
    if "RECIPIENT" in included:
        order["recipient"] = {"deliveryAddress": {
            "name": a["buyer"], "addressLine1": a["street"], "city": a["city"].title(),
            "stateOrRegion": a["state"], "postalCode": a["postal"], "countryCode": a["country"],
            "addressType": "RESIDENTIAL"}}
    if "PROCEEDS" in included:
        order["proceeds"] = {"grandTotal": _money(_order_total(a), a["currency"], "amount",
                                                  "currencyCode")}
    if "FULFILLMENT" in included:
        order["fulfillment"] = {
            "fulfillmentStatus": V0_TO_2026[v.status],
            "fulfilledBy": "AMAZON" if a["afn"] else "MERCHANT",
            "fulfillmentServiceLevel": LEVEL_2026.get(a["category"], "STANDARD"),
            "shipByWindow": {"earliestDateTime": iso(t0 + 3600),
                             "latestDateTime": iso(t0 + 2 * 86400)},
            "deliverByWindow": {"earliestDateTime": iso(t0 + 3 * 86400),
                                "latestDateTime": iso(t0 + 6 * 86400)},
        }
    if "PACKAGES" in included and not a["afn"] and v.extra["shipped"]:
        order["packages"] = [{"packageReferenceId": f"PKG-{rec.id[-7:]}", "carrier": "UPS",
                              "shipTime": iso(v.time), "trackingNumber": f"1Z{rec.id[-7:]}0001",
                              "packageStatus": {"status": "IN_TRANSIT"}}]
    return order


def _item_2026(line: dict[str, Any], v: Any, a: dict[str, Any], included: frozenset[str]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "orderItemId": line["item_id"],
        "quantityOrdered": line["qty"],
        "programs": [],
        "product": {"asin": line["asin"], "title": line["title"], "sellerSku": line["sku"],
                    "condition": {"conditionType": "NEW", "conditionSubtype": "NEW"},
                    "price": {"unitPrice": _money(line["price"], a["currency"], "amount",
                                                  "currencyCode")}},
    }
    if "FULFILLMENT" in included:
        done = line["qty"] if v.status == "Shipped" else 0
        item["fulfillment"] = {"quantityFulfilled": done, "quantityUnfulfilled": line["qty"] - done}
    if "PROCEEDS" in included:
        item["proceeds"] = {"proceedsTotal": _money(line["price"] * line["qty"], a["currency"],
                                                    "amount", "currencyCode")}
    return item


def render_po(rec: Record, idx: int, details: bool = True) -> dict[str, Any]:
    """A Vendor Orders v1 `Order`; the dates all sit inside `orderDetails`."""
    a, v = rec.attrs, rec.versions[idx]
    po: dict[str, Any] = {"purchaseOrderNumber": rec.id, "purchaseOrderState": v.status}
    if not details:
        return po
    od: dict[str, Any] = {"purchaseOrderDate": iso(rec.created)}
    if v.extra["changed"] is not None:
        od["purchaseOrderChangedDate"] = iso(v.extra["changed"])
    od["purchaseOrderStateChangedDate"] = iso(v.extra["state_changed"])
    od["purchaseOrderType"] = a["type"]
    if a["deal"]:
        od["dealCode"] = "BTS"
    od.update({
        "paymentMethod": "Invoice",
        "buyingParty": {"partyId": a["fc"]},
        "sellingParty": {"partyId": a["vendor"]},
        "shipToParty": {"partyId": a["fc"]},
        "billToParty": {"partyId": "AMAZON"},
        "shipWindow": f"{iso(rec.created + 2 * 86400)}--{iso(rec.created + 9 * 86400)}",
        "items": [_po_item(item, i == v.extra["cut"], a["currency"])
                  for i, item in enumerate(a["items"])],
    })
    po["orderDetails"] = od
    return po


def _po_item(item: dict[str, Any], cut: bool, currency: str) -> dict[str, Any]:
    # An item Amazon cut after the order was placed keeps its line with quantity zero.
    return {
        "itemSequenceNumber": item["seq"],
        "amazonProductIdentifier": item["asin"],
        "vendorProductIdentifier": item["ean"],
        "orderedQuantity": {"amount": 0 if cut else item["amount"],
                            "unitOfMeasure": item["unit"], "unitSize": item["size"]},
        "isBackOrderAllowed": item["backorder"],
        "netCost": {"amount": f"{item['cost']:.2f}", "currencyCode": currency},
        "listPrice": {"amount": f"{item['list']:.2f}", "currencyCode": currency},
    }


Render = Callable[[Record, int, frozenset[str]], dict[str, Any]]


class RenderCache:
    """Each order version's JSON, rendered once and spliced into every page that returns it.

    A record's versions never change once made (live orders are new records), so a version
    with the same granted or included data renders to the same bytes every time. Rendering was
    two thirds of the simulator's CPU per page (2.5 of 3.8 ms for 100 orders), and every client's
    wall time in a benchmark includes it. Bounded: past `limit` entries (about 1.3 KB each for
    an order) the oldest goes."""

    def __init__(self, limit: int = 250_000) -> None:
        self.limit = limit
        self._rendered: dict[tuple[Render, str, int, frozenset[str]], orjson.Fragment] = {}

    def __len__(self) -> int:
        return len(self._rendered)

    def get(self, render: Render, rec: Record, idx: int, elements: frozenset[str]) -> orjson.Fragment:
        """`render(rec, idx, elements)` as JSON, rendered on the first ask."""
        key = (render, rec.id, idx, elements)
        found = self._rendered.get(key)
        if found is None:
            if len(self._rendered) >= self.limit:
                del self._rendered[next(iter(self._rendered))]
            # A copy: orjson's own buffer holds about 8 KB whatever the object's size.
            rendered = bytes(memoryview(orjson.dumps(render(rec, idx, elements))))
            found = self._rendered[key] = orjson.Fragment(rendered)
        return found
