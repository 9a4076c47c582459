"""Token buckets: exact waits on an injected clock, FIFO order, rate changes, real timing."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from spd.client.ratelimit import DEFAULT_BURST, DEFAULT_RATE, SavedBuckets, TokenBucket, initial_limits
from spd.core.typing import BucketLevel


class FakeTime:
    """A clock and a sleep that advances it, so waits are exact and instant."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def make_bucket(rate: float, burst: int, guard: float = 0.0) -> tuple[TokenBucket, FakeTime]:
    t = FakeTime()
    return TokenBucket(rate, burst, guard=guard, clock=t.clock, sleep=t.sleep), t


async def test_bucket_starts_full_then_waits_one_interval():
    bucket, t = make_bucket(2.0, 3)
    for _ in range(3):
        await bucket.acquire()
    assert t.sleeps == []
    assert bucket.delay() == pytest.approx(0.5)
    await bucket.acquire()
    assert t.sleeps == [pytest.approx(0.5)]


async def test_21_acquires_at_10_per_second_burst_1_take_exactly_2_seconds():
    bucket, t = make_bucket(10.0, 1)
    start = t.now
    for _ in range(21):
        await bucket.acquire()
    assert t.now - start == pytest.approx(2.0, abs=1e-9)
    assert t.sleeps == [pytest.approx(0.1, abs=1e-9)] * 20


async def test_partial_refill_is_counted_precisely():
    bucket, t = make_bucket(4.0, 2)
    await bucket.acquire()
    await bucket.acquire()
    t.now += 0.1  # 0.4 token earned
    assert bucket.tokens() == pytest.approx(0.4)
    assert bucket.delay() == pytest.approx(0.15)


async def test_tokens_never_exceed_burst():
    bucket, t = make_bucket(10.0, 3)
    t.now += 3600
    assert bucket.tokens() == 3
    for _ in range(3):
        await bucket.acquire()
    assert t.sleeps == []
    assert bucket.delay() == pytest.approx(0.1)


async def test_drain_empties_the_bucket():
    bucket, t = make_bucket(5.0, 10)
    bucket.drain()
    assert bucket.tokens() == 0
    assert bucket.delay() == pytest.approx(0.2)
    await bucket.acquire()
    assert t.sleeps == [pytest.approx(0.2)]


async def test_set_rate_keeps_burst_and_earned_tokens():
    bucket, t = make_bucket(1.0, 5)
    for _ in range(5):
        await bucket.acquire()
    t.now += 0.5  # half a token at the old rate
    assert bucket.set_rate(10.0) is True
    assert bucket.burst == 5
    assert bucket.rate == 10.0
    assert bucket.tokens() == pytest.approx(0.5)
    assert bucket.delay() == pytest.approx(0.05)
    assert bucket.set_rate(10.0) is False  # unchanged
    assert bucket.set_rate(0) is False  # nonsense ignored


async def test_guard_with_burst_1_is_paid_per_request_but_capped():
    # With burst 1 Amazon's bucket is full at every request, so each one needs the margin;
    # it is capped at 2 % of the interval (here 2 ms of 100 ms), except after the very first
    # request, which also opened the connection and gets the whole guard (10 ms).
    bucket, t = make_bucket(10.0, 1, guard=0.01)
    for _ in range(4):
        await bucket.acquire()
    assert t.sleeps == [pytest.approx(0.11), pytest.approx(0.102), pytest.approx(0.102)]
    slow, t2 = make_bucket(0.5, 1, guard=0.01)
    await slow.acquire()
    await slow.acquire()
    assert t2.sleeps == [pytest.approx(2.01)]


async def test_guard_with_larger_burst_shifts_once_per_busy_period():
    bucket, t = make_bucket(2.0, 3, guard=0.01)
    for _ in range(6):
        await bucket.acquire()
    # the burst is free; then the first wait carries the guard once, the rest are exact
    assert t.sleeps == [pytest.approx(0.51), pytest.approx(0.5), pytest.approx(0.5)]
    t.now += 100  # idle: full again, the next busy period pays the guard once more
    for _ in range(4):
        await bucket.acquire()
    assert t.sleeps[3:] == [pytest.approx(0.51)]


