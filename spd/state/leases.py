"""Replicas and account leases in PostgreSQL: the cluster's shared memory (spd.app.cluster).

A replica announces itself with a row in `spd_replicas` that each heartbeat pushes `ttl` seconds
into the future; a replica whose row expired is gone. An account's pollers run where its row in
`spd_leases` points: a lease is claimed only when free (released) or expired, and each claim
increments the account's `epoch`, which fences every write of the pollers (spd.state.postgres).
Every time is the database's (`now()`), so the replicas' clocks never matter. `spd_lease_history`
keeps each claim and its end, for `status`, the tests and the operators.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spd.state.postgres import PgStore


@dataclass
class ClusterView:
    """What one heartbeat saw: the live replicas and which replica holds each live lease."""

    replicas: list[str]
    holders: dict[str, str]  # account -> replica, live leases only
    held: dict[str, int] = field(default_factory=dict)  # account -> epoch, renewed by this replica


@dataclass
class Claim:
    """A lease won: its epoch, and the replica whose expired lease it replaced (a takeover)."""

    account: str
    epoch: int
    took_over_from: str | None


class Leases:
    """The lease operations of one replica over a PgStore's connections."""

    def __init__(self, store: PgStore, replica: str, ttl: float) -> None:
        self.store = store
        self.replica = replica
        self.ttl = ttl

    async def heartbeat(self) -> ClusterView:
        """Announces this replica, renews every lease it still holds, and reads the cluster."""
        async with self.store.connection() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO spd_replicas (replica, seen_at, expires_at) VALUES ($1, now(),"
                " now() + make_interval(secs => $2)) ON CONFLICT (replica) DO UPDATE SET"
                " seen_at=now(), expires_at=excluded.expires_at", self.replica, self.ttl)
            renewed = await conn.fetch(
                "UPDATE spd_leases SET expires_at=now() + make_interval(secs => $2)"
                " WHERE replica=$1 AND expires_at > now() RETURNING account, epoch",
                self.replica, self.ttl)
            replicas = await conn.fetch("SELECT replica FROM spd_replicas WHERE expires_at > now()"
                                        " ORDER BY replica")
            leases = await conn.fetch("SELECT account, replica FROM spd_leases WHERE replica IS NOT"
                                      " NULL AND expires_at > now()")
        return ClusterView(replicas=[r["replica"] for r in replicas],
                           holders={r["account"]: r["replica"] for r in leases},
                           held={r["account"]: r["epoch"] for r in renewed})

    async def claim(self, account: str) -> Claim | None:
        """Takes the account's lease if it is free or expired; None when another replica holds it."""
        async with self.store.connection() as conn, conn.transaction():
            before = await conn.fetchrow("SELECT replica, expires_at, expires_at > now() AS live"
                                         " FROM spd_leases WHERE account=$1 FOR UPDATE", account)
            if before is not None and before["replica"] is not None and before["live"]:
                return None
            epoch = await conn.fetchval(
                "INSERT INTO spd_leases AS l (account, replica, epoch, expires_at, acquired_at)"
                " VALUES ($1, $2, 1, now() + make_interval(secs => $3), now())"
                " ON CONFLICT (account) DO UPDATE SET replica=excluded.replica, epoch=l.epoch + 1,"
                " expires_at=excluded.expires_at, acquired_at=now()"
                # a replica that claimed the new row first (no row to lock above) keeps it
                " WHERE l.replica IS NULL OR l.expires_at <= now() RETURNING epoch",
                account, self.replica, self.ttl)
            if epoch is None:
                return None
            previous = before["replica"] if before is not None else None
            if before is not None and previous is not None:  # it ran out without a heartbeat
                await conn.execute("UPDATE spd_lease_history SET ended_at=$2, ended='expired'"
                                   " WHERE account=$1 AND ended_at IS NULL", account, before["expires_at"])
            await conn.execute(
                "INSERT INTO spd_lease_history (account, replica, epoch, previous, how, acquired_at)"
                " VALUES ($1, $2, $3, $4, $5, now())", account, self.replica, epoch, previous,
                "claim" if previous is None else "takeover")
        return Claim(account, int(epoch), previous if previous != self.replica else None)

    async def release(self, account: str, epoch: int) -> bool:
        """Hands the lease back at once (free for any replica); False when it was no longer ours."""
        async with self.store.connection() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE spd_leases SET replica=NULL, expires_at=now() WHERE account=$1 AND"
                " replica=$2 AND epoch=$3", account, self.replica, epoch)
            await conn.execute(
                "UPDATE spd_lease_history SET ended_at=now(), ended='released'"
                " WHERE account=$1 AND replica=$2 AND epoch=$3 AND ended_at IS NULL",
                account, self.replica, epoch)
        return not status.endswith(" 0")

    async def leave(self) -> None:
        """Forgets this replica (its leases are released first, by the cluster)."""
        async with self.store.connection() as conn:
            await conn.execute("DELETE FROM spd_replicas WHERE replica=$1", self.replica)
