"""Replicas sharing pollers through PostgreSQL (DESIGN §13): which accounts run here.

Every `lease_ttl / 3` a heartbeat announces this replica, renews its account leases and reads
the cluster (spd.state.leases). The accounts are spread evenly over the live replicas by
`assign`, the same on every replica: a replica hands back the leases assigned elsewhere (after
stopping those pollers) and claims the free or expired ones assigned to it. All pollers and jobs
of one account run on one replica: Amazon's rate limits are per account and application, so the
account's token buckets stay in one process.

A replica that cannot reach the database keeps trying, and stops its pollers once its leases
could expire before the next heartbeat (`lease_ttl - interval` after the last renewal was sent),
so no poller ever runs on two replicas; it rejoins when the database answers again. Writes are
fenced besides (spd.state.postgres): a replica whose lease moved on can never move a watermark.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import structlog

from spd.core.errors import SpdError
from spd.state.leases import ClusterView, Leases
from spd.state.postgres import Fence, PgStore

log = structlog.get_logger("spd.app.cluster")

HEARTBEATS_PER_TTL = 3
AccountHook = Callable[[str, float], Awaitable[None]]  # (account, seconds its runs may take to stop)


def _rank(account: str, replica: str) -> bytes:
    return hashlib.sha256(f"{account}\0{replica}".encode()).digest()


def assign(accounts: Iterable[str], replicas: list[str]) -> dict[str, str]:
    """Each account's replica: balanced (every replica gets ⌊n/r⌋ or ⌈n/r⌉ accounts, the larger
    shares going to the first replicas by id) and, within that, the replica ranking highest for
    the account by hash, so that a join or a leave moves few accounts."""
    names = sorted(set(accounts))
    live = sorted(set(replicas))
    if not live:
        return {}
    base, extra = divmod(len(names), len(live))
    room = {r: base + (1 if i < extra else 0) for i, r in enumerate(live)}
    owners: dict[str, str] = {}
    for account in sorted(names, key=lambda a: hashlib.sha256(a.encode()).digest()):
        for replica in sorted(live, key=lambda r: _rank(account, r), reverse=True):
            if room[replica] > 0:
                room[replica] -= 1
                owners[account] = replica
                break
    return owners


@dataclass
class ClusterStats:
    """What /metrics shows of the cluster."""

    takeovers: int = 0
    heartbeats: int = 0
    failed_heartbeats: int = 0
    last_renewal: float | None = None  # time.monotonic() when the last good heartbeat was sent
    last_duration: float = 0.0  # seconds the last good heartbeat took (a round)


@dataclass
class Cluster:
    """This replica's membership: `start()` joins (one heartbeat, then every interval),
    `close()` stops the account pollers and hands every lease back at once."""

    store: PgStore
    replica: str
    ttl: float
    accounts: dict[str, str]  # poller or job key -> account
    start_account: AccountHook
    stop_account: AccountHook
    stats: ClusterStats = field(default_factory=ClusterStats)
    _task: asyncio.Task[None] | None = None
    _handing_back: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.leases = Leases(self.store, self.replica, self.ttl)
        self.fence = Fence(self.replica, dict(self.accounts))
        self.store.fence = self.fence
        self.running: set[str] = set()

    @property
    def interval(self) -> float:
        return self.ttl / HEARTBEATS_PER_TTL

    @property
    def held(self) -> dict[str, int]:
        """Account -> epoch of every lease this replica holds."""
        return self.fence.epochs

    def heartbeat_lag(self) -> float | None:
        """Seconds since the last good heartbeat was sent (None before the first)."""
        last = self.stats.last_renewal
        return None if last is None else time.monotonic() - last

    def reconfigure(self, accounts: dict[str, str]) -> None:
        """A reloaded config: its poller and job keys' accounts (leases stay as they are)."""
        self.accounts = dict(accounts)
        self.fence.accounts = dict(accounts)

    async def start(self) -> None:
        """Joins: the first heartbeat (failing loudly when the database is away), then the loop."""
        await self.beat()
        self._task = asyncio.ensure_future(self._loop())
        log.info("replica_joined", replica=self.replica, lease_ttl=self.ttl, held=sorted(self.held))

    async def close(self) -> None:
        """SIGTERM: stops the heartbeats, then every account's pollers, and hands the leases back."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await asyncio.gather(*self._handing_back.values(), return_exceptions=True)
        for account in sorted(self.running):
            await self.stop_account(account, 0.0)  # the daemon drained them already
        self.running.clear()
        try:
            for account, epoch in sorted(self.held.items()):
                await self.leases.release(account, epoch)
                log.info("lease_released", account=account, epoch=epoch, replica=self.replica)
            await self.leases.leave()
        except SpdError as exc:  # the database is away: the leases expire by themselves
            log.warning("leases_not_released", error=str(exc), replica=self.replica)
        self.held.clear()

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await asyncio.wait_for(self.beat(), timeout=self.interval)
            except (SpdError, TimeoutError) as exc:
                self.stats.failed_heartbeats += 1
                log.warning("heartbeat_failed", error=str(exc) or "timed out", replica=self.replica)
            await self.stop_before_expiry()
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def beat(self) -> None:
        """One heartbeat: renew, then act on what the cluster looks like now."""
        sent = time.monotonic()
        view = await self.leases.heartbeat()
        self.stats.last_renewal, self.stats.last_duration = sent, time.monotonic() - sent
        self.stats.heartbeats += 1
        await self.apply(view)

    async def stop_before_expiry(self) -> None:
        """Without a renewal for `ttl - interval`, the leases may expire before the next
        heartbeat could renew them: every poller here stops now."""
        lag = self.heartbeat_lag()
        if not self.running or lag is None or lag < self.ttl - self.interval:
            return
        log.error("leases_expiring", replica=self.replica, seconds_since_renewal=round(lag, 1),
                  accounts=sorted(self.running), hint="the database is unreachable; pollers stop"
                  " until it answers again")
        for account in sorted(self.running):
            await self.lose(account, grace=self.interval / 4)

    async def apply(self, view: ClusterView) -> None:
        """Stops what was lost, hands back what belongs elsewhere, claims what is ours and free."""
        for account in sorted(set(self.held) - set(view.held)):
            await self.lose(account, grace=0.0)  # expired or taken: its writes are refused already
        self.held.update(view.held)
        owners = assign(set(self.accounts.values()), view.replicas)
        for account in sorted(self.held):
            if owners.get(account) != self.replica and account not in self._handing_back:
                self._handing_back[account] = asyncio.ensure_future(self.hand_back(account))
        for account in sorted(a for a, r in owners.items() if r == self.replica):
            if account in self.held:
                if account not in self.running and account not in self._handing_back:
                    await self.begin(account)  # held again after the database came back
            elif account not in view.holders:
                await self.claim(account)

    async def claim(self, account: str) -> None:
        won = await self.leases.claim(account)
        if won is None:
            return
        self.held[account] = won.epoch
        if won.took_over_from is not None:
            self.stats.takeovers += 1
            log.warning("lease_taken_over", account=account, epoch=won.epoch,
                        previous=won.took_over_from, replica=self.replica)
        else:
            log.info("lease_claimed", account=account, epoch=won.epoch, replica=self.replica)
        await self.begin(account)

    async def begin(self, account: str) -> None:
        self.running.add(account)
        await self.start_account(account, 0.0)

    async def lose(self, account: str, grace: float) -> None:
        """Stops the account's pollers; the lease is no longer ours to write with."""
        epoch = self.held.pop(account, None)
        if account in self.running:
            self.running.discard(account)
            await self.stop_account(account, grace)
            log.warning("lease_lost", account=account, epoch=epoch, replica=self.replica)

    async def hand_back(self, account: str) -> None:
        """Rebalancing: stops the account's pollers after their page in flight, then releases."""
        try:
            if account in self.running:
                self.running.discard(account)
                await self.stop_account(account, self.interval)
            epoch = self.held.pop(account, None)
            if epoch is not None:
                await self.leases.release(account, epoch)
                log.info("lease_handed_back", account=account, epoch=epoch, replica=self.replica)
        except SpdError as exc:  # not released: it expires, and is taken over after lease_ttl
            log.warning("lease_not_released", account=account, error=str(exc), replica=self.replica)
        finally:
            self._handing_back.pop(account, None)
