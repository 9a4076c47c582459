"""Rate-limit bucket levels in the SQLite state database (table `rate_limits`), so that neither
a SIGHUP reload nor a restart after a crash starts a bucket fuller than Amazon's (the client
saves a level before the takes it covers: spd.client.ratelimit)."""

from __future__ import annotations

from spd.core.typing import BucketLevel
from spd.state.ledger import Connection, Transaction

BUCKETS_TABLE = (
    "CREATE TABLE IF NOT EXISTS rate_limits (account TEXT NOT NULL, operation TEXT NOT NULL,"
    " rate REAL NOT NULL, burst INTEGER NOT NULL, tokens REAL NOT NULL, at REAL NOT NULL,"
    " PRIMARY KEY (account, operation))"
)


class SqliteBuckets:
    """The `rate_limits` table over the store's connection (`sql()` yields it under its mutex)
    and its write transactions."""

    def __init__(self, sql: Connection, transaction: Transaction) -> None:
        self._db = sql
        self._write = transaction

    def load(self) -> list[BucketLevel]:
        """Every saved level; ValueError/TypeError when a value is not what spd wrote."""
        with self._db() as db:
            rows = db.execute("SELECT account, operation, rate, burst, tokens, at FROM rate_limits"
                              " ORDER BY account, operation").fetchall()
        return [BucketLevel(str(a), str(o), float(r), int(b), float(t), float(at)) for a, o, r, b, t, at in rows]

    async def save(self, levels: list[BucketLevel]) -> None:
        """Replaces the levels of these buckets in one transaction (one fsync)."""
        rows = [(x.account, x.operation, x.rate, x.burst, x.tokens, x.at) for x in levels]
        await self._write(lambda db: db.executemany(
            "INSERT OR REPLACE INTO rate_limits (account, operation, rate, burst, tokens, at)"
            " VALUES (?, ?, ?, ?, ?, ?)", rows))
