"""Report documents that try to break spd (issue 10, item 4): a line, a record, an element that
never ends, a document that trickles in forever. Memory stays bounded (tests/bench/hostile.py
measures it at full size: a 1 GiB line), the report fails with one clear line, and a stop is
honoured between chunks."""

from __future__ import annotations

import asyncio
import gzip
import time

import pytest

import spd.sources.reports.formats as formats
from support.hostile import Harness, Hostile
from spd.sources.reports.document import DocumentStream, parse_bytes
from spd.sources.reports.formats import ReportFormatError
from support.recording import RecordingEmitter

LIMIT = 256 * 2**10


@pytest.fixture
def small_rows(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(formats, "MAX_ROW_CHARS", LIMIT)
    return LIMIT


def feed_until_error(stream: DocumentStream, data: bytes, chunk: int = 64 * 2**10) -> int:
    """Feeds `data` chunk by chunk; returns the bytes fed when ReportFormatError was raised."""
    fed = 0
    with pytest.raises(ReportFormatError) as info:
        for i in range(0, len(data), chunk):
            fed += chunk
            for _ in stream.feed(data[i:i + chunk]):
                pass
        stream.close()
    feed_until_error.message = str(info.value)  # type: ignore[attr-defined]
    return fed


@pytest.mark.parametrize("fmt", ["tsv", "csv"])
def test_a_line_that_never_ends_fails_the_document_once_past_the_limit(small_rows, fmt) -> None:
    sep = "\t" if fmt == "tsv" else ","
    data = f"a{sep}b\n1{sep}2\n".encode() + b"x" * (4 * LIMIT)
    stream = DocumentStream(fmt=fmt)
    fed = feed_until_error(stream, data)
    assert fed <= LIMIT + 2 * 64 * 2**10  # stopped reading right after the limit
    assert feed_until_error.message == "report document line 3 is longer than 256 KiB; the document is broken"


def test_a_csv_record_open_inside_quotes_is_bounded_too(small_rows) -> None:
    data = b'a,b\n1,"' + b"line inside quotes\n" * (LIMIT // 10)
    fed = feed_until_error(DocumentStream(fmt="csv"), data)
    assert fed <= LIMIT + 2 * 64 * 2**10
    assert "record ending on line" in feed_until_error.message


def test_a_csv_field_larger_than_the_csv_module_default_still_parses() -> None:
    big = "z" * 300_000  # csv's own default limit is 131072 characters
    rows = parse_bytes(f'a,b\n1,"{big}"\n'.encode(), fmt="csv")
    assert rows == [{"a": "1", "b": big}]


def test_a_csv_quoting_error_is_a_report_format_error() -> None:
    with pytest.raises(ReportFormatError, match="CSV document near line"):
        parse_bytes(b'a,b\n1,"x"y\n', fmt="csv")


@pytest.mark.parametrize("doc", [
    b'[{"a": "' + b"j" * (4 * LIMIT) + b'"}]',
    b'{"meta": "' + b"m" * (4 * LIMIT) + b'", "rows": []}',
    b"<AmazonEnvelope><Message><x>" + b"q" * (4 * LIMIT) + b"</x></Message></AmazonEnvelope>",
], ids=["json-element", "json-member", "xml-element"])
def test_json_and_xml_elements_are_bounded(small_rows, doc) -> None:
    fed = feed_until_error(DocumentStream(compression="GZIP"), gzip.compress(doc, 1))
    assert fed <= 64 * 2**10 * 2  # the compressed stream is tiny; it was refused on inflating
    assert "longer than 256 KiB" in feed_until_error.message


def test_rows_below_the_limit_are_unaffected(small_rows) -> None:
    line = "v" * (LIMIT - 10)
    rows = parse_bytes(f"a\n{line}\n{line}\n".encode() * 1, fmt="tsv")
    assert rows == [{"a": line}, {"a": line}]


# -- the report poller against the hostile stub ----------------------------------------------


REPORT = {"object": "report:GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL",
          "timestamp_field": "updated"}


async def test_a_report_with_an_endless_line_fails_with_one_recorded_line(tmp_path, small_rows) -> None:
    async with Hostile(mode="report_line", size=16 * LIMIT) as hostile:
        async with Harness(tmp_path, hostile.url, RecordingEmitter("archive"), REPORT) as h:
            with pytest.raises(ReportFormatError):
                await asyncio.wait_for(h.runtime.pollers["p"].run(), 30)
            state = await h.store.get("p")
    assert state.last_error == "report document line 3 is longer than 256 KiB; the document is broken"
    assert state.window_start is None or state.page == 0  # nothing was checkpointed
    assert h.recorder.messages == []


async def test_a_stop_is_honoured_while_a_document_trickles_in(tmp_path) -> None:
    async with Hostile(mode="report_trickle") as hostile:
        async with Harness(tmp_path, hostile.url, RecordingEmitter("archive"), REPORT) as h:
            poller = h.runtime.pollers["p"]
            run = asyncio.ensure_future(poller.run())
            await asyncio.sleep(1.0)  # the document is streaming, with no row complete yet
            assert not run.done()
            stopped_at = time.monotonic()
            poller.stopping.set()
            await asyncio.wait_for(run, 20)
            waited = time.monotonic() - stopped_at
    assert waited < 10  # between two chunks, not at the end of the document (never)
    assert h.recorder.messages == []


async def test_big_rows_make_smaller_pages_so_they_never_pile_up() -> None:
    from spd.sources.reports.document import MAX_PAGE_BYTES, iter_pages, iter_rows

    row = "w" * (600 * 2**10)  # under the row limit, but a hundred of them would be 60 MiB
    data = ("a\n" + f"{row}\n" * 30).encode()

    async def chunks():
        for i in range(0, len(data), 64 * 2**10):
            yield data[i:i + 64 * 2**10]

    stream = DocumentStream(fmt="tsv")
    pages = [page async for page in iter_pages(iter_rows(chunks(), stream), size=100,
                                               consumed=lambda: stream.bytes_out)]
    assert sum(len(p) for p in pages) == 30
    assert max(len(p) for p in pages) * len(row) <= MAX_PAGE_BYTES + 2 * len(row) + 256 * 2**10
