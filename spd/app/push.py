"""The daemon's side of `subscriptions:`: one task per queue (counted in flight, so a stop drains
it), the counters `spd status` shows (kept in the state), and the reconcile trigger: after a
queue was unreachable, the poller named in `reconcile_with` runs at once."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING

import structlog

from spd.config.model import Config
from spd.core.errors import SpdError
from spd.state.backend import MetaStore

if TYPE_CHECKING:  # the daemon builds this helper: it imports this module
    from spd.app.daemon import Daemon
    from spd.pipeline.subscriptions import SubscriptionStats

log = structlog.get_logger("spd.app.push")

COUNTS_INTERVAL = 2.0  # seconds between saves of the subscriptions' counters
SUBSCRIPTION_KEY = "subscription:"  # state meta keys of the subscriptions' counters


class Push:
    """Starts the subscriptions of a daemon's runtime and keeps their counters in the state."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._counts_task: asyncio.Task[None] | None = None
        self._saved: dict[str, SubscriptionStats] = {}  # each route's counters when last stored (or those loaded)
        self._loaded = False  # counters are saved only once the last run's were added

    def start(self, config: Config) -> None:
        """One task per queue; the counters continue from the last run's."""
        runtime = self.daemon.runtime
        assert runtime is not None
        if runtime.consumers and self._counts_task is None:
            self._counts_task = asyncio.ensure_future(self._keep_counts())
        for name, consumer in runtime.consumers.items():
            names = {r.name for r in consumer.routes.values()}
            nets = frozenset(s.reconcile_with for s in config.subscriptions.values()
                             if s.reconcile_with and s.name in names)
            consumer.recovered = lambda nets=nets: self.run_now(nets)
            asyncio.ensure_future(self.run(name))

    async def run(self, name: str) -> None:
        """Reads one queue until the stop (queue errors are retried inside the consumer)."""
        daemon = self.daemon
        runtime = daemon.runtime
        if runtime is None or name not in runtime.consumers or daemon.stopped.is_set():
            return
        async with daemon.tracked("subscription", f"subscription:{name}", subscription=name):
            await runtime.consumers[name].run()

    def run_now(self, pollers: frozenset[str]) -> None:
        """Moves the next run of these pollers to now: the poller catches what the queue outage
        may have kept from the subscription."""
        scheduler = self.daemon.scheduler
        if scheduler is None:
            return
        for name in pollers:
            job = scheduler.get_job(name)
            if job is not None:
                log.info("reconcile_poller_triggered", poller=name)
                job.modify(next_run_time=datetime.now(timezone.utc))

    async def load_counts(self) -> None:
        """Adds the counters the last run (or runtime) saved to this runtime's."""
        runtime, store = self.daemon.runtime, self.daemon.store
        if runtime is None or not isinstance(store, MetaStore):
            return
        if runtime.subscriptions:  # loaded with them (spd.app.runtime): a config without any loads neither
            from spd.pipeline.subscriptions import SubscriptionStats

        saved = await store.meta_items(SUBSCRIPTION_KEY)
        for name, route in runtime.subscriptions.items():
            # what was loaded, not the counters after it: those may count messages the queue
            # handed over while the state answered, and the next save must add them
            self._saved[name] = loaded = SubscriptionStats()
            if name in saved:
                loaded.add_saved(saved[name])
                route.stats.add_saved(saved[name])
        self._loaded = True

    async def save_counts(self) -> None:
        """Adds what each subscription counted since the last save to the state's counters, in
        one atomic update each (only those that changed): replicas reading one queue add up."""
        runtime, store = self.daemon.runtime, self.daemon.store
        if runtime is None or not isinstance(store, MetaStore) or not self._loaded:
            return
        for name, route in runtime.subscriptions.items():
            now, since = replace(route.stats), self._saved.get(name)
            if now != since:
                await store.update_meta(SUBSCRIPTION_KEY + name, partial(now.added_to, since=since))
                self._saved[name] = now

    async def _keep_counts(self) -> None:
        await self.load_counts()
        while True:
            await asyncio.sleep(COUNTS_INTERVAL)
            try:
                await self.save_counts()
            except SpdError as exc:  # a failing state: the pollers say so too; keep going
                log.warning("subscription_counts_not_saved", error=str(exc))

    async def runtime_closing(self) -> None:
        """A reload: saves the counters the next runtime continues from."""
        await self.stop()
        self._loaded = False
        self._saved.clear()

    async def stop(self) -> None:
        """The daemon stops: the last counters are saved."""
        if self._counts_task is not None:
            self._counts_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._counts_task
            self._counts_task = None
        with contextlib.suppress(SpdError):
            await self.save_counts()
