"""`reports_2021-06-30.getReports` with `download: true`: reports Amazon generates on its own
(settlements), each downloaded and emitted row by row, each processed once.

A window lists every report of the configured types created in [watermark, now] (all statuses),
oldest first, and emits the DONE ones not emitted before; a report's rows are checkpointed like
any page (next_token "<reportId>:<rows done>"), and the report is remembered in the ledger once
all its rows are delivered. A report still IN_QUEUE/IN_PROGRESS holds the watermark at its
creation time, so it is listed again, and processed, once it is done. Rows are emitted with the
object type `report:<its report type>`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from datetime import datetime, timedelta, timezone
from typing import Any

from spd.core.times import format_ts, utcnow
from spd.config.model import PollerConfig
from spd.core.errors import ApiError
from spd.pipeline.poller_support import MIN_WINDOW, TokenGuard
from spd.pipeline.reports import ReportFetch, parse_token, report_time, row_triples
from spd.pipeline.series import Batch, Series, WindowRun
from spd.pipeline.types import RunResult, Window
from spd.pipeline.windows import plan_window
from spd.sources.reports.registry import API, REPORT_PREFIX, SETTLEMENT_V2, report_spec
from spd.state.backend import PollerState

GET_REPORTS = f"{API}.getReports"
LIST_PAGE_SIZE = 100
LIST_LAG = timedelta(minutes=2)


def report_types(cfg: PollerConfig) -> list[str]:
    """`report_types`, else params.reportTypes, else the settlement flat file V2."""
    types = cfg.report_types or cfg.params.get("reportTypes") or [SETTLEMENT_V2]
    return [types] if isinstance(types, str) else list(types)


class SettlementFetch:
    """The fetch strategy of getReports + download; see the module docstring. Reports are
    downloaded as `report:TYPE` pollers download theirs (`reports`)."""

    def __init__(self, reports: ReportFetch) -> None:
        self.reports = reports

    def plan(self, series: Series, state: PollerState) -> Window | None:
        window = plan_window(series, state)
        if window is None or state.window_start is not None:
            return window
        # a report may be listed a little after its createdTime: stay LIST_LAG behind
        end = min(window.end or utcnow(), utcnow() - LIST_LAG)
        return Window(window.start, end, echo=False) if end - window.start >= MIN_WINDOW else None

    async def fetch(self, series: Series, state: PollerState, run: WindowRun,
                    result: RunResult) -> AsyncGenerator[Batch, None]:
        """Every DONE report of the window not emitted before; a report still in progress holds
        the watermark at its creation time (caught up for this run)."""
        window, end = run.window, run.end
        assert end is not None
        reports = await self.list_reports(series, window)
        done_ids = await series.store.ledger.done_ids(series.key, state.watermark)
        current, rows_done = parse_token(state.next_token)
        page_no, held_at = state.page, None
        for report in reports:
            report_id, created = str(report.get("reportId")), report_time(report.get("createdTime"))
            status = report.get("processingStatus")
            if report_id in done_ids or created is None:
                continue
            if status in ("IN_QUEUE", "IN_PROGRESS"):
                held_at = held_at or created
                continue
            if status != "DONE":
                await self.skip_failed(series, report, created)
                continue
            skip = rows_done if report_id == current else 0
            async for batch in self.report_batches(series, run, report, skip, page_no):
                page_no = batch.page
                yield batch
            await series.store.ledger.done(series.key, report_id, created)
        run.watermark = max(window.start, min(end, held_at) if held_at else end)
        run.caught_up = held_at is not None

    async def report_batches(self, series: Series, run: WindowRun, report: dict[str, Any],
                             skip: int, page_no: int) -> AsyncGenerator[Batch, None]:
        """One report's rows from `skip` on, as pages numbered on from `page_no`."""
        assert run.end is not None
        report_id, report_type = str(report.get("reportId")), str(report.get("reportType"))
        spec = report_spec(report_type)
        async with contextlib.aclosing(self.reports.report_pages(series, report, skip)) as pages:
            async for rows in pages:
                page_no, skip = page_no + 1, skip + len(rows)
                yield Batch(page_no, row_triples(series, spec, rows), REPORT_PREFIX + report_type,
                            run.end, f"{report_id}:{skip}")
        series.log.info("report_emitted", report_id=report_id, report_type=report_type, rows=skip)

    async def closed(self, series: Series, run: WindowRun) -> None:
        assert run.watermark is not None
        await series.store.ledger.moved(series.key, run.watermark)
        series.log.info("reports_window_completed", window_start=format_ts(run.window.start),
                        watermark=format_ts(run.watermark), held=run.caught_up)

    async def skip_failed(self, series: Series, report: dict[str, Any], created: datetime) -> None:
        """A FATAL/CANCELLED report Amazon generated has nothing to download: noted, not retried."""
        report_id, status = str(report.get("reportId")), report.get("processingStatus")
        await series.store.set_note(series.key, f"report {report_id} ({report.get('reportType')}) "
                              f"ended {status} at Amazon; nothing to download")
        series.log.warning("report_not_downloadable", report_id=report_id, status=status)
        await series.store.ledger.done(series.key, report_id, created)

    async def list_reports(self, series: Series, window: Window) -> list[dict[str, Any]]:
        """Every report of the configured types created in the window, oldest first."""
        assert window.end is not None
        params: dict[str, Any] = {"reportTypes": report_types(series.config),
                                  "createdSince": format_ts(window.start),
                                  "createdUntil": format_ts(window.end), "pageSize": LIST_PAGE_SIZE}
        for name in ("marketplaceIds",):
            if name in series.config.params:
                params[name] = series.config.params[name]
        found: list[dict[str, Any]] = []
        guard = TokenGuard(GET_REPORTS)
        while True:
            response = await series.unless_stopped(
                series.client.call(series.account_name, self.reports.ops["getReports"], params))
            body = response.body if isinstance(response.body, dict) else {}
            reports = body.get("reports")
            if not isinstance(reports, list):
                raise ApiError(f"{GET_REPORTS}: malformed response, no reports", retriable=True)
            found += [r for r in reports if isinstance(r, dict)]
            token = body.get("nextToken")
            if not token:
                break
            guard.check(str(token), len(found), len(reports))
            guard.sent(str(token))
            params = {"nextToken": token}  # Amazon wants the token alone
        oldest = datetime.min.replace(tzinfo=timezone.utc)
        return sorted(found, key=lambda r: (report_time(r.get("createdTime")) or oldest,
                                            str(r.get("reportId"))))
