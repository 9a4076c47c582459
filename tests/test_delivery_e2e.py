"""End to end delivery: a real `spd run` subprocess, the simulator, a real webhook receiver
(tests/webhook_receiver.py) and a real Kafka-protocol broker (tansu). Outages, SIGKILLs and a
broker that loses its store must lose nothing, and repeat at most the page in flight."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from support.kafka_broker import TansuBroker
from support.webhook_receiver import WebhookReceiver
from support.delivery import OBJECT, SECRET, Scene, kafka, normalize, webhook
from support.spd import read_jsonl, read_jsonl_so_far, stop_spd, wait_for

PAGE = 100  # ordersV0 page size: what one kill or outage may repeat


def ids(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["id"], normalize(m["cursor"])) for m in messages]


def duplicates(found: list[Any]) -> int:
    return sum(n - 1 for n in Counter(found).values() if n > 1)


def stop(proc: subprocess.Popen, scene: Scene) -> None:
    code = stop_spd(proc, signal.SIGTERM)
    assert code == 0, scene.log.read_text()[-3000:]


def kill_then_catch_up(scene: Scene, kill_points: list[Callable[[], bool]],
                       at_kill: Callable[[], None] = lambda: None) -> int:
    """Starts `spd run` and SIGKILLs it once each point is reached (`at_kill` checks the moment),
    then runs it until caught up; returns the number of kills."""
    for reached in kill_points:
        proc = scene.spd()
        wait_for(reached, timeout=30, interval=0.02)
        at_kill()
        proc.kill()
        proc.wait(10)
    proc = scene.spd()
    try:
        wait_for(scene.caught_up, timeout=40)
    finally:
        stop(proc, scene)
    return len(kill_points)


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(SECRET).start()
    yield receiver
    receiver.stop()


def consume(broker: TansuBroker, topic: str, idle: float = 1.5) -> list[Any]:
    """Every record of `topic` from the beginning, read until none came for `idle` seconds."""
    from aiokafka import AIOKafkaConsumer

    async def read() -> list[Any]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        records: list[Any] = []
        try:
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < idle:
                batches = await consumer.getmany(timeout_ms=300, max_records=10_000)
                for batch in batches.values():
                    if batch:
                        records.extend(batch)
                        quiet_since = time.monotonic()
        finally:
            await consumer.stop()
        return records

    return asyncio.run(read())


# -- webhook ------------------------------------------------------------------------------------


def test_receiver_down_then_back_delivers_everything_once(tmp_path: Path, sim_factory: Any,
                                                          hook: WebhookReceiver) -> None:
    """Receiver down mid-run, then answering 500: the poller stalls with the reason in `spd
    status`, holds its checkpoint, and resumes by itself; only the page in flight is repeated."""
    scene = Scene(sim_factory, tmp_path, orders=1200)
    hook.set("slow", delay=0.003)
    scene.write({"hook": webhook(hook.url)})
    proc = scene.spd()
    try:
        wait_for(lambda: hook.count() >= 250, timeout=30)
        hook.down()
        held = assert_stalled(scene, "ClientConnectorError")
        got = hook.count()
        hook.set(500)
        hook.up()
        assert_stalled(scene, "HTTP 500: receiver says 500", held)
        assert hook.count() == got and hook.received(500)
        hook.set("ok")
        wait_for(scene.caught_up, timeout=30)
        wait_for(lambda: scene.state()["last_error"] is None, timeout=10)
    finally:
        stop(proc, scene)
    truth, found = scene.truth(), ids([r.doc for r in hook.accepted()])
    missing = truth - set(found)
    assert not missing, f"{len(missing)} of {len(truth)} lost, e.g. {sorted(missing)[:3]}"
    assert 0 < duplicates(found) <= PAGE, f"{duplicates(found)} duplicates, more than the page in flight"
    # X-SPD-Delivery is an idempotency key: one per object version, also across re-emission.
    assert len(hook.by_delivery()) == len(set(found))
    assert hook.bad_signatures == 0
    assert "last error:" not in scene.status_line()


def assert_stalled(scene: Scene, reason: str, held: dict[str, Any] | None = None) -> dict[str, Any]:
    """Waits until `spd status` gives `reason` as the last error, then checks that the checkpoint
    holds over more failed runs; returns it."""
    wait_for(lambda: reason in scene.status_line(), timeout=20)
    assert "POST" in scene.status_line() and "failed" in scene.status_line()
    held = held or scene.state()
    time.sleep(2.2)  # at least one more failed run (interval 1s, max_retry_time 1.5s)
    now = scene.state()
    assert (now["watermark"], now["window_start"], now["page"]) == (
        held["watermark"], held["window_start"], held["page"])
    assert not scene.caught_up()
    return held


def test_sigkill_during_webhook_delivery_loses_nothing(tmp_path: Path, sim_factory: Any,
                                                       hook: WebhookReceiver) -> None:
    """SIGKILL while a slow receiver takes a page (each kill lands mid-page), then restart."""
    scene = Scene(sim_factory, tmp_path, orders=500)
    hook.set("slow", delay=0.008)
    scene.write({"hook": webhook(hook.url)})
    def inside_a_page() -> None:
        assert hook.count() % PAGE, "the kill must land inside a page"

    kills = kill_then_catch_up(scene, [lambda n=n: hook.count() >= n for n in (150, 330)], inside_a_page)
    truth, found = scene.truth(), ids([r.doc for r in hook.accepted()])
    missing = truth - set(found)
    assert not missing, f"{len(missing)} of {len(truth)} lost, e.g. {sorted(missing)[:3]}"
    # Each kill repeats the part of its page already accepted, and nothing more.
    assert 0 < duplicates(found) <= PAGE * kills
    assert hook.bad_signatures == 0


def test_permanent_4xx_goes_to_dead_letter_and_watermark_moves(tmp_path: Path, sim_factory: Any,
                                                               hook: WebhookReceiver) -> None:
    """The receiver answers 422 to some objects: each is dead-lettered once, with the error, the
    status and the original message, and the poller carries on."""
    scene = Scene(sim_factory, tmp_path, orders=300)
    hook.reject = lambda doc: 422 if doc["id"].endswith(("1", "7")) else None
    dead = tmp_path / "dead" / "{poller}.jsonl"
    scene.write({"hook": webhook(hook.url, dead_letter=str(dead))})
    proc = scene.spd()
    try:
        wait_for(scene.caught_up, timeout=30)
    finally:
        stop(proc, scene)
    rejected = {r.delivery: r for r in hook.received(422)}
    lines = read_jsonl(tmp_path / "dead" / "orders.jsonl")
    assert rejected and len(lines) == len(rejected)
    for line in lines:
        sent = rejected[line["delivery"]]
        assert line["status"] == 422 and line["attempts"] == 1
        assert line["error"].startswith("HTTP 422: receiver says 422") and "permanent" in line["error"]
        assert line["message"] == json.loads(sent.body)  # the original message, untouched
        assert line["failed_at"].endswith("Z")
    accepted, truth = set(ids([r.doc for r in hook.accepted()])), scene.truth()
    assert truth <= accepted | set(ids([line["message"] for line in lines]))
    assert not accepted & set(ids([line["message"] for line in lines]))
    assert scene.state()["last_error"] is None


def test_signatures_verify_and_a_wrong_secret_stalls(tmp_path: Path, sim_factory: Any,
                                                     hook: WebhookReceiver) -> None:
    """Every delivery carries a valid HMAC of its exact body; a receiver holding another secret
    refuses (401, permanent) and the poller stalls until the secrets agree again."""
    scene = Scene(sim_factory, tmp_path, orders=300)
    hook.set(secret="another-secret")
    scene.write({"hook": webhook(hook.url)})
    proc = scene.spd()
    try:
        stalled = wait_for(lambda: "last error:" in (line := scene.status_line()) and line, timeout=20)
        assert "HTTP 401" in stalled and "permanent" in stalled, stalled
        assert hook.count() == 0 and hook.bad_signatures >= 1 and not scene.caught_up()
        refused = hook.bad_signatures
        hook.set(secret=SECRET)
        wait_for(scene.caught_up, timeout=30)
    finally:
        stop(proc, scene)
    assert hook.bad_signatures == refused  # none failed once the secrets agreed
    assert scene.truth() <= set(ids([r.doc for r in hook.accepted()]))
    for r in hook.accepted():
        assert r.headers["X-SPD-Signature"].startswith("sha256=") and len(r.headers["X-SPD-Signature"]) == 71
        assert r.headers["X-SPD-Poller"] == "orders" and r.headers["X-SPD-Object-Type"] == OBJECT


# -- kafka --------------------------------------------------------------------------------------


def test_sigkill_during_kafka_delivery_loses_nothing(tmp_path: Path, sim_factory: Any,
                                                     broker: TansuBroker) -> None:
    """SIGKILL twice at moments spread over the run, then restart: every object is in Kafka."""
    scene = Scene(sim_factory, tmp_path, orders=2500, latency_ms=10)
    scene.write({"bus": kafka(broker)})
    requests = lambda: scene.sim.get("/_sim/stats")["operations"].get(OBJECT, {}).get("requests", 0)  # noqa: E731
    kills = kill_then_catch_up(scene, [lambda n=n: requests() >= n for n in (5, 14)])
    records = consume(broker, "spd.orders")
    truth, found = scene.truth(), ids([json.loads(r.value) for r in records])
    missing = truth - set(found)
    assert not missing, f"{len(missing)} of {len(truth)} lost, e.g. {sorted(missing)[:3]}"
    print(f"kafka: {len(found)} records, {duplicates(found)} duplicates after {kills} kills")
    assert duplicates(found) <= PAGE * kills
    assert all(r.key.decode() == json.loads(r.value)["id"] for r in records)


def page_id(message: dict[str, Any]) -> tuple[str, int]:
    return message["window"][0], message["page"]


def acknowledged(page: tuple[str, int], window_end: str, checkpoint: dict[str, Any]) -> bool:
    """Whether a page was checkpointed: its window was finished (its end is at or before the
    watermark) or it is one of the pages saved in the window in progress."""
    if datetime.fromisoformat(window_end.replace("Z", "+00:00")) <= datetime.fromisoformat(
            checkpoint["watermark"].replace("Z", "+00:00")):
        return True
    start = checkpoint["window_start"]
    return start is not None and normalize(page[0]) == normalize(start) and page[1] <= checkpoint["page"]


def test_broker_loses_its_store_spd_redelivers_exactly_the_unacknowledged_pages(
        tmp_path: Path, sim_factory: Any, broker: TansuBroker) -> None:
    """Kafka plus a file emitter on one poller, emit: page; the broker is killed mid-run and
    restarted empty.

    A page is acknowledged when spd checkpointed it, which needs BOTH emitters' acks. The file
    holds every page spd ever handed over (acknowledged or not, repeated while stalled). With
    the checkpoint C read while spd is stalled (it cannot move then), let A be the file's pages
    at or before C and U the others. After the restart the broker must hold exactly U: every
    unacknowledged page (none lost) and no acknowledged one (nothing replayed from before C),
    each with the same objects as in the file.
    """
    scene = Scene(sim_factory, tmp_path, orders=2000, latency_ms=120)
    scene.write({"bus": kafka(broker), "archive": {
        "type": "file", "path": str(tmp_path / "out" / "{poller}.jsonl"), "fsync": False}}, emit="page")
    out = tmp_path / "out" / "orders.jsonl"
    proc = scene.spd()
    try:
        wait_for(lambda: len(read_jsonl_so_far(out)) >= 5, timeout=30, interval=0.02)
        broker.stop()
        stalled = wait_for(lambda: "last error:" in (line := scene.status_line()) and line, timeout=30)
        assert "Kafka" in stalled, stalled
        checkpoint = scene.state()
        time.sleep(2.5)  # more failed runs; the checkpoint holds
        assert {k: scene.state()[k] for k in ("watermark", "window_start", "page")} == {
            k: checkpoint[k] for k in ("watermark", "window_start", "page")}
        broker.start()  # same port, empty store
        wait_for(scene.caught_up, timeout=40)
    finally:
        stop(proc, scene)
    handed = {page_id(m): m for m in read_jsonl(out)}
    acked = {p for p, m in handed.items() if acknowledged(p, m["window"][1], checkpoint)}
    unacked = set(handed) - acked
    print(f"pages: {len(acked)} acknowledged before the outage, {len(unacked)} after; "
          f"checkpoint page {checkpoint['page']}")
    assert acked and unacked and checkpoint["page"] >= 1
    consumed = [json.loads(r.value) for r in consume(broker, "spd.orders")]
    assert {page_id(m) for m in consumed} == unacked
    assert len(consumed) == len(unacked)  # each exactly once: the broker never failed again
    for m in consumed:
        assert m["results"] == handed[page_id(m)]["results"]
    truth = scene_truth_by_pages(scene, handed.values())
    assert not truth, f"{len(truth)} objects in no page at all"
    # The outage is told in spd's own JSON lines, not in a flood of the Kafka library's text.
    bad = [line for line in scene.log.read_text().splitlines() if not line.startswith("{")]
    assert not bad, bad[:3]


def scene_truth_by_pages(scene: Scene, pages: Any) -> set[tuple[str, str]]:
    """Ground truth objects found in none of the handed-over pages (should be empty)."""
    seen = {(o["AmazonOrderId"], normalize(o["LastUpdateDate"])) for m in pages for o in m["results"]}
    return scene.truth() - seen
