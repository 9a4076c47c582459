"""The state on PostgreSQL (`state: {url: postgresql://...}`), for replicas sharing pollers.

The same tables as the SQLite store behind the same interface, plus the cluster's replicas and
account leases (spd.state.leases). The schema is created and migrated on open (spd.state.pg_schema),
never by a read-only store (`spd status`). Every write a poller makes, and every save of its
account's rate-limit bucket levels, is fenced when a `Fence` is set: in the write's own
transaction, the account's lease row must still name this replica with the epoch it claimed and
be unexpired (by the database's clock), else the write is refused (LeaseLostError) and nothing
moves. The row is locked FOR SHARE, so a takeover in progress either waits for the write to
commit or the write sees the new epoch.

Failures are one line: an unreachable or failing database is a StateWriteError (exit 1, retried by
systemd or the next run), a schema spd did not write is a StateError (exit 78).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from spd.core.errors import StateError, StateLockedError, StateWriteError
from spd.core.redaction import redact
from spd.core.typing import BucketLevel
from spd.state.backend import PollerState, check_identity, one_line
from spd.state.pg_ledger import PgLedger
from spd.state.pg_schema import Conn, check_version, migrate, schema_version

POOL_SIZE = 4
CONNECT_TIMEOUT = 5.0
_COLUMNS = ("poller, identity, watermark, window_start, window_end, next_token, page, objects_emitted,"
            " pages_emitted, runs, last_run_at, last_success_at, last_error, note")
# Failures that say nothing about the data: the database is away, restarting or overloaded.
_UNAVAILABLE = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError,
                asyncpg.ConnectionDoesNotExistError, asyncpg.PostgresConnectionError,
                asyncpg.InsufficientResourcesError, asyncpg.OperatorInterventionError)


class LeaseLostError(StateWriteError):
    """A write of a poller whose account's lease this replica no longer holds: refused."""


@dataclass
class Fence:
    """What fences a replica's writes: its id, each poller's account and the epoch of each
    account lease it holds (set by the cluster as it claims and loses leases)."""

    replica: str
    accounts: dict[str, str]  # poller name -> account
    epochs: dict[str, int] = field(default_factory=dict)  # account -> epoch held

    def lease_of(self, key: str) -> tuple[str, int | None]:
        """(account, epoch held or None) of a state row (`poller` or `poller@MARKETPLACE`)."""
        account = self.accounts.get(key.split("@", 1)[0], "")
        return account, self.epochs.get(account)


def public_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    return parts._replace(netloc=f"{user}@{parts.netloc.rpartition('@')[2]}").geturl()


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: state timestamps must carry a time zone")
    return dt


def _row_to_state(row: asyncpg.Record) -> PollerState:
    return PollerState(
        poller=row["poller"], identity=row["identity"], watermark=row["watermark"],
        window_start=row["window_start"], window_end=row["window_end"], next_token=row["next_token"],
        page=row["page"], objects_emitted=row["objects_emitted"], pages_emitted=row["pages_emitted"],
        runs=row["runs"], last_run_at=row["last_run_at"], last_success_at=row["last_success_at"],
        last_error=row["last_error"], note=row["note"],
    )


