"""Rate-limit levels of replicas sharing one PostgreSQL state (the machine's): a save of an
account's bucket levels is fenced by the account's lease as the pollers' checkpoints are, and a
replica that takes an account over continues from the levels its last holder saved. Then a real
`spd run` SIGKILLed while polling at an enforced quota: the replica taking over gets no 429."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from spd.app.cluster import assign
from spd.client.ratelimit import SavedBuckets, TokenBucket
from spd.core.typing import BucketLevel
from spd.state.leases import Leases
from spd.state.postgres import Fence, LeaseLostError, PgStore
from support.cluster import holders, lease_history, query
from support.config import write_config
from support.postgres import temp_database, temp_database_sync
from support.spd import iso, kill_left, spd_env, start_spd, stop_spd, wait_for

OP = "ordersV0.getOrders"


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with temp_database("clusterfix") as database:
        yield database


@contextlib.asynccontextmanager
async def two_replicas(url: str, a_ttl: float) -> AsyncIterator[tuple[PgStore, Leases, Fence, PgStore, Leases, Fence]]:
    """Replicas a (leases of `a_ttl` seconds) and b (30 s) over pools of their own: each one's
    store, leases and fence."""
    stores, fences = [PgStore(url), PgStore(url)], [Fence("a", {"orders": "acme"}), Fence("b", {"orders": "acme"})]
    try:
        for store, fence in zip(stores, fences):
            await store.open()
            store.fence = fence
        a, b = Leases(stores[0], "a", a_ttl), Leases(stores[1], "b", 30.0)
        yield stores[0], a, fences[0], stores[1], b, fences[1]
    finally:
        for store in stores:
            await store.close()


async def claim(leases: Leases, fence: Fence, account: str = "acme") -> int:
    won = await leases.claim(account)
    assert won is not None
    fence.epochs[account] = won.epoch
    return won.epoch


def level(tokens: float, account: str = "acme", at: float = 1000.0) -> BucketLevel:
    return BucketLevel(account, OP, 0.5, 5, tokens, at)


async def saved(store: PgStore) -> dict[str, float]:
    return {x.account: x.tokens for x in await store.load_bucket_levels()}


async def test_a_stale_replica_cannot_overwrite_the_levels_the_new_holder_saved(url: str) -> None:
    async with two_replicas(url, a_ttl=1.0) as (a_store, a, a_fence, b_store, b, b_fence):
        await claim(a, a_fence)
        await a_store.save_bucket_levels([level(3.0)])  # held: written
        assert await saved(b_store) == {"acme": 3.0}
        await asyncio.sleep(1.2)  # a's lease runs out; b takes the account over
        assert await claim(b, b_fence) == a_fence.epochs["acme"] + 1
        await b_store.save_bucket_levels([level(0.5)])  # the new holder's save lands
        with pytest.raises(LeaseLostError, match="rate-limit levels of account acme: replica a does not hold"
                                                 " the lease of account acme"):
            await a_store.save_bucket_levels([level(5.0), level(5.0, "other")])  # the stale epoch's
        assert await saved(b_store) == {"acme": 0.5}  # nothing of the refused save, not even "other"
        await claim(b, b_fence, "other")
        await b_store.save_bucket_levels([level(1.0), level(2.0, "other")])
        assert await saved(a_store) == {"acme": 1.0, "other": 2.0}


async def test_levels_of_an_account_held_elsewhere_are_not_written_and_unfenced_ones_are(url: str) -> None:
    async with two_replicas(url, a_ttl=30.0) as (a_store, a, a_fence, b_store, _, _):
        await claim(a, a_fence)
        await a_store.save_bucket_levels([level(2.0)])
        # b holds no lease of acme (a subscription's fetch there): its level is not the account's
        await b_store.save_bucket_levels([level(5.0)])
        assert await saved(a_store) == {"acme": 2.0}
        b_store.fence = None  # no cluster (`spd once` alone on the database): written as before
        await b_store.save_bucket_levels([level(4.0)])
        assert await saved(a_store) == {"acme": 4.0}


async def test_a_stale_replicas_bucket_sends_nothing_and_says_why(url: str) -> None:
    async with two_replicas(url, a_ttl=1.0) as (a_store, a, a_fence, b_store, b, b_fence):
        await claim(a, a_fence)
        buckets = SavedBuckets(a_store)
        await buckets.load()
        bucket = TokenBucket(0.5, 5, guard=0.0)
        buckets.attach("acme", OP, bucket)
        await bucket.acquire()  # its level saved under the lease, then the take
        assert 3.9 < (await saved(b_store))["acme"] < 4.1
        await asyncio.sleep(1.2)
        await claim(b, b_fence)
        await b_store.save_bucket_levels([level(0.0, at=time.time())])
        with pytest.raises(LeaseLostError, match="replica a does not hold the lease of account acme"):
            await bucket.acquire()  # the next take needs a save: refused, so no request goes out
        assert bucket.tokens() > 3.9  # nothing was taken
        assert await saved(b_store) == {"acme": 0.0}


async def test_a_takeover_continues_from_the_levels_the_last_holder_saved(url: str) -> None:
    async with two_replicas(url, a_ttl=1.0) as (a_store, a, a_fence, b_store, b, b_fence):
        b_buckets = SavedBuckets(b_store)
        await b_buckets.load()  # b started before a used the account: nothing saved yet
        b_bucket = TokenBucket(0.5, 5, guard=0.0)
        b_buckets.attach("acme", OP, b_bucket)  # e.g. a subscription's fetch: full
        await claim(a, a_fence)
        a_bucket = TokenBucket(0.5, 5, guard=0.0)
        a_buckets = SavedBuckets(a_store)
        a_buckets.attach("acme", OP, a_bucket)
        for _ in range(5):
            await a_bucket.acquire()  # a spends the burst
        await a_buckets.save_all({("acme", OP): a_bucket})
        await asyncio.sleep(1.2)
        await claim(b, b_fence)
        assert b_bucket.tokens() == 5.0
        await b_buckets.reload_account("acme", {("acme", OP): b_bucket})
        assert b_bucket.tokens() < 1.5  # what a left, refilled at 0.5/s since: not a fresh burst
        fresh = TokenBucket(0.5, 5, guard=0.0)
        b_buckets.attach("acme", OP, fresh)  # a bucket made after the claim starts there too
        assert fresh.tokens() < 1.5
        await b_bucket.acquire()  # b's first take saves its level under b's lease
        assert (await saved(a_store))["acme"] < 0.5


# -- real replicas ------------------------------------------------------------------------------

RATE, BURST = 0.2, 5  # one getOrders every 5 s after a burst of 5: a takeover cannot refill it
TTL = 3.0


GHOST = 10.0  # seconds the account stays held by a replica that never runs


def held_by_a_ghost(url: str, account: str, seconds: float) -> None:
    """The account's lease held by a replica that never heartbeats, expiring in `seconds`."""
    async def schema() -> None:
        async with PgStore(url):
            pass

    asyncio.run(schema())
    query(url, "INSERT INTO spd_leases (account, replica, epoch, expires_at, acquired_at) VALUES"
               " ($1, 'ghost', 1, now() + make_interval(secs => $2), now())", account, seconds)


