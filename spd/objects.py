"""The registry of pollable object types (DESIGN.md §4).

An object type is a catalog operation that filters on a creation or update time and pages with
a token. What the catalog shows is derived; what the models say only in prose is declared in
the `TYPES` table of `spd.object_types`. Only types marked `supported` there can be polled.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from spd.catalog import contract
from spd.catalog.model import Catalog, Operation, bundle_schema, load_catalog
from spd.core.times import format_ts, is_canonical_ts
from spd.core.errors import CatalogError, UsageError
from spd.object_hooks import SCHEMAS
from spd.object_types import TYPES

TimestampField = str | tuple[str, ...] | None  # dotted path, or fallbacks tried in order
MARKETPLACE_PARAMS = ("MarketplaceIds", "marketplaceIds", "MarketplaceId", "marketplaceId")
_PAGE_SIZE = re.compile(r"(?i)^(max_?results(_?per_?page)?|page_?size|limit|max_?result_?count)$")
_CREATED = re.compile(r"(?i)^((?:label)?created|posted)(after|since)$")
_UPDATED = re.compile(r"(?i)^((?:last)?updated|changed|\w*modified)(after|since)$")
_BEFORE = {"after": "before", "since": "until"}
_CREATED_FIELD = re.compile(r"(?i)^(creat(e|ed|ion)|posted)_?(at|time|date|datetime)?$")
_UPDATED_FIELD = re.compile(r"(?i)^(last_?)?(update|updated|changed|modified)_?(at|time|date|datetime)?$")


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


def display_name(title: str, version: str, operation: str) -> str:
    """The original component's name: "Retail Procurement Orders v1 getPurchaseOrders"."""
    title = title.strip().rstrip(".").strip()
    title = re.sub(r"^The\s+", "", title)
    title = re.sub(r"^Selling Partner APIs? for\s+", "", title)
    return f"{title} {version} {operation}"


def _bounds(op: Operation, pattern: re.Pattern[str]) -> tuple[str, str | None] | None:
    query = [p.name for p in op.params if p.location == "query"]
    for name in query:
        match = pattern.match(name)
        if match:
            suffix = match.group(2)
            before = name[: -len(suffix)] + _BEFORE[suffix.lower()].capitalize()
            return name, before if before in query else None
    return None


def _resolve(schema: Any, defs: dict[str, Any]) -> dict[str, Any]:
    for _ in range(20):  # follow $ref chains, never loop forever
        if not (isinstance(schema, dict) and "$ref" in schema):
            break
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema if isinstance(schema, dict) else {}


def _properties(schema: Any, defs: dict[str, Any]) -> dict[str, Any]:
    schema = _resolve(schema, defs)
    props = dict(schema.get("properties") or {})
    for part in schema.get("allOf") or ():
        props.update(_properties(part, defs))
    return props


def item_schema(op: Operation, results_path: tuple[str, ...],
                flatten: str | None = None) -> dict[str, Any] | None:
    """The (unresolved) schema of one element of the result array (or of one flattened
    element, see spd.object_hooks), or None."""
    schema: Any = op.response_schema
    for key in results_path:
        schema = _properties(schema, op.definitions).get(key)
        if schema is None:
            return None
    if flatten is not None:
        return SCHEMAS[flatten](schema, lambda s: _resolve(s, op.definitions))
    items = _resolve(schema, op.definitions).get("items")
    return items if isinstance(items, dict) else None


def _guess_fields(op: Operation, results_path: tuple[str, ...]) -> dict[str, Any]:
    """Best-effort id and timestamp fields from the item schema (unsupported types only)."""
    props = _properties(item_schema(op, results_path), op.definitions)
    singular = re.sub(r"ies$", "y", results_path[-1]).rstrip("s").lower()
    by_lower = {name.lower(): name for name in props}
    id_field = next((by_lower[c] for c in (f"{singular}id", f"{singular}number", "id")
                     if c in by_lower), None)
    stamps = [n for n, s in props.items()
              if _resolve(s, op.definitions).get("format") == "date-time"]
    created = next((n for n in stamps if _CREATED_FIELD.match(n)), None)
    updated = next((n for n in stamps if _UPDATED_FIELD.match(n)), None)
    return {"id_field": id_field, "created_field": created, "updated_field": updated}


