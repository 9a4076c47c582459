"""Seeded, reproducible objects that are created and updated over time, with every version kept.

Times are whole epoch seconds. A `Dataset` holds records of one kind (orders or vendor purchase
orders); each record keeps all its versions, and each version becomes visible to queries at
`visible_at` (Amazon indexes late, but never later than its 2-minute lag), so the past is stable.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

# Fraction of creation slots that are bursts (many objects on one exact second).
BURST_CHANCE = {"order": 0.05, "po": 0.15}
BURST_SIZE = (5, 50)
# Raw time generated ahead of "now" per chunk: new objects stay invisible until their time.
CHUNK_SECONDS = 600


@dataclass(frozen=True, slots=True)
class Version:
    """One state of a record: its change time, when queries see it, and what changed."""

    time: int
    visible_at: int
    status: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Record:
    """One object (order or purchase order) with every version it has had or will have."""

    id: str
    created: int
    marketplace: str
    attrs: dict[str, Any]
    versions: list[Version]

    def current(self, now: float) -> int | None:
        """Index of the version queries return at `now`, or None while invisible."""
        for i in range(len(self.versions) - 1, -1, -1):
            if self.versions[i].visible_at <= now:
                return i
        return None


Factory = Callable[[random.Random, int, str, set[str]], Record]


def snap_up(t: int, step: int) -> int:
    """The first multiple of `step` seconds at or after `t`."""
    return -(-t // step) * step


def add_version(
    versions: list[Version], rng: random.Random, t: int, delay: int, status: str, **extra: Any
) -> None:
    """Append a version at `t` (strictly after the previous one), visible after a random delay."""
    if versions:
        t = max(t, versions[-1].time + 1)
    visible = t + (rng.randint(0, delay) if delay > 0 else 0)
    if versions:
        visible = max(visible, versions[-1].visible_at)
    versions.append(Version(t, visible, status, extra))


class Dataset:
    """All records of one kind: exactly `count` created in [start, end), then live ones."""

    def __init__(
        self,
        kind: str,
        factory: Factory,
        *,
        seed: int,
        count: int,
        start: int,
        end: int,
        live_from: int | None,
        marketplaces: tuple[str, ...],
    ) -> None:
        self.kind = kind
        self._factory = factory
        self._rng = random.Random(f"{seed}:{kind}")
        self._marketplaces = marketplaces
        self._ids: set[str] = set()
        self.records: list[Record] = []
        self.by_id: dict[str, Record] = {}
        self._created_keys: list[tuple[int, str]] = []
        self._versions: list[tuple[int, str, Record, int]] = []
        self._version_keys: list[tuple[int, str]] = []
        self._generated_until = end
        self._live_from = live_from
        self._burst = BURST_CHANCE[kind]
        self._scale = 0.0
        self._raw = 0.0
        self._seed_initial(count, start, end)

    # -- generation ---------------------------------------------------------------------------

    def _slot_size(self, remaining: int | None) -> int:
        size = self._rng.randint(*BURST_SIZE) if self._rng.random() < self._burst else 1
        return size if remaining is None else min(size, remaining)

    def _seed_initial(self, count: int, start: int, end: int) -> None:
        """Spread exactly `count` records over [start, end) with the same gap process as live."""
        slots: list[tuple[float, int]] = []
        raw, made = 0.0, 0
        while made < count:
            size = self._slot_size(count - made)
            slots.append((raw, size))
            made += size
            raw += self._rng.expovariate(1.0)
        if not slots:
            return
        self._scale = max(end - start, 1) / raw
        new: list[Record] = []
        for raw_t, size in slots:
            self._make_slot(start + int(raw_t * self._scale), size, end, new)
        self._raw = raw
        self._insert(new)

    def _make_slot(self, t: int, size: int, limit: int | None, out: list[Record]) -> None:
        """Create `size` records on one second; bursts often land on whole hours or minutes."""
        if size > 1:
            roll = self._rng.random()
            step = 3600 if roll < 0.4 else 60 if roll < 0.7 else 1
            snapped = snap_up(t, step)
            if limit is None or snapped < limit:
                t = snapped
        for _ in range(size):
            market = self._rng.choice(self._marketplaces)
            out.append(self._factory(self._rng, t, market, self._ids))

    def ensure(self, now: float) -> None:
        """Generate live records up to `now` (plus a chunk ahead) when live generation is on."""
        if self._live_from is None or self._scale <= 0 or now < self._generated_until:
            return
        target = math.ceil(now) + CHUNK_SECONDS
        new: list[Record] = []
        base_raw = self._raw
        while True:
            t = self._live_from + int((self._raw - base_raw) * self._scale)
            if t > target:
                break
            self._make_slot(t, self._slot_size(None), None, new)
            self._raw += self._rng.expovariate(1.0)
        # Later chunks continue from where this one stopped.
        self._live_from += int((self._raw - base_raw) * self._scale)
        self._generated_until = target
        self._insert(new)

    def _insert(self, new: list[Record]) -> None:
        if not new:
            return
        for rec in new:
            self.by_id[rec.id] = rec
        self.records.extend(new)
        self.records.sort(key=lambda r: (r.created, r.id))
        self._created_keys = [(r.created, r.id) for r in self.records]
        for rec in new:
            self._versions.extend((v.time, rec.id, rec, i) for i, v in enumerate(rec.versions))
        self._versions.sort(key=lambda e: (e[0], e[1]))
        self._version_keys = [(e[0], e[1]) for e in self._versions]

    # -- queries --------------------------------------------------------------------------------

    def walk_created(
        self, now: float, lo: float, hi: float, after: tuple[int, str] | None
    ) -> Iterator[tuple[Record, int]]:
        """Visible records created in [lo, hi] ordered by (created, id), after a keyset position."""
        start = bisect.bisect_right(self._created_keys, after) if after else 0
        start = max(start, bisect.bisect_left(self._created_keys, (lo,)))
        for i in range(start, len(self.records)):
            rec = self.records[i]
            if rec.created > hi:
                return
            cur = rec.current(now)
            if cur is not None:
                yield rec, cur

    def walk_updated(
        self, now: float, lo: float, hi: float, after: tuple[int, str] | None
    ) -> Iterator[tuple[Record, int]]:
        """Records whose current version's time is in [lo, hi], ordered by (time, id)."""
        start = bisect.bisect_right(self._version_keys, after) if after else 0
        start = max(start, bisect.bisect_left(self._version_keys, (lo,)))
        for i in range(start, len(self._versions)):
            t, _id, rec, idx = self._versions[i]
            if t > hi:
                return
            if rec.current(now) == idx:
                yield rec, idx

    def changes(self, lo: float, hi: float) -> list[tuple[Record, int]]:
        """Every version whose change time is in (lo, hi], visible to queries yet or not (what
        a notification announces), ordered by (time, id)."""
        start = bisect.bisect_left(self._version_keys, (math.floor(lo) + 1,))
        out = []
        for t, _id, rec, idx in self._versions[start:]:
            if t > hi:
                break
            out.append((rec, idx))
        return out

    def ground_truth(
        self, field_name: str, lo: float, hi: float, now: float
    ) -> list[dict[str, Any]]:
        """Every (id, time) version that existed in [lo, hi] by `now`, superseded ones included."""
        out: list[dict[str, Any]] = []
        if field_name == "created":
            start = bisect.bisect_left(self._created_keys, (lo,))
            for rec in self.records[start:]:
                if rec.created > hi:
                    break
                cur = rec.current(now)
                if cur is not None:
                    # A created query returns the record once, in its current version.
                    row = _truth_entry(rec, cur, now, rec.created, cur)
                    out.append(row)
            return out
        start = bisect.bisect_left(self._version_keys, (lo,))
        for t, _id, rec, idx in self._versions[start:]:
            if t > hi:
                break
            if rec.versions[idx].visible_at <= now:
                out.append(_truth_entry(rec, idx, now, t, rec.current(now)))
        return out