@pytest.fixture
def cluster_db() -> Any:
    with temp_database_sync("clusterfix") as database:
        yield database


def test_the_replica_taking_over_an_account_gets_no_429(tmp_path: Path, sim_factory: Any, cluster_db: str) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=6000, purchase_orders=5, start=now - timedelta(days=2), end=now,
                      rate_limits={OP: (RATE, BURST)})
    pollers = {"orders": {"object": OP, "timestamp_field": "updated", "interval": "1s",
                          "start_time": iso(now - timedelta(days=2)), "params": {"MaxResultsPerPage": 20}}}
    config = write_config(tmp_path, sim.url, pollers, state_url=cluster_db,
                          extra_account=f"    rate_limits: {{{OP}: {{rate: {RATE}, burst: {BURST}}}}}",
                          extra=f"cluster: {{lease_ttl: {TTL:g}s}}",
                          emitters={"archive": f'{{type: file, path: "{tmp_path}/out/${{SPD_REPLICA_ID}}.jsonl"}}'})

    def requests() -> int:
        return int(sim.get("/_sim/stats")["operations"].get(OP, {}).get("requests", 0))

    held_by_a_ghost(cluster_db, "sim", GHOST)
    procs = {name: start_spd("run", "-c", str(config), stderr=subprocess.DEVNULL,
                             env=spd_env(SPD_REPLICA_ID=name)) for name in ("r1", "r2")}
    try:
        # both start (and read the saved levels: none) before anyone spends the account's quota
        wait_for(lambda: {"r1", "r2"} <= {r["replica"] for r in query(cluster_db, "SELECT replica FROM spd_replicas")},
                 timeout=60)
        owner = assign(["sim"], ["r1", "r2"])["sim"]
        wait_for(lambda: holders(cluster_db).get("sim") == owner, timeout=60)  # after any hand-back
        first = owner
        wait_for(lambda: requests() >= BURST, timeout=60, interval=0.05)  # the burst is spent
        procs[first].kill()
        procs[first].wait(10)
        second = "r2" if first == "r1" else "r1"
        wait_for(lambda: holders(cluster_db).get("sim") == second, timeout=TTL + 30, interval=0.2)
        taken = requests()
        # the new holder polls on at the quota's pace: one request per 1/RATE, no burst
        wait_for(lambda: requests() >= taken + 2, timeout=4 / RATE + 30, interval=0.2)
        assert stop_spd(procs[second]) == 0
    finally:
        kill_left(procs.values())
    assert [h["how"] for h in lease_history(cluster_db)][-1] == "takeover"
    stats = sim.get("/_sim/stats")["operations"][OP]
    assert stats.get("throttled", 0) == 0, stats
