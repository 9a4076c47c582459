"""Report pollers: `report:REPORT_TYPE` (a report per window) and, in spd.pipeline.settlements,
getReports with `download: true` (reports Amazon generates itself).

Per window: createReport (dataStartTime/dataEndTime, the account's marketplace, the poller's
`report_options` as reportOptions) → getReport
until DONE, backing off between checks → getReportDocument → stream the document → pages of at
most 100 rows, each checkpointed with next_token "<reportId>:<rows done>", so a crash resumes
inside the same report. FATAL and CANCELLED are recorded (last_error, note) and the window is
retried after a cool-down, never skipped — except that Amazon cancels reports that have no
data, so a window cancelled `CANCELLED_AS_EMPTY` times in a row completes with no rows (noted).
Reports with a reportPeriod option get windows of whole periods (a WEEK runs Sunday to Saturday)
and are requested once a period is over; snapshot reports are requested once per run, without
data times.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import structlog

from spd.catalog.model import load_catalog
from spd.core.retry import Backoff
from spd.core.times import format_ts, parse_ts, utcnow
from spd.core.errors import ApiError, SpdError
from spd.core.typing import Triple
from spd.pipeline.series import Batch, Series, WindowRun
from spd.pipeline.types import RunResult, Window
from spd.pipeline.windows import plan_window
from spd.sources.reports.document import DocumentStream, iter_pages, iter_rows
from spd.sources.reports.formats import Row
from spd.sources.reports.periods import aligned_window, last_day
from spd.sources.reports.registry import (API, PERIOD_OPTION, ReportSpec, report_spec,
                                  report_type_of, row_cursor, row_id)
from spd.state.backend import PollerState

log = structlog.get_logger("spd.reports")

FINISHED = ("DONE", "FATAL", "CANCELLED")
FAILURE_DETAIL_BYTES = 64 * 2**10  # of a FATAL report's document: its explanation is at the top
CANCELLED_AS_EMPTY = 2
PAGE_SIZE = 100


class ReportFailedError(SpdError):
    """A report ended FATAL or CANCELLED, or its window is cooling down before a retry."""

    exit_code = 1
    retriable = True


def parse_token(token: str | None) -> tuple[str | None, int]:
    """("<reportId>", rows done) of a checkpoint token, (None, 0) when there is none."""
    if not token or ":" not in token:
        return None, 0
    report_id, _, done = token.rpartition(":")
    return (report_id, int(done)) if done.isdigit() else (None, 0)


class ReportFetch:
    """The fetch strategy of `report:REPORT_TYPE`; see the module docstring."""

    def __init__(self) -> None:
        self.status_delay = 2.0  # first wait between getReport checks; doubles up to the cap
        self.status_delay_cap = 60.0
        self.cooldown = timedelta(minutes=15)  # before a FATAL/CANCELLED window is retried
        catalog = load_catalog()
        self.ops = {name: catalog.operation(API, name) for name in
                    ("createReport", "getReport", "getReportDocument", "getReports")}

    def plan(self, series: Series, state: PollerState) -> Window | None:
        """Whole reporting periods where the report has a reportPeriod; else the base windows."""
        period = options(series).get(PERIOD_OPTION)
        spec = spec_of(series)
        if period is None or state.window_start is not None or spec.snapshot:
            return plan_window(series, state)
        win, now = series.object_type.window, utcnow()
        oldest = now - win.max_age if win.max_age is not None else None
        found = aligned_window(state.watermark, period, now - win.lag, spec.max_window,
                               spec.span_periods, oldest)
        return None if found is None else Window(found[0], found[1], echo=False)

    async def fetch(self, series: Series, state: PollerState, run: WindowRun,
                    result: RunResult) -> AsyncGenerator[Batch, None]:
        """One report for the window: request (or resume) it, wait, stream its rows."""
        window, end = run.window, run.end
        assert end is not None, "report windows always have an end"
        report_id, done = parse_token(state.next_token)
        page_no = state.page
        if report_id is None:
            report_id = await self.request_report(series, window)
        try:
            report = await self.wait_for(series, report_id)
        except ApiError as exc:
            if exc.status != 404:
                raise
            # the report expired (Amazon keeps them 90 days) or never existed: a new one
            series.log.warning("report_gone", report_id=report_id, rows_done=done)
            await series.store.restart_window(series.key)
            await series.store.ledger.clear_attempt(series.key)
            report_id, done, page_no = await self.request_report(series, window), 0, 0
            report = await self.wait_for(series, report_id)
        run.facts.update(report_id=report_id, rows=done)
        if report["processingStatus"] != "DONE":
            await self.report_failed(series, run, report)
            return
        spec = spec_of(series)
        async with contextlib.aclosing(self.report_pages(series, report, done)) as pages:
            async for rows in pages:
                page_no, done = page_no + 1, done + len(rows)
                run.facts["rows"] = done
                yield Batch(page_no, row_triples(series, spec, rows), series.object_type.name, end,
                            f"{report_id}:{done}")
        run.watermark = end

    async def closed(self, series: Series, run: WindowRun) -> None:
        """Forgets the window's report; a note about an earlier failure goes."""
        assert run.end is not None
        await series.store.ledger.clear_attempt(series.key)
        state = await series.store.get(series.key)
        if state is not None and (state.note or "").startswith("report "):
            await series.store.set_note(series.key, None)
        if run.facts.get("note"):
            await series.store.set_note(series.key, run.facts["note"])
        series.log.info("report_window_completed", report_id=run.facts.get("report_id"),
                        rows=run.facts.get("rows"),
                        window=[format_ts(run.window.start), format_ts(run.end)])

    async def request_report(self, series: Series, window: Window) -> str:
        """The report of this window: the one already requested, or a new one once any
        cool-down after a FATAL/CANCELLED outcome is over."""
        attempt = await series.store.ledger.attempt(series.key)
        if attempt is not None and attempt.window_start == window.start:
            if attempt.status == "PENDING":
                return attempt.report_id
            if attempt.retry_at is not None and utcnow() < attempt.retry_at:
                raise ReportFailedError(
                    f"poller {series.key}: report {attempt.report_id} ended {attempt.status} for "
                    f"the window from {format_ts(window.start)}; retrying after "
                    f"{format_ts(attempt.retry_at)}")
        body: dict[str, Any] = {"reportType": report_type_of(series.object_type),
                                "marketplaceIds": marketplaces(series)}
        if options(series):
            body["reportOptions"] = options(series)
        if not spec_of(series).snapshot:
            assert window.end is not None
            aligned = PERIOD_OPTION in options(series)  # the last day, not the next period's first
            body["dataStartTime"] = format_ts(window.start)
            body["dataEndTime"] = format_ts(last_day(window.end) if aligned else window.end)
        response = await series.unless_stopped(
            series.client.call(series.account_name, self.ops["createReport"], None, body))
        report_id = str((response.body or {}).get("reportId") or "")
        if not report_id:
            raise ApiError(f"{API}.createReport: malformed response, no reportId", retriable=True)
        await series.store.ledger.requested(series.key, window.start, report_id)
        series.log.info("report_requested", report_id=report_id, window_start=format_ts(window.start))
        return report_id

    async def wait_for(self, series: Series, report_id: str) -> dict[str, Any]:
        """getReport until the report is DONE, FATAL or CANCELLED, backing off between checks."""
        backoff = Backoff(self.status_delay, self.status_delay_cap, "none")
        for check in itertools.count(1):
            response = await series.unless_stopped(series.client.call(
                series.account_name, self.ops["getReport"], {"reportId": report_id}))
            report = response.body if isinstance(response.body, dict) else {}
            status = report.get("processingStatus")
            if status in FINISHED:
                series.activity(None)
                return report
            if status not in ("IN_QUEUE", "IN_PROGRESS"):
                raise ApiError(f"{API}.getReport: report {report_id} has unknown status {status!r}",
                               retriable=True)
            delay = backoff.delay(check)
            series.activity(f"report {report_id} {status}, checking again in {delay:.0f} s")
            await series.sleep_unless_stopped(delay)
        raise AssertionError("unreachable")

    async def report_failed(self, series: Series, run: WindowRun, report: dict[str, Any]) -> None:
        """Records a FATAL/CANCELLED report; raises unless a CANCELLED window counts as empty
        (then the window completes with a note)."""
        window = run.window
        assert window.end is not None
        status, report_id = report["processingStatus"], str(report.get("reportId"))
        retry_at = utcnow() + self.cooldown
        failures = await series.store.ledger.failed(series.key, status, retry_at)
        span = f"{format_ts(window.start)}..{format_ts(window.end)}"
        if status == "CANCELLED" and failures >= CANCELLED_AS_EMPTY:
            run.facts.update(rows=0, note=f"report {report_id} CANCELLED {failures} times for {span}: "
                                          "Amazon cancels reports without data; window completed empty")
            run.watermark = window.end
            return
        detail = await self.failure_detail(series, report)
        note = (f"report {report_id} {status} for {span}{detail}; the window is retried after "
                f"{format_ts(retry_at)}")
        await series.store.set_note(series.key, note)
        series.log.error("report_failed", report_id=report_id, status=status, window=span,
                         retry_at=format_ts(retry_at))
        raise ReportFailedError(f"poller {series.key}: {note}")

    async def failure_detail(self, series: Series, report: dict[str, Any]) -> str:
        """Amazon's explanation from a FATAL report's document, if it has one (best effort)."""
        doc_id = report.get("reportDocumentId")
        if not doc_id:
            return ""
        client = series.client
        try:
            doc = await client.call(series.account_name, self.ops["getReportDocument"],
                                    {"reportDocumentId": doc_id})
            async with client.download_stream(doc.body["url"]) as download:
                text = await read_head(download.chunks(), FAILURE_DETAIL_BYTES)
            stream = DocumentStream(compression=doc.body.get("compressionAlgorithm"),
                                    content_type=download.content_type)
            rows = [r for batch in stream.feed(text) for r in batch] or stream.close()
            message = rows[0].get("errorDetails") if rows else None
            return f" ({str(message or rows[0])[:200]})" if rows else ""
        except (SpdError, KeyError, TypeError) as exc:
            series.log.warning("report_failure_detail_unavailable", error=str(exc))
            return ""

    async def report_pages(self, series: Series, report: dict[str, Any],
                           skip: int) -> AsyncGenerator[list[Row], None]:
        """The report's rows in pages of PAGE_SIZE, after the first `skip` (already delivered)."""
        doc_id = report.get("reportDocumentId")
        if not doc_id:
            raise ApiError(f"{API}.getReport: DONE report {report.get('reportId')} has no "
                           "reportDocumentId", retriable=True)
        response = await series.unless_stopped(series.client.call(
            series.account_name, self.ops["getReportDocument"], {"reportDocumentId": doc_id}))
        doc = response.body if isinstance(response.body, dict) else {}
        if not doc.get("url"):
            raise ApiError(f"{API}.getReportDocument: malformed response, no url", retriable=True)
        spec = report_spec(str(report.get("reportType") or ""))
        markets = report.get("marketplaceIds") or marketplaces(series)
        async with series.client.download_stream(doc["url"]) as download:
            stream = DocumentStream(compression=doc.get("compressionAlgorithm"),
                                    content_type=download.content_type,
                                    marketplace_ids=markets, fmt=spec.fmt)
            rows = iter_rows(download.chunks(), stream, check_stop=series.check_stop)
            async for page in iter_pages(rows, size=PAGE_SIZE, skip=skip,
                                         consumed=lambda: stream.bytes_out):
                series.activity(f"report {report.get('reportId')}: {_size(stream.bytes_in)} downloaded"
                                + (f" of {_size(download.size)}" if download.size else ""))
                yield page
            series.activity(f"report {report.get('reportId')}: {_size(stream.bytes_in)} downloaded")
        series.log.info("report_document_read", report_id=report.get("reportId"),
                        bytes=stream.bytes_in, inflated=stream.bytes_out, encoding=stream.encoding,
                        format=stream.fmt)


