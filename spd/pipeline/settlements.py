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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from spd.core.times import format_ts, utcnow
from spd.config.model import PollerConfig
from spd.core.errors import ApiError
from spd.pipeline.types import RunResult, Window
from spd.pipeline.poller_support import MIN_WINDOW, TokenGuard
from spd.pipeline.reports import ReportPoller, Stopped, parse_token, report_time
from spd.sources.reports.registry import API, REPORT_PREFIX, SETTLEMENT_V2, report_spec
from spd.state.backend import PollerState

GET_REPORTS = f"{API}.getReports"
LIST_PAGE_SIZE = 100
LIST_LAG = timedelta(minutes=2)


def report_types(cfg: PollerConfig) -> list[str]:
    """`report_types`, else params.reportTypes, else the settlement flat file V2."""
    types = cfg.report_types or cfg.params.get("reportTypes") or [SETTLEMENT_V2]
    return [types] if isinstance(types, str) else list(types)


@dataclass
class SettlementPoller(ReportPoller):
    """getReports + download; see the module docstring."""

    held: bool = False  # a pending report holds the watermark: caught up for this run

    def __post_init__(self) -> None:
        if self.config.report_types:  # `report_types` stands for params.reportTypes
            self.object_type = replace(self.object_type, params=replace(self.object_type.params, needs=()))
        super().__post_init__()

    async def run_series(self, done: int = 0) -> RunResult:
        self.held = False
        return await super().run_series(done)

    def next_window(self, state: PollerState) -> Window | None:
        if self.held and state.window_start is None:
            return None
        window = super().next_window(state)
        if window is None or state.window_start is not None:
            return window
        # a report may be listed a little after its createdTime: stay LIST_LAG behind
        end = min(window.end or utcnow(), utcnow() - LIST_LAG)
        return Window(window.start, end, echo=False) if end - window.start >= MIN_WINDOW else None

    async def poll_window(self, state: PollerState, window: Window, result: RunResult) -> PollerState:
        """Emits every DONE report of the window not emitted before; see the module docstring."""
        assert window.end is not None
        key, end = self.state_key, window.end
        result.windows += 1
        try:
            reports = await self.list_reports(window)
            done_ids = await self.ledger.done_ids(key, state.watermark)
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
                    await self.skip_failed(report, created)
                    continue
                skip = rows_done if report_id == current else 0
                page_no, stop = await self.emit_report(window, report, skip, page_no, result)
                if stop:
                    return await self.store.require(key)
                await self.ledger.done(key, report_id, created)
        except Stopped:
            return await self.store.require(key)
        return await self.finish(window.start, min(end, held_at) if held_at else end, held_at is not None)

    async def emit_report(self, window: Window, report: dict[str, Any], skip: int, page_no: int,
                          result: RunResult) -> tuple[int, bool]:
        """Streams one report's rows from `skip` on; (pages so far, whether to stop now)."""
        assert window.end is not None
        report_id = str(report.get("reportId"))
        report_type = str(report.get("reportType"))
        spec = report_spec(report_type)
        async with contextlib.aclosing(self.report_pages(report, skip)) as pages:
            async for rows in pages:
                page_no, skip = page_no + 1, skip + len(rows)
                await self.deliver_rows(window.start, window.end, page_no, rows, spec,
                                        REPORT_PREFIX + report_type)
                await self.store.save_page(self.state_key, window.start, window.end,
                                     f"{report_id}:{skip}", page_no, len(rows))
                result.pages, result.objects = result.pages + 1, result.objects + len(rows)
                if self.over_cap(result) or self.stopping.is_set():
                    result.capped = self.over_cap(result)
                    return page_no, True
        self.log.info("report_emitted", report_id=report_id, report_type=report_type, rows=skip)
        return page_no, False

    async def skip_failed(self, report: dict[str, Any], created: datetime) -> None:
        """A FATAL/CANCELLED report Amazon generated has nothing to download: noted, not retried."""
        report_id, status = str(report.get("reportId")), report.get("processingStatus")
        await self.store.set_note(self.state_key, f"report {report_id} ({report.get('reportType')}) "
                            f"ended {status} at Amazon; nothing to download")
        self.log.warning("report_not_downloadable", report_id=report_id, status=status)
        await self.ledger.done(self.state_key, report_id, created)

    async def finish(self, start: datetime, new_watermark: datetime, held: bool) -> PollerState:
        self.held = held
        await self.store.finish_window(self.state_key, max(start, new_watermark))
        await self.ledger.moved(self.state_key, max(start, new_watermark))
        self.log.info("reports_window_completed", window_start=format_ts(start),
                      watermark=format_ts(new_watermark), held=held)
        return await self.store.require(self.state_key)

    async def list_reports(self, window: Window) -> list[dict[str, Any]]:
        """Every report of the configured types created in the window, oldest first."""
        assert window.end is not None
        params: dict[str, Any] = {"reportTypes": report_types(self.config),
                                  "createdSince": format_ts(window.start),
                                  "createdUntil": format_ts(window.end), "pageSize": LIST_PAGE_SIZE}
        for name in ("marketplaceIds",):
            if name in self.config.params:
                params[name] = self.config.params[name]
        found: list[dict[str, Any]] = []
        guard = TokenGuard(GET_REPORTS)
        while True:
            response = await self.unless_stopped(
                self.client.call(self.account_name, self.ops["getReports"], params))
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
