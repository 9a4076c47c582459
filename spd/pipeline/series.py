"""One series of windows and the strategy that fetches it.

A poller runs one series per state row (the poller's, or one per marketplace where the type
takes a single marketplace id). The series loop (spd.pipeline.poller) is the same for every
kind of poller: plan a window → fetch its pages → deliver each → checkpoint each → move the
watermark. What differs is a `FetchStrategy`: operations (spd.pipeline.operation_fetch),
reports requested per window (spd.pipeline.reports) and reports Amazon generates itself
(spd.pipeline.settlements).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

import structlog

from spd.catalog.model import Operation
from spd.client.http import SpClient
from spd.config.model import PollerConfig
from spd.config.sections import AccountConfig
from spd.core.typing import Triple
from spd.pipeline.types import PollStopped, RunResult, Window
from spd.sources.object_type import ObjectType
from spd.state.backend import PollerState, StateBackend

log = structlog.get_logger("spd.pipeline.poller")
T = TypeVar("T")


@dataclass
class Series:
    """What a strategy fetches with: the poller's settings, its state row and marketplace."""

    poller: str  # the poller's name
    key: str  # its state row: the poller's name, or "name@MARKETPLACE"
    market: str | None  # the one marketplace this series polls (fan-out), else None
    config: PollerConfig
    account_name: str
    account: AccountConfig
    object_type: ObjectType
    client: SpClient
    operation: Operation
    store: StateBackend
    stopping: asyncio.Event
    on_activity: Callable[[str, str | None], None] | None = None  # progress: key, what it waits for
    watch: StopWatch = field(init=False, repr=False)  # cancels the work awaited when told to stop

    def __post_init__(self) -> None:
        self.watch = StopWatch(self.stopping)

    def activity(self, text: str | None) -> None:
        """Tells the progress display what the series waits for now (a report being made, a
        document downloading); None when that is over."""
        if self.on_activity is not None:
            self.on_activity(self.key, text)

    @property
    def log(self) -> Any:
        return log.bind(poller=self.key, account=self.account_name, operation=self.object_type.name)

    def over_cap(self, result: RunResult) -> bool:
        """Whether the run reached `max_items_per_run`."""
        cap = self.config.max_items_per_run
        return cap is not None and result.objects >= cap

    async def state(self) -> PollerState:
        """The series' state row as stored now (the series loop ensured it)."""
        return await self.store.require(self.key)

    async def unless_stopped(self, work: Awaitable[T]) -> T:
        """Awaits `work`, abandoning it (PollStopped) at once when the poller is told to stop:
        nothing was delivered for it yet, and a request can wait minutes for quota."""
        if isinstance(work, asyncio.Future) and work.done():  # a prefetched page: no waiting
            return cast(T, work.result())
        task = asyncio.ensure_future(work)
        if self.stopping.is_set():
            await abandon(task)
            raise PollStopped()
        return await self.watch.wait(task)

    async def sleep_unless_stopped(self, seconds: float) -> None:
        """Sleeps, or raises PollStopped at once when the poller is told to stop."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            return
        raise PollStopped()

    def check_stop(self) -> None:
        """Raises PollStopped when the poller was told to stop (between document chunks)."""
        if self.stopping.is_set():
            raise PollStopped()


class StopWatch:
    """Cancels the work a series awaits once its poller is told to stop. One task waits for the
    stop per run, not one per page: a page awaited is the fetch's own task, and nothing more."""

    def __init__(self, stopping: asyncio.Event) -> None:
        self.stopping = stopping
        self._waiter: asyncio.Task[Any] | None = None  # stopping.wait(), while a run needs it
        self._awaited: set[asyncio.Future[Any]] = set()
        self._stopped: set[asyncio.Future[Any]] = set()  # what the stop cancelled

    async def wait(self, work: asyncio.Future[T]) -> T:
        """`await work`, cancelled and awaited when the stop comes (PollStopped then). A
        cancellation of the caller still propagates as one, also if `work` swallowed it."""
        if self._waiter is None or self._waiter.done():  # a stop cleared again is watched anew
            self._waiter = asyncio.ensure_future(self.stopping.wait())
            self._waiter.add_done_callback(self._cancel_awaited)
        caller = asyncio.current_task()
        asked = caller.cancelling() if caller is not None else 0
        self._awaited.add(work)
        try:
            result = await work
        except asyncio.CancelledError:
            if work in self._stopped and not _cancelled_since(caller, asked):
                raise PollStopped() from None
            raise
        finally:
            self._awaited.discard(work)
            self._stopped.discard(work)
        if _cancelled_since(caller, asked):  # `work` ignored its cancellation: the caller's stands
            raise asyncio.CancelledError()
        return result

    def _cancel_awaited(self, waiter: asyncio.Task[Any]) -> None:
        if waiter.cancelled():  # closed at the end of the run, not a stop
            return
        for work in self._awaited:
            if work.cancel():
                self._stopped.add(work)

    async def close(self) -> None:
        """Ends the waiting task (the run is over)."""
        if self._waiter is not None:
            await abandon(self._waiter)
            self._waiter = None


def _cancelled_since(task: asyncio.Task[Any] | None, asked: int) -> bool:
    """Whether `task` was asked to cancel since it had been asked `asked` times."""
    return task is not None and task.cancelling() > asked


async def abandon(work: asyncio.Future[Any]) -> None:
    """Cancels `work` (a page fetched ahead, a request a stop cut short) and waits until it
    ended, so that no request outlives the run that made it; its outcome is dropped unread.
    A cancellation of the caller itself still propagates."""
    work.cancel()
    if not work.done():
        await asyncio.wait({work})  # unlike `await work`, never raises what `work` raised
    if not work.cancelled():
        work.exception()  # read: an error nobody needs is not logged as never retrieved


@dataclass(frozen=True)
class Batch:
    """One fetched page, ready to deliver and checkpoint."""

    page: int  # its number in the window
    triples: list[Triple]  # (id, cursor, data) of each object
    object_type: str  # what the messages say (a settlement's report type)
    end: datetime  # the window's end (an echoed end is known from the first page)
    token: str | None  # the checkpoint's next token: where the page after this one starts
    last: bool = False  # the window's last page: it completes the window, whatever the cap


@dataclass
class WindowRun:
    """What the strategy finds out about a window while fetching it."""

    window: Window
    end: datetime | None = None  # the window's end once known
    page: int = 0  # the last page checkpointed
    watermark: datetime | None = None  # set once the window is complete: the new watermark
    caught_up: bool = False  # nothing more to fetch in this run after this window
    # what the strategy records and logs when the window closes (report id, rows, a note)
    facts: dict[str, Any] = field(default_factory=dict)


class FetchStrategy(Protocol):
    """How one kind of poller plans and fetches windows; the series loop does the rest."""

    def plan(self, series: Series, state: PollerState) -> Window | None:
        """The window in progress, or the next one; None when caught up."""

    def fetch(self, series: Series, state: PollerState, run: WindowRun,
              result: RunResult) -> AsyncGenerator[Batch, None]:
        """The window's pages from where `state` left off; sets `run.watermark` after the last.
        May raise PollStopped (nothing delivered for the work abandoned)."""

    async def closed(self, series: Series, run: WindowRun) -> None:
        """After the watermark moved past the window: forget its bookkeeping, log it."""
