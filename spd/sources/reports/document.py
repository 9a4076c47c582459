"""A report document as a stream of rows: gunzip → decode → parse, a chunk at a time.

The encoding is, in order: the content type's charset (Java names such as `Cp1252`, `Shift_JIS`,
`Windows-31J` included), a byte-order mark, UTF-8 when the first bytes are valid non-ASCII UTF-8,
then the marketplace's default (Cp1252 for North America and Europe, Cp932 — the Windows
superset of Shift_JIS — for Japan, UTF-8 elsewhere). The format is the registry's, the content
type's, or sniffed from the first characters. Memory stays bounded by PIECE and the longest row
(at most MAX_ROW_CHARS, see spd.sources.reports.formats).
"""

from __future__ import annotations

import asyncio
import codecs
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from typing import Any

import structlog

from spd.sources.reports.formats import JsonRows, ReportFormatError, Row, TextRows, XmlRows

log = structlog.get_logger("spd.reports")

PIECE = 256 * 1024  # decompressed bytes parsed at a time (a gzip bomb cannot inflate past it)
MAX_PAGE_BYTES = 4 * 2**20  # a page of rows is handed over once they took this much document
GZIP_MAGIC = b"\x1f\x8b"
# Java charset names Amazon uses → Python codecs
CHARSETS = {
    "cp1252": "cp1252", "windows-1252": "cp1252", "iso-8859-1": "latin-1", "iso8859-1": "latin-1",
    "iso8859_1": "latin-1", "latin1": "latin-1", "latin-1": "latin-1", "shift_jis": "shift_jis",
    "shift-jis": "shift_jis", "sjis": "shift_jis", "x-sjis": "shift_jis", "cp932": "cp932",
    "windows-31j": "cp932", "ms932": "cp932", "utf-8": "utf-8", "utf8": "utf-8",
    "utf-16": "utf-16", "utf-16le": "utf-16-le", "utf-16be": "utf-16-be", "euc-jp": "euc_jp",
    "gb18030": "gb18030", "gbk": "gbk",
}
_CP1252_MARKETS = frozenset({
    "ATVPDKIKX0DER", "A2EUQ1WTGCTBG2", "A1AM78C64UM0Y8", "A2Q3Y263D00KWC",  # US CA MX BR
    "A1F83G8C2ARO7P", "A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4",  # UK DE FR IT
    "A1RKKUPIHCS9HS", "A1805IZSGTT6HS", "A2NODRKZP88ZB9", "A1C3SOZRARQ6R3",  # ES NL SE PL
    "AMEN7PMS3EDWL", "A28R8C7NBKEWEA",  # BE IE
})
_MARKET_DEFAULTS = {"A1VC38T7YXB528": "cp932", "AAHKV2X7AFYLW": "gb18030"}  # JP, CN
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
FORMATS = ("tsv", "csv", "json", "xml")


def charset_of(content_type: str | None) -> str | None:
    """The `charset=` of a content type, mapped to a Python codec; None when absent or unknown."""
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "charset":
            return codec_name(value.strip().strip('"'))
    return None


def codec_name(charset: str) -> str | None:
    """A Java or IANA charset name as a Python codec name; None when Python has no such codec."""
    name = CHARSETS.get(charset.lower())
    if name:
        return name
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return None


def marketplace_encoding(marketplace_ids: tuple[str, ...] | list[str]) -> str:
    """The encoding Amazon uses for flat files of these marketplaces (the first that says)."""
    for market in marketplace_ids:
        if market in _MARKET_DEFAULTS:
            return _MARKET_DEFAULTS[market]
        if market in _CP1252_MARKETS:
            return "cp1252"
    return "utf-8"


