"""The registry of pollable object types (DESIGN.md §4).

An object type is a catalog operation that filters on a creation or update time and pages with
a token. What the catalog shows is derived; what the models say only in prose is declared in
the `TYPES` table of `spd.sources.type_table`, part by part. Only types with a row there can be
polled.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import replace
from typing import Any

from spd.catalog import contract
from spd.catalog.model import MARKETPLACE_PARAMS, Catalog, Operation, Param, load_catalog
from spd.core.output import MAX_CANDIDATES, candidates
from spd.sources.hooks import SCHEMAS
from spd.sources.object_type import (Extraction, ObjectType, Paging, Partitioning, UnknownObjectType,
                                     Windowing)
from spd.sources.reports.registry import REPORT_PREFIX, resolve_report_type
from spd.sources.type_table import TYPES, Declared

_PAGE_SIZE = re.compile(r"(?i)^(max_?results(_?per_?page)?|page_?size|limit|max_?result_?count)$")
_CREATED = re.compile(r"(?i)^((?:label)?created|posted)(after|since)$")
_UPDATED = re.compile(r"(?i)^((?:last)?updated|changed|\w*modified)(after|since)$")
_BEFORE = {"after": "before", "since": "until"}
_CREATED_FIELD = re.compile(r"(?i)^(creat(e|ed|ion)|posted)_?(at|time|date|datetime)?$")
_UPDATED_FIELD = re.compile(r"(?i)^(last_?)?(update|updated|changed|modified)_?(at|time|date|datetime)?$")


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
    element, see spd.sources.hooks), or None."""
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
    declared = TYPES.get(op.name)
    results_path = results_path or (declared.extraction.get("results_path") if declared else None)
    if pag is None or results_path is None:
        return None
    api = cat.api(op.api)
    size_param, size_max = _page_size(op)
    query = {p.name for p in op.params if p.location == "query"}
    market = next((m for m in MARKETPLACE_PARAMS if m in query), None)
    return ObjectType(
        name=op.name, api=op.api, operation=op.id,
        window=Windowing(created=_bounds(op, _CREATED), updated=_bounds(op, _UPDATED),
                         inclusive=_inclusive(op.name)),
        paging=Paging(token_param=pag.token_param, token_path=pag.token_path,
                      size_param=size_param, size_max=size_max),
        extraction=Extraction(results_path=results_path, **_guess_fields(op, results_path)),
        partitioning=Partitioning(marketplace_param=market,
                                  per_marketplace=_single(op.param(market)) if market else False),
        aliases=(display_name(api.title, api.version, op.id),))


def declare(ot: ObjectType, row: Declared) -> ObjectType:
    """The derived type completed by its row of the declaration table: now supported."""
    try:
        return replace(
            ot, supported=True, includes=row.includes,
            window=replace(ot.window, **row.window),
            paging=replace(ot.paging, **row.paging),
            extraction=replace(ot.extraction, **row.extraction),
            partitioning=replace(ot.partitioning, **row.partitioning),
            params=replace(ot.params, **row.params))
    except TypeError as exc:  # a key that is not a field of its part
        raise ValueError(f"TYPES[{ot.name!r}]: {exc}") from None


def _single(param: Param | None) -> bool:
    """A marketplace parameter that takes one id: a string, or an array of at most one."""
    return param is not None and (param.type != "array" or param.max_items == 1)


def _inclusive(name: str) -> tuple[tuple[str, str, bool | None], ...]:
    return tuple((field_name, end, bound.inclusive) for field_name, ends in contract.bounds(name).items()
                 for end, (_, bound) in sorted(ends.items()))


def _check(ot: ObjectType, op: Operation) -> None:
    """Every parameter the type names must exist in the operation (catches model drift)."""
    names = {p.name for p in op.params}
    wanted = [ot.paging.size_param, ot.partitioning.marketplace_param, ot.paging.token_param,
              *ot.params.needs, *(n for _, names in ot.params.field_needs for n in names)]
    wanted += [name for name, _ in ot.params.fixed + ot.paging.token_params]
    for bounds in (ot.window.created, ot.window.updated):
        wanted.extend(bounds or ())
    missing = [n for n in wanted if n is not None and n not in names]
    if missing:
        raise ValueError(f"object type {ot.name}: operation has no parameter {missing}")


