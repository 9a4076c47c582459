"""Push parsers that turn decoded report text into rows, a chunk at a time, in bounded memory.

Each parser has `feed(text) -> rows` and `close() -> rows`. Rows are dicts:
- TSV/CSV: the header row gives the keys (Amazon's flat files are TSV without quoting);
- JSON: the elements of a top-level array, or of every array member of a top-level object
  (tagged with `_section`, e.g. `salesAndTrafficByAsin`); an object without arrays is one row;
- XML: the children of the root element (`Message` elements of an `AmazonEnvelope`).
Memory is bounded by the largest row, not by the document, and a row (a TSV/CSV line or
record, a JSON element, an XML element, a JSON document's non-array members together) longer
than MAX_ROW_CHARS fails the document: whatever a server sends, memory stays bounded.
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from typing import Any

import orjson

from spd.core.http import format_size
from spd.core.errors import ApiError

Row = dict[str, Any]
EXTRA_KEY = "_extra"  # values beyond the header's columns, kept rather than dropped
SECTION_KEY = "_section"
# Amazon's rows are a few KB (a flat file line, a settlement row, an XML Message); a row longer
# than this is a broken or hostile document. Fields are bounded by their row.
MAX_ROW_CHARS = 2**20
csv.field_size_limit(max(csv.field_size_limit(), MAX_ROW_CHARS))  # csv's default is 128 KiB


class ReportFormatError(ApiError):
    """The document is not valid in the format it claims or looks like."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=False)


class TextRows:
    """TSV or CSV lines → rows; a CSV record may span lines inside quotes."""

    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter
        self.header: list[str] | None = None
        self.lines = 0  # complete lines read, for messages
        self._pending: list[str] = []  # pieces of an unterminated last line (joined once, linear)
        self._pending_len = 0
        self._record: list[str] = []  # CSV lines of a record still inside quotes
        self._record_len = 0
        self._quotes = 0

    def feed(self, text: str) -> list[Row]:
        if "\n" not in text:
            self._hold(text)
            return []
        lines = text.split("\n")
        if self._pending:
            lines[0] = "".join(self._pending) + lines[0]
            self._pending, self._pending_len = [], 0
        self._hold(lines.pop())
        return self._rows(lines)

    def close(self) -> list[Row]:
        lines = ["".join(self._pending)] if self._pending else []
        self._pending, self._pending_len = [], 0
        rows = self._rows(lines)
        if self._record:
            raise ReportFormatError("CSV document ends inside a quoted field")
        return rows

    def _hold(self, text: str) -> None:
        """Keeps the start of a line until its end arrives, up to MAX_ROW_CHARS."""
        if text:
            self._pending.append(text)
            self._pending_len += len(text)
            self._check(self._pending_len, "line")

    def _check(self, length: int, what: str) -> None:
        if length > MAX_ROW_CHARS:
            raise ReportFormatError(f"report document {what} {self.lines + 1} is longer than "
                                    f"{format_size(MAX_ROW_CHARS)}; the document is broken")

    def _rows(self, lines: list[str]) -> list[Row]:
        records = self._records(lines)
        if self.delimiter == "\t":
            split = [r.split("\t") for r in records]
        else:
            try:
                split = list(csv.reader(records, delimiter=self.delimiter, strict=True))
            except csv.Error as exc:
                raise ReportFormatError(f"CSV document near line {self.lines}: {exc}") from None
        if self.header is None and split:
            self.header = [h.strip().lstrip("\ufeff") for h in split.pop(0)]
        return [self._row(values) for values in split]

    def _records(self, lines: list[str]) -> list[str]:
        """Complete records without line ends; empty lines are skipped."""
        out = []
        for line in lines:
            self._check(len(line), "line")
            self.lines += 1
            line = line[:-1] if line.endswith("\r") else line
            if self.delimiter == "\t":
                if line:
                    out.append(line)
                continue
            self._record.append(line)
            self._record_len += len(line) + 1
            self._check(self._record_len, "record ending on line")
            self._quotes += line.count('"')
            if self._quotes % 2 == 0:  # quotes balanced: the record is complete
                record = "\n".join(self._record)
                self._record, self._record_len, self._quotes = [], 0, 0
                if record:
                    out.append(record)
        return out

    def _row(self, values: list[str]) -> Row:
        header = self.header or []
        n = len(header)
        if len(values) < n:
            values = values + [""] * (n - len(values))
        row: Row = dict(zip(header, values))
        extra = values[n:]
        if any(extra):
            row[EXTRA_KEY] = extra
        return row