async def test_guard_never_stalls_a_sender_far_below_a_high_rate():
    # 1000/s burst 20 (the simulator without limits): a request every 3 ms finds the bucket full
    # again each time; an uncapped 150 ms guard would stop refills and stall every ~20 requests.
    bucket, t = make_bucket(1000.0, 20, guard=0.15)
    for _ in range(500):
        await bucket.acquire()
        t.now += 0.003
    assert t.sleeps == []


async def test_waiters_are_served_in_arrival_order():
    bucket, t = make_bucket(100.0, 1)
    order: list[int] = []

    async def worker(i: int) -> None:
        await bucket.acquire()
        order.append(i)

    tasks = []
    for i in range(10):
        tasks.append(asyncio.create_task(worker(i)))
        await asyncio.sleep(0)  # each task reaches acquire() before the next starts
    await asyncio.gather(*tasks)
    assert order == list(range(10))
    assert t.now - 1000.0 == pytest.approx(0.09)


async def test_try_acquire_does_not_jump_the_queue():
    bucket = TokenBucket(1000.0, 1, guard=0)
    assert bucket.try_acquire() is True
    assert bucket.try_acquire() is False  # empty


async def test_acquire_to_send_takes_the_token_only_once_it_holds_a_slot():
    """The head of the queue waits for a slot with its token still in the bucket (not counted
    as waiting for quota); later requests of the bucket queue behind it without a slot."""
    bucket, t = make_bucket(1.0, 2)
    slots = asyncio.Semaphore(1)
    await slots.acquire()  # the only slot is busy
    prepared: list[str] = []

    async def prepare() -> str:
        prepared.append("token")
        return "token"

    head = asyncio.create_task(bucket.acquire_to_send(slots, prepare))
    second = asyncio.create_task(bucket.acquire_to_send(slots, prepare))
    await asyncio.sleep(0.01)
    assert (bucket.tokens(), bucket.waiting, len(prepared)) == (2.0, 1, 1)  # second: queued
    assert bucket.try_acquire() is False  # no jumping the queue either
    slots.release()
    assert await head == "token" and bucket.tokens() == 1.0 and slots.locked()
    slots.release()  # the head's send is done
    assert await second == "token" and bucket.tokens() == 0.0 and t.sleeps == []


async def test_a_bucket_drained_while_its_head_waits_for_a_slot_gives_the_slot_back():
    bucket, t = make_bucket(1.0, 1)
    slots = asyncio.Semaphore(1)
    await slots.acquire()
    calls: list[tuple[float, bool]] = []

    async def prepare() -> None:
        calls.append((t.now, slots.locked()))

    head = asyncio.create_task(bucket.acquire_to_send(slots, prepare))
    await asyncio.sleep(0.01)
    bucket.drain()  # a 429 of a request of this bucket
    slots.release()
    await head
    assert t.sleeps == [1.0]  # it waited for the refill without the slot, then took it again
    assert calls == [(1000.0, True), (1001.0, False)] and slots.locked() and bucket.tokens() == 0.0


async def test_set_rate_wakes_a_long_waiter():
    bucket = TokenBucket(0.1, 1, guard=0)  # 10 s per token
    await bucket.acquire()
    waiter = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    started = time.monotonic()
    bucket.set_rate(50.0)
    await asyncio.wait_for(waiter, 1.0)
    assert time.monotonic() - started < 0.5


async def test_cancelled_waiter_does_not_block_the_queue():
    bucket = TokenBucket(20.0, 1, guard=0)
    await bucket.acquire()
    first = asyncio.create_task(bucket.acquire())
    second = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.wait_for(second, 1.0)
    assert bucket.snapshot()["waiting"] == 0


async def test_real_clock_precision_10_per_second():
    # Real sleeps: 21 acquires at 10/s burst 1 must take about 2 s (never less, not much more).
    bucket = TokenBucket(10.0, 1, guard=0)
    started = time.monotonic()
    await asyncio.gather(*(bucket.acquire() for _ in range(21)))
    elapsed = time.monotonic() - started
    assert 1.99 <= elapsed < 2.4


async def test_real_clock_rate_is_respected_over_any_window():
    bucket = TokenBucket(50.0, 5, guard=0)
    stamps: list[float] = []

    async def take() -> None:
        await bucket.acquire()
        stamps.append(time.monotonic())

    await asyncio.gather(*(take() for _ in range(30)))
    # burst of 5, then one every 20 ms: token count in any window never above burst + rate*dt
    for i, start in enumerate(stamps):
        for j in range(i, len(stamps)):
            assert j - i + 1 <= 5 + (stamps[j] - start) * 50.0 + 1e-6


