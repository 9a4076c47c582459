"""The machine's PostgreSQL (127.0.0.1:5432, trust auth, user postgres; `.ci/run` starts it): a
fresh database of a unique name per test, dropped afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg

PG_HOST = os.environ.get("SPD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SPD_TEST_PG_PORT", "5432"))
ADMIN_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"


def database_url(name: str, host: str = PG_HOST, port: int = PG_PORT) -> str:
    return f"postgresql://postgres@{host}:{port}/{name}"


async def create_database(prefix: str = "spd_test") -> str:
    """A new empty database with a unique name; returns its name."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def temp_database(prefix: str = "spd_test") -> AsyncIterator[str]:
    """The URL of a fresh database, dropped on exit."""
    name = await create_database(prefix)
    try:
        yield database_url(name)
    finally:
        await drop_database(name)


@contextlib.contextmanager
def temp_database_sync(prefix: str = "spd_test") -> Iterator[str]:
    """temp_database for tests without an event loop."""
    name = asyncio.run(create_database(prefix))
    try:
        yield database_url(name)
    finally:
        asyncio.run(drop_database(name))