def pollable(cat: Catalog, op: Operation) -> ObjectType | None:
    """The object type of one operation (declared by its row of TYPES, if any), or None when it
    filters on no creation or update time."""
    ot = _derive(cat, op)
    if ot is None:
        return None
    row = TYPES.get(ot.name)
    if row is not None:
        ot = declare(ot, row)
    if not (ot.window.created or ot.window.updated):
        return None
    _check(ot, op)
    return ot


def build_registry(cat: Catalog) -> dict[str, ObjectType]:
    """Every pollable object type of a catalog, by canonical name."""
    registry: dict[str, ObjectType] = {}
    for op in cat.operations():
        ot = pollable(cat, op)
        if ot is not None:
            registry[ot.name] = ot
    aliases = [a for ot in registry.values() for a in ot.aliases]
    if len(set(aliases)) != len(aliases) or set(aliases) & set(registry):
        raise ValueError("object type aliases are not unique")
    missing = set(TYPES) - set(registry)
    if missing:
        raise ValueError(f"TYPES names operations that are not pollable: {sorted(missing)}")
    return registry


_REGISTRY: dict[str, ObjectType] | None = None
# Types looked up by canonical name before the whole registry was needed (see `_lookup`).
_ONE_BY_ONE: dict[str, ObjectType | None] = {}


def _registry() -> dict[str, ObjectType]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = build_registry(load_catalog())
    return _REGISTRY


def _lookup(name: str) -> ObjectType | None:
    """The type whose canonical name (API.OPERATION) is `name`, or None. Until something needs
    every type (a listing, an alias, an error's suggestions), only the operation's own API is
    read from the catalog: a config's pollers cost their APIs, not all 66."""
    if _REGISTRY is not None:
        return _REGISTRY.get(name)
    if name not in _ONE_BY_ONE:
        cat = load_catalog()
        api_id, _, op_id = name.partition(".")
        api = cat.apis.get(api_id)
        op = api.operations.get(op_id) if api is not None else None
        _ONE_BY_ONE[name] = pollable(cat, op) if op is not None else None
    return _ONE_BY_ONE[name]


def object_types() -> list[ObjectType]:
    """Every known object type (supported or not), by name."""
    return [ot for _, ot in sorted(_registry().items())]


def _normal(name: str) -> str:
    return " ".join(name.split()).lower()


def resolve_object_type(name: str) -> ObjectType:
    """The object type called `name` (canonical or alias); UnknownObjectType (a KeyError) if none."""
    found = _lookup(name)
    if found is not None:
        return found
    if name.startswith(REPORT_PREFIX):  # no alias starts so: they are the APIs' display names
        return resolve_report_type(name)
    registry = _registry()
    for ot in registry.values():
        if name in ot.aliases or _normal(name) in {_normal(a) for a in ot.aliases}:
            return ot
    choices = sorted(registry) + sorted(a for ot in registry.values() for a in ot.aliases)
    close = candidates(difflib.get_close_matches(name, choices, n=MAX_CANDIDATES, cutoff=0.5))
    count = sum(1 for ot in object_types() if ot.supported)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UnknownObjectType(f"unknown object type {name!r}; {hint}"
                            f"`spd objects` lists the {count} supported types")


def next_page_params(op: Operation, params: dict[str, Any], token: str) -> dict[str, Any]:
    """A next page's parameters: the same ones and the token, or, where the registry declares
    the token alone, the token with what every request must carry (path and header parameters,
    required ones) and the type's `token_params` (QueryType=NEXT_TOKEN)."""
    assert op.pagination is not None
    ot = _lookup(op.name)
    if ot is None or not ot.paging.token_alone:
        return {**params, op.pagination.token_param: token}
    kept = {k: v for k, v in params.items() if (p := op.param(k)) is not None
            and (p.location in ("path", "header") or p.required)}
    return {**kept, **dict(ot.paging.token_params), op.pagination.token_param: token}
