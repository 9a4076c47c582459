"""Checks an operation's parameters and body against the catalog before any request is sent.

`spd exec` and scheduled jobs call `check_request`; every problem is one UsageError line that
says what is allowed. Parameters come as text (`-p NAME=VALUE`) and are converted here; bodies
are checked against the operation's request JSON Schema by spd.catalog.bodies (jsonschema).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from spd.catalog.bodies import TYPE_NAMES, enum_text, number, validate_body
from spd.catalog.model import Operation, Param, close_names
from spd.core.errors import UsageError


def check_request(op: Operation, params: Mapping[str, Any] | None, body: Any,
                  fillable: Iterable[str] = ()) -> dict[str, Any]:
    """Typed parameters for `op` from `params` (strings are converted); UsageError on any problem.
    Required parameters named in `fillable` may still be missing (they are filled in later)."""
    checked = check_params(op, params or {}, fillable)
    check_body(op, body)
    return checked


def parse_pairs(pairs: Iterable[str]) -> dict[str, Any]:
    """`-p NAME=VALUE` options as {name: value}; a repeated name collects a list of values."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name:
            raise UsageError(f"-p {pair!r} is not NAME=VALUE")
        if name in out:
            previous = out[name]
            out[name] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            out[name] = value
    return out


def check_params(op: Operation, params: Mapping[str, Any], fillable: Iterable[str] = ()) -> dict[str, Any]:
    """Unknown names, missing required parameters, then each value's type and limits."""
    label = op.name
    known = {p.name: p for p in op.params if p.location != "body"}
    for name in params:
        if name not in known:
            body = next((p.name for p in op.params if p.location == "body"), None)
            if name == body:
                raise UsageError(f"{label}: {name} is the request body; give it with --body JSON")
            close = close_names(name, list(known))
            hint = (f"did you mean {', '.join(close)}?" if close
                    else f"parameters: {', '.join(known) or 'none'}")
            raise UsageError(f"{label}: unknown parameter {name!r}; {hint}")
    later = set(fillable)
    missing = [p for p in known.values()
               if p.required and params.get(p.name) is None and p.name not in later]
    if missing:
        names = ", ".join(f"{p.name} ({p.location})" for p in missing)
        raise UsageError(f"{label}: missing required parameter {names}; "
                         f"see `spd ops {op.api} {op.id}`")
    return {name: convert_param(label, known[name], value) for name, value in params.items()
            if value is not None}


def convert_param(label: str, param: Param, value: Any) -> Any:
    """One parameter's value converted to its catalog type and checked against its limits."""
    where = f"{label}: parameter {param.name}"
    if param.type == "array":
        items = _as_list(value)
        if param.max_items is not None and len(items) > param.max_items:
            raise UsageError(f"{where} takes at most {param.max_items} values, got {len(items)}")
        if param.min_items is not None and len(items) < param.min_items:
            raise UsageError(f"{where} takes at least {param.min_items} values, got {len(items)}")
        return [_item(where, param, item) for item in items]
    if isinstance(value, list):
        if len(value) != 1:
            raise UsageError(f"{where} takes one value, got {len(value)}")
        value = value[0]
    return _scalar(where, param, param.type, value)


def _as_list(value: Any) -> list[Any]:
    """Arrays: a list, a JSON array, or comma-separated text (each -p value may hold several)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    out: list[Any] = []
    for item in values:
        if isinstance(item, str):
            text = item.strip()
            if text.startswith("["):
                parsed = _json_or_none(text)
                if isinstance(parsed, list):
                    out.extend(parsed)
                    continue
            out.extend(part for part in item.split(",") if part != "")
        else:
            out.append(item)
    return out


def _json_or_none(text: str) -> Any:
    import orjson

    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _scalar(where: str, param: Param, kind: str | None, value: Any) -> Any:
    converted = coerce(where, kind, value)
    allowed = param.enum
    if allowed is not None and converted not in allowed and str(converted) not in map(str, allowed):
        raise UsageError(f"{where} must be one of {enum_text(allowed)}; got {converted!r}")
    if kind in ("integer", "number"):
        if param.minimum is not None and converted < param.minimum:
            raise UsageError(f"{where} must be at least {number(param.minimum)}, got {converted}")
        if param.maximum is not None and converted > param.maximum:
            raise UsageError(f"{where} must be at most {number(param.maximum)}, got {converted}")
    if isinstance(converted, str):
        _check_length(where, converted, param.min_length, param.max_length)
    return converted


def _item(where: str, param: Param, value: Any) -> Any:
    """One element of an array parameter: its type, enum, then the model's item limits."""
    converted = _scalar(where, param, param.items_type, value)
    if isinstance(converted, str):
        _check_length(f"{where} item {converted!r}", converted, param.item_min_length,
                      param.item_max_length)
        if param.item_pattern and not _matches(param.item_pattern, converted):
            raise UsageError(f"{where} item {converted!r} does not match the pattern "
                             f"{param.item_pattern}")
    return converted


def coerce(where: str, kind: str | None, value: Any) -> Any:
    """`value` (text from the command line, or a YAML value) as a `kind` value."""
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise UsageError(f"{where} must be an integer, not {value!r}")
        try:
            return int(value)
        except ValueError:
            raise UsageError(f"{where} must be an integer, not {value!r}") from None
    if kind == "number":
        return _number(where, value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text not in ("true", "false"):
            raise UsageError(f"{where} must be true or false, not {value!r}")
        return text == "true"
    if kind == "object" and isinstance(value, str):
        parsed = _json_or_none(value)
        if not isinstance(parsed, dict):
            raise UsageError(f"{where} must be a JSON object, not {value!r}")
        return parsed
    if isinstance(value, (dict, list)):
        raise UsageError(f"{where} must be {TYPE_NAMES.get(kind or 'string', 'a string')}, "
                         f"not {value!r}")
    return value  # strings (dates pass through as written), and values of untyped parameters


def _number(where: str, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UsageError(f"{where} must be a number, not {value!r}")
    if isinstance(value, (int, float)):
        return value
    try:
        return int(value)  # keeps "10" as 10, not 10.0, on the wire
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"{where} must be a number, not {value!r}") from None


def _check_length(where: str, text: str, low: int | None, high: int | None) -> None:
    if high is not None and len(text) > high:
        raise UsageError(f"{where} must be at most {high} characters, got {len(text)}")
    if low is not None and len(text) < low:
        raise UsageError(f"{where} must be at least {low} characters, got {len(text)}")


# --- request bodies --------------------------------------------------------------------------


def check_body(op: Operation, body: Any) -> None:
    """The body is present when required, absent when the operation takes none, and valid."""
    label = op.name
    param = next((p for p in op.params if p.location == "body"), None)
    if body is None:
        if param is not None and param.required:
            raise UsageError(f"{label}: a request body is required; give it with --body JSON "
                             f"(its schema: `spd ops {op.api} {op.id} --schema`)")
        return
    if not op.has_body:
        raise UsageError(f"{label}: takes no request body; remove --body")
    schema = op.body_schema
    if schema is not None:
        validate_body(body, schema, op.definitions, label)


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:  # an ECMA-only construct Python cannot compile: do not guess
        return True