_STRUCTURE = re.compile(r'[\[\]{}",]')
_STRING_END = re.compile(r'["\\]')
_KEY = re.compile(r'^\s*("(?:[^"\\]|\\.)*")\s*:\s*$', re.S)


class JsonRows:
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
            if self.parts_len > MAX_ROW_CHARS:
                raise ReportFormatError(f"JSON document: element {self.rows_seen + 1} is longer "
                                        f"than {format_size(MAX_ROW_CHARS)}; the document is broken")
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
                if self.context_len > MAX_ROW_CHARS:
                    raise ReportFormatError("JSON document: its members outside arrays are "
                                            f"longer than {format_size(MAX_ROW_CHARS)} together")
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


class XmlRows:
    """An XML document → one row per child of the root (`Message` in an `AmazonEnvelope`)."""

    def __init__(self) -> None:
        self.parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.root: ET.Element | None = None
        self.since_row = 0  # characters fed since a row last completed: bounds one element
        self.rows_seen = 0

    def feed(self, text: str) -> list[Row]:
        try:
            self.parser.feed(text)
            rows = self._drain()  # the parser hands a syntax error over with the events
        except ET.ParseError as exc:
            raise ReportFormatError(f"XML document: {exc}") from None
        self.since_row = 0 if rows else self.since_row + len(text)
        if self.since_row > MAX_ROW_CHARS:
            raise ReportFormatError(f"XML document: element {self.rows_seen + 1} is longer than "
                                    f"{format_size(MAX_ROW_CHARS)}; the document is broken")
        self.rows_seen += len(rows)
        return rows

    def close(self) -> list[Row]:
        try:
            self.parser.close()
            return self._drain()
        except ET.ParseError as exc:
            raise ReportFormatError(f"XML document: {exc}") from None

    def _drain(self) -> list[Row]:
        rows: list[Row] = []
        for event, elem in self.parser.read_events():  # type: ignore[misc]  # (event, element) pairs
            assert isinstance(elem, ET.Element), event  # start and end events carry elements
            if event == "start":
                self.depth += 1
                if self.depth == 1:
                    self.root = elem
                continue
            self.depth -= 1
            if self.depth == 1 and self.root is not None:
                if self._is_row(elem):
                    value = element_value(elem)
                    rows.append(value if isinstance(value, dict) else {local(elem.tag): value})
                self.root.remove(elem)  # keep memory bounded: the row is converted
        return rows

    def _is_row(self, elem: ET.Element) -> bool:
        if self.root is not None and local(self.root.tag) == "AmazonEnvelope":
            return local(elem.tag) == "Message"
        return True


def local(tag: str) -> str:
    """A tag without its `{namespace}`."""
    return tag.rpartition("}")[2]


def element_value(elem: ET.Element) -> Any:
    """An element as JSON: text, or a dict of children (repeated tags become lists) and @attrs."""
    out: Row = {f"@{local(k)}": v for k, v in elem.attrib.items()}
    repeated: set[str] = set()
    for child in elem:
        key, value = local(child.tag), element_value(child)
        if key not in out:
            out[key] = value
            continue
        if key not in repeated:
            out[key], repeated = [out[key]], repeated | {key}
        out[key].append(value)
    text = (elem.text or "").strip()
    if not out:
        return text
    if text:
        out["#text"] = text
    return out
