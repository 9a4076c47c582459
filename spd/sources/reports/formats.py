"""Push parsers that turn decoded report text into rows, a chunk at a time, in bounded memory.

Each parser has `feed(text) -> rows` and `close() -> rows`. Rows are dicts:
- TSV/CSV: the header row gives the keys (Amazon's flat files are TSV without quoting);
- JSON (parsed by ijson): the elements of a top-level array, or of every array member of a
  top-level object (tagged with `_section`, e.g. `salesAndTrafficByAsin`); an object without
  arrays is one row;
- XML: the children of the root element (`Message` elements of an `AmazonEnvelope`).
Memory is bounded by the largest row, not by the document, and a row (a TSV/CSV line or
record, a JSON element, an XML element, a JSON document's non-array members together) longer
than MAX_ROW_CHARS fails the document: whatever a server sends, memory stays bounded.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from collections.abc import Generator
from typing import Any

import ijson

from spd.core.http import format_size
from spd.core.errors import ApiError

Row = dict[str, Any]
EXTRA_KEY = "_extra"  # values beyond the header's columns, kept rather than dropped
SECTION_KEY = "_section"
# Amazon's rows are a few KB (a flat file line, a settlement row, an XML Message); a row longer
# than this is a broken or hostile document. Fields are bounded by their row.
MAX_ROW_CHARS = 2**20
csv.field_size_limit(max(csv.field_size_limit(), MAX_ROW_CHARS))  # csv's default is 128 KiB


_IJSON = ijson.get_backend(ijson.backend)  # yajl2_c where its wheel installs: C speed


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


class JsonRows:
    """A JSON document → rows without loading it whole (see the module docstring), parsed by
    ijson (yajl, in C): a top-level array's elements are built in C; in a top-level object the
    member values are watched event by event and each array member's elements built in C.

    Memory: ijson holds no more than the text fed since the last complete row, and more than
    MAX_ROW_CHARS of it without a row fails the document (one element, or the members outside
    arrays together), whatever the server sends."""

    def __init__(self) -> None:
        self.rows: list[Row] = []  # rows the text fed so far completed
        self.rows_seen = 0
        self.since_row = 0  # characters fed since a row last completed
        self.in_array = False  # inside the top-level array or an array member
        self.context: Row = {}  # the members of a top-level object that are not arrays
        self._coro: Any = None

    def feed(self, text: str) -> list[Row]:
        if self._coro is None:
            head = text.lstrip(" \t\r\n\ufeff")
            if not head:
                return []
            self._coro = self._parser(head[0])
        try:
            self._coro.send(text.encode("utf-8"))
        except ijson.JSONError as exc:
            raise ReportFormatError(f"JSON document: {_first_line(exc)}") from None
        rows = self._take_rows()
        self.rows_seen += len(rows)
        self.since_row = 0 if rows else self.since_row + len(text)
        if self.since_row > MAX_ROW_CHARS:
            raise ReportFormatError(self._too_long())
        return rows

    def close(self) -> list[Row]:
        if self._coro is None:
            raise ReportFormatError("JSON document is truncated or empty")
        try:
            self._coro.close()
        except ijson.IncompleteJSONError:
            raise ReportFormatError("JSON document is truncated or empty") from None
        except ijson.JSONError as exc:
            raise ReportFormatError(f"JSON document: {_first_line(exc)}") from None
        rows = self._take_rows()
        if self.rows_seen + len(rows) == 0 and self.context:
            return [self.context]  # an object without arrays is one row
        return rows

    def _take_rows(self) -> list[Row]:
        """The rows completed so far; the list itself stays (ijson's sinks append to it)."""
        rows = self.rows[:]
        self.rows.clear()
        return rows

    def _parser(self, first: str) -> Any:
        """The ijson pipeline for a document starting with `first`."""
        if first == "[":
            self.in_array = True
            return ijson.items_coro(_RowSink(self.rows, None), "item", use_float=True)
        if first == "{":
            members = self._members()
            next(members)  # to its first yield, ready for events
            return ijson.parse_coro(members, use_float=True)
        raise ReportFormatError("JSON document must be an array or an object")

    def _too_long(self) -> str:
        limit = format_size(MAX_ROW_CHARS)
        if self.in_array:
            return f"JSON document: element {self.rows_seen + 1} is longer than {limit}; the document is broken"
        return f"JSON document: its members outside arrays are longer than {limit} together"

    def _members(self) -> Generator[None, Event, None]:
        """The parse events of a top-level object: each member's value is taken whole before
        the next key, so the loop sees only the object's own keys and its end."""
        yield  # the object's start_map
        key = ""
        while True:
            _, kind, value = yield
            if kind == "map_key":
                key = value
            elif kind == "start_array":  # a section: its elements are rows
                self.in_array = True
                items = _IJSON.items_basecoro(_RowSink(self.rows, key), f"{key}.item" if key else "item")
                send = items.send
                while True:  # the hot loop: one event at a time to the C builder
                    event = yield
                    if event[0] == key and event[1] == "end_array":
                        break
                    send(event)
                self.in_array = False
            elif kind == "start_map":
                self.context[key] = yield from _value(kind, value)
            elif kind != "end_map":
                self.context[key] = value


Event = tuple[str, str, Any]


class _RowSink:
    """Where ijson's builders put each complete element: as a row, tagged with its section."""

    def __init__(self, rows: list[Row], section: str | None) -> None:
        self.rows = rows
        self.section = section

    def send(self, value: Any) -> None:
        row = value if isinstance(value, dict) else {"value": value}
        if self.section is not None:
            row[SECTION_KEY] = self.section
        self.rows.append(row)


def _value(kind: str, value: Any) -> Generator[None, Event, Any]:
    """Builds one value from its events, the first (`kind`, `value`) already received."""
    builder = ijson.ObjectBuilder()
    builder.event(kind, value)
    depth = 1
    while depth:
        _, kind, value = yield
        builder.event(kind, value)
        depth += (kind in ("start_map", "start_array")) - (kind in ("end_map", "end_array"))
    return builder.value


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


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
