"""`spd ops`: pure functions turning the catalog into JSON-able data for the CLI."""

from __future__ import annotations

from typing import Any

from spd.catalog.model import Catalog, Operation, Param
from spd.core.errors import UsageError


def list_apis(cat: Catalog) -> list[dict[str, Any]]:
    """Every API: id, title, version and operation count."""
    return [{"id": api.id, "title": api.title, "version": api.version,
             "operations": len(api.operations)} for _, api in sorted(cat.apis.items())]


def list_operations(cat: Catalog, api: str) -> list[dict[str, Any]]:
    """Every operation of one API: id, method, path, rate and burst."""
    ops = cat.api(api).operations
    return [{"id": op.id, "method": op.method, "path": op.path, "rate": op.rate,
             "burst": op.burst} for _, op in sorted(ops.items())]


def _param(param: Param) -> dict[str, Any]:
    """A parameter as JSON, leaving out what the model does not say."""
    out: dict[str, Any] = {"name": param.name, "location": param.location,
                           "required": param.required}
    for key in ("type", "format", "items_type", "collection_format", "minimum", "maximum",
                "min_length", "max_length", "min_items", "max_items", "pattern", "default",
                "item_min_length", "item_max_length", "item_pattern"):
        value = getattr(param, key)
        if value is not None:
            out[key] = value
    if param.enum is not None:
        out["enum"] = list(param.enum)
    if param.greedy:
        out["greedy"] = True
    return out


def describe_operation(cat: Catalog, api: str, op: str) -> dict[str, Any]:
    """One operation: parameters, pagination, body, rate limit, grantless and restricted."""
    operation: Operation = cat.operation(api, op)
    pag = operation.pagination
    return {
        "api": operation.api, "id": operation.id, "operation_id": operation.operation_id,
        "method": operation.method, "path": operation.path,
        "params": [_param(p) for p in operation.params],
        "has_body": operation.has_body, "rate": operation.rate, "burst": operation.burst,
        "pagination": None if pag is None else {
            "token_param": pag.token_param, "token_path": ".".join(pag.token_path),
            "result_path": None if pag.result_path is None else ".".join(pag.result_path)},
        "grantless_scope": operation.grantless_scope, "restricted": operation.restricted,
        "sandbox": operation.sandbox, "sandbox_only": operation.sandbox_only,
        "deprecated": operation.deprecated,
        "safe": operation.safe,
    }


def operation_schema(cat: Catalog, api: str, op: str) -> dict[str, Any]:
    """The self-contained JSON Schema of an operation's request body."""
    operation = cat.operation(api, op)
    schema = operation.schema("body")
    if schema is None:
        raise UsageError(f"operation {operation.name} takes no request body")
    return schema


def response_schema(cat: Catalog, api: str, op: str) -> dict[str, Any] | None:
    """The self-contained JSON Schema of an operation's 2xx response, or None."""
    return cat.operation(api, op).schema("response")
