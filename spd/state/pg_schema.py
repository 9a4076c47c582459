"""The PostgreSQL schema of the state, as versioned migrations applied on start.

Each entry of `MIGRATIONS` takes the schema from version i to i + 1 and is never edited once
released; later issues append. `migrate` runs them under a transaction-scoped advisory lock, so
several replicas starting at once against an empty database apply each step exactly once: the
first takes the lock and migrates, the others wait, then find the schema current.
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from spd.core.errors import StateError

Conn: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"  # every connection comes from a pool

# pg_advisory_xact_lock key: "spd.migrate" (any constant shared by every spd version)
MIGRATION_LOCK = 0x5350_444D_4947

MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: pollers, the report ledger, replicas and account leases
        """CREATE TABLE spd_pollers (
            poller text PRIMARY KEY, identity text NOT NULL, watermark timestamptz NOT NULL,
            window_start timestamptz, window_end timestamptz, next_token text,
            page integer NOT NULL DEFAULT 0, objects_emitted bigint NOT NULL DEFAULT 0,
            pages_emitted bigint NOT NULL DEFAULT 0, runs bigint NOT NULL DEFAULT 0,
            last_run_at timestamptz, last_success_at timestamptz, last_error text, note text,
            updated_at timestamptz NOT NULL DEFAULT now())""",
        """CREATE TABLE spd_report_attempts (
            series text PRIMARY KEY, window_start timestamptz NOT NULL, report_id text NOT NULL,
            status text NOT NULL, failures integer NOT NULL DEFAULT 0, retry_at timestamptz)""",
        """CREATE TABLE spd_report_done (
            series text NOT NULL, report_id text NOT NULL, created timestamptz NOT NULL,
            PRIMARY KEY (series, report_id))""",
        """CREATE TABLE spd_report_marks (series text PRIMARY KEY, watermark timestamptz NOT NULL)""",
        """CREATE TABLE spd_meta (key text PRIMARY KEY, value text NOT NULL)""",
        """CREATE TABLE spd_rate_limits (
            account text NOT NULL, operation text NOT NULL, rate double precision NOT NULL,
            burst integer NOT NULL, tokens double precision NOT NULL, at double precision NOT NULL,
            PRIMARY KEY (account, operation))""",
        """CREATE TABLE spd_replicas (
            replica text PRIMARY KEY, started_at timestamptz NOT NULL DEFAULT now(),
            seen_at timestamptz NOT NULL, expires_at timestamptz NOT NULL)""",
        """CREATE TABLE spd_leases (
            account text PRIMARY KEY, replica text, epoch bigint NOT NULL,
            expires_at timestamptz NOT NULL, acquired_at timestamptz NOT NULL)""",
        """CREATE TABLE spd_lease_history (
            id bigserial PRIMARY KEY, account text NOT NULL, replica text NOT NULL,
            epoch bigint NOT NULL, previous text, how text NOT NULL,
            acquired_at timestamptz NOT NULL, ended_at timestamptz, ended text)""",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

_VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS spd_schema (version integer PRIMARY KEY,"
                  " applied_at timestamptz NOT NULL DEFAULT now())")


async def schema_version(conn: Conn) -> int:
    """The newest migration applied (0: an empty database)."""
    exists = await conn.fetchval("SELECT to_regclass('spd_schema') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM spd_schema"))


def check_version(where: str, version: int, *, readonly: bool) -> None:
    """StateError for a schema this spd cannot use (newer; or, read-only, older or absent)."""
    if version > SCHEMA_VERSION:
        raise StateError(f"state {where}: schema version {version} was written by a newer spd;"
                         f" this version reads versions up to {SCHEMA_VERSION}")
    if readonly and version < SCHEMA_VERSION:
        raise StateError(f"state {where}: schema version {version} is older than this spd's;"
                         " run `spd once` or `spd run` to create or upgrade it first")


async def migrate(conn: Conn, where: str) -> int:
    """Brings the schema to SCHEMA_VERSION, one step per transaction-scoped advisory lock hold;
    returns the version found before."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(_VERSION_TABLE)
        found = await schema_version(conn)
        check_version(where, found, readonly=False)
        for version in range(found, SCHEMA_VERSION):
            for statement in MIGRATIONS[version]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO spd_schema (version) VALUES ($1)", version + 1)
    return found
