"""Checks an operation's parameters and body against the catalog before any request is sent.

`spd exec` and scheduled jobs call `check_request`; every problem is one UsageError line that
says what is allowed. Bodies are checked against the operation's request JSON Schema with a
small validator for the subset the catalog's schemas use (type, required, enum, properties,
items, $ref, allOf, additionalProperties, lengths, ranges, item counts, pattern).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from spd.catalog.model import Operation, Param, close_names
from spd.core.errors import UsageError

TYPE_NAMES = {"integer": "an integer", "number": "a number", "boolean": "true or false",
              "string": "a string", "array": "an array", "object": "a JSON object"}
MAX_ENUM_SHOWN = 30


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
        raise UsageError(f"{where} must be one of {_enum_text(allowed)}; got {converted!r}")
    if kind in ("integer", "number"):
        if param.minimum is not None and converted < param.minimum:
            raise UsageError(f"{where} must be at least {_num(param.minimum)}, got {converted}")
        if param.maximum is not None and converted > param.maximum:
            raise UsageError(f"{where} must be at most {_num(param.maximum)}, got {converted}")
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


def _enum_text(values: Iterable[Any]) -> str:
    shown = [str(v) for v in values]
    more = len(shown) - MAX_ENUM_SHOWN
    text = ", ".join(shown[:MAX_ENUM_SHOWN])
    return text + (f" (and {more} more; see `spd ops`)" if more > 0 else "")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


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
        validate_schema(body, schema, op.definitions, label)


def validate_schema(value: Any, schema: dict[str, Any], definitions: Mapping[str, Any],
                    label: str = "body") -> None:
    """UsageError `<label>: body.a.b: <problem>` for the first place `value` breaks `schema`."""
    problem = SchemaChecker(definitions).check(value, schema, "body")
    if problem is not None:
        raise UsageError(f"{label}: {problem}")


class SchemaChecker:
    """Draft-4 JSON Schema checks for the keywords Amazon's models use; returns the first problem."""

    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self.definitions = definitions

    def check(self, value: Any, schema: Any, path: str) -> str | None:
        if not isinstance(schema, dict):
            return None
        if "$ref" in schema:
            target = self.definitions.get(str(schema["$ref"]).rsplit("/", 1)[-1])
            return self.check(value, target, path) if target is not None else None
        for part in schema.get("allOf") or ():
            problem = self.check(value, part, path)
            if problem:
                return problem
        kind = schema.get("type")
        if kind is not None and not _is_type(value, kind):
            return f"{path}: must be {TYPE_NAMES.get(kind, kind)}, not {_show(value)}"
        if "enum" in schema and value not in schema["enum"]:
            return f"{path}: must be one of {_enum_text(schema['enum'])}; got {_show(value)}"
        if isinstance(value, dict):
            return self._object(value, schema, path)
        if isinstance(value, list):
            return self._array(value, schema, path)
        if isinstance(value, str):
            return _string(value, schema, path)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _range(value, schema, path)
        return None

    def _object(self, value: dict[str, Any], schema: dict[str, Any], path: str) -> str | None:
        props = schema.get("properties") or {}
        missing = [name for name in schema.get("required") or () if name not in value]
        if missing:
            return f"{path}: missing required property {', '.join(missing)}"
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            where = f"{path}.{name}"
            if name in props:
                problem = self.check(item, props[name], where)
            elif extra is False:
                allowed = ", ".join(props) or "none"
                problem = f"{where}: unknown property; allowed: {allowed}"
            elif isinstance(extra, dict):
                problem = self.check(item, extra, where)
            else:
                problem = None
            if problem:
                return problem
        return None

    def _array(self, value: list[Any], schema: dict[str, Any], path: str) -> str | None:
        high, low = schema.get("maxItems"), schema.get("minItems")
        if high is not None and len(value) > high:
            return f"{path}: takes at most {high} items, got {len(value)}"
        if low is not None and len(value) < low:
            return f"{path}: takes at least {low} items, got {len(value)}"
        items = schema.get("items")
        for i, item in enumerate(value):
            problem = self.check(item, items, f"{path}[{i}]")
            if problem:
                return problem
        return None


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    checks = {"string": str, "boolean": bool, "array": list, "object": dict}
    return isinstance(value, checks[kind]) if kind in checks else kind != "null" or value is None


def _string(value: str, schema: dict[str, Any], path: str) -> str | None:
    high, low = schema.get("maxLength"), schema.get("minLength")
    if high is not None and len(value) > high:
        return f"{path}: must be at most {high} characters, got {len(value)}"
    if low is not None and len(value) < low:
        return f"{path}: must be at least {low} characters, got {len(value)}"
    pattern = schema.get("pattern")
    if pattern and not _matches(pattern, value):
        return f"{path}: {_show(value)} does not match the pattern {pattern}"
    return None


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:  # an ECMA-only construct Python cannot compile: do not guess
        return True


def _range(value: float, schema: dict[str, Any], path: str) -> str | None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and (value < low or (schema.get("exclusiveMinimum") and value == low)):
        return f"{path}: must be at least {_num(low)}, got {value}"
    if high is not None and (value > high or (schema.get("exclusiveMaximum") and value == high)):
        return f"{path}: must be at most {_num(high)}, got {value}"
    return None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