def _truth_entry(rec: Record, idx: int, now: float, time: int, cur: int | None) -> dict[str, Any]:
    """One ground-truth row; `idx` is the version the row stands for."""
    versions = rec.versions
    nxt = versions[idx + 1] if idx + 1 < len(versions) else None
    superseded = nxt.visible_at if nxt is not None and nxt.visible_at <= now else None
    return {
        "id": rec.id,
        "version": idx,
        "version_time": time,
        "visible_at": versions[idx].visible_at,
        "superseded_at": superseded,
        "current": cur == idx,
        "status": versions[idx].status,
        "marketplace_id": rec.marketplace,
    }


# -- factories --------------------------------------------------------------------------------

MARKETPLACES: dict[str, dict[str, Any]] = {
    "ATVPDKIKX0DER": {"country": "US", "currency": "USD", "channel": "Amazon.com", "fx": 1.0,
                      "prefixes": ("111", "112", "113", "114")},
    "A2EUQ1WTGCTBG2": {"country": "CA", "currency": "CAD", "channel": "Amazon.ca", "fx": 1.35,
                       "prefixes": ("701", "702")},
    "A1AM78C64UM0Y8": {"country": "MX", "currency": "MXN", "channel": "Amazon.com.mx", "fx": 17.0,
                       "prefixes": ("701", "702")},
    "A1F83G8C2ARO7P": {"country": "GB", "currency": "GBP", "channel": "Amazon.co.uk", "fx": 0.8,
                       "prefixes": ("202", "203", "204", "205", "206")},
    "A1PA6795UKMFR9": {"country": "DE", "currency": "EUR", "channel": "Amazon.de", "fx": 0.92,
                       "prefixes": ("302", "303", "304", "305", "306")},
    "A1VC38T7YXB528": {"country": "JP", "currency": "JPY", "channel": "Amazon.co.jp", "fx": 150.0,
                       "prefixes": ("249", "250", "503")},
}
PRODUCTS = (
    ("B08N5WRWNW", "Echo Dot (4th Gen) Smart speaker with Alexa, Charcoal", 49.99),
    ("B07XJ8C8F5", "Fire TV Stick 4K with Alexa Voice Remote", 49.99),
    ("B0BSHF7WHW", "Stainless Steel Insulated Water Bottle, 32 oz", 24.95),
    ("B09B8V1LZ3", "Organic Cotton Bath Towel Set, 6 Piece", 39.99),
    ("B07FZ8S74R", "Smart Plug, Works with Alexa, 2-Pack", 19.99),
    ("B08KTZ8249", "Wireless Earbuds with Charging Case", 79.0),
    ("B0C1H26C46", "Cast Iron Skillet, 12 inch, Pre-Seasoned", 34.5),
    ("B01N5IB20Q", "USB-C Charging Cable, 6 ft, 3-Pack", 12.99),
    ("B07PXGQC1Q", "Yoga Mat, Non-Slip, 6mm", 29.99),
    ("B09JQMJHXY", "LED Desk Lamp with Wireless Charger", 45.89),
    ("B0B7BP6CJN", "Ceramic Pour-Over Coffee Dripper", 22.0),
    ("B08L5NP6NG", "Kids' Building Blocks Set, 500 Pieces", 31.49),
)
CITIES = (
    ("SEATTLE", "WA", "98121"), ("AUSTIN", "TX", "78701"), ("DENVER", "CO", "80202"),
    ("BOSTON", "MA", "02110"), ("CANTON", "MI", "48187"), ("PHOENIX", "AZ", "85004"),
)
NAMES = ("Jane Doe", "John Smith", "Maria Garcia", "Wei Chen", "Aisha Khan", "Lars Berg")
LEVELS = (("Std US D2D Dom", "Standard"), ("Expedited US Dom", "Expedited"),
          ("Next US D2D Dom", "NextDay"), ("Second US D2D Dom", "SecondDay"))