def spec_of(series: Series) -> ReportSpec:
    """The declared spec of the series' report type."""
    return report_spec(report_type_of(series.object_type))


def options(series: Series) -> dict[str, str]:
    """The poller's `report_options` (createReport's reportOptions)."""
    return dict(series.config.report_options or {})


def marketplaces(series: Series) -> list[str]:
    """The marketplaces a report covers: the series' one, the params', or the account's."""
    if series.market is not None:
        return [series.market]
    return list(series.config.params.get("marketplaceIds") or series.account.marketplace_ids or ())


def row_triples(series: Series, spec: ReportSpec, rows: list[Row]) -> list[Triple]:
    """Each row's (id, cursor, row)."""
    field_name = series.config.timestamp_field
    return [(row_id(spec, r), row_cursor(spec, r, field_name), r) for r in rows]


async def read_head(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The first `limit` bytes of a download; the rest is never read."""
    head = bytearray()
    async for chunk in chunks:
        head += chunk
        if len(head) >= limit:
            break
    return bytes(head[:limit])


def report_time(value: Any) -> datetime | None:
    """A report's createdTime as an aware datetime, or None."""
    try:
        return parse_ts(value) if isinstance(value, str) else None
    except (ValueError, SpdError):
        return None


def _size(count: int) -> str:
    """Bytes as a person reads them: `812 kB`, `27.4 MB`."""
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.0f} kB"
