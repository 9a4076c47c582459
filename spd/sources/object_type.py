"""An object type: how to poll one operation window by window (DESIGN.md §4), and how an
emitted object gets its id and cursor."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from spd.core.paths import dig
from spd.core.times import normalize_timestamp

TimestampField = str | tuple[str, ...] | None  # dotted path, or fallbacks tried in order
CONTENT_HASH_PREFIX = "sha256:"  # the id of an object without one (content_hash)


@dataclass(frozen=True)
class ObjectType:
    """How to poll one operation window by window (see DESIGN.md §4)."""

    name: str  # "ordersV0.getOrders"
    api: str
    operation: str
    created_bounds: tuple[str, str | None] | None  # (after_param, before_param or None)
    updated_bounds: tuple[str, str | None] | None
    page_size_param: str | None
    page_size_max: int | None
    token_param: str
    token_path: tuple[str, ...]
    results_path: tuple[str, ...]
    id_field: str | None  # dotted path; None -> stable content hash of the object
    created_field: TimestampField  # the object's own timestamps (the cursor)
    updated_field: TimestampField
    max_window: timedelta | None
    lag: timedelta  # upper bounds must be at least this far in the past
    # "created"/"updated" -> response path of the upper bound the API applied (a dict: not hashed)
    echo_before: dict[str, tuple[str, ...]] | None = field(hash=False)
    marketplace_param: str | None
    token_alone: bool  # next-page requests carry only the token (and marketplace_param)
    aliases: tuple[str, ...]
    supported: bool
    max_age: timedelta | None = None  # how far back the API reaches (start_time clamp)
    kind: str = "operation"  # "operation" | "report" (report:TYPE, see spd.reports)
    single_marketplace: bool = False  # marketplace_param takes one id: fan out per marketplace
    fixed_params: tuple[tuple[str, Any], ...] = ()  # always sent; "{marketplace}" is replaced
    token_params: tuple[tuple[str, Any], ...] = ()  # sent with a next token (instead of fixed)
    needs_params: tuple[str, ...] = ()  # the poller's `params` must give these
    field_needs: tuple[tuple[str, tuple[str, ...]], ...] = ()  # the same, by timestamp_field
    flatten: str | None = None  # hook turning the result object into a list (financial events)
    includes: tuple[str, ...] = ()  # what `include:` may name ("items" for Orders v0)
    token_ttl: timedelta | None = None  # how long a next token lives, where Amazon says so
    # (timestamp_field, "after"/"before", inclusive or None when Amazon does not say), from the
    # contract table (spd.catalog.contract): what the bounds mean is Amazon's, not a choice of spd's
    inclusive: tuple[tuple[str, str, bool | None], ...] = ()

    def has_upper_bound(self, timestamp_field: str) -> bool:
        """Whether the `timestamp_field` filter takes an upper bound; if not, the API returns
        everything since the lower bound and the new watermark is the request time - lag."""
        bounds = self.created_bounds if timestamp_field == "created" else self.updated_bounds
        return bool(bounds and bounds[1])

    def needs(self, timestamp_field: str) -> tuple[str, ...]:
        """The parameters a poller by `timestamp_field` must be given in `params`."""
        extra = [names for name, names in self.field_needs if name == timestamp_field]
        return self.needs_params + tuple(n for names in extra for n in names)

    def boundary_overlap(self, timestamp_field: str) -> bool:
        """Whether consecutive windows must overlap by an instant: neither the lower bound nor
        the upper one (or the request time, without one) is said to include its own instant."""
        ends = {end: inc for name, end, inc in self.inclusive if name == timestamp_field}
        return "after" in ends and ends["after"] is not True and ends.get("before") is not True

    def timestamp_fields(self) -> list[str]:
        """The `timestamp_field` values a poller may use: "created" and/or "updated"."""
        return [name for name, bounds in (("created", self.created_bounds),
                                          ("updated", self.updated_bounds)) if bounds]


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
    if obj_type.id_field:
        value = dig(obj, obj_type.id_field)
        if value is not None and not isinstance(value, (dict, list)):
            return str(value)
    return content_hash(obj)


def object_cursor(obj_type: ObjectType, obj: dict[str, Any], timestamp_field: str) -> str | None:
    """The object's own created/updated time (first present fallback), UTC `...Z`, or None."""
    spec = obj_type.created_field if timestamp_field == "created" else obj_type.updated_field
    for path in (spec,) if isinstance(spec, str) else (spec or ()):
        cursor = normalize_timestamp(dig(obj, path))
        if cursor is not None:
            return cursor
    return None