FULFILLMENT_CENTERS = ("PHX7", "SDF8", "ONT8", "BFI4", "MDW2", "TPA1", "AVP1")
VENDOR_CODES = ("SPDV1", "SPDV2")
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


def _unique(rng: random.Random, ids: set[str], make: Callable[[], str]) -> str:
    while True:
        new = make()
        if new not in ids:
            ids.add(new)
            return new


def order_factory(delay: int) -> Factory:
    """Orders whose versions become visible up to `delay` seconds after their time."""

    def make(rng: random.Random, t0: int, market: str, ids: set[str]) -> Record:
        info = MARKETPLACES.get(market, MARKETPLACES["ATVPDKIKX0DER"])
        oid = _unique(rng, ids, lambda: f"{rng.choice(info['prefixes'])}-"
                      f"{rng.randint(0, 9999999):07d}-{rng.randint(0, 9999999):07d}")
        attrs = _order_attrs(rng, info)
        versions: list[Version] = []
        _order_lifecycle(rng, t0, attrs, versions, delay)
        return Record(oid, t0, market, attrs, versions)

    return make


def _order_attrs(rng: random.Random, info: dict[str, Any]) -> dict[str, Any]:
    lines = []
    for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 4)):
        asin, title, price = rng.choice(PRODUCTS)
        lines.append({"asin": asin, "title": title, "sku": f"SKU-{asin[-6:]}",
                      "qty": 1 if rng.random() < 0.8 else rng.randint(2, 3),
                      "price": round(price * info["fx"], 0 if info["fx"] > 100 else 2),
                      "item_id": f"{rng.randint(10**13, 10**14 - 1)}"})
    city, state, postal = rng.choice(CITIES)
    level, category = rng.choice(LEVELS)
    return {
        "afn": rng.random() < 0.35, "lines": lines, "currency": info["currency"],
        "channel": info["channel"], "country": info["country"], "level": level,
        "category": category, "prime": rng.random() < 0.5, "business": rng.random() < 0.1,
        "preorder": rng.random() < 0.02, "buyer": rng.choice(NAMES),
        "email": f"{rng.randint(10**9, 10**10):x}@marketplace.amazon.com",
        "city": city, "state": state, "postal": postal,
        "street": f"{rng.randint(1, 9999)} {rng.choice(('Main St', 'Pine Ave', 'Oak Rd'))}",
    }


