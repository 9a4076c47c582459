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

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from spd.catalog.model import load_catalog
from spd.core.retry import Backoff
from spd.core.times import format_ts, parse_ts, utcnow
from spd.core.errors import ApiError, SpdError
from spd.pipeline.poller import Poller
from spd.pipeline.types import PollStopped, RunResult, Window
from spd.sources.reports.document import DocumentStream, iter_pages, iter_rows
from spd.sources.reports.formats import Row
from spd.sources.reports.periods import aligned_window, last_day
from spd.sources.reports.registry import (API, PERIOD_OPTION, ReportSpec, report_spec,
                                  report_type_of, row_cursor, row_id)
from spd.state.backend import PollerState, ReportLedger

log = structlog.get_logger("spd.reports")

FINISHED = ("DONE", "FATAL", "CANCELLED")
FAILURE_DETAIL_BYTES = 64 * 2**10  # of a FATAL report's document: its explanation is at the top
CANCELLED_AS_EMPTY = 2
PAGE_SIZE = 100


class ReportFailedError(SpdError):
    """A report ended FATAL or CANCELLED, or its window is cooling down before a retry."""

    exit_code = 1
    retriable = True


Stopped = PollStopped  # the poller is stopping; nothing was delivered for the work abandoned

def parse_token(token: str | None) -> tuple[str | None, int]:
    """("<reportId>", rows done) of a checkpoint token, (None, 0) when there is none."""
    if not token or ":" not in token:
        return None, 0
    report_id, _, done = token.rpartition(":")
    return (report_id, int(done)) if done.isdigit() else (None, 0)


