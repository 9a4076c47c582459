"""What only the PostgreSQL state has, against the machine's PostgreSQL: migrations when several
replicas start at once, read-only opening, one-line failures, leases, and fencing (a replica whose
lease moved on can never move a watermark)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from spd.core.errors import StateError, StateLockedError, StateWriteError
from spd.state.leases import Leases
from spd.state.pg_schema import SCHEMA_VERSION
from spd.state.postgres import Fence, LeaseLostError, PgStore
from support.postgres import temp_database

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with temp_database() as database:
        yield database


async def fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


# -- schema -------------------------------------------------------------------------------------


async def test_replicas_starting_at_once_migrate_an_empty_database_once(url: str) -> None:
    stores = [PgStore(url) for _ in range(6)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        versions = [r["version"] for r in await fetch(url, "SELECT version FROM spd_schema ORDER BY version")]
        assert versions == list(range(1, SCHEMA_VERSION + 1))
        await stores[0].ensure("orders", "id", T0)
        assert [s.poller for s in await stores[5].all()] == ["orders"]
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    async with PgStore(url) as again:  # a restart finds the schema current and keeps the data
        assert (await again.require("orders")).watermark == T0


async def test_a_newer_schema_is_refused(url: str) -> None:
    async with PgStore(url):
        pass
    conn = await asyncpg.connect(url)
    await conn.execute("INSERT INTO spd_schema (version) VALUES (99)")
    await conn.close()
    with pytest.raises(StateError, match="schema version 99 was written by a newer spd") as info:
        await PgStore(url).open()
    assert info.value.exit_code == 78


async def test_read_only_creates_nothing_in_an_empty_database(url: str) -> None:
    async with PgStore(url, readonly=True) as store:
        assert await store.all() == [] and await store.lease_holders() == {}
    assert await fetch(url, "SELECT 1 FROM pg_tables WHERE tablename LIKE 'spd_%'") == []


async def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = PgStore(f"postgresql://spd:hunter2@127.0.0.1:{port}/spd")
    with pytest.raises(StateWriteError) as info:
        await store.open()
    message = str(info.value)
    assert message.startswith(f"state postgresql://spd@127.0.0.1:{port}/spd: the state database is unreachable")
    assert "hunter2" not in message and "\n" not in message
    assert info.value.exit_code == 1


# -- leases and fencing ---------------------------------------------------------------------------


async def replica(url: str, name: str, ttl: float) -> tuple[PgStore, Leases]:
    store = PgStore(url)
    await store.open()
    store.fence = Fence(name, {"orders": "acme"})
    return store, Leases(store, name, ttl)


async def test_a_lease_is_claimed_once_released_at_once_and_taken_over_when_expired(url: str) -> None:
    a_store, a = await replica(url, "a", ttl=1.0)
    b_store, b = await replica(url, "b", ttl=1.0)
    try:
        first = await a.claim("acme")
        assert first is not None and (first.epoch, first.took_over_from) == (1, None)
        assert await b.claim("acme") is None  # held and live
        assert await a.release("acme", 1)
        second = await b.claim("acme")  # released: free at once, no takeover
        assert second is not None and (second.epoch, second.took_over_from) == (2, None)
        await b.heartbeat()
        view = await a.heartbeat()
        assert view.replicas == ["a", "b"] and view.holders == {"acme": "b"} and view.held == {}
        await asyncio.sleep(1.2)  # b's lease runs out without a heartbeat
        third = await a.claim("acme")
        assert third is not None and (third.epoch, third.took_over_from) == (3, "b")
        history = await fetch(url, "SELECT replica, epoch, how, ended FROM spd_lease_history ORDER BY epoch")
        assert [tuple(r) for r in history] == [("a", 1, "claim", "released"), ("b", 2, "claim", "expired"),
                                               ("a", 3, "takeover", None)]
    finally:
        await a_store.close()
        await b_store.close()


async def test_a_replica_that_lost_its_lease_can_never_move_a_watermark(url: str) -> None:
    a_store, a = await replica(url, "a", ttl=1.0)
    b_store, b = await replica(url, "b", ttl=30.0)
    try:
        await a_store.ensure("orders", "id", T0)
        won = await a.claim("acme")
        assert won is not None
        a_store.fence.epochs["acme"] = won.epoch  # type: ignore[union-attr]
        await a_store.save_page("orders", T0, T0 + HOUR, "tok-2", 1, 5)  # held: accepted
        await asyncio.sleep(1.2)
        with pytest.raises(LeaseLostError, match="replica a does not hold the lease of account acme"):
            await a_store.finish_window("orders", T0 + HOUR)  # expired, even before a takeover
        taken = await b.claim("acme")
        assert taken is not None and taken.epoch == won.epoch + 1
        b_store.fence.epochs["acme"] = taken.epoch  # type: ignore[union-attr]
        stale = [a_store.finish_window("orders", T0 + HOUR), a_store.save_page("orders", T0, T0 + HOUR, "x", 2, 1),
                 a_store.restart_window("orders"), a_store.set_note("orders", "x"),
                 a_store.record_run("orders", error=None), a_store.delete("orders"),
                 a_store.ledger.requested("orders", T0, "r1"), a_store.ledger.done("orders", "r1", T0),
                 a_store.ledger.moved("orders", T0 + HOUR)]
        for write in stale:
            with pytest.raises(LeaseLostError):
                await write
        state = await b_store.require("orders")
        assert (state.watermark, state.next_token, state.pages_emitted, state.runs) == (T0, "tok-2", 1, 0)
        await b_store.finish_window("orders", T0 + HOUR)  # the new holder's epoch is accepted
        assert (await a_store.require("orders")).watermark == T0 + HOUR
    finally:
        await a_store.close()
        await b_store.close()


async def test_a_write_of_an_account_never_claimed_is_refused(url: str) -> None:
    store, _ = await replica(url, "a", ttl=5.0)
    try:
        await store.ensure("orders@A1PA6795UKMFR9", "id", T0)  # a marketplace's row: same account
        with pytest.raises(LeaseLostError, match="account acme"):
            await store.save_page("orders@A1PA6795UKMFR9", T0, None, None, 1, 1)
    finally:
        await store.close()


async def test_reset_and_once_are_refused_while_replicas_run(url: str) -> None:
    store, leases = await replica(url, "a", ttl=30.0)
    try:
        await store.ensure("orders", "id", T0)
        await leases.heartbeat()
        async with PgStore(url) as cli:
            assert await cli.is_locked_by_daemon()
            with pytest.raises(StateLockedError, match=r"in use by running spd replicas \(a\)"):
                await cli.reset("orders", T0 - HOUR)
        with pytest.raises(StateLockedError, match="in use by running spd replicas"):
            await PgStore(url, exclusive=True).open()
        await leases.leave()
        async with PgStore(url) as cli:
            await cli.reset("orders", T0 - HOUR)
            assert (await cli.require("orders")).watermark == T0 - HOUR
    finally:
        await store.close()


async def test_replicas_claiming_a_new_account_at_once_get_one_lease(url: str) -> None:
    racers = [await replica(url, f"r{i}", ttl=30.0) for i in range(6)]
    try:
        for _ in range(3):  # a new account each round: no row to lock yet, every claim inserts
            account = f"acct-{_}"
            won = await asyncio.gather(*(leases.claim(account) for _, leases in racers))
            assert sum(w is not None for w in won) == 1, won
            rows = await fetch(url, f"SELECT replica, epoch FROM spd_leases WHERE account='{account}'")
            winner = next(w for w in won if w is not None)
            assert [tuple(r) for r in rows] == [(racers[won.index(winner)][1].replica, winner.epoch)]
    finally:
        await asyncio.gather(*(store.close() for store, _ in racers))