def _order_lifecycle(
    rng: random.Random, t0: int, attrs: dict[str, Any], versions: list[Version], delay: int
) -> None:
    """Pending → Unshipped → (PartiallyShipped) → Shipped, or Canceled; ship confirmations
    of seller-fulfilled orders are often batched on whole hours."""
    qty = sum(line["qty"] for line in attrs["lines"])
    add_version(versions, rng, t0, delay, "PendingAvailability" if attrs["preorder"] else "Pending",
                shipped=0)
    t = t0
    if attrs["preorder"]:
        t += rng.randint(86400, 3 * 86400)
        add_version(versions, rng, t, delay, "Pending", shipped=0)
    if rng.random() < 0.06:
        add_version(versions, rng, t + rng.randint(300, 6 * 3600), delay, "Canceled", shipped=0)
        return
    t += rng.randint(60, 1800)
    add_version(versions, rng, t, delay, "Unshipped", shipped=0)
    if qty > 1 and rng.random() < 0.15:
        t += rng.randint(3600, 20 * 3600)
        add_version(versions, rng, t, delay, "PartiallyShipped", shipped=1)
    t += rng.randint(3600, 48 * 3600)
    if not attrs["afn"] and rng.random() < 0.5:
        t = snap_up(t, 3600)
    add_version(versions, rng, t, delay, "Shipped", shipped=qty)


def po_factory(rng: random.Random, t0: int, market: str, ids: set[str]) -> Record:
    """A vendor purchase order: New → Acknowledged → (changed by Amazon) → (Closed)."""
    number = _unique(rng, ids, lambda: "".join(rng.choices(_ALNUM, k=8)))
    info = MARKETPLACES.get(market, MARKETPLACES["ATVPDKIKX0DER"])
    items = []
    for seq in range(1, rng.randint(1, 8) + 1):
        asin, _title, price = rng.choice(PRODUCTS)
        cases = rng.random() < 0.5
        items.append({"seq": str(seq), "asin": asin, "ean": f"{rng.randint(10**12, 10**13 - 1)}",
                      "amount": rng.randint(1, 40), "unit": "Cases" if cases else "Eaches",
                      "size": rng.choice((6, 12, 24)) if cases else 1,
                      "cost": round(price * info["fx"] * 0.55, 2),
                      "list": round(price * info["fx"], 2), "backorder": rng.random() < 0.3})
    attrs = {
        "vendor": rng.choice(VENDOR_CODES), "fc": rng.choice(FULFILLMENT_CENTERS),
        "type": rng.choices(("RegularOrder", "RushOrder", "NewProductIntroduction"), (90, 5, 5))[0],
        "currency": info["currency"], "items": items, "deal": rng.random() < 0.1,
    }
    versions: list[Version] = []
    add_version(versions, rng, t0, 0, "New", changed=None, state_changed=t0, cut=None)
    # Each version's own time is also what the fallback chain purchaseOrderChangedDate →
    # purchaseOrderStateChangedDate → purchaseOrderDate yields, so cursors match the filter.
    if rng.random() < 0.9:
        t = t0 + rng.randint(1800, 36 * 3600)
        add_version(versions, rng, t, 0, "Acknowledged", changed=None, state_changed=t, cut=None)
        changed = None
        if rng.random() < 0.25:
            t += rng.randint(3600, 48 * 3600)
            changed = t
            acked = versions[-1].extra["state_changed"]
            add_version(versions, rng, t, 0, "Acknowledged", changed=t, state_changed=acked,
                        cut=rng.randrange(len(items)))
        if rng.random() < 0.6:
            t += rng.randint(2 * 86400, 10 * 86400)
            add_version(versions, rng, t, 0, "Closed", changed=t if changed else None,
                        state_changed=t, cut=versions[-1].extra["cut"])
    return Record(number, t0, market, attrs, versions)
