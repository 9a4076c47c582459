"""Fetching an operation's windows: one request per page, following the next token (DESIGN.md §4).

The request is built from the type's parts: the window's bounds (`Windowing`), the page size and
next token (`Paging`), the marketplace (`Partitioning`) and fixed parameters (`Parameters`); the
reply is read by `Extraction`, then enriched by the hooks the poller's `include:` names. The next
page is fetched while this one is delivered: its token is known already, and the request and the
emitters' fsyncs overlap. At most that one page is fetched ahead and nothing is checkpointed
ahead: a stop, the cap or a failed delivery drops the page ahead (its request cancelled and
awaited), and a failed request for it surfaces only once this page is checkpointed. Where the
API echoes the upper bound it applied, the window's end is the echo, once checked
(poller_support.check_echo): never later than the answer's time - lag, never a step back, and an
echo that stops advancing means caught up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

from spd.core.errors import ApiError
from spd.core.paths import dig
from spd.core.times import format_ts, utcnow
from spd.pipeline.enrich import Enrichment
from spd.pipeline.object_keys import ObjectKeys
from spd.pipeline.raw_page import RawPage, RawPageReader
from spd.pipeline.poller_support import TokenGuard, check_echo, is_expired_token_error, page_contents
from spd.pipeline.series import Batch, Series, WindowRun, abandon
from spd.pipeline.types import Page, RunResult, Window
from spd.pipeline.windows import plan_window
from spd.sources.first_page import fill_fixed, first_page_params, market_params
from spd.state.backend import PollerState


class OperationFetch:
    """The fetch strategy of an object type's operation; see the module docstring."""

    def __init__(self, enrichments: list[Enrichment] | None = None) -> None:
        self.enrichments = enrichments or []

    def plan(self, series: Series, state: PollerState) -> Window | None:
        return plan_window(series, state)

    async def fetch(self, series: Series, state: PollerState, run: WindowRun,
                    result: RunResult) -> AsyncGenerator[Batch, None]:
        """The window's pages from the checkpointed token on; a next token that expired
        restarts the window."""
        window, name = run.window, series.object_type.name
        token, page_no = state.next_token, state.page
        guard = TokenGuard(name, token)
        fetching: asyncio.Future[Page] | None = self.start_fetch(series, window, token)
        try:
            while fetching is not None:
                try:
                    page = await series.unless_stopped(fetching)
                except ApiError as exc:
                    if not (token and is_expired_token_error(exc)):
                        raise
                    series.log.warning("next_token_expired", window_start=format_ts(window.start))
                    await series.store.restart_window(series.key)
                    token, page_no, guard = None, 0, TokenGuard(name)
                    fetching = self.start_fetch(series, window, None)
                    continue
                if run.end is None:
                    run.end, run.caught_up = self.window_end(series, window, page, state.watermark)
                guard.check(page.next_token, page_no + 1, len(page.objects))
                if page.next_token:
                    guard.sent(page.next_token)
                page_no += 1
                fetching = self.prefetch(series, window, page, result)
                token = page.next_token
                self.log_fallbacks(series, page_no, page)
                yield Batch(page_no, page.triples, name, run.end, token, last=token is None)
                if token is None:
                    run.watermark = run.end
        finally:  # a stop, the cap or a failed delivery closes the window: drop the page ahead
            if fetching is not None:
                await abandon(fetching)

    async def closed(self, series: Series, run: WindowRun) -> None:
        assert run.end is not None
        series.log.info("window_completed", window=[format_ts(run.window.start), format_ts(run.end)],
                        pages=run.page)

    def start_fetch(self, series: Series, window: Window, token: str | None) -> asyncio.Future[Page]:
        return asyncio.ensure_future(self.fetch_page(series, window, token))

    def prefetch(self, series: Series, window: Window, page: Page,
                 result: RunResult) -> asyncio.Future[Page] | None:
        """The next page's fetch, unless there is none, the run stops or the cap is reached
        with this page (a request spent past the cap would waste quota)."""
        cap = series.config.max_items_per_run
        if page.next_token is None or series.stopping.is_set():
            return None
        if cap is not None and result.objects + len(page.objects) >= cap:
            return None
        return self.start_fetch(series, window, page.next_token)

    async def fetch_page(self, series: Series, window: Window, token: str | None) -> Page:
        """One request: the window's filters, or the next token (alone where the API wants it)."""
        params = request_params(series, window, token)
        reader = self.reader(series)
        response = await series.client.call(series.account_name, series.operation, params,
                                            restricted=series.config.restricted,
                                            decode=reader.read if reader is not None else None)
        body = response.body
        received = utcnow()
        if isinstance(body, RawPage):
            return Page([data for _, _, data in body.triples], body.next_token, body.echo,
                        received, body.triples)
        objects, next_token = page_contents(series.object_type, body)
        if objects:
            for enrich in self.enrichments:
                await enrich(series.client, series.account_name, objects)
        path = series.object_type.window.echo_path(series.config.timestamp_field)
        # Ids and cursors here, in the fetch that overlaps the previous page's delivery.
        keys = ObjectKeys(series.object_type, series.config.timestamp_field)
        triples, fallbacks = keys.triples(objects)
        return Page(objects, next_token, dig(body, path) if path else None, received, triples,
                    fallbacks)

    def reader(self, series: Series) -> RawPageReader | None:
        """The series' reader of pages left unparsed (one per type, shared); None where
        enrichments change objects or the type's objects are keyed by the general path
        (spd.pipeline.raw_page)."""
        if self.enrichments:
            return None
        return RawPageReader.for_type(series.object_type, series.config.timestamp_field)

    def window_end(self, series: Series, window: Window, page: Page,
                   watermark: datetime) -> tuple[datetime, bool]:
        """The end of a window the first page decides: the checked echo where the API gives
        one (and whether it stalled: caught up), else the answer's time - lag."""
        ot = series.object_type
        lag = ot.window.lag
        if page.echo is None:
            return page.received - lag, False
        path = ot.window.echo_path(series.config.timestamp_field)
        assert path is not None  # an echo is read only where the type declares one
        return check_echo(ot.name, path[-1], page.echo, window.start, watermark, page.received, lag)

    def log_fallbacks(self, series: Series, page_no: int, page: Page) -> None:
        """Objects without an id or time are emitted all the same, but never silently."""
        if page.fallbacks:
            missing = any(k.startswith(("id:", "cursor: null")) for k in page.fallbacks)
            (series.log.warning if missing else series.log.info)(
                "objects_without_id_or_time", page=page_no, objects=len(page.objects),
                fallbacks=page.fallbacks)


def request_params(series: Series, window: Window, token: str | None) -> dict[str, Any]:
    """Query parameters for a first page (filters, spd.sources.first_page) or a following page
    (token)."""
    ot, cfg, paging = series.object_type, series.config, series.object_type.paging
    if token and paging.token_alone:
        params = series_market(series) if market_required(series) else {}
        params.update(fill_fixed(paging.token_params, series.market))
        params[paging.token_param] = token
        return params
    params = first_page_params(ot, series.operation, cfg.params, cfg.timestamp_field, series.market,
                               series.account.marketplace_ids, window.start,
                               None if window.echo else window.end)
    if token:
        params.update(fill_fixed(paging.token_params, series.market))
        params[paging.token_param] = token
    return params


def market_required(series: Series) -> bool:
    """Whether the marketplace parameter must come even with a next token sent alone."""
    name = series.object_type.partitioning.marketplace_param
    param = series.operation.param(name) if name else None
    return bool(param is not None and param.required)


def series_market(series: Series) -> dict[str, Any]:
    """The series' marketplace filter (spd.sources.first_page.market_params)."""
    return market_params(series.object_type, series.operation, series.config.params, series.market,
                         series.account.marketplace_ids)
