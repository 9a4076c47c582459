"""Request bodies checked against the operation's JSON Schema with `jsonschema` (draft 4, the
draft of Amazon's models), formats included (date-time and date as ISO 8601, email, IP
addresses, regex), every problem reported at once.

Messages name the place in the body (`body.items[0].qty`) and say what is allowed, as the
parameter checks of spd.catalog.params do; problems are sorted by place so a message is stable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from spd.catalog.model import bundle_schema
from spd.core.errors import UsageError

if TYPE_CHECKING:  # jsonschema is imported when a body is first checked (spd's other commands need none)
    from jsonschema import ValidationError
    from jsonschema.protocols import Validator

TYPE_NAMES = {"integer": "an integer", "number": "a number", "boolean": "true or false",
              "string": "a string", "array": "an array", "object": "a JSON object", "null": "null"}
MAX_ENUM_SHOWN = 30
FORMAT_HINTS = {"date-time": " (ISO 8601, such as 2025-01-01T00:00:00Z)", "date": " (such as 2025-01-01)"}


def enum_text(values: Iterable[Any]) -> str:
    """`a, b, c` (at most MAX_ENUM_SHOWN, then how many more)."""
    shown = [str(v) for v in values]
    more = len(shown) - MAX_ENUM_SHOWN
    text = ", ".join(shown[:MAX_ENUM_SHOWN])
    return text + (f" (and {more} more; see `spd ops`)" if more > 0 else "")


def show(value: Any) -> str:
    """A value as Python writes it, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def validate_body(value: Any, schema: dict[str, Any], definitions: Mapping[str, Any],
                  label: str = "body") -> None:
    """UsageError `<label>: body.a: <problem>; body.b: <problem>` naming every place where
    `value` breaks `schema` (whose `$ref`s point into `definitions`)."""
    problems = body_problems(value, schema, definitions)
    if problems:
        raise UsageError(f"{label}: " + "; ".join(problems))


def body_problems(value: Any, schema: dict[str, Any], definitions: Mapping[str, Any]) -> list[str]:
    """Every problem of `value` against `schema`, one `body.PATH: what is wrong` each."""
    validator = make_validator(bundle_schema(schema, dict(definitions)))
    errors = sorted(validator.iter_errors(value), key=lambda e: (_path_key(e), e.validator))
    problems: list[str] = []
    for error in errors:
        for problem in describe(error):
            if problem not in problems:
                problems.append(problem)
    return problems


def make_validator(schema: dict[str, Any]) -> Validator:
    """A draft-4 validator of `schema` that checks formats too (see `iso_date_time`)."""
    from jsonschema import Draft4Validator, FormatChecker  # lazy: ~100 ms only `--body` needs

    checker = FormatChecker(formats=("email", "ipv4", "ipv6", "regex"))
    checker.checks("date-time", raises=ValueError)(iso_date_time)
    checker.checks("date", raises=ValueError)(iso_date)
    return Draft4Validator(schema, format_checker=checker)


def iso_date_time(value: object) -> bool:
    """Amazon's models say `date-time` and its documentation "ISO 8601"; its own examples write
    offsets such as `-07`, which RFC 3339 refuses. So a date-time is what ISO 8601 (as Python
    reads it) accepts, with a time: `2025-13-01T00:00:00Z` and `yesterday` are refused."""
    if not isinstance(value, str):
        return True  # `type` reports it
    datetime.fromisoformat(value)
    return "T" in value.upper() or " " in value


def iso_date(value: object) -> bool:
    """A calendar date, `2025-01-31`; a date-time is let through too (Amazon's own
    createInvoicesExport example sends one where its model says `date`)."""
    if not isinstance(value, str):
        return True
    if len(value) == 10:
        date.fromisoformat(value)
    else:
        iso_date_time(value)
    return True


def place(error: ValidationError) -> str:
    """`body.items[0].sku` for the error's location in the body."""
    text = "body"
    for step in error.absolute_path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}"
    return text


def _path_key(error: ValidationError) -> tuple[tuple[int, str], ...]:
    return tuple((0, f"{s:09d}") if isinstance(s, int) else (1, str(s)) for s in error.absolute_path)


def describe(error: ValidationError) -> list[str]:
    """The error in spd's words (several for additionalProperties: one per unknown name)."""
    where, kw = place(error), str(error.validator)
    want: Any = error.validator_value
    got: Any = error.instance
    if kw == "additionalProperties" and want is False and isinstance(got, dict):
        known = list((error.schema.get("properties") or {}) if isinstance(error.schema, dict) else {})
        allowed = ", ".join(known) or "none"
        return [f"{where}.{name}: unknown property; allowed: {allowed}" for name in got if name not in known]
    if kw == "required" and isinstance(got, dict):
        missing = [name for name in want if name not in got]
        return [f"{where}: missing required property {', '.join(missing)}"]
    words = _WORDS.get(kw)
    return [f"{where}: {words(want, got, error) if words else error.message}"]


def _type(want: Any, got: Any, _: Any) -> str:
    kinds = want if isinstance(want, list) else [want]
    return f"must be {' or '.join(TYPE_NAMES.get(str(k), str(k)) for k in kinds)}, not {show(got)}"


def _minimum(want: Any, got: Any, error: Any) -> str:
    return f"must be {'more than' if error.schema.get('exclusiveMinimum') else 'at least'} {number(want)}, got {got}"


def _maximum(want: Any, got: Any, error: Any) -> str:
    return f"must be {'less than' if error.schema.get('exclusiveMaximum') else 'at most'} {number(want)}, got {got}"


_WORDS: dict[str, Callable[[Any, Any, Any], str]] = {
    "type": _type,
    "enum": lambda want, got, _: f"must be one of {enum_text(want)}; got {show(got)}",
    "maxLength": lambda want, got, _: f"must be at most {want} characters, got {len(got)}",
    "minLength": lambda want, got, _: f"must be at least {want} characters, got {len(got)}",
    "pattern": lambda want, got, _: f"{show(got)} does not match the pattern {want}",
    "minimum": _minimum,
    "maximum": _maximum,
    "maxItems": lambda want, got, _: f"takes at most {want} items, got {len(got)}",
    "minItems": lambda want, got, _: f"takes at least {want} items, got {len(got)}",
    "uniqueItems": lambda want, got, _: "has repeated items; each must be different",
    "multipleOf": lambda want, got, _: f"must be a multiple of {number(want)}, got {got}",
    "format": lambda want, got, _: f"{show(got)} is not a valid {want}{FORMAT_HINTS.get(want, '')}",
}
