"""A poller: fetches one object type window by window, hands each page to its emitters and
checkpoints only after every emitter acknowledged it (DESIGN.md §4).

A window runs from the watermark to min(now - lag, watermark + max_window). Bounds are sent as
they are; what each includes is Amazon's (`spd objects TYPE` shows it): where both ends include
their instant an object on a boundary may come twice, where neither is said to, windows overlap
by one second so that none is lost; consumers deduplicate on (account, object_type, id, cursor).
Where the API echoes the upper bound it applied, the newest window sends none and takes the echo
as the next watermark, once checked (poller_support.check_echo): never later than the answer's
time - lag, never a step back, and an echo that stops advancing means caught up. Where the
filter has no upper bound at all, the window ends at the request time - lag (and max_window
does not apply: without an upper bound there is nothing to split).

Types whose marketplace parameter takes one id poll each of the account's marketplaces as its
own series with its own watermark (state key "POLLER@MARKETPLACE"); the poller's own row then
holds the oldest of them, and a `spd reset` of it restarts every marketplace from it. `overlap` starts every
window that much before the watermark (never before start_time): objects Amazon indexes late
are still found, and objects in the overlap are emitted again (consumers deduplicate on
(account, object_type, id, cursor)).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from spd.catalog.model import Operation, load_catalog
from spd.client.http import SpClient
from spd.config.checks import check_poller_params
from spd.config.model import PollerConfig
from spd.config.sections import AccountConfig
from spd.core.paths import dig
from spd.core.typing import Triple
from spd.core.times import format_ts, utcnow
from spd.emitters.base import Emitter
from spd.core.errors import ApiError, DeliveryError, SpdError, describe_error
from spd.pipeline.messages import build_messages
from spd.pipeline.types import Page, PollStopped, RunResult, Window
from spd.sources.object_type import ObjectType, object_cursor, object_id
from spd.pipeline.poller_support import (MIN_WINDOW, TokenGuard, attach_order_items, check_echo,
                                clamp_note, clamp_start, count_fallbacks,
                                fan_out_markets, fill_fixed, fold_fanned_out,
                                is_expired_token_error, market_value, page_contents,
                                sync_fanned_out)
from spd.state.backend import PollerState, StateBackend

log = structlog.get_logger("spd.pipeline.poller")
T = TypeVar("T")

# Where Amazon does not say whether a bound includes its own instant, windows overlap this much.
BOUNDARY_OVERLAP = timedelta(seconds=1)


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
    config_path: str = ""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    market: str | None = None  # the one marketplace this series polls (fan-out)
    state_key: str = ""  # the state row: the poller's name, or "name@MARKETPLACE"
    items_operation: Operation | None = None  # ordersV0.getOrderItems when `include: [items]`
    on_page: Callable[[str, RunResult, datetime], None] | None = None  # progress: key, run, window end
    # Emitters that already acknowledged a page whose delivery failed elsewhere, so a retry of
    # the same page goes only to the others: (state key, window start, page, content) -> indexes.
    acked: dict[tuple[str, datetime, int, int], set[int]] = field(default_factory=dict)
    failure: str | None = None  # the last run's error, also when the state could not record it

    def __post_init__(self) -> None:
        self.state_key = self.state_key or self.name
        check_poller_params(self.name, self.object_type, self.config)
        if self.items_operation is None and "items" in (getattr(self.config, "include", None) or ()):
            self.items_operation = load_catalog().operation("ordersV0", "getOrderItems")

    @property
    def log(self) -> Any:
        return log.bind(poller=self.state_key, account=self.account_name,
                        operation=self.object_type.name)

    def series(self) -> list[Poller]:
        """One poller per marketplace where the type takes a single id, else just this one."""
        markets = fan_out_markets(self.object_type, self.config.params,
                                  self.account.marketplace_ids)
        if len(markets) == 1:
            return [replace(self, market=markets[0], state_key=self.name)]
        return [replace(self, market=m, state_key=f"{self.name}@{m}", stopping=self.stopping)
                for m in markets] or [self]

    async def run(self) -> RunResult:
        """Polls every series window after window until caught up, stopped, or capped."""
        parent = await self.store.ensure(self.name, self.config.identity(), self.config.start_time,
                                   config_path=self.config_path)
        series = self.series()
        fanned = [one.state_key for one in series if one.state_key != self.name]
        await sync_fanned_out(self.store, parent, fanned)
        try:
            total = await self.run_all(series, fanned)
            await self.store.record_run(self.name, error=None)  # a full disk here fails the run too
        except Exception as exc:
            self.failure = describe_error(exc)
            await self.record_failure(self.name, self.failure)
            raise
        self.failure = None
        return total

    async def run_all(self, series: list[Poller], fanned: list[str]) -> RunResult:
        """Runs the series one after the other; the poller's row then takes the oldest
        marketplace watermark."""
        total = RunResult(caught_up=True)
        try:
            for one in series:
                result = await one.run_series(total.objects)
                total.add(result)
                if result.capped or self.stopping.is_set():
                    break
        finally:
            await fold_fanned_out(self.store, self.name, fanned)
        return total

    async def record_failure(self, key: str, error: str) -> None:
        """Records a failed run on its state row; when the state itself cannot be written (a
        full disk), says so in the log and keeps the error for /metrics."""
        try:
            await self.store.record_run(key, error=error)
        except SpdError as exc:
            self.log.error("run_not_recorded", error=str(exc), run_error=error)

    async def run_series(self, done: int = 0) -> RunResult:
        """Polls this series (state row `state_key`) until caught up, stopped or capped."""
        key = self.state_key
        state = await self.store.ensure(key, self.config.identity(), self.config.start_time,
                                  config_path=self.config_path)
        state = await self.clamp(state)
        result = RunResult(watermark=state.watermark, objects=done)
        try:
            while not self.stopping.is_set():
                window = self.next_window(state)
                if window is None:
                    result.caught_up = True
                    break
                state = await self.poll_window(state, window, result)
                if result.capped or result.caught_up:
                    break
        except Exception as exc:
            if key != self.name:
                await self.record_failure(key, describe_error(exc))
            raise
        if key != self.name:
            await self.store.record_run(key, error=None)
        result.objects -= done
        result.watermark = state.watermark
        return result

    async def clamp(self, state: PollerState) -> PollerState:
        """Moves a watermark older than the API reaches to the oldest accepted time (+ note)."""
        oldest = clamp_start(self.object_type, state.watermark, utcnow())
        if oldest is None:
            return state
        await self.store.finish_window(self.state_key, oldest)
        await self.store.set_note(self.state_key, clamp_note(self.object_type, state.watermark, oldest))
        self.log.warning("start_time_clamped", watermark=format_ts(state.watermark),
                         oldest=format_ts(oldest))
        return await self.store.require(self.state_key)

    def next_window(self, state: PollerState) -> Window | None:
        """The window in progress, or the next one; None when caught up with now - lag."""
        if state.window_start is not None:
            return Window(state.window_start, state.window_end, echo=state.window_end is None)
        ot = self.object_type
        newest = utcnow() - ot.window.lag
        if newest - state.watermark < MIN_WINDOW:
            return None
        start = self.window_start(state.watermark)
        bounded = ot.has_upper_bound(self.config.timestamp_field)
        if ot.window.max_window is not None and bounded and start + ot.window.max_window < newest:
            return Window(start, start + ot.window.max_window, echo=False)
        echo = ot.window.echo_path(self.config.timestamp_field) is not None
        return Window(start, None if echo else newest, echo=echo)

    def window_start(self, watermark: datetime) -> datetime:
        """The watermark, or `overlap` before it (never before start_time); the overlap is at
        most half the maximum window so that every window still moves the watermark."""
        overlap = getattr(self.config, "overlap", None) or timedelta(0)
        if self.object_type.boundary_overlap(self.config.timestamp_field):
            overlap = max(overlap, BOUNDARY_OVERLAP)
        if not overlap:
            return watermark
        if self.object_type.window.max_window is not None:
            overlap = min(overlap, self.object_type.window.max_window / 2)
        return max(watermark - overlap, min(self.config.start_time, watermark))

    async def poll_window(self, state: PollerState, window: Window, result: RunResult) -> PollerState:
        """Follows the next token to the end of the window, checkpointing each delivered page.

        The next page is fetched while this one is delivered: its token is known already, and
        the request and the emitters' fsyncs overlap. Nothing is checkpointed ahead: a failed
        delivery drops the fetched page and the run resumes from the last acknowledged one."""
        token = state.next_token
        page_no = state.page
        end, stalled = window.end, False
        result.windows += 1
        guard = TokenGuard(self.object_type.name, token)
        fetching: asyncio.Future[Page] | None = self.start_fetch(window, token)
        while True:
            assert fetching is not None  # a new fetch starts for every page that has a next one
            try:
                page = await self.fetched_unless_stopped(fetching)
            except PollStopped:
                return await self.store.require(self.state_key)
            except ApiError as exc:
                if token and is_expired_token_error(exc):
                    self.log.warning("next_token_expired", window_start=format_ts(window.start))
                    await self.store.restart_window(self.state_key)
                    token, page_no = None, 0
                    guard = TokenGuard(self.object_type.name)
                    fetching = self.start_fetch(window, None)
                    continue
                raise
            if end is None:
                end, stalled = self.window_end(window, page, state.watermark)
            guard.check(page.next_token, page_no + 1, len(page.objects))
            if page.next_token:
                guard.sent(page.next_token)
            page_no += 1
            fetching = self.prefetch(window, page, result)
            try:
                await self.deliver(window.start, end, page_no, page.objects)
            except BaseException:
                if fetching is not None:
                    fetching.cancel()
                raise
            # The checkpoint's fsync runs off the event loop, so the next page keeps arriving.
            await self.store.save_page(self.state_key, window.start, end,
                                       page.next_token, page_no, len(page.objects))
            result.pages += 1
            result.objects += len(page.objects)
            if self.on_page is not None:
                self.on_page(self.state_key, result, end)
            token = page.next_token
            if token is None:
                await self.store.finish_window(self.state_key, end)
                self.log.info("window_completed", window=[format_ts(window.start), format_ts(end)],
                              pages=page_no)
                result.caught_up = result.caught_up or stalled  # the echo no longer advances
                return await self.store.require(self.state_key)
            if fetching is None or self.stopping.is_set():
                if fetching is not None:
                    fetching.cancel()
                result.capped = self.over_cap(result)
                return await self.store.require(self.state_key)

    def start_fetch(self, window: Window, token: str | None) -> asyncio.Future[Page]:
        return asyncio.ensure_future(self.fetch_page(window, token))

    def prefetch(self, window: Window, page: Page, result: RunResult) -> asyncio.Future[Page] | None:
        """The next page's fetch, unless there is none, the run stops or the cap is reached
        with this page (a request spent past the cap would waste quota)."""
        cap = self.config.max_items_per_run
        if page.next_token is None or self.stopping.is_set():
            return None
        if cap is not None and result.objects + len(page.objects) >= cap:
            return None
        return self.start_fetch(window, page.next_token)

    async def fetched_unless_stopped(self, fetch: asyncio.Future[Page]) -> Page:
        """The fetched page, or PollStopped at once when the daemon stops first: nothing was
        delivered for it yet, and a request can wait minutes for quota (getOrders refills one
        token a minute)."""
        return await self.unless_stopped(fetch)

    async def unless_stopped(self, work: Awaitable[T]) -> T:
        """Awaits `work`, abandoning it (PollStopped) at once when the poller is told to stop."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
        if task.cancelled() or not task.done():
            raise PollStopped()
        return task.result()

    def over_cap(self, result: RunResult) -> bool:
        cap = self.config.max_items_per_run
        return cap is not None and result.objects >= cap

    async def fetch_page(self, window: Window, token: str | None) -> Page:
        """One request: the window's filters, or the next token (alone where the API wants it)."""
        params = self.request_params(window, token)
        response = await self.client.call(self.account_name, self.operation, params,
                                          restricted=self.config.restricted)
        body = response.body
        objects, next_token = page_contents(self.object_type, body)
        received = utcnow()
        if self.items_operation is not None and objects:
            await attach_order_items(self.client, self.account_name, self.items_operation, objects)
        return Page(objects, next_token, self.echo_of(body), received)

    def echo_of(self, body: Any) -> Any:
        """The upper bound the API echoed for this poller's timestamp field, as it came."""
        path = self.object_type.window.echo_path(self.config.timestamp_field)
        return dig(body, path) if path else None

    def window_end(self, window: Window, page: Page, watermark: datetime) -> tuple[datetime, bool]:
        """The end of a window the first page decides: the checked echo where the API gives
        one (and whether it stalled: caught up), else the answer's time - lag."""
        lag = self.object_type.window.lag
        if page.echo is None:
            return page.received - lag, False
        path = self.object_type.window.echo_path(self.config.timestamp_field)
        assert path is not None  # an echo is read only where the type declares one
        return check_echo(self.object_type.name, path[-1], page.echo, window.start, watermark,
                          page.received, lag)

    def request_params(self, window: Window, token: str | None) -> dict[str, Any]:
        """Query parameters for a first page (filters) or a following page (token)."""
        ot = self.object_type
        params: dict[str, Any] = self.market_params()
        if token and ot.paging.token_alone:
            if not self.market_required():
                params = {}
            params.update(fill_fixed(ot.paging.token_params, self.market))
            params[ot.paging.token_param] = token
            return params
        params.update(fill_fixed(ot.params.fixed, self.market))
        params.update(self.config.params)
        after, before = self.bounds()
        params[after] = format_ts(window.start)
        if before and window.end is not None and not window.echo:
            params[before] = format_ts(window.end)
        size_param, size_max = ot.paging.size_param, ot.paging.size_max
        if size_param and size_max and size_param not in self.config.params:
            params[size_param] = size_max
        if token:
            params.update(fill_fixed(ot.paging.token_params, self.market))
            params[ot.paging.token_param] = token
        return params

    def market_required(self) -> bool:
        """Whether the marketplace parameter must come even with a next token sent alone."""
        name = self.object_type.partitioning.marketplace_param
        param = self.operation.param(name) if name else None
        return bool(param is not None and param.required)

    def market_params(self) -> dict[str, Any]:
        """The marketplace filter: this series' one id, the params' own, or the account's."""
        name = self.object_type.partitioning.marketplace_param
        if not name:
            return {}
        if name in self.config.params:
            return {name: self.config.params[name]}
        if self.market is not None:
            return {name: market_value(self.operation, name, self.market)}
        ids = list(self.account.marketplace_ids or ())
        return {name: ids} if ids else {}

    def bounds(self) -> tuple[str, str | None]:
        ot = self.object_type
        bounds = ot.window.bounds(self.config.timestamp_field)
        assert bounds is not None, "config validation guarantees the timestamp field exists"
        return bounds

    async def deliver(self, start: datetime, end: datetime, page_no: int,
                      objects: list[dict[str, Any]]) -> None:
        """Hands one page to every emitter; returns once all acknowledged it."""
        field_name = self.config.timestamp_field
        ot = self.object_type
        triples = [(object_id(ot, obj), object_cursor(ot, obj, field_name), obj) for obj in objects]
        fallbacks = count_fallbacks(ot, triples, field_name)
        if fallbacks:  # emitted all the same, but never silently
            missing = any(k.startswith(("id:", "cursor: null")) for k in fallbacks)
            (self.log.warning if missing else self.log.info)(
                "objects_without_id_or_time", page=page_no, objects=len(objects), fallbacks=fallbacks)
        await self.deliver_triples(start, end, page_no, triples, ot.name)

    async def deliver_triples(self, start: datetime, end: datetime, page_no: int,
                              triples: list[Triple], object_type: str) -> None:
        """Delivers `(id, cursor, data)` as one page's messages. A page that some emitters
        acknowledged and others refused goes, when retried unchanged, only to the others."""
        messages = build_messages(poller=self.name, account=self.account_name, object_type=object_type,
                                  emit=self.config.emit, window=(start, end), page=page_no,
                                  objects=triples)
        if not messages:
            return
        key = (self.state_key, start, page_no, hash(tuple((i, c) for i, c, _ in triples)))
        if len(self.acked) > 64:  # pages that were never retried (window restarted, config reloaded)
            self.acked.clear()
        done = self.acked.setdefault(key, set())
        pending = [i for i in range(len(self.emitters)) if i not in done]
        results = await asyncio.gather(*(self.emitters[i].send(messages) for i in pending),
                                       return_exceptions=True)
        done.update(i for i, r in zip(pending, results) if not isinstance(r, BaseException))
        failures = [r for r in results if isinstance(r, BaseException)]
        if not failures:
            self.acked.pop(key, None)
        else:
            first = failures[0]
            if isinstance(first, SpdError):
                raise DeliveryError(f"poller {self.name}: page {page_no} not delivered: {first}")
            raise first
