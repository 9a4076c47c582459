"""The state backend a config names (`state.path`: SQLite; `state.url`: PostgreSQL) and, for a
cluster, which account each poller and job belongs to."""

from __future__ import annotations

from pathlib import Path

from spd.config.model import ClusterConfig, Config
from spd.state.backend import StateBackend
from spd.state.store import StateStore


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


def lease_ttl(config: Config) -> float:
    """Seconds a replica's leases live without a heartbeat."""
    return (config.cluster or ClusterConfig()).lease_ttl.total_seconds()


def work_accounts(config: Config) -> dict[str, str]:
    """Poller name or `job:NAME` -> its account: what moves between replicas together."""
    keys = {name: cfg.account for name, cfg in config.pollers.items()}
    keys.update({f"job:{name}": job.account for name, job in config.jobs.items()})
    return keys
