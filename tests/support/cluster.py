"""Replicas of `spd run` sharing one PostgreSQL database: their lease history and what they emitted."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from .spd import read_jsonl


def query(url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of one query against the cluster's database (a short connection of its own)."""
    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url)
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


def holders(url: str) -> dict[str, str]:
    """Account -> the replica whose live lease runs it (nothing before the first replica started)."""
    if not query(url, "SELECT 1 FROM pg_tables WHERE tablename='spd_leases'"):
        return {}
    rows = query(url, "SELECT account, replica FROM spd_leases WHERE replica IS NOT NULL"
                      " AND expires_at > now()")
    return {r["account"]: r["replica"] for r in rows}


def lease_history(url: str) -> list[dict[str, Any]]:
    return query(url, "SELECT account, replica, epoch, previous, how, acquired_at, ended_at, ended"
                      " FROM spd_lease_history ORDER BY account, epoch")


def assert_no_overlap(history: list[dict[str, Any]]) -> None:
    """No account was held by two replicas at once: each lease ended before the next began."""
    by_account: dict[str, list[dict[str, Any]]] = {}
    for row in history:
        by_account.setdefault(row["account"], []).append(row)
    for account, rows in by_account.items():
        epochs = [r["epoch"] for r in rows]
        assert epochs == sorted(set(epochs)), (account, epochs)
        for before, after in zip(rows, rows[1:]):
            assert before["ended_at"] is not None, (account, before, after)
            assert before["ended_at"] <= after["acquired_at"], (account, before, after)


def pages(out: Path) -> list[dict[str, Any]]:
    """Every message of every replica's files (out/REPLICA/POLLER.jsonl), with `_replica`."""
    found = []
    for path in sorted(out.glob("*/*.jsonl")):
        for message in read_jsonl(path):
            message["_replica"] = path.parent.name
            found.append(message)
    return found


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))