def _page_size(op: Operation) -> tuple[str | None, int | None]:
    for p in op.params:
        if p.location == "query" and p.type == "integer" and _PAGE_SIZE.match(p.name):
            return p.name, None if p.maximum is None else int(p.maximum)
    return None, None


def _derive(cat: Catalog, op: Operation) -> ObjectType | None:
    """The object type an operation defines, from the catalog alone (not supported)."""
    pag = op.pagination
    results_path = pag.result_path if pag else None
    results_path = results_path or TYPES.get(op.name, {}).get("results_path")
    if pag is None or results_path is None:
        return None
    api = cat.api(op.api)
    size_param, size_max = _page_size(op)
    query = {p.name for p in op.params if p.location == "query"}
    market = next((m for m in MARKETPLACE_PARAMS if m in query), None)
    return ObjectType(
        name=op.name, api=op.api, operation=op.id,
        created_bounds=_bounds(op, _CREATED), updated_bounds=_bounds(op, _UPDATED),
        page_size_param=size_param, page_size_max=size_max, token_param=pag.token_param,
        token_path=pag.token_path, results_path=results_path,
        **_guess_fields(op, results_path), max_window=None, lag=timedelta(0),
        echo_before=None, marketplace_param=market,
        token_alone=False, aliases=(display_name(api.title, api.version, op.id),),
        supported=False, single_marketplace=_single(op.param(market)) if market else False)


def _single(param: Any) -> bool:
    """A marketplace parameter that takes one id: a string, or an array of at most one."""
    return param.type != "array" or param.max_items == 1


def _inclusive(name: str) -> tuple[tuple[str, str, bool | None], ...]:
    return tuple((field_name, end, bound.inclusive) for field_name, ends in contract.bounds(name).items()
                 for end, (_, bound) in sorted(ends.items()))


def _check(ot: ObjectType, op: Operation) -> None:
    """Every parameter the type names must exist in the operation (catches model drift)."""
    names = {p.name for p in op.params}
    wanted = [ot.page_size_param, ot.marketplace_param, ot.token_param, *ot.needs_params,
              *(n for _, names in ot.field_needs for n in names)]
    wanted += [name for name, _ in ot.fixed_params + ot.token_params]
    for bounds in (ot.created_bounds, ot.updated_bounds):
        wanted.extend(bounds or ())
    missing = [n for n in wanted if n is not None and n not in names]
    if missing:
        raise ValueError(f"object type {ot.name}: operation has no parameter {missing}")


def build_registry(cat: Catalog) -> dict[str, ObjectType]:
    """Every pollable object type of a catalog, by canonical name."""
    valid = {f.name for f in fields(ObjectType)}
    registry: dict[str, ObjectType] = {}
    for op in cat.operations():
        ot = _derive(cat, op)
        if ot is None:
            continue
        override = TYPES.get(ot.name, {})
        unknown = set(override) - valid
        if unknown:
            raise ValueError(f"TYPES[{ot.name!r}] has unknown keys {sorted(unknown)}")
        ot = replace(ot, **override, inclusive=_inclusive(ot.name))
        if ot.created_bounds or ot.updated_bounds:
            _check(ot, op)
            registry[ot.name] = ot
    aliases = [a for ot in registry.values() for a in ot.aliases]
    if len(set(aliases)) != len(aliases) or set(aliases) & set(registry):
        raise ValueError("object type aliases are not unique")
    missing = set(TYPES) - set(registry)
    if missing:
        raise ValueError(f"TYPES names operations that are not pollable: {sorted(missing)}")
    return registry


_REGISTRY: dict[str, ObjectType] | None = None


def _registry() -> dict[str, ObjectType]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry(load_catalog())
    return _REGISTRY


def object_types() -> list[ObjectType]:
    """Every known object type (supported or not), by name."""
    return [ot for _, ot in sorted(_registry().items())]


def _normal(name: str) -> str:
    return " ".join(name.split()).lower()