def format_of(content_type: str | None) -> str | None:
    """The format a content type names, if it names one (text/plain does not)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if "json" in kind:
        return "json"
    if "xml" in kind:
        return "xml"
    if "csv" in kind or "comma" in kind:
        return "csv"
    if "tab-separated" in kind or "tsv" in kind:
        return "tsv"
    return None


def sniff_utf8(data: bytes) -> bool:
    """Non-ASCII bytes that decode as UTF-8 (a cut multi-byte tail allowed)."""
    if data.isascii():
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


class DocumentStream:
    """Push bytes in (`feed`), get row batches out; `close()` at the end checks for truncation."""

    def __init__(self, *, compression: str | None = None, content_type: str | None = None,
                 marketplace_ids: tuple[str, ...] | list[str] = (), fmt: str | None = None) -> None:
        self.compression = (compression or "").upper() or None
        self.declared = charset_of(content_type)
        self.default_encoding = marketplace_encoding(marketplace_ids)
        self.fmt = fmt or format_of(content_type)
        self.encoding: str | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.replaced = 0
        self._head = b""  # compressed bytes held until the gzip magic can be checked
        self._gzip: bool | None = None
        self._z: Any = None
        self._decoder: Any = None
        self._text_head = ""  # decoded text held until the format is known
        self._parser: TextRows | JsonRows | XmlRows | None = None

    def feed(self, chunk: bytes) -> Iterator[list[Row]]:
        """Row batches parsed out of the next downloaded bytes."""
        self.bytes_in += len(chunk)
        if self._gzip is None:
            self._head += chunk
            if len(self._head) < 2:
                return
            chunk, self._head = self._head, b""
            self._gzip = chunk.startswith(GZIP_MAGIC)
            if self._gzip:
                self._z = zlib.decompressobj(wbits=31)
            elif self.compression == "GZIP":
                # e.g. served with Content-Encoding: gzip and already inflated by the client
                log.info("report_document_not_gzipped")
        for piece in self._inflate(chunk):
            rows = self._parse(self._decode(piece, final=False))
            if rows:
                yield rows

    def close(self) -> list[Row]:
        """The last rows; ReportFormatError when the document is truncated."""
        rows: list[Row] = []
        if self._gzip is None and self._head:
            self._gzip = False
            rows += self._parse(self._decode(self._head, final=False))
        if self._gzip and self._z is not None and not self._z.eof:
            raise ReportFormatError("report document is truncated (gzip stream ends early)")
        rows += self._parse(self._decode(b"", final=True))
        if self._parser is None:
            self._start_parser(final=True)
        if self._parser is not None:
            if self._text_head:
                rows += self._parser.feed(self._text_head)
                self._text_head = ""
            rows += self._parser.close()
        if self.replaced:
            log.warning("report_undecodable_bytes", encoding=self.encoding, replaced=self.replaced)
        return rows

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        if not self._gzip:
            for i in range(0, len(data), PIECE):
                yield data[i:i + PIECE]
            return
        while True:
            try:
                out = self._z.decompress(data, PIECE)
            except zlib.error as exc:
                raise ReportFormatError(f"report document is not valid gzip: {exc}") from None
            if out:
                yield out
            if self._z.eof:  # a multi-member gzip file continues with another member
                data = self._z.unused_data
                if not data.strip(b"\0"):
                    return
                self._z = zlib.decompressobj(wbits=31)
                continue
            data = self._z.unconsumed_tail
            if not data and len(out) < PIECE:
                return

    def _decode(self, data: bytes, *, final: bool) -> str:
        self.bytes_out += len(data)
        if self._decoder is None:
            if not data and not final:
                return ""
            self.encoding = self._choose_encoding(data)
            self._decoder = codecs.getincrementaldecoder(self.encoding)(errors="replace")
        text: str = self._decoder.decode(data, final=final)
        if "\ufffd" in text:
            self.replaced += text.count("\ufffd")
        return text

    def _choose_encoding(self, head: bytes) -> str:
        if self.declared:
            return "utf-8-sig" if self.declared == "utf-8" else self.declared
        for bom, name in _BOMS:
            if head.startswith(bom):
                return name
        return "utf-8" if sniff_utf8(head) else self.default_encoding

    def _parse(self, text: str) -> list[Row]:
        if self._parser is None:
            self._text_head += text
            if not self._start_parser(final=False):
                return []
            text, self._text_head = self._text_head, ""
        return self._parser.feed(text) if text and self._parser is not None else []

    def _start_parser(self, *, final: bool) -> bool:
        """Picks the parser once enough text is there to tell the format."""
        head = self._text_head.lstrip("\ufeff \t\r\n")
        fmt = self.fmt
        if fmt is None:
            if not head:
                return False
            if head[0] in "[{":
                fmt = "json"
            elif head[0] == "<":
                fmt = "xml"
            elif "\n" in head or final:
                first = head.split("\n", 1)[0]
                fmt = "tsv" if "\t" in first or "," not in first else "csv"
            else:
                return False
        if fmt not in FORMATS:
            raise ReportFormatError(f"unknown report format {fmt!r}; known: {', '.join(FORMATS)}")
        self.fmt = fmt
        parsers: dict[str, Callable[[], TextRows | JsonRows | XmlRows]] = {
            "tsv": lambda: TextRows("\t"), "csv": lambda: TextRows(","), "json": JsonRows,
            "xml": XmlRows}
        self._parser = parsers[fmt]()
        return True


async def iter_rows(chunks: AsyncIterable[bytes], stream: DocumentStream,
                    check_stop: Callable[[], None] | None = None) -> AsyncIterator[list[Row]]:
    """Row batches of a downloaded document, as its chunks arrive. `check_stop` runs between
    chunks (it raises to abandon the document), and the loop yields to others there, so a
    stop is honoured even while a document brings no complete row."""
    async for chunk in chunks:
        if check_stop is not None:
            check_stop()
        for rows in stream.feed(chunk):
            yield rows
        await asyncio.sleep(0)
    rows = stream.close()
    if rows:
        yield rows


async def iter_pages(batches: AsyncIterable[list[Row]], *, size: int = 100, skip: int = 0,
                     consumed: Callable[[], int] | None = None,
                     max_bytes: int = MAX_PAGE_BYTES) -> AsyncIterator[list[Row]]:
    """Pages of at most `size` rows, after skipping the first `skip` rows (a resumed report).
    With `consumed` (the document bytes parsed so far), a page is handed over early once its
    rows came from `max_bytes` of document: rows of up to MAX_ROW_CHARS must not pile up."""
    page: list[Row] = []
    start = 0
    async for rows in batches:
        if skip:
            dropped = min(skip, len(rows))
            rows, skip = rows[dropped:], skip - dropped
        for row in rows:
            if not page and consumed is not None:
                start = consumed()
            page.append(row)
            if len(page) == size or (consumed is not None and consumed() - start >= max_bytes):
                yield page
                page = []
    if page:
        yield page


def parse_bytes(data: bytes, **kwargs: Any) -> list[Row]:
    """Every row of a whole document held in memory (tests, small documents)."""
    stream = DocumentStream(**kwargs)
    rows = [row for batch in stream.feed(data) for row in batch]
    return rows + stream.close()
