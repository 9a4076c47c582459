"""The state backend a config names (`state.path`: SQLite; `state.url`: PostgreSQL) and, for a
cluster, which account each poller and job belongs to."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import structlog

from spd.config.model import ClusterConfig, Config
from spd.core.errors import StateError
from spd.state.backend import StateBackend
from spd.state.store import StateStore

log = structlog.get_logger("spd.app.state")

# Seconds between two looks that the state file is still the one open (a stat: not per commit).
STATE_CHECK_INTERVAL = 5.0


def open_state(config: Config, *, daemon: bool = False, readonly: bool = False,
               alone: bool = False) -> StateBackend:
    """The (unopened) backend of `config.state`. `daemon=True` takes the SQLite daemon lock (on
    PostgreSQL, replicas share the database: the cluster's leases stand for the lock); `alone`
    (`spd once`) is refused while replicas run; `readonly=True` never writes."""
    state = config.state_config()
    if state.url is not None:
        from spd.state.postgres import PgStore  # lazy: asyncpg, which only state.url needs

        return PgStore(state.url, readonly=readonly, exclusive=alone)
    assert state.path is not None  # StateConfig has exactly one of path and url
    return StateStore(Path(state.path), daemon=daemon, readonly=readonly)


class StateFileWatch:
    """Looks every `interval` seconds, while started, that the state file is still the one open
    (`spd run` and `spd once`): in WAL mode writes into a file deleted or replaced meanwhile go on
    without an error and are lost. The first time it is not, logs `state_file_lost`, keeps the
    error in `lost` and calls `on_lost` with it (which stops the run: exit 78, since a restart
    would start from whatever is at the path now)."""

    def __init__(self, store: StateBackend, on_lost: Callable[[StateError], None], *,
                 interval: float = STATE_CHECK_INTERVAL) -> None:
        self.store = store
        self.on_lost = on_lost
        self.interval = interval
        self.lost: StateError | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._watch())

    async def stop(self) -> None:
        """Ends the periodic looks; safe to call twice, or without start()."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def check(self) -> StateError | None:
        """One look now (also after the last periodic one: a run that ends within `interval`
        of the loss); the error once the file was found lost, else None."""
        if self.lost is None:
            try:
                self.store.check_file()
            except StateError as exc:
                log.error("state_file_lost", path=self.store.where, error=str(exc))
                self.lost = exc
                self.on_lost(exc)
        return self.lost

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.check() is not None:
                return


def lease_ttl(config: Config) -> float:
    """Seconds a replica's leases live without a heartbeat."""
    return (config.cluster or ClusterConfig()).lease_ttl.total_seconds()


def work_accounts(config: Config) -> dict[str, str]:
    """Poller name or `job:NAME` -> its account: what moves between replicas together."""
    keys = {name: cfg.account for name, cfg in config.pollers.items()}
    keys.update({f"job:{name}": job.account for name, job in config.jobs.items()})
    return keys
