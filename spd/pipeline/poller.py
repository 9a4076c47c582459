"""A poller: fetches one object type window by window, hands each page to its emitters and
checkpoints only after every emitter acknowledged it (DESIGN.md §4).

Every poller runs the same series loop: plan a window → fetch its pages → deliver each →
checkpoint each → move the watermark past the window. What differs between operations, reports
and settlements is its `FetchStrategy` (spd.pipeline.series); acknowledgements are the delivery
component's (spd.pipeline.delivery). Windows are planned from the type's `Windowing` part
(spd.pipeline.windows).

Types whose marketplace parameter takes one id poll each of the account's marketplaces as its
own series with its own watermark (state key "POLLER@MARKETPLACE"); the poller's own row then
holds the oldest of them, and a `spd reset` of it restarts every marketplace from it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from spd.catalog.model import Operation
from spd.client.http import SpClient
from spd.config.model import PollerConfig
from spd.config.sections import AccountConfig
from spd.core.errors import SpdError, describe_error
from spd.core.times import format_ts, utcnow
from spd.emitters.base import Emitter
from spd.pipeline.delivery import PageDelivery
from spd.pipeline.poller_support import (MIN_WINDOW, clamp_note, clamp_start,
                                         fold_fanned_out, sync_fanned_out)
from spd.pipeline.series import Batch, FetchStrategy, Series, WindowRun
from spd.pipeline.types import PollStopped, RunResult, Window
from spd.sources.first_page import fan_out_markets
from spd.sources.object_type import ObjectType
from spd.state.backend import PollerState, StateBackend


@dataclass
class Poller:
    """Polls one object type for one account and feeds its emitters; see the module docstring."""

    name: str
    config: PollerConfig
    account_name: str
    account: AccountConfig
    object_type: ObjectType
    client: SpClient
    operation: Operation
    store: StateBackend
    emitters: list[Emitter]
    fetching: FetchStrategy
    config_path: str = ""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    on_page: Callable[[str, RunResult, datetime], None] | None = None  # progress: key, run, window end
    on_activity: Callable[[str, str | None], None] | None = None  # progress: key, what it waits for
    failure: str | None = None  # the last run's error, also when the state could not record it
    delivery: PageDelivery = field(init=False)

    def __post_init__(self) -> None:
        self.delivery = PageDelivery(self.name, self.account_name, self.config.emit, self.emitters)

    def series(self) -> list[Series]:
        """One series per marketplace where the type takes a single id, else just this one."""
        markets = fan_out_markets(self.object_type, self.config.params,
                                  self.account.marketplace_ids)
        if len(markets) == 1:
            return [self.one_series(self.name, markets[0])]
        return [self.one_series(f"{self.name}@{m}", m) for m in markets] or [
            self.one_series(self.name, None)]

    def one_series(self, key: str, market: str | None) -> Series:
        return Series(poller=self.name, key=key, market=market, config=self.config,
                      account_name=self.account_name, account=self.account,
                      object_type=self.object_type, client=self.client, operation=self.operation,
                      store=self.store, stopping=self.stopping, on_activity=self.on_activity)

    async def run(self) -> RunResult:
        """Polls every series window after window until caught up, stopped, or capped."""
        parent = await self.store.ensure(self.name, self.config.identity(), self.config.start_time,
                                   config_path=self.config_path)
        series = self.series()
        fanned = [one.key for one in series if one.key != self.name]
        await sync_fanned_out(self.store, parent, fanned)
        try:
            total = await self.run_all(series, fanned)
            await self.store.record_run(self.name, error=None)  # a full disk here fails the run too
        except Exception as exc:
            self.failure = describe_error(exc)
            await self.record_failure(series[0], self.name, self.failure)
            raise
        self.failure = None
        return total

    async def run_all(self, series: list[Series], fanned: list[str]) -> RunResult:
        """Runs the series one after the other; the poller's row then takes the oldest
        marketplace watermark."""
        total = RunResult(caught_up=True)
        try:
            for one in series:
                result = await self.run_series(one, total.objects)
                total.add(result)
                if result.capped or self.stopping.is_set():
                    break
        finally:
            await fold_fanned_out(self.store, self.name, fanned)
        return total

    async def record_failure(self, series: Series, key: str, error: str) -> None:
        """Records a failed run on its state row; when the state itself cannot be written (a
        full disk), says so in the log and keeps the error for /metrics."""
        try:
            await self.store.record_run(key, error=error)
        except SpdError as exc:
            series.log.error("run_not_recorded", error=str(exc), run_error=error)

    async def run_series(self, series: Series, done: int = 0) -> RunResult:
        """The series loop: window after window until caught up, stopped or capped."""
        key = series.key
        state = await self.store.ensure(key, self.config.identity(), self.config.start_time,
                                  config_path=self.config_path)
        state = await self.clamp(series, state)
        result = RunResult(watermark=state.watermark, objects=done)
        began = utcnow()
        try:
            while not self.stopping.is_set():
                window = self.fetching.plan(series, state)
                if window is None:
                    result.caught_up = True
                    break
                state = await self.run_window(series, state, window, result)
                if result.capped or result.caught_up:
                    break
                if self.reached(state, began):
                    result.caught_up = True  # what came since is the next run's
                    break
        except Exception as exc:
            if key != self.name:
                await self.record_failure(series, key, describe_error(exc))
            raise
        finally:
            await series.watch.close()
        if key != self.name:
            await self.store.record_run(key, error=None)
        result.objects -= done
        result.watermark = state.watermark
        return result

    async def run_window(self, series: Series, state: PollerState, window: Window,
                         result: RunResult) -> PollerState:
        """One window: fetch → deliver → checkpoint each page, then move the watermark. A
        stop or the run's cap ends it after the page in flight (the next run resumes there)."""
        run = WindowRun(window, end=window.end)
        result.windows += 1
        try:
            async with contextlib.aclosing(self.fetching.fetch(series, state, run, result)) as pages:
                async for batch in pages:
                    await self.checkpointed(series, run, batch, result)
                    if not batch.last and (series.over_cap(result) or self.stopping.is_set()):
                        result.capped = series.over_cap(result)
                        return await series.state()
        except PollStopped:
            return await series.state()
        if run.watermark is not None:
            await self.store.finish_window(series.key, run.watermark)
            await self.fetching.closed(series, run)
            result.caught_up = result.caught_up or run.caught_up
        return await series.state()

    async def checkpointed(self, series: Series, run: WindowRun, batch: Batch,
                           result: RunResult) -> None:
        """Delivers one page and, once every emitter acknowledged it, checkpoints it."""
        start = run.window.start
        await self.delivery.deliver(series.key, (start, batch.end), batch.page, batch.object_type,
                                    batch.triples)
        await self.store.save_page(series.key, start, batch.end, batch.token, batch.page,
                                   len(batch.triples))
        run.page = batch.page
        result.pages += 1
        result.objects += len(batch.triples)
        if self.on_page is not None:
            self.on_page(series.key, result, batch.end)

    def reached(self, state: PollerState, began: datetime) -> bool:
        """Whether the watermark caught up with the run's own start - lag. Without this stop, a
        run whose requests take longer than MIN_WINDOW (a slow API, thousands of pollers) would
        chase the clock window after window and never end."""
        newest = began - self.object_type.window.lag
        return state.window_start is None and newest - state.watermark < MIN_WINDOW

    async def clamp(self, series: Series, state: PollerState) -> PollerState:
        """Moves a watermark older than the API reaches to the oldest accepted time (+ note)."""
        oldest = clamp_start(self.object_type, state.watermark, utcnow())
        if oldest is None:
            return state
        await self.store.finish_window(series.key, oldest)
        await self.store.set_note(series.key, clamp_note(self.object_type, state.watermark, oldest))
        series.log.warning("start_time_clamped", watermark=format_ts(state.watermark),
                           oldest=format_ts(oldest))
        return await series.state()
