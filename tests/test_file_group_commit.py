"""The file emitter's group commit, against real files: sends that arrive while a batch is being
written go together into the next one, each file appended in arrival order and fsynced once per
batch; a file that fails fails only the sends that wrote to it."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

import spd.emitters.file_writer as file_mod
from spd.core.errors import DeliveryError
from spd.emitters.file_writer import FileEmitter
from spd.pipeline.messages import Message, build_messages

W = (datetime(2025, 3, 1, tzinfo=timezone.utc), datetime(2025, 3, 1, 1, tzinfo=timezone.utc))


def page(poller: str, page_no: int, n: int = 3) -> list[Message]:
    objects = [(f"{poller}-{page_no}-{i}", "2025-03-01T00:30:00Z", {"i": i}) for i in range(n)]
    return build_messages(poller=poller, account="acme", object_type="ordersV0.getOrders",
                          emit="individually", window=W, page=page_no, objects=objects)


def ids(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(file_mod.os, "fsync", counting)
    return calls


async def test_concurrent_sends_are_written_together_in_order(tmp_path: Path, fsyncs: list[int]) -> None:
    emitter = FileEmitter("out", str(tmp_path / "{poller}.jsonl"))
    pollers = [f"p{n}" for n in range(40)]

    async def poller(name: str) -> None:
        for page_no in range(1, 6):  # each poller's pages one after the other, like a poller
            await emitter.send(page(name, page_no))

    async with emitter:
        await asyncio.gather(*(poller(name) for name in pollers))
    for name in pollers:
        assert ids(tmp_path / f"{name}.jsonl") == [f"{name}-{p}-{i}" for p in range(1, 6) for i in range(3)]
    assert len(fsyncs) == len(pollers) * 5  # a file written in a batch is fsynced in it


async def test_sends_to_one_file_share_its_fsync(tmp_path: Path, fsyncs: list[int]) -> None:
    emitter = FileEmitter("out", str(tmp_path / "all.jsonl"))
    async with emitter:
        await asyncio.gather(*(emitter.send(page(f"p{n}", 1)) for n in range(100)))
    assert len(ids(tmp_path / "all.jsonl")) == 300
    assert len(fsyncs) < 50, len(fsyncs)  # one per batch, not one per send


async def test_a_failing_file_fails_only_the_sends_that_wrote_to_it(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    emitter = FileEmitter("out", str(tmp_path / "{poller}.jsonl"))
    async with emitter:
        results = await asyncio.gather(*(emitter.send(page(name, 1)) for name in ("a", "bad", "b")),
                                       return_exceptions=True)
    assert results[0] is None and results[2] is None, results
    assert isinstance(results[1], DeliveryError) and "symbolic link" in str(results[1])
    assert ids(tmp_path / "a.jsonl") == ["a-1-0", "a-1-1", "a-1-2"]
    assert ids(tmp_path / "b.jsonl") == ["b-1-0", "b-1-1", "b-1-2"]
    assert not (tmp_path / "elsewhere.jsonl").exists()


async def test_a_batch_wider_than_the_open_file_cap_still_syncs_every_file(
        tmp_path: Path, fsyncs: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_mod, "MAX_OPEN_FILES", 4)
    emitter = FileEmitter("out", str(tmp_path / "{poller}.jsonl"))
    async with emitter:
        await asyncio.gather(*(emitter.send(page(f"p{n}", 1)) for n in range(20)))
        assert len(emitter.open_files) <= 4
    assert len(fsyncs) == 20  # every file once (a handle closed early would fail with EBADF)
    for n in range(20):
        assert len(ids(tmp_path / f"p{n}.jsonl")) == 3


async def test_a_bug_in_one_batch_fails_its_sends_and_the_next_batch_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A send queued behind a batch that raises something unexpected is written all the same
    # (it used to wait until yet another send started the writer again).
    import threading

    emitter = FileEmitter("out", str(tmp_path / "{poller}.jsonl"))
    emitter._io.inline_limit = None  # batches in the thread: the first one holds while another queues
    write, in_batch, go_on = emitter._write_batch, threading.Event(), threading.Event()

    def first_fails(batch: list) -> dict:
        if not in_batch.is_set():
            in_batch.set()
            go_on.wait(5)
            raise RuntimeError("a bug")
        return write(batch)

    monkeypatch.setattr(emitter, "_write_batch", first_fails)
    async with emitter:
        first = asyncio.ensure_future(emitter.send(page("a", 1)))
        await asyncio.to_thread(in_batch.wait, 5)
        queued = asyncio.ensure_future(emitter.send(page("b", 1)))  # behind the failing batch
        await asyncio.sleep(0)
        go_on.set()
        with pytest.raises(RuntimeError, match="a bug"):
            await first
        await asyncio.wait_for(queued, 10)
    assert ids(tmp_path / "b.jsonl") == ["b-1-0", "b-1-1", "b-1-2"]
    assert not (tmp_path / "a.jsonl").exists()
