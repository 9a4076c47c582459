"""Subscription counters of replicas sharing one PostgreSQL state (the machine's): each runtime
adds what it counted since its last save to the stored totals in one atomic update, so replicas
reading one queue add up in `spd status` (and a restart continues from the totals). Two runtimes
over two connection pools, then two real `spd run` replicas reading one moto SQS queue."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from spd.app.daemon import Daemon
from spd.app.push import SUBSCRIPTION_KEY, Push
from spd.app.status import subscription_row
from spd.pipeline.subscriptions import Route
from spd.state.postgres import PgStore
from support.aws_peer import account_yaml
from support.cluster import query
from support.postgres import temp_database, temp_database_sync
from support.spd import kill_left, read_jsonl_so_far, run_spd, spd_env, start_spd, stop_spd, wait_for
from support.sqs_peer import MotoSqs, order_change, subscription_yaml, write_subscription_config

SIM_URL = "http://127.0.0.1:9"  # never called: these subscriptions do not fetch


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with temp_database("clusterfix") as database:
        yield database


def runtime_push(store: PgStore) -> tuple[Push, Route]:
    """The counters' side of one daemon runtime with one subscription `orders`, over `store`."""
    route = Route("orders", "acme", [])
    daemon = SimpleNamespace(runtime=SimpleNamespace(subscriptions={"orders": route}), store=store)
    return Push(cast(Daemon, daemon)), route


async def totals(store: PgStore) -> tuple[int, int, int]:
    row = subscription_row("orders", (await store.meta_items(SUBSCRIPTION_KEY)).get("orders"))
    return row["received"], row["emitted"], row["dead_lettered"]


async def test_two_runtimes_counters_add_up_and_a_restart_continues_from_the_sum(url: str) -> None:
    stores = [PgStore(url), PgStore(url)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        (one, a), (two, b) = runtime_push(stores[0]), runtime_push(stores[1])
        await asyncio.gather(one.load_counts(), two.load_counts())
        a.stats.received = a.stats.emitted = 3
        b.stats.received, b.stats.emitted, b.stats.dead_lettered = 5, 4, 1
        await asyncio.gather(one.save_counts(), two.save_counts())  # at once: both land
        a.stats.received += 2
        a.stats.emitted += 2
        await one.save_counts()
        await two.save_counts()  # nothing new: its counts are not added twice
        assert await totals(stores[1]) == (10, 9, 1)
        again, c = runtime_push(stores[1])  # a restart (or a reload) of the second replica
        c.stats.received = 1  # handed over by the queue while the state was still answering the load
        await again.load_counts()
        assert (c.stats.received, c.stats.emitted) == (11, 9)
        c.stats.emitted += 1
        await again.stop()  # the last save at the stop
        assert await totals(stores[0]) == (11, 10, 1)
    finally:
        await asyncio.gather(*(s.close() for s in stores))


# -- real replicas ------------------------------------------------------------------------------

MAX_SENT = 40


@pytest.fixture(scope="module")
def sqs() -> Iterator[MotoSqs]:
    peer = MotoSqs().start()
    yield peer
    peer.stop()


@pytest.fixture
def cluster_db() -> Iterator[str]:
    with temp_database_sync("clusterfix") as database:
        yield database


def test_two_replicas_reading_one_queue_count_every_notification_once(tmp_path: Path, sqs: MotoSqs,
                                                                     cluster_db: str) -> None:
    queue = sqs.queue()
    sub = subscription_yaml("orders", sqs, queue, types=["ORDER_CHANGE"], emitters=["archive"],
                            extra={"wait_time": "1s"})
    config = write_subscription_config(tmp_path, account_yaml("sim", SIM_URL), [sub], state_url=cluster_db,
                                       out="${SPD_REPLICA_ID}.jsonl")
    out = {name: tmp_path / "out" / f"{name}.jsonl" for name in ("r1", "r2")}
    procs = {name: start_spd("run", "-c", str(config), stderr=subprocess.DEVNULL, env=spd_env(SPD_REPLICA_ID=name))
             for name in out}
    sent: list[str] = []

    def both_emitted_some() -> bool:
        """Sends one more notification (up to MAX_SENT) until each replica emitted some, and all
        that were sent were emitted."""
        if len(sent) < MAX_SENT:
            sent.append(sqs.send(queue, order_change(f"111-{len(sent)}", notification_id=f"n{len(sent)}")))
        got = [read_jsonl_so_far(path) for path in out.values()]
        return all(got) and sum(map(len, got)) == len(sent)

    try:
        wait_for(lambda: {"r1", "r2"} <= {r["replica"] for r in query(cluster_db, "SELECT replica FROM spd_replicas")}
                 if query(cluster_db, "SELECT 1 FROM pg_tables WHERE tablename='spd_replicas'") else False,
                 timeout=60, interval=0.5)
        wait_for(both_emitted_some, timeout=MAX_SENT + 60, interval=0.5)
        for proc in procs.values():
            assert stop_spd(proc) == 0
    finally:
        kill_left(procs.values())
    done = run_spd("status", "-c", str(config), "--json")
    assert done.returncode == 0, done.stderr
    row = next(r for r in json.loads(done.stdout) if r.get("subscription") == "orders")
    assert (row["received"], row["emitted"], row["dead_lettered"]) == (len(sent), len(sent), 0), row
