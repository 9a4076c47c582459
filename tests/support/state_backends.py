"""The state backends the storage tests run against, each opened fresh for one test.

`BACKENDS` names them; `open_backend(kind, tmp_path)` is an async context manager yielding an
opened `StateBackend` on empty storage of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from spd.state.backend import StateBackend
from spd.state.postgres import PgStore
from spd.state.store import StateStore

from .postgres import temp_database

BACKENDS = ["sqlite", "postgres"]


@contextlib.asynccontextmanager
async def open_backend(kind: str, tmp_path: Path) -> AsyncIterator[StateBackend]:
    """A fresh, opened backend of `kind`; closed afterwards."""
    if kind == "sqlite":
        async with StateStore(tmp_path / "state.db") as store:
            yield store
    elif kind == "postgres":
        async with temp_database() as url, PgStore(url) as pg:
            yield pg
    else:
        raise ValueError(f"unknown state backend {kind}")
