"""Requests built from the static-sandbox cases of Amazon's model files, and the answers `spd
exec` must print for them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spd.catalog.model import Operation, load_catalog
from .spd import SHARED_MODELS
from .static_sandbox import static_cases


def exec_args(name: str, params: dict[str, str], config: Path, *flags: str) -> list[str]:
    """`spd exec` arguments for "api.operationId" with `-p` pairs, a config and flags."""
    api, operation = name.split(".", 1)
    return ["exec", api, operation, *[a for k, v in params.items() for a in ("-p", f"{k}={v}")],
            "-c", str(config), *flags]


def placeholder(param: Any) -> str:
    """A valid value for a required parameter a case leaves open (any value matches it)."""
    if param.enum:
        return str(param.enum[0])
    kind = param.items_type if param.type == "array" else param.type
    if kind in ("integer", "number"):
        return str(int(param.minimum) if param.minimum is not None else 1)
    if kind == "boolean":
        return "true"
    return "X" * param.min_length if param.min_length else "TEST"


def minimal_body(schema: Any, defs: dict[str, Any]) -> Any:
    """The smallest value a schema accepts: required properties only, placeholder scalars."""
    if not isinstance(schema, dict):
        return {}
    if "$ref" in schema:
        return minimal_body(defs.get(schema["$ref"].rsplit("/", 1)[-1]), defs)
    if "allOf" in schema:
        out: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = minimal_body(part, defs)
            out.update(value if isinstance(value, dict) else {})
        return out
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: minimal_body(props.get(name, {}), defs) for name in schema.get("required") or ()}
    if kind == "array":
        return [minimal_body(schema.get("items"), defs) for _ in range(schema.get("minItems") or 0)]
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "string" and schema.get("format") in ("date-time", "date"):  # formats are checked
        return "2025-01-01T00:00:00Z" if schema["format"] == "date-time" else "2025-01-01"
    if kind == "string":
        return "X" * schema["minLength"] if schema.get("minLength") else "TEST"
    return {}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def case_request(api: str, method: str, path: str, case: dict[str, Any]) -> tuple[Operation, dict[str, Any], Any]:
    """What a user would type for a case: its values, placeholders for the required parameters it
    leaves open, and the smallest valid body when it names none."""
    op = next(o for o in load_catalog().api(api).operations.values() if (o.method, o.path) == (method, path))
    params: dict[str, Any] = {}
    body = None
    for name, spec in ((case.get("request") or {}).get("parameters") or {}).items():
        if isinstance(spec, dict) and "value" in spec:
            value = spec["value"]
        elif spec in ({}, None):
            continue  # matches anything
        else:
            value = spec  # the value written without its wrapper
        param = op.param(name)
        if param is not None and param.location != "body":
            params[name] = [_text(v) for v in value] if isinstance(value, list) else _text(value)
        else:
            body = value
    for param in op.params:
        if param.required and param.location != "body" and param.name not in params:
            params[param.name] = placeholder(param)
    body_param = next((p for p in op.params if p.location == "body"), None)
    if body is None and body_param is not None and body_param.required:
        body = minimal_body(op.body_schema, op.definitions)
    return op, params, body


def expected_output(status: int, case: dict[str, Any]) -> Any:
    """What `spd exec` prints for a case: its response; nothing for a 204 (no content on the wire)."""
    return None if status == 204 else case.get("response")


SUCCESS_CASES = [c for c in static_cases() if 200 <= c[3] < 300] if SHARED_MODELS else []
