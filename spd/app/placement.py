"""The daemon's side of replicas (`state.url`): which accounts' pollers and jobs run in this
process. Outside a cluster, all of them; in one (spd.app.cluster), those whose leases it holds,
started and stopped as the cluster claims and hands back or loses them."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import structlog

from spd.app.runtime import drain_tasks
from spd.app.state import lease_ttl, work_accounts
from spd.config.model import Config
from spd.core.errors import SpdError
from spd.core.replica import replica_id
from spd.state.backend import StateBackend

if TYPE_CHECKING:  # the daemon builds this helper: it imports this module
    from spd.app.cluster import Cluster
    from spd.app.daemon import Daemon
    from spd.client.http import SpClient

log = structlog.get_logger("spd.app.placement")


class Placement:
    """Joins the cluster of a PostgreSQL state and runs the accounts it assigns here."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.cluster: Cluster | None = None

    def prepare(self, store: StateBackend, config: Config) -> None:
        """A cluster member when the state is shared (joined by `join`, after scheduling starts)."""
        if config.state_config().url is None:  # SQLite: one process runs every account
            return
        # lazy: the cluster and asyncpg, which only a shared state (state.url) needs
        from spd.app.cluster import Cluster
        from spd.state.postgres import PgStore

        if isinstance(store, PgStore):
            self.cluster = Cluster(store, replica_id(), lease_ttl(config), work_accounts(config),
                                   self.start_account, self.stop_account)

    async def join(self) -> None:
        if self.cluster is not None:
            await self.cluster.start()

    async def leave(self) -> None:
        """Hands every lease back (after the daemon drained its runs)."""
        if self.cluster is not None:
            await self.cluster.close()

    def reconfigure(self, config: Config) -> None:
        if self.cluster is not None:
            self.cluster.reconfigure(work_accounts(config))

    def accounts(self) -> set[str] | None:
        """The accounts that run here; None: all of them (no cluster)."""
        return None if self.cluster is None else set(self.cluster.running)

    def runs_here(self, account: str) -> bool:
        """Whether this process runs the account's pollers and jobs."""
        return self.cluster is None or account in self.cluster.running

    async def start_account(self, account: str, _: float) -> None:
        """The cluster gave this replica the account: its buckets continue from the levels its
        last holder saved, and its pollers and jobs run from now on."""
        daemon = self.daemon
        if daemon.runtime is not None and daemon.config is not None and not daemon.stopped.is_set():
            await self._levels_of(account, daemon.runtime.client)
            daemon.runtime.account_stopping(account, False)
            daemon.schedule(daemon.config, {account})

    @staticmethod
    async def _levels_of(account: str, client: SpClient | None) -> None:
        if client is None:
            return
        try:
            await client.account_taken(account)
        except SpdError as exc:  # the pollers' first checkpoint will fail the same way and say so
            log.warning("rate_limit_levels_not_loaded", account=account, error=str(exc))

    async def stop_account(self, account: str, grace: float) -> None:
        """The account's pollers and jobs stop here: no more runs; those in flight get `grace`
        seconds to finish their page, then are cancelled (their page repeats elsewhere)."""
        daemon = self.daemon
        if daemon.runtime is None or daemon.scheduler is None:
            return
        keys = daemon.runtime.account_stopping(account, True)
        for key in keys:
            with contextlib.suppress(Exception):  # not scheduled (any more)
                daemon.scheduler.remove_job(key)
        await drain_tasks({t for t, k in daemon.inflight.items() if k in keys}, grace)
        if daemon.runtime.client is not None:  # saved only while the lease is still held
            await daemon.runtime.client.account_leaving(account)
