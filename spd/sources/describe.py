"""`spd objects`: the registry's object types as JSON for people and consumers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from spd.catalog import contract
from spd.catalog.model import Catalog, bundle_schema, load_catalog
from spd.core.errors import CatalogError, UsageError
from spd.core.times import format_duration
from spd.sources.object_type import ObjectType, TimestampField, UnknownObjectType
from spd.sources.registry import item_schema, object_types, resolve_object_type


def _duration(value: timedelta | None) -> str | None:
    return None if value is None else format_duration(value)


def _field_spec(spec: TimestampField) -> str | list[str] | None:
    return list(spec) if isinstance(spec, tuple) else spec


def _resolve_for_cli(name: str) -> ObjectType:
    try:
        return resolve_object_type(name)
    except UnknownObjectType as exc:
        raise UsageError(exc.message) from None


def list_object_types() -> list[dict[str, Any]]:
    """`spd objects`: every object type with its timestamp fields (JSON-able)."""
    return [{"name": ot.name, "kind": ot.kind, "supported": ot.supported,
             "timestamp_fields": ot.timestamp_fields(),
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
    win, pag, ext = ot.window, ot.paging, ot.extraction
    stamps = {}
    for field_name in ("created", "updated"):
        bounds = win.bounds(field_name)
        if bounds:
            stamps[field_name] = {"after_param": bounds[0], "before_param": bounds[1],
                                  "upper_bound": bounds[1] is not None,
                                  "object_field": _field_spec(ext.timestamp(field_name)),
                                  "bounds": _bound_text(ot, field_name),
                                  "needs_params": list(ot.needs(field_name)) or None}
    return {
        "name": ot.name, "aliases": list(ot.aliases), "api": ot.api, "operation": ot.operation,
        "supported": ot.supported, "timestamp_fields": stamps,
        "page_size_param": pag.size_param, "page_size_max": pag.size_max,
        "token_param": pag.token_param, "token_path": ".".join(pag.token_path),
        "token_alone": pag.token_alone, "results_path": ".".join(ext.results_path),
        "id_field": ext.id_field, "max_window": _duration(win.max_window),
        "lag": _duration(win.lag), "max_age": _duration(win.max_age),
        "echo_before": {k: ".".join(v) for k, v in win.echo} or None,
        "marketplace_param": ot.partitioning.marketplace_param,
        "single_marketplace": ot.partitioning.per_marketplace,
        "only": _only(ot), "kind": ot.kind,
        "fixed_params": dict(ot.params.fixed) or None, "token_params": dict(pag.token_params) or None,
        "needs_params": list(ot.params.needs) or None, "flatten": ext.flatten,
        "includes": list(ot.include_names()) or None, "token_ttl": _duration(pag.token_ttl),
        "amazon_says": [{"rule": r.kind, "where": r.where, "quote": r.quote, "source": r.source}
                        for r in contract.rules_for(ot.name)] or None,
    }


_INCLUSIVE = {True: "inclusive", False: "exclusive", None: "not stated (spd overlaps windows by 1s)"}


def _bound_text(ot: ObjectType, field_name: str) -> dict[str, str] | None:
    """How Amazon documents each end of a filter: inclusive, exclusive or not stated."""
    ends = {end: inc for name, end, inc in ot.window.inclusive if name == field_name}
    if not ends:
        return None
    overlap = ot.boundary_overlap(field_name)
    return {end: _INCLUSIVE[inc] if inc is not None or overlap else "not stated"
            for end, inc in sorted(ends.items())}


def object_schema(name: str, cat: Catalog | None = None) -> dict[str, Any]:
    """`spd objects TYPE --schema`: self-contained JSON Schema of one emitted `data` object."""
    ot = _resolve_for_cli(name)
    op = (cat or load_catalog()).operation(ot.api, ot.operation)
    schema = item_schema(op, ot.extraction.results_path, ot.extraction.flatten)
    if schema is None:
        raise CatalogError(f"object type {ot.name}: the catalog has no schema for "
                           f"{'.'.join(ot.extraction.results_path)}")
    return bundle_schema(schema, op.definitions)