def resolve_object_type(name: str) -> ObjectType:
    """The object type called `name` (canonical or alias); UnknownObjectType (a KeyError) if none."""
    registry = _registry()
    if name in registry:
        return registry[name]
    for ot in registry.values():
        if name in ot.aliases or _normal(name) in {_normal(a) for a in ot.aliases}:
            return ot
    if name.startswith("report:"):
        return _resolve_report(name)
    choices = sorted(registry) + sorted(a for ot in registry.values() for a in ot.aliases)
    close = difflib.get_close_matches(name, choices, n=4, cutoff=0.5)
    supported = ", ".join(ot.name for ot in object_types() if ot.supported)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UnknownObjectType(f"unknown object type {name!r}; {hint}supported: {supported} "
                            "(see `spd objects`)")


def _resolve_report(name: str) -> ObjectType:
    """`report:TYPE` names belong to spd.reports (loaded lazily, absent in some builds)."""
    try:
        from spd.reports.registry import resolve_report_type  # type: ignore[import-not-found]
    except ImportError:
        raise UnknownObjectType(f"object type {name!r}: report object types are not "
                                "supported in this version") from None
    try:
        return resolve_report_type(name)
    except UnknownObjectType:
        raise
    except KeyError as exc:
        raise UnknownObjectType(str(exc.args[0]) if exc.args else name) from None


def next_page_params(op: Operation, params: dict[str, Any], token: str) -> dict[str, Any]:
    """A next page's parameters: the same ones and the token, or, where the registry declares
    the token alone, the token with what every request must carry (path and header parameters,
    required ones) and the type's `token_params` (QueryType=NEXT_TOKEN)."""
    assert op.pagination is not None
    ot = _registry().get(op.name)
    if ot is None or not ot.token_alone:
        return {**params, op.pagination.token_param: token}
    kept = {k: v for k, v in params.items() if (p := op.param(k)) is not None
            and (p.location in ("path", "header") or p.required)}
    return {**kept, **dict(ot.token_params), op.pagination.token_param: token}


def dig(obj: Any, path: str | tuple[str, ...]) -> Any:
    """The value at a dotted path (or key tuple) in nested dicts, or None; a numeric key
    indexes a list ("summaries.0.createdDate")."""
    for key in path.split(".") if isinstance(path, str) else path:
        if isinstance(obj, list) and key.isdigit():
            obj = obj[int(key)] if int(key) < len(obj) else None
        elif isinstance(obj, dict):
            obj = obj.get(key)
        else:
            return None
    return obj


def content_hash(obj: Any) -> str:
    """A stable id for an object without one: sha256 of its sorted-keys JSON."""
    return "sha256:" + hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()


def object_id(obj_type: ObjectType, obj: dict[str, Any]) -> str:
    """The object's id field, or its content hash when the type (or the object) has none."""
    if obj_type.id_field:
        value = dig(obj, obj_type.id_field)
        if value is not None and not isinstance(value, (dict, list)):
            return str(value)
    return content_hash(obj)


def normalize_timestamp(value: Any) -> str | None:
    """An ISO 8601 timestamp as UTC RFC 3339 with `Z` (naive means UTC); None if unparseable."""
    if not isinstance(value, str) or not value.strip():
        return None
    if is_canonical_ts(value):
        return value
    try:
        ts = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    return format_ts(ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc))


def object_cursor(obj_type: ObjectType, obj: dict[str, Any], timestamp_field: str) -> str | None:
    """The object's own created/updated time (first present fallback), UTC `...Z`, or None."""
    spec = obj_type.created_field if timestamp_field == "created" else obj_type.updated_field
    for path in (spec,) if isinstance(spec, str) else (spec or ()):
        cursor = normalize_timestamp(dig(obj, path))
        if cursor is not None:
            return cursor
    return None


def _duration(value: timedelta | None) -> str | None:
    if value is None:
        return None
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _field_spec(spec: TimestampField) -> str | list[str] | None:
    return list(spec) if isinstance(spec, tuple) else spec