class PgStore:
    """The state in a PostgreSQL database; `readonly=True` never creates, migrates or writes."""

    def __init__(self, url: str, *, readonly: bool = False, exclusive: bool = False,
                 command_timeout: float = 10.0) -> None:
        self.url = url
        self.readonly = readonly
        self.exclusive = exclusive  # `spd once`: refused while replicas run
        self.command_timeout = command_timeout
        self.fence: Fence | None = None
        self.empty = False  # read-only on a database no spd created its schema in yet
        self._pool: asyncpg.Pool | None = None
        self._ledger = PgLedger(self)

    @property
    def where(self) -> str:
        return public_url(self.url)

    @property
    def ledger(self) -> PgLedger:
        return self._ledger

    async def open(self) -> None:
        """Connects (a small pool) and brings the schema to this version (unless read-only)."""
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(self.url, min_size=1, max_size=POOL_SIZE,
                                             timeout=CONNECT_TIMEOUT,
                                             command_timeout=self.command_timeout)
        except (ValueError, asyncpg.InvalidAuthorizationSpecificationError,
                asyncpg.InvalidCatalogNameError, asyncpg.InvalidPasswordError) as exc:
            raise StateError(f"state {self.where}: cannot open the state database ({self._reason(exc)})") from None
        except _UNAVAILABLE as exc:
            raise self.unavailable(exc) from None
        assert pool is not None
        try:
            async with pool.acquire() as conn:
                if self.readonly:
                    version = await schema_version(conn)
                    self.empty = version == 0
                    if not self.empty:
                        check_version(self.where, version, readonly=True)
                else:
                    await migrate(conn, self.where)
                if self.exclusive:
                    await self._refuse_while_replicas_run(conn)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, _UNAVAILABLE):
                raise self.unavailable(exc) from None
            if isinstance(exc, asyncpg.PostgresError):
                raise self.failed(exc) from None
            raise
        self._pool = pool

    async def close(self) -> None:
        """Closes the pool; safe to call twice."""
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.close()

    async def __aenter__(self) -> PgStore:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @staticmethod
    def _reason(exc: BaseException) -> str:
        return " ".join(str(exc).split()) or type(exc).__name__

    def unavailable(self, exc: BaseException) -> StateWriteError:
        return StateWriteError(f"state {self.where}: the state database is unreachable ({self._reason(exc)})")

    def failed(self, exc: BaseException) -> StateError:
        reason = self._reason(exc)
        if isinstance(exc, (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError)):
            return StateError(f"state {self.where}: the state database is damaged ({reason})")
        return StateWriteError(f"state {self.where}: cannot write the state database ({reason})")

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A pooled connection, with database failures as one-line StateErrors."""
        if self._pool is None:
            raise StateError(f"state {self.where} is not open")
        try:
            async with self._pool.acquire(timeout=CONNECT_TIMEOUT) as conn:
                yield conn
        except StateError:
            raise
        except _UNAVAILABLE as exc:
            raise self.unavailable(exc) from None
        except asyncpg.PostgresError as exc:
            raise self.failed(exc) from None

    @contextlib.asynccontextmanager
    async def fenced(self, key: str) -> AsyncIterator[Conn]:
        """A transaction in which the lease of `key`'s account is checked (and held FOR SHARE)
        when a fence is set; LeaseLostError when this replica no longer holds it."""
        async with self.connection() as conn, conn.transaction():
            if self.fence is not None:
                account, epoch = self.fence.lease_of(key)
                await self._hold_lease(conn, self.fence, account, epoch, f"poller {key}")
            yield conn

    @staticmethod
    async def _hold_lease(conn: Conn, fence: Fence, account: str, epoch: int | None, what: str) -> None:
        """Locks the account's lease row FOR SHARE in `conn`'s transaction if it still names this
        replica with `epoch` and is unexpired; else LeaseLostError naming `what` was written."""
        held = epoch is not None and await conn.fetchval(
            "SELECT 1 FROM spd_leases WHERE account=$1 AND replica=$2 AND epoch=$3"
            " AND expires_at > now() FOR SHARE", account, fence.replica, epoch)
        if not held:
            raise LeaseLostError(
                f"{what}: replica {fence.replica} does not hold the lease of"
                f" account {account or '?'} (epoch {epoch}); the write was refused")

    async def _refuse_while_replicas_run(self, conn: Conn) -> None:
        live = await conn.fetch("SELECT replica FROM spd_replicas WHERE expires_at > now() ORDER BY replica")
        if live:
            names = ", ".join(r["replica"] for r in live)
            raise StateLockedError(f"state {self.where} is in use by running spd replicas ({names});"
                                   " stop them first")

    def check_file(self) -> None:
        """Nothing to check: a server's tables cannot be deleted under an open file."""

    async def is_locked_by_daemon(self) -> bool:
        """True while any replica of the cluster is alive."""
        async with self.connection() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM spd_replicas WHERE expires_at > now()"))

    async def get(self, poller: str) -> PollerState | None:
        async with self.connection() as conn:
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM spd_pollers WHERE poller=$1", poller)
        return _row_to_state(row) if row else None

    async def require(self, poller: str) -> PollerState:
        state = await self.get(poller)
        if state is None:
            raise self._missing(poller)
        return state

    def _missing(self, poller: str) -> StateError:
        return StateError(f"state {self.where}: poller {poller} has no saved state")

    async def all(self) -> list[PollerState]:
        if self.empty:
            return []
        async with self.connection() as conn:
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM spd_pollers ORDER BY poller")
        return [_row_to_state(r) for r in rows]

    async def pollers(self) -> list[str]:
        async with self.connection() as conn:
            rows = await conn.fetch("SELECT poller FROM spd_pollers ORDER BY poller")
        return [r["poller"] for r in rows]

    async def _write(self, poller: str, sql: str, *args: Any) -> None:
        """One fenced UPDATE of `poller`'s row ($1 is the poller); the row must exist."""
        async with self.fenced(poller) as conn:
            status = await conn.execute(sql, poller, *args)
        if status.endswith(" 0"):
            raise self._missing(poller)

    async def ensure(self, poller: str, identity: str, start: datetime, *,
                     config_path: str | Path | None = None) -> PollerState:
        # Unfenced: inserting a new row never moves an existing watermark.
        async with self.connection() as conn:
            await conn.execute("INSERT INTO spd_pollers (poller, identity, watermark) VALUES ($1, $2, $3)"
                               " ON CONFLICT (poller) DO NOTHING", poller, identity, _aware(start))
        state = await self.require(poller)
        check_identity(state, identity, config_path)
        return state

    async def save_page(self, poller: str, window_start: datetime, window_end: datetime | None,
                        next_token: str | None, page: int, count: int) -> None:
        await self._write(
            poller, "UPDATE spd_pollers SET window_start=$2, window_end=$3, next_token=$4, page=$5,"
            " objects_emitted=objects_emitted+$6, pages_emitted=pages_emitted+1, updated_at=now()"
            " WHERE poller=$1", _aware(window_start), _aware(window_end), next_token, page, count)

    async def finish_window(self, poller: str, new_watermark: datetime) -> None:
        await self._write(
            poller, "UPDATE spd_pollers SET watermark=$2, window_start=NULL, window_end=NULL,"
            " next_token=NULL, page=0, updated_at=now() WHERE poller=$1", _aware(new_watermark))

    async def restart_window(self, poller: str) -> None:
        await self._write(poller, "UPDATE spd_pollers SET next_token=NULL, page=0, updated_at=now()"
                                  " WHERE poller=$1")

    async def record_run(self, poller: str, *, error: str | None) -> None:
        if error is None:
            await self._write(poller, "UPDATE spd_pollers SET runs=runs+1, last_run_at=now(),"
                                      " last_success_at=now(), last_error=NULL, updated_at=now()"
                                      " WHERE poller=$1")
        else:
            await self._write(poller, "UPDATE spd_pollers SET runs=runs+1, last_run_at=now(),"
                                      " last_error=$2, updated_at=now() WHERE poller=$1",
                              one_line(redact(error)))

    async def set_note(self, poller: str, note: str | None) -> None:
        text = one_line(redact(note)) if note is not None else None
        await self._write(poller, "UPDATE spd_pollers SET note=$2, updated_at=now() WHERE poller=$1", text)

    async def reset(self, poller: str, to: datetime, identity: str | None = None) -> None:
        """Refused while any replica is alive (`spd reset` would race the one running it)."""
        async with self.connection() as conn, conn.transaction():
            if self.fence is None:
                await self._refuse_while_replicas_run(conn)
            status = await conn.execute(
                "UPDATE spd_pollers SET watermark=$2, identity=coalesce($3, identity),"
                " window_start=NULL, window_end=NULL, next_token=NULL, page=0, updated_at=now()"
                " WHERE poller=$1", poller, _aware(to), identity)
            if status.endswith(" 0"):
                if identity is None:
                    raise self._missing(poller)
                await conn.execute("INSERT INTO spd_pollers (poller, identity, watermark)"
                                   " VALUES ($1, $2, $3)", poller, identity, to)

    async def delete(self, poller: str) -> bool:
        async with self.fenced(poller) as conn:
            status = await conn.execute("DELETE FROM spd_pollers WHERE poller=$1", poller)
        return not status.endswith(" 0")

    async def forget(self, pollers: list[str]) -> int:
        """Refused while any replica is alive, as reset."""
        async with self.connection() as conn, conn.transaction():
            if self.fence is None:
                await self._refuse_while_replicas_run(conn)
            status = await conn.execute("DELETE FROM spd_pollers WHERE poller = any($1::text[])", pollers)
        return int(status.rpartition(" ")[2])

    async def put_meta(self, key: str, value: str) -> None:
        """Stores one text value by key (the subscriptions' counters `status` shows)."""
        async with self.connection() as conn:
            await conn.execute("INSERT INTO spd_meta (key, value) VALUES ($1, $2) ON CONFLICT (key)"
                               " DO UPDATE SET value=excluded.value", key, value)

    async def update_meta(self, key: str, change: Callable[[str | None], str]) -> None:
        """Replaces one value by what `change` makes of it, its row locked FOR UPDATE meanwhile:
        replicas updating the same key take turns (the first to find no row inserts it, and one
        that lost that race reads the winner's row)."""
        async with self.connection() as conn, conn.transaction():
            while True:
                value = await conn.fetchval("SELECT value FROM spd_meta WHERE key=$1 FOR UPDATE", key)
                if value is not None:
                    await conn.execute("UPDATE spd_meta SET value=$2 WHERE key=$1", key, change(value))
                    return
                status = await conn.execute("INSERT INTO spd_meta (key, value) VALUES ($1, $2)"
                                            " ON CONFLICT (key) DO NOTHING", key, change(None))
                if status.endswith(" 1"):
                    return

    async def meta_items(self, prefix: str) -> dict[str, str]:
        """Every value stored by `put_meta` whose key starts with `prefix`, by the rest of its key."""
        if self.empty:
            return {}
        async with self.connection() as conn:
            rows = await conn.fetch("SELECT key, value FROM spd_meta WHERE left(key, length($1)) = $1",
                                    prefix)
        return {r["key"][len(prefix):]: r["value"] for r in rows}

    async def load_bucket_levels(self) -> list[BucketLevel]:
        """The rate-limit bucket levels last saved, one per (account, operation)."""
        async with self.connection() as conn:
            rows = await conn.fetch("SELECT account, operation, rate, burst, tokens, at FROM"
                                    " spd_rate_limits ORDER BY account, operation")
        return [BucketLevel(r["account"], r["operation"], r["rate"], r["burst"], r["tokens"], r["at"])
                for r in rows]

    async def save_bucket_levels(self, levels: list[BucketLevel]) -> None:
        """Replaces the saved level of each bucket named, in one transaction. With a fence, as
        the pollers' checkpoints: the levels of an account whose lease this replica held but
        lost change nothing (LeaseLostError, the whole call); those of an account it holds no
        lease for (a subscription's `fetch` of an account another replica runs) are not written,
        since the holder's levels are the account's."""
        epochs = self._bucket_epochs(levels)
        if self.fence is not None:
            levels = [x for x in levels if x.account in epochs]
        if not levels:
            return
        async with self.connection() as conn, conn.transaction():
            if self.fence is not None:
                for account, epoch in sorted(epochs.items()):
                    await self._hold_lease(conn, self.fence, account, epoch,
                                           f"rate-limit levels of account {account}")
            await conn.executemany(
                "INSERT INTO spd_rate_limits (account, operation, rate, burst, tokens, at) VALUES"
                " ($1, $2, $3, $4, $5, $6) ON CONFLICT (account, operation) DO UPDATE SET"
                " rate=excluded.rate, burst=excluded.burst, tokens=excluded.tokens, at=excluded.at",
                [(x.account, x.operation, x.rate, x.burst, x.tokens, x.at) for x in levels])

    def _bucket_epochs(self, levels: list[BucketLevel]) -> dict[str, int]:
        """Account -> the epoch this replica holds, of the accounts of `levels` it holds a lease for."""
        if self.fence is None:
            return {}
        held = self.fence.epochs
        return {x.account: held[x.account] for x in levels if x.account in held}

    async def lease_holders(self) -> dict[str, str]:
        """The replica holding each account's live lease."""
        if self.empty:
            return {}
        async with self.connection() as conn:
            rows = await conn.fetch("SELECT account, replica FROM spd_leases WHERE replica IS NOT NULL"
                                    " AND expires_at > now()")
        return {r["account"]: r["replica"] for r in rows}
