"""The hand-written code spd replaced with libraries (issue 13 item 9), kept only as the peer
`python -m tests.bench parsers` measures the libraries against: the JSON report tokenizer
(spd.sources.reports.formats.JsonRows before ijson) and the request-body validator
(spd.catalog.params.SchemaChecker before jsonschema). Not imported by spd."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from spd.core.http import format_size
from spd.sources.reports import formats
from spd.sources.reports.formats import ReportFormatError, Row

SECTION_KEY = formats.SECTION_KEY
TYPE_NAMES = {"integer": "an integer", "number": "a number", "boolean": "true or false",
              "string": "a string", "array": "an array", "object": "a JSON object"}
MAX_ENUM_SHOWN = 30


def _enum_text(values: Iterable[Any]) -> str:
    shown = [str(v) for v in values]
    more = len(shown) - MAX_ENUM_SHOWN
    text = ", ".join(shown[:MAX_ENUM_SHOWN])
    return text + (f" (and {more} more; see `spd ops`)" if more > 0 else "")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_STRUCTURE = re.compile(r'[\[\]{}",]')
_STRING_END = re.compile(r'["\\]')
_KEY = re.compile(r'^\s*("(?:[^"\\]|\\.)*")\s*:\s*$', re.S)


class HandJsonRows:
    """A JSON document → rows without loading it whole (see the module docstring).

    Items are the text between separators at the "item depth": 1 inside a top-level array; in a
    top-level object 1 for its members and 2 inside an array member (a section)."""

    def __init__(self) -> None:
        self.depth = 0
        self.mode: str | None = None  # "array" | "object"
        self.done = False
        self.in_string = False
        self.escape = False
        self.item_depth = 1
        self.section: str | None = None
        self.parts: list[str] = []  # text of the current item from earlier chunks
        self.parts_len = 0
        self.context: Row = {}  # non-array members of a top-level object
        self.context_len = 0
        self.rows_seen = 0

    def feed(self, text: str) -> list[Row]:
        rows: list[Row] = []
        start = 0  # where the current item's text starts in this chunk
        i, n = 0, len(text)
        while i < n:
            if self.in_string:
                i = self._skip_string(text, i, n)
                continue
            m = _STRUCTURE.search(text, i)
            if m is None:
                if self.mode is None or self.done:
                    self._check_blank(text[i:])
                break
            j = m.start()
            if self.mode is None or self.done:
                self._check_blank(text[i:j])
            start = self._structure(text, j, start, rows)
            i = j + 1
        if self.depth >= self.item_depth and not self.done:
            self.parts.append(text[start:])
            self.parts_len += n - start
            if self.parts_len > formats.MAX_ROW_CHARS:
                raise ReportFormatError(f"JSON document: element {self.rows_seen + 1} is longer "
                                        f"than {format_size(formats.MAX_ROW_CHARS)}; the document is broken")
        return rows

    def close(self) -> list[Row]:
        if not self.done or self.in_string:
            raise ReportFormatError("JSON document is truncated or empty")
        if self.mode == "object" and self.rows_seen == 0 and self.context:
            return [self.context]
        return []

    def _check_blank(self, text: str) -> None:
        if text.strip():
            where = "after the end" if self.done else "before the start"
            raise ReportFormatError(f"JSON document has unexpected text {where}: {text.strip()[:20]!r}")

    def _skip_string(self, text: str, i: int, n: int) -> int:
        if self.escape:
            self.escape = False
            return i + 1
        m = _STRING_END.search(text, i)
        if m is None:
            return n
        if m.group() == "\\":
            if m.start() + 1 >= n:
                self.escape = True
                return n
            return m.start() + 2
        self.in_string = False
        return m.start() + 1

    def _structure(self, text: str, j: int, start: int, rows: list[Row]) -> int:
        """Handles the structural character text[j]; returns where the current item starts."""
        char = text[j]
        if self.done:
            raise ReportFormatError("JSON document has more than one top-level value")
        if char == '"':
            if self.mode is None:
                raise ReportFormatError("JSON document must be an array or an object")
            self.in_string = True
            return start
        if self.mode is None:
            if char not in "[{":
                raise ReportFormatError("JSON document must be an array or an object")
            self.mode = "array" if char == "[" else "object"
            self.depth = 1
            return j + 1
        if char in "[{":
            if self.mode == "object" and self.depth == 1 and char == "[":
                self._open_section(self._take(text, start, j))
                self.depth = self.item_depth = 2
                return j + 1
            self.depth += 1
            return start
        if self.depth == self.item_depth:
            self._finish(self._take(text, start, j), rows)
            start = j + 1
        if char == ",":
            return start
        self.depth -= 1
        if self.depth == 0:
            self.done = True
        elif self.mode == "object" and self.depth == 1 and self.item_depth == 2:
            self.item_depth, self.section = 1, None  # the section array closed
            self.parts, self.parts_len = [], 0
            return j + 1
        return start

    def _take(self, text: str, start: int, j: int) -> str:
        raw = "".join(self.parts) + text[start:j]
        self.parts, self.parts_len = [], 0
        return raw

    def _open_section(self, prefix: str) -> None:
        m = _KEY.match(prefix)
        if m is None:
            raise ReportFormatError("JSON document: malformed member before an array")
        self.section = orjson.loads(m.group(1))

    def _finish(self, raw: str, rows: list[Row]) -> None:
        if not raw.strip():
            return
        try:
            if self.mode == "object" and self.item_depth == 1:  # a non-array member
                self.context_len += len(raw)
                if self.context_len > formats.MAX_ROW_CHARS:
                    raise ReportFormatError("JSON document: its members outside arrays are "
                                            f"longer than {format_size(formats.MAX_ROW_CHARS)} together")
                self.context.update(orjson.loads("{" + raw + "}"))
                return
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ReportFormatError(f"JSON document: invalid element: {exc}") from None
        row = value if isinstance(value, dict) else {"value": value}
        if self.section is not None:
            row[SECTION_KEY] = self.section
        self.rows_seen += 1
        rows.append(row)


class HandSchemaChecker:
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