def _resolve_for_cli(name: str) -> ObjectType:
    try:
        return resolve_object_type(name)
    except UnknownObjectType as exc:
        raise UsageError(exc.message) from None


def list_object_types() -> list[dict[str, Any]]:
    """`spd objects`: every object type with its timestamp fields (JSON-able)."""
    return [{"name": ot.name, "supported": ot.supported, "timestamp_fields": ot.timestamp_fields(),
             "only": _only(ot), "aliases": list(ot.aliases)} for ot in object_types()]


def _only(ot: ObjectType) -> str | None:
    """Says when a type filters on only one of created/updated, or takes no upper bound."""
    notes = []
    fields_ = ot.timestamp_fields()
    if len(fields_) == 1:
        notes.append(f"{fields_[0]} only")
    open_ended = [f for f in fields_ if not ot.has_upper_bound(f)]
    if open_ended:
        notes.append(f"no upper bound for {'/'.join(open_ended)} (polls from the watermark)")
    return "; ".join(notes) or None


def describe_object_type(name: str) -> dict[str, Any]:
    """`spd objects TYPE`: everything the registry declares about one type (JSON-able)."""
    ot = _resolve_for_cli(name)
    stamps = {}
    for field_name, bounds, spec in (("created", ot.created_bounds, ot.created_field),
                                     ("updated", ot.updated_bounds, ot.updated_field)):
        if bounds:
            stamps[field_name] = {"after_param": bounds[0], "before_param": bounds[1],
                                  "upper_bound": bounds[1] is not None,
                                  "object_field": _field_spec(spec),
                                  "bounds": _bound_text(ot, field_name),
                                  "needs_params": list(ot.needs(field_name)) or None}
    return {
        "name": ot.name, "aliases": list(ot.aliases), "api": ot.api, "operation": ot.operation,
        "supported": ot.supported, "timestamp_fields": stamps,
        "page_size_param": ot.page_size_param, "page_size_max": ot.page_size_max,
        "token_param": ot.token_param, "token_path": ".".join(ot.token_path),
        "token_alone": ot.token_alone, "results_path": ".".join(ot.results_path),
        "id_field": ot.id_field, "max_window": _duration(ot.max_window),
        "lag": _duration(ot.lag), "max_age": _duration(ot.max_age),
        "echo_before": {k: ".".join(v) for k, v in (ot.echo_before or {}).items()} or None,
        "marketplace_param": ot.marketplace_param, "single_marketplace": ot.single_marketplace,
        "only": _only(ot), "kind": ot.kind,
        "fixed_params": dict(ot.fixed_params) or None, "token_params": dict(ot.token_params) or None,
        "needs_params": list(ot.needs_params) or None, "flatten": ot.flatten,
        "includes": list(ot.includes) or None, "token_ttl": _duration(ot.token_ttl),
        "amazon_says": [{"rule": r.kind, "where": r.where, "quote": r.quote, "source": r.source}
                        for r in contract.rules_for(ot.name)] or None,
    }


_INCLUSIVE = {True: "inclusive", False: "exclusive", None: "not stated (spd overlaps windows by 1s)"}


def _bound_text(ot: ObjectType, field_name: str) -> dict[str, str] | None:
    """How Amazon documents each end of a filter: inclusive, exclusive or not stated."""
    ends = {end: inc for name, end, inc in ot.inclusive if name == field_name}
    if not ends:
        return None
    overlap = ot.boundary_overlap(field_name)
    return {end: _INCLUSIVE[inc] if inc is not None or overlap else "not stated"
            for end, inc in sorted(ends.items())}


def object_schema(name: str, cat: Catalog | None = None) -> dict[str, Any]:
    """`spd objects TYPE --schema`: self-contained JSON Schema of one emitted `data` object."""
    ot = _resolve_for_cli(name)
    op = (cat or load_catalog()).operation(ot.api, ot.operation)
    schema = item_schema(op, ot.results_path, ot.flatten)
    if schema is None:
        raise CatalogError(f"object type {ot.name}: the catalog has no schema for "
                           f"{'.'.join(ot.results_path)}")
    return bundle_schema(schema, op.definitions)
