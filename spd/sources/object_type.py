"""An object type: how to poll one operation window by window (DESIGN.md §4), composed of parts
(its window, paging, extraction, partitioning and parameters), and how an emitted object gets
its id and cursor.

Each part is a frozen dataclass that one concern of the pipeline reads: the series loop plans
windows from `Windowing`, a fetch strategy builds requests from `Paging`, `Partitioning` and
`Parameters` and reads replies by `Extraction`. Enrichments (Orders v0 `include: [items]`) and
flatteners (financial events) are hooks registered by name, which a type only names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from spd.core.paths import dig
from spd.core.times import normalize_timestamp

TimestampField = str | tuple[str, ...] | None  # dotted path, or fallbacks tried in order
Bounds = tuple[str, str | None]  # (after_param, before_param or None)
Pairs = tuple[tuple[str, Any], ...]
CONTENT_HASH_PREFIX = "sha256:"  # the id of an object without one (content_hash)


@dataclass(frozen=True)
class Windowing:
    """The time filter: bound parameters, what each bound includes, how long a window may be,
    how far back the API reaches, how far behind now it must stay, and the echoed bound."""

    created: Bounds | None = None
    updated: Bounds | None = None
    # (timestamp_field, "after"/"before", inclusive or None when Amazon does not say), from the
    # contract table (spd.catalog.contract): what the bounds mean is Amazon's, not a choice of spd's
    inclusive: tuple[tuple[str, str, bool | None], ...] = ()
    max_window: timedelta | None = None
    max_age: timedelta | None = None  # how far back the API reaches (start_time clamp)
    lag: timedelta = timedelta(0)  # upper bounds must be at least this far in the past
    # timestamp_field -> response path of the upper bound the API applied
    echo: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def bounds(self, timestamp_field: str) -> Bounds | None:
        """The (after, before) parameters filtering on `timestamp_field`, or None."""
        return self.created if timestamp_field == "created" else self.updated

    def has_upper_bound(self, timestamp_field: str) -> bool:
        """Whether the `timestamp_field` filter takes an upper bound; if not, the API returns
        everything since the lower bound and the new watermark is the request time - lag."""
        bounds = self.bounds(timestamp_field)
        return bool(bounds and bounds[1])

    def boundary_overlap(self, timestamp_field: str) -> bool:
        """Whether consecutive windows must overlap by an instant: neither the lower bound nor
        the upper one (or the request time, without one) is said to include its own instant."""
        ends = {end: inc for name, end, inc in self.inclusive if name == timestamp_field}
        return "after" in ends and ends["after"] is not True and ends.get("before") is not True

    def echo_path(self, timestamp_field: str) -> tuple[str, ...] | None:
        """Where the reply echoes the upper bound applied to `timestamp_field`, or None."""
        return dict(self.echo).get(timestamp_field)

    def timestamp_fields(self) -> list[str]:
        """The `timestamp_field` values a poller may use: "created" and/or "updated"."""
        return [name for name, bounds in (("created", self.created), ("updated", self.updated))
                if bounds]


@dataclass(frozen=True)
class Paging:
    """How pages follow each other: the page size, the next token's parameter and response
    path, and what a next-page request carries."""

    token_param: str
    token_path: tuple[str, ...]
    size_param: str | None = None
    size_max: int | None = None
    token_alone: bool = False  # next-page requests carry only the token (and the marketplace)
    token_params: Pairs = ()  # sent with a next token (instead of the fixed parameters)
    token_ttl: timedelta | None = None  # how long a next token lives, where Amazon says so


@dataclass(frozen=True)
class Extraction:
    """Where a reply holds the objects, and each object's id and timestamps."""

    results_path: tuple[str, ...]
    id_field: str | None = None  # dotted path; None -> stable content hash of the object
    created_field: TimestampField = None  # the object's own timestamps (the cursor)
    updated_field: TimestampField = None
    flatten: str | None = None  # hook turning the result object into a list (spd.sources.hooks)

    def timestamp(self, timestamp_field: str) -> TimestampField:
        """The object's own path(s) for `timestamp_field`."""
        return self.created_field if timestamp_field == "created" else self.updated_field

    def timestamp_paths(self, timestamp_field: str) -> tuple[str, ...]:
        """`timestamp(timestamp_field)` as paths in fallback order; () when it has none."""
        spec = self.timestamp(timestamp_field)
        return (spec,) if isinstance(spec, str) else tuple(spec or ())


@dataclass(frozen=True)
class Partitioning:
    """How marketplaces split the data: the marketplace parameter, and whether it takes one id
    (each marketplace then is its own series with its own watermark)."""

    marketplace_param: str | None = None
    per_marketplace: bool = False


@dataclass(frozen=True)
class Parameters:
    """Parameters besides the window and paging: always sent, or the poller's `params` must
    give them (for every timestamp field, or by one)."""

    fixed: Pairs = ()  # always sent on a first page; "{marketplace}" is replaced
    needs: tuple[str, ...] = ()
    field_needs: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class ObjectType:
    """How to poll one operation window by window (see DESIGN.md §4), part by part."""

    name: str  # "ordersV0.getOrders"
    api: str
    operation: str
    window: Windowing
    paging: Paging
    extraction: Extraction
    partitioning: Partitioning = Partitioning()
    params: Parameters = Parameters()
    # (what `include:` may name, the enrichment hook registered under that name in
    # spd.pipeline.enrich): (("items", "order_items"),) for Orders v0
    includes: tuple[tuple[str, str], ...] = ()
    aliases: tuple[str, ...] = ()
    supported: bool = False
    kind: str = "operation"  # "operation" | "report" (report:TYPE, see spd.sources.reports)

    def has_upper_bound(self, timestamp_field: str) -> bool:
        """See `Windowing.has_upper_bound`."""
        return self.window.has_upper_bound(timestamp_field)

    def boundary_overlap(self, timestamp_field: str) -> bool:
        """See `Windowing.boundary_overlap`."""
        return self.window.boundary_overlap(timestamp_field)

    def timestamp_fields(self) -> list[str]:
        """The `timestamp_field` values a poller may use: "created" and/or "updated"."""
        return self.window.timestamp_fields()

    def needs(self, timestamp_field: str) -> tuple[str, ...]:
        """The parameters a poller by `timestamp_field` must be given in `params`."""
        extra = [names for name, names in self.params.field_needs if name == timestamp_field]
        return self.params.needs + tuple(n for names in extra for n in names)

    def include_names(self) -> tuple[str, ...]:
        """What a poller's `include:` may name."""
        return tuple(name for name, _ in self.includes)


class UnknownObjectType(KeyError):
    """An object type name that is neither a canonical name nor an alias."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def content_hash(obj: Any) -> str:
    """A stable id for an object without one: sha256 of its sorted-keys JSON."""
    return CONTENT_HASH_PREFIX + hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()


def object_id(obj_type: ObjectType, obj: dict[str, Any]) -> str:
    """The object's id field, or its content hash when the type (or the object) has none."""
    id_field = obj_type.extraction.id_field
    if id_field:
        value = dig(obj, id_field)
        if value is not None and not isinstance(value, (dict, list)):
            return str(value)
    return content_hash(obj)


def object_cursor(obj_type: ObjectType, obj: dict[str, Any], timestamp_field: str) -> str | None:
    """The object's own created/updated time (first present fallback), UTC `...Z`, or None."""
    for path in obj_type.extraction.timestamp_paths(timestamp_field):
        cursor = normalize_timestamp(dig(obj, path))
        if cursor is not None:
            return cursor
    return None