@dataclass
class ReportPoller(Poller):
    """A `report:REPORT_TYPE` poller; see the module docstring."""

    status_delay: float = 2.0  # first wait between getReport checks; doubles up to the cap
    status_delay_cap: float = 60.0
    cooldown: timedelta = timedelta(minutes=15)  # before a FATAL/CANCELLED window is retried

    def __post_init__(self) -> None:
        super().__post_init__()
        catalog = load_catalog()
        self.ops = {name: catalog.operation(API, name) for name in
                    ("createReport", "getReport", "getReportDocument", "getReports")}

    @property
    def ledger(self) -> ReportLedger:
        return self.store.ledger

    @property
    def spec(self) -> ReportSpec:
        return report_spec(report_type_of(self.object_type))

    @property
    def options(self) -> dict[str, str]:
        return dict(getattr(self.config, "report_options", None) or {})

    def next_window(self, state: PollerState) -> Window | None:
        """Whole reporting periods where the report has a reportPeriod; else the base windows."""
        period = self.options.get(PERIOD_OPTION)
        if period is None or state.window_start is not None or self.spec.snapshot:
            return super().next_window(state)
        ot, now = self.object_type, utcnow()
        oldest = now - ot.window.max_age if ot.window.max_age is not None else None
        found = aligned_window(state.watermark, period, now - ot.window.lag, self.spec.max_window,
                               self.spec.span_periods, oldest)
        return None if found is None else Window(found[0], found[1], echo=False)

    async def poll_window(self, state: PollerState, window: Window, result: RunResult) -> PollerState:
        """One report for the window: request (or resume) it, wait, stream its rows."""
        key, end = self.state_key, window.end
        assert end is not None, "report windows always have an end"
        result.windows += 1
        report_id, done = parse_token(state.next_token)
        try:
            if report_id is None:
                report_id = await self.request_report(window)
            try:
                report = await self.wait_for(report_id)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                # the report expired (Amazon keeps them 90 days) or never existed: a new one
                self.log.warning("report_gone", report_id=report_id, rows_done=done)
                await self.store.restart_window(key)
                await self.ledger.clear_attempt(key)
                report_id, done, state.page = await self.request_report(window), 0, 0
                report = await self.wait_for(report_id)
            if report["processingStatus"] != "DONE":
                return await self.report_failed(window, report)
            page_no = state.page
            async with contextlib.aclosing(self.report_pages(report, done)) as pages:
                async for rows in pages:
                    page_no, done = page_no + 1, done + len(rows)
                    await self.deliver_rows(window.start, end, page_no, rows, self.spec)
                    await self.store.save_page(key, window.start, end, f"{report_id}:{done}", page_no,
                                         len(rows))
                    result.pages, result.objects = result.pages + 1, result.objects + len(rows)
                    if self.over_cap(result) or self.stopping.is_set():
                        result.capped = self.over_cap(result)
                        return await self.store.require(key)
        except Stopped:
            return await self.store.require(key)
        await self.complete(window.start, end, report_id, done)
        return await self.store.require(key)

    async def complete(self, start: datetime, end: datetime, report_id: str, rows: int) -> None:
        """Moves the watermark past a finished window and forgets its report."""
        await self.store.finish_window(self.state_key, end)
        await self.ledger.clear_attempt(self.state_key)
        state = await self.store.get(self.state_key)
        if state is not None and (state.note or "").startswith("report "):
            await self.store.set_note(self.state_key, None)
        self.log.info("report_window_completed", report_id=report_id, rows=rows,
                      window=[format_ts(start), format_ts(end)])

    async def request_report(self, window: Window) -> str:
        """The report of this window: the one already requested, or a new one once any
        cool-down after a FATAL/CANCELLED outcome is over."""
        attempt = await self.ledger.attempt(self.state_key)
        if attempt is not None and attempt.window_start == window.start:
            if attempt.status == "PENDING":
                return attempt.report_id
            if attempt.retry_at is not None and utcnow() < attempt.retry_at:
                raise ReportFailedError(
                    f"poller {self.state_key}: report {attempt.report_id} ended {attempt.status} for "
                    f"the window from {format_ts(window.start)}; retrying after "
                    f"{format_ts(attempt.retry_at)}")
        body: dict[str, Any] = {"reportType": report_type_of(self.object_type),
                                "marketplaceIds": self.marketplaces()}
        if self.options:
            body["reportOptions"] = self.options
        if not self.spec.snapshot:
            assert window.end is not None
            aligned = PERIOD_OPTION in self.options  # the last day, not the next period's first
            body["dataStartTime"] = format_ts(window.start)
            body["dataEndTime"] = format_ts(last_day(window.end) if aligned else window.end)
        response = await self.unless_stopped(
            self.client.call(self.account_name, self.ops["createReport"], None, body))
        report_id = str((response.body or {}).get("reportId") or "")
        if not report_id:
            raise ApiError(f"{API}.createReport: malformed response, no reportId", retriable=True)
        await self.ledger.requested(self.state_key, window.start, report_id)
        self.log.info("report_requested", report_id=report_id, window_start=format_ts(window.start))
        return report_id

    def marketplaces(self) -> list[str]:
        if self.market is not None:
            return [self.market]
        return list(self.config.params.get("marketplaceIds") or self.account.marketplace_ids or ())

    async def wait_for(self, report_id: str) -> dict[str, Any]:
        """getReport until the report is DONE, FATAL or CANCELLED, backing off between checks."""
        backoff = Backoff(self.status_delay, self.status_delay_cap, "none")
        for check in itertools.count(1):
            response = await self.unless_stopped(
                self.client.call(self.account_name, self.ops["getReport"], {"reportId": report_id}))
            report = response.body if isinstance(response.body, dict) else {}
            status = report.get("processingStatus")
            if status in FINISHED:
                return report
            if status not in ("IN_QUEUE", "IN_PROGRESS"):
                raise ApiError(f"{API}.getReport: report {report_id} has unknown status {status!r}",
                               retriable=True)
            await self.sleep_unless_stopped(backoff.delay(check))
        raise AssertionError("unreachable")

    async def report_failed(self, window: Window, report: dict[str, Any]) -> PollerState:
        """Records a FATAL/CANCELLED report; raises unless a CANCELLED window counts as empty."""
        assert window.end is not None
        status, report_id = report["processingStatus"], str(report.get("reportId"))
        retry_at = utcnow() + self.cooldown
        failures = await self.ledger.failed(self.state_key, status, retry_at)
        span = f"{format_ts(window.start)}..{format_ts(window.end)}"
        if status == "CANCELLED" and failures >= CANCELLED_AS_EMPTY:
            await self.complete(window.start, window.end, report_id, 0)
            await self.store.set_note(self.state_key, f"report {report_id} CANCELLED {failures} times for "
                                f"{span}: Amazon cancels reports without data; window completed empty")
            return await self.store.require(self.state_key)
        detail = await self.failure_detail(report)
        note = (f"report {report_id} {status} for {span}{detail}; the window is retried after "
                f"{format_ts(retry_at)}")
        await self.store.set_note(self.state_key, note)
        self.log.error("report_failed", report_id=report_id, status=status, window=span,
                       retry_at=format_ts(retry_at))
        raise ReportFailedError(f"poller {self.state_key}: {note}")

    async def failure_detail(self, report: dict[str, Any]) -> str:
        """Amazon's explanation from a FATAL report's document, if it has one (best effort)."""
        doc_id = report.get("reportDocumentId")
        if not doc_id:
            return ""
        try:
            doc = await self.client.call(self.account_name, self.ops["getReportDocument"],
                                         {"reportDocumentId": doc_id})
            async with self.client.download_stream(doc.body["url"]) as download:
                text = await read_head(download.chunks(), FAILURE_DETAIL_BYTES)
            stream = DocumentStream(compression=doc.body.get("compressionAlgorithm"),
                                    content_type=download.content_type)
            rows = [r for batch in stream.feed(text) for r in batch] or stream.close()
            message = rows[0].get("errorDetails") if rows else None
            return f" ({str(message or rows[0])[:200]})" if rows else ""
        except (SpdError, KeyError, TypeError) as exc:
            self.log.warning("report_failure_detail_unavailable", error=str(exc))
            return ""

    async def report_pages(self, report: dict[str, Any], skip: int) -> AsyncGenerator[list[Row], None]:
        """The report's rows in pages of PAGE_SIZE, after the first `skip` (already delivered)."""
        doc_id = report.get("reportDocumentId")
        if not doc_id:
            raise ApiError(f"{API}.getReport: DONE report {report.get('reportId')} has no "
                           "reportDocumentId", retriable=True)
        response = await self.unless_stopped(self.client.call(
            self.account_name, self.ops["getReportDocument"], {"reportDocumentId": doc_id}))
        doc = response.body if isinstance(response.body, dict) else {}
        if not doc.get("url"):
            raise ApiError(f"{API}.getReportDocument: malformed response, no url", retriable=True)
        spec = report_spec(str(report.get("reportType") or ""))
        markets = report.get("marketplaceIds") or self.marketplaces()
        async with self.client.download_stream(doc["url"]) as download:
            stream = DocumentStream(compression=doc.get("compressionAlgorithm"),
                                    content_type=download.content_type,
                                    marketplace_ids=markets, fmt=spec.fmt)
            rows = iter_rows(download.chunks(), stream, check_stop=self.check_stop)
            async for page in iter_pages(rows, size=PAGE_SIZE, skip=skip,
                                         consumed=lambda: stream.bytes_out):
                yield page
        self.log.info("report_document_read", report_id=report.get("reportId"),
                      bytes=stream.bytes_in, inflated=stream.bytes_out, encoding=stream.encoding,
                      format=stream.fmt)

    async def deliver_rows(self, start: datetime, end: datetime, page_no: int, rows: list[Row],
                           spec: ReportSpec, type_name: str | None = None) -> None:
        """Hands one page of rows to every emitter; returns once all acknowledged it."""
        field_name = self.config.timestamp_field
        triples = [(row_id(spec, r), row_cursor(spec, r, field_name), r) for r in rows]
        await self.deliver_triples(start, end, page_no, triples, type_name or self.object_type.name)

    def check_stop(self) -> None:
        """Raises Stopped when the poller was told to stop (between document chunks)."""
        if self.stopping.is_set():
            raise Stopped()

    async def sleep_unless_stopped(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return
        raise Stopped()


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
