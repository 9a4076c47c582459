"""Everything built from one config: the SP-API client, the emitters and the pollers.

The daemon, `spd once` and the demo build a `Runtime`, run its pollers and close it; a SIGHUP
reload closes one and builds the next over the same state store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from spd.catalog.model import load_catalog
from spd.client.http import SpClient
from spd.config.model import Config
from spd.config.secrets import register_config_secrets
from spd.emitters.base import Emitter, EmitterSettings
from spd.emitters.registry import build_emitter
from spd.pipeline.factory import build_poller
from spd.pipeline.poller import Poller
from spd.state.backend import StateBackend

if TYPE_CHECKING:  # imported by start() for a config that has jobs or subscriptions
    from spd.pipeline.jobs import Job
    from spd.pipeline.subscriptions import QueueConsumer, Route

log = structlog.get_logger("spd.app.runtime")

EmitterFactory = Callable[[str, EmitterSettings], Emitter]

CLOSE_TIMEOUT = 8.0  # flushing an emitter whose peer is down must not hold up the stop


@dataclass
class Runtime:
    """The client, emitters and pollers of one config; `start()` opens them, `close()` flushes and closes."""

    config: Config
    store: StateBackend
    emitter_factory: EmitterFactory = build_emitter
    client: SpClient | None = None
    emitters: dict[str, Emitter] = field(default_factory=dict)
    pollers: dict[str, Poller] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    consumers: dict[str, QueueConsumer] = field(default_factory=dict)  # one per queue
    subscriptions: dict[str, Route] = field(default_factory=dict)  # every subscription by name

    async def start(self) -> None:
        """Checks every poller's identity, then opens the client and the emitters (the config
        passed the validation pass: nothing here checks it again)."""
        register_config_secrets(self.config)
        catalog = load_catalog()
        await self.check_identities()
        self.client = SpClient(self.config.accounts, catalog, journal=self.store)  # quota kept across restarts
        await self.client.start()
        for name, settings in self.config.emitters.items():
            emitter = self.emitter_factory(name, settings)
            await emitter.start()
            self.emitters[name] = emitter
        for name, cfg in self.config.pollers.items():
            ot = cfg.object_type
            self.pollers[name] = build_poller(
                cfg, name=name, account_name=cfg.account,
                account=self.config.accounts[cfg.account], object_type=ot, client=self.client,
                operation=catalog.operation(ot.api, ot.operation), store=self.store,
                emitters=[self.emitters[e] for e in cfg.emitters], config_path=str(self.config.path),
            )
        # Jobs and subscriptions bring their own modules (~25 ms of imports, notifications and
        # the job request builder): only a config that has them loads them.
        if self.config.jobs:
            from spd.pipeline.jobs import build_jobs  # lazy: see above

            self.jobs = build_jobs(self.config, catalog, self.client, self.emitters)
        if self.config.subscriptions:
            from spd.pipeline.subscription_setup import build_consumers  # lazy: see above

            self.consumers, self.subscriptions = build_consumers(self.config, self.emitters, self.client, catalog)

    async def check_identities(self) -> None:
        """Raises IdentityChangedError before anything runs when a poller changed under its watermark."""
        for name, cfg in self.config.pollers.items():
            await self.store.ensure(name, cfg.identity(), cfg.start_time, config_path=str(self.config.path))

    def account_stopping(self, account: str, stopping: bool) -> set[str]:
        """Asks the account's pollers to stop after their page in flight (or lets them run
        again); returns the scheduler keys of its pollers and jobs (`job:NAME`)."""
        keys = {n for n, p in self.config.pollers.items() if p.account == account}
        for name in keys & set(self.pollers):
            (self.pollers[name].stopping.set if stopping else self.pollers[name].stopping.clear)()
        return keys | {f"job:{n}" for n, j in self.config.jobs.items() if j.account == account}

    def stop_pollers(self) -> None:
        """Asks every poller to stop after the page in flight."""
        for poller in self.pollers.values():
            poller.stopping.set()
        for consumer in self.consumers.values():
            consumer.stopping.set()

    async def close(self) -> None:
        """Flushes and closes the emitters, then the client; safe to call twice."""
        async def close_one(name: str, emitter: Emitter) -> None:
            try:
                await asyncio.wait_for(emitter.close(), CLOSE_TIMEOUT)
            except Exception as exc:  # one emitter failing to close must not keep the others open
                log.error("emitter_close_failed", emitter=name, error=str(exc) or type(exc).__name__)

        for name, consumer in self.consumers.items():
            try:
                await asyncio.wait_for(consumer.close(), CLOSE_TIMEOUT)
            except Exception as exc:
                log.error("subscription_close_failed", subscription=name, error=str(exc) or type(exc).__name__)
        self.consumers.clear()
        await asyncio.gather(*(close_one(n, e) for n, e in self.emitters.items()))
        self.emitters.clear()
        if self.client is not None:
            await self.client.close()
            self.client = None


async def drain_tasks(pending: set[asyncio.Task[None]], timeout: float) -> None:
    """Waits up to `timeout` for the runs in flight, then cancels the rest."""
    if not pending:
        return
    late = pending
    if timeout > 0:
        _, late = await asyncio.wait(pending, timeout=timeout)
    for task in late:
        task.cancel()
    if late:
        log.warning("work_abandoned", tasks=len(late))
        await asyncio.wait(late, timeout=2)