def test_invalid_bucket_rejected():
    with pytest.raises(ValueError):
        TokenBucket(0, 1)
    with pytest.raises(ValueError):
        TokenBucket(1, 0)


def _op(rate, burst, api="ordersV0", op_id="getOrders"):
    return SimpleNamespace(api=api, id=op_id, operation_id=op_id, rate=rate, burst=burst)


def test_initial_limits_prefers_config_override():
    account = SimpleNamespace(
        rate_limits={"ordersV0.getOrders": SimpleNamespace(rate=0.5, burst=7)}
    )
    assert initial_limits(account, _op(0.0167, 20)) == (0.5, 7)


def test_initial_limits_override_without_burst_keeps_catalog_burst():
    account = SimpleNamespace(
        rate_limits={"ordersV0.getOrders": SimpleNamespace(rate=2.0, burst=None)}
    )
    assert initial_limits(account, _op(0.0167, 20)) == (2.0, 20)


def test_initial_limits_from_usage_plan_then_default():
    account = SimpleNamespace(rate_limits={})
    assert initial_limits(account, _op(0.0167, 20)) == (0.0167, 20)
    assert initial_limits(account, _op(None, None)) == (DEFAULT_RATE, DEFAULT_BURST)
    assert (DEFAULT_RATE, DEFAULT_BURST) == (0.5, 1)


# --- levels kept across reloads and restarts (issue 13 item 5) ---------------------------------


class MemoryJournal:
    """A QuotaJournal in memory that remembers every save."""

    def __init__(self, levels: list[BucketLevel] | None = None) -> None:
        self.levels = {(x.account, x.operation): x for x in levels or []}
        self.saves: list[list[BucketLevel]] = []

    async def load_bucket_levels(self) -> list[BucketLevel]:
        return list(self.levels.values())

    async def save_bucket_levels(self, levels: list[BucketLevel]) -> None:
        self.saves.append(levels)
        self.levels.update({(x.account, x.operation): x for x in levels})


async def test_a_level_is_saved_before_the_takes_it_covers_never_above_the_real_one():
    journal, wall = MemoryJournal(), FakeTime()
    saved = SavedBuckets(journal, wall=wall.clock)
    bucket, t = make_bucket(4.0, 6)
    saved.attach("acme", "op", bucket)
    for _ in range(20):
        await bucket.acquire()
        level = journal.levels[("acme", "op")]
        assert level.tokens <= bucket.tokens() + 1e-9  # whenever the process dies, no bucket too full
        assert level.rate == 4.0 and level.burst == 6
    assert len(journal.saves) == 5  # a save covers ceil(rate * 1 s) = 4 takes


async def test_a_restart_starts_from_the_saved_level_refilled_since_and_capped_at_the_burst():
    wall = FakeTime()
    journal = MemoryJournal([BucketLevel("acme", "op", 0.5, 5, -1.0, wall.now - 4.0)])
    saved = SavedBuckets(journal, wall=wall.clock)
    await saved.load()
    bucket, t = make_bucket(0.5, 5)
    saved.attach("acme", "op", bucket)
    assert bucket.tokens() == pytest.approx(1.0)  # -1 + 4 s * 0.5/s
    wall.now += 100
    other, _ = make_bucket(0.5, 5)
    saved.attach("acme", "op", other)
    assert other.tokens() == 5.0  # never above the burst
    fresh, _ = make_bucket(0.5, 5)
    saved.attach("acme", "other-op", fresh)
    assert fresh.tokens() == 5.0  # nothing saved: full, as Amazon's new bucket
    await saved.save_all({("acme", "op"): bucket})
    assert journal.levels[("acme", "op")].tokens == pytest.approx(1.0)  # exact at close


async def test_a_rate_change_or_a_429_saves_again_before_the_next_take():
    journal = MemoryJournal()
    saved = SavedBuckets(journal, wall=FakeTime().clock)
    bucket, t = make_bucket(10.0, 10)
    saved.attach("acme", "op", bucket)
    await bucket.acquire()
    assert len(journal.saves) == 1
    bucket.set_rate(2.0)
    await bucket.acquire()
    assert len(journal.saves) == 2 and journal.levels[("acme", "op")].rate == 2.0
    bucket.drain()
    await bucket.acquire()
    assert len(journal.saves) == 3 and journal.levels[("acme", "op")].tokens <= 0.0
