"""`spd once POLLER --from T1 [--until T2]`: a backfill that never moves the poller's watermark.

The backfill is a series of its own: its state rows are the poller's keys with
`@backfill:T1..T2` after the name (`orders@backfill:2026-11-01T00:00:00Z..2026-11-02T00:00:00Z`,
and `…@MARKETPLACE` per marketplace where the type fans out), so an interrupted backfill resumes
when run again with the same range, and `spd status` lists it under its poller. Its messages
are the poller's own (same poller name, emitters and emit mode); consumers deduplicate as
always. Windows never end after T2, except where T2 is later than the type lets a request
reach (now - lag, Amazon's rule): there the API's echo ends the window, as the poller's own.

Without --until (or with `--until now`) the backfill is open-ended, `T1..now`: it runs as the
poller itself would from T1, up to now - lag, in its own rows. Its key names no instant, so
running the same command again, after a crash or a day later, resumes the same series (and
carries it on to the new now) instead of starting another one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from spd.app.backfill_rows import backfill_key, range_text
from spd.core.errors import UsageError
from spd.core.times import utcnow
from spd.core.typing import BucketLevel
from spd.pipeline.operation_fetch import OperationFetch
from spd.pipeline.poller import Poller
from spd.pipeline.poller_support import ECHO_CLOCK_SKEW
from spd.pipeline.series import Batch, FetchStrategy, Series, WindowRun
from spd.pipeline.types import RunResult, Window
from spd.state.backend import PollerState, ReportLedger, StateBackend


@dataclass(frozen=True)
class Backfill:
    """The range of a backfill: from `start` (included) to `until`, or on to now - lag (None)."""

    start: datetime
    until: datetime | None

    @property
    def range(self) -> str:
        """`T1..T2`, or `T1..now` for an open-ended backfill: the same for every run of it."""
        return range_text(self.start, self.until)

    def key(self, poller: str) -> str:
        """The backfill's own state row for the poller's row `poller` (`name` or `name@MARKET`)."""
        return backfill_key(poller, self.start, self.until)


def backfill_poller(poller: Poller, backfill: Backfill) -> Poller:
    """A copy of `poller` that polls only [start, until) (open-ended: from start on, as the
    poller itself) and keeps its state in its own rows."""
    if not isinstance(poller.fetching, OperationFetch):
        raise UsageError(f"poller {poller.name}: --from/--until backfill operation pollers; "
                         f"{poller.object_type.name} is polled by reports, which are not supported yet")
    config = poller.config.model_copy(update={"start_time": backfill.start})
    store = BackfillStore(poller.store, backfill)
    if backfill.until is None:  # nothing to stop at but now - lag, where the poller stops anyway
        return replace(poller, config=config, store=store)
    field = poller.config.timestamp_field
    if not poller.object_type.has_upper_bound(field):
        raise UsageError(f"poller {poller.name}: {poller.object_type.name} has no upper bound for "
                         f"{field}, so a backfill could not stop at --until; run it without --until")
    return replace(poller, config=config, store=store,
                   fetching=BoundedFetch(poller.fetching, backfill.until))


class BoundedFetch:
    """A fetch strategy whose windows end at `until` at the latest, and which stops there;
    fetching itself is the wrapped strategy's."""

    def __init__(self, inner: FetchStrategy, until: datetime) -> None:
        self.inner = inner
        self.until = until

    def plan(self, series: Series, state: PollerState) -> Window | None:
        """The poller's next window, cut at `until`; None once the watermark reached it.
        A window in progress stays as it was checkpointed (its next token belongs to it)."""
        if state.window_start is None and state.watermark >= self.until:
            return None
        window = self.inner.plan(series, state)
        if window is None or state.window_start is not None:
            return window
        if window.end is not None:  # already at most now - lag
            return window if window.end <= self.until else Window(window.start, self.until, echo=False)
        if not self.reachable(series):  # the echo closes it, no later than now - lag
            return window
        return Window(window.start, self.until, echo=False)

    def reachable(self, series: Series) -> bool:
        """Whether a request may send `until` as its upper bound: Amazon refuses one later
        than its own now - lag (Orders: 2 minutes), and its clock may run behind ours."""
        return self.until <= utcnow() - series.object_type.window.lag - ECHO_CLOCK_SKEW

    def fetch(self, series: Series, state: PollerState, run: WindowRun,
              result: RunResult) -> AsyncGenerator[Batch, None]:
        return self.inner.fetch(series, state, run, result)

    async def closed(self, series: Series, run: WindowRun) -> None:
        await self.inner.closed(series, run)


class BackfillStore:
    """The poller's state backend with every poller key moved to the backfill's own rows."""

    def __init__(self, store: StateBackend, backfill: Backfill) -> None:
        self._store = store
        self._backfill = backfill
        self._keys: dict[str, str] = {}  # backfill row -> the key the poller knows

    def _key(self, poller: str) -> str:
        key = self._backfill.key(poller)
        self._keys[key] = poller
        return key

    def _back(self, state: PollerState | None) -> PollerState | None:
        if state is None:
            return None
        return replace(state, poller=self._keys.get(state.poller, state.poller))

    async def open(self) -> None:
        await self._store.open()

    async def close(self) -> None:
        await self._store.close()

    async def __aenter__(self) -> StateBackend:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def check_file(self) -> None:
        self._store.check_file()

    async def is_locked_by_daemon(self) -> bool:
        return await self._store.is_locked_by_daemon()

    async def all(self) -> list[PollerState]:
        return await self._store.all()

    async def lease_holders(self) -> dict[str, str]:
        return await self._store.lease_holders()

    async def pollers(self) -> list[str]:
        return await self._store.pollers()

    @property
    def ledger(self) -> ReportLedger:
        return self._store.ledger

    @property
    def where(self) -> str:
        return self._store.where

    async def get(self, poller: str) -> PollerState | None:
        return self._back(await self._store.get(self._key(poller)))

    async def require(self, poller: str) -> PollerState:
        state = self._back(await self._store.require(self._key(poller)))
        assert state is not None
        return state

    async def ensure(self, poller: str, identity: str, start: datetime, *,
                     config_path: str | Path | None = None) -> PollerState:
        state = await self._store.ensure(self._key(poller), identity, self._backfill.start,
                                         config_path=config_path)
        return self._back(state)  # type: ignore[return-value]

    async def save_page(self, poller: str, window_start: datetime, window_end: datetime | None,
                        next_token: str | None, page: int, count: int) -> None:
        await self._store.save_page(self._key(poller), window_start, window_end, next_token, page, count)

    async def finish_window(self, poller: str, new_watermark: datetime) -> None:
        await self._store.finish_window(self._key(poller), new_watermark)

    async def restart_window(self, poller: str) -> None:
        await self._store.restart_window(self._key(poller))

    async def record_run(self, poller: str, *, error: str | None) -> None:
        await self._store.record_run(self._key(poller), error=error)

    async def set_note(self, poller: str, note: str | None) -> None:
        await self._store.set_note(self._key(poller), note)

    async def delete(self, poller: str) -> bool:
        return await self._store.delete(self._key(poller))

    async def reset(self, poller: str, to: datetime, identity: str | None = None) -> None:
        await self._store.reset(self._key(poller), to, identity)

    async def forget(self, pollers: list[str]) -> int:
        return await self._store.forget([self._key(p) for p in pollers])

    async def load_bucket_levels(self) -> list[BucketLevel]:
        return await self._store.load_bucket_levels()  # quota is the account's, not the poller's

    async def save_bucket_levels(self, levels: list[BucketLevel]) -> None:
        await self._store.save_bucket_levels(levels)
