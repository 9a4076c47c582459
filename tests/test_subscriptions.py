"""Push (DESIGN §14): SP-API notifications read from SQS (moto's server on loopback), emitted to
real files, deleted only after delivery; malformed messages; `spd run` under SIGTERM and SIGKILL."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spd.app.runtime import Runtime
from spd.config.validate import load_config
from spd.core.errors import ConfigError
from spd.sources.notifications import NotificationError, parse_notification
from spd.state.store import StateStore
from support.aws_peer import account_yaml
from support.recording import RecordingEmitter
from support.spd import read_jsonl, read_jsonl_so_far, run_spd, start_spd, stop_spd, wait_for
from support.terminal import run_spd_tty
from support.sqs_peer import (MotoSqs, camel_notification, order_change, subscription_yaml,
                              write_subscription_config)
from support.webhook_receiver import WebhookReceiver

SIM_URL = "http://127.0.0.1:9"  # never called: these subscriptions do not fetch


@pytest.fixture(scope="module")
def sqs() -> Iterator[MotoSqs]:
    peer = MotoSqs().start()
    yield peer
    peer.stop()


def config_for(tmp_path: Path, sqs: MotoSqs, queue: str, *, types: list[str] | None = None,
               extra: dict[str, Any] | None = None, emitters: list[str] | None = None,
               more: str = "") -> Path:
    sub = subscription_yaml("orders", sqs, queue, types=types or ["ORDER_CHANGE", "LISTINGS_ITEM_STATUS_CHANGE"],
                            emitters=emitters or ["archive"], extra=extra)
    return write_subscription_config(tmp_path, account_yaml("sim", SIM_URL), [sub], extra=more)


# -- the envelope -------------------------------------------------------------------------------

def test_pascal_and_camel_envelopes_parse_to_the_same_fields() -> None:
    pascal = parse_notification(json.dumps(order_change("111-1", notification_id="n1",
                                                        event_time="2026-11-30T10:00:00.123Z")))
    camel = parse_notification(json.dumps(camel_notification(
        "LISTINGS_ITEM_STATUS_CHANGE", {"sku": "A"}, notification_id="n2",
        event_time="2026-11-30T12:00:00.123+02:00")))
    assert (pascal.notification_type, pascal.notification_id, pascal.event_time) == (
        "ORDER_CHANGE", "n1", "2026-11-30T10:00:00.123Z")
    assert pascal.order_id() == "111-1"
    # the same instant, to the millisecond, in UTC
    assert (camel.notification_type, camel.notification_id, camel.event_time, camel.data) == (
        "LISTINGS_ITEM_STATUS_CHANGE", "n2", "2026-11-30T10:00:00.123Z", {"sku": "A"})


@pytest.mark.parametrize("body, problem", [
    ("not json", "not JSON"), ("[1]", "not a JSON object"),
    (json.dumps({"Payload": {}}), "no NotificationType"),
    (json.dumps({"NotificationType": "ORDER_CHANGE", "EventTime": "2026-01-01T00:00:00Z"}), "no Payload"),
    (json.dumps({"NotificationType": "ORDER_CHANGE", "Payload": {}, "EventTime": "yesterday"}), "EventTime"),
])
def test_malformed_bodies_are_refused_with_the_reason(body: str, problem: str) -> None:
    with pytest.raises(NotificationError, match=problem):
        parse_notification(body)


# -- the config -----------------------------------------------------------------------------------

def test_a_config_with_subscriptions_and_no_pollers_validates(tmp_path: Path, sqs: MotoSqs) -> None:
    path = config_for(tmp_path, sqs, "http://127.0.0.1:1/123456789012/q")
    done = run_spd("validate", "-c", str(path))
    assert done.returncode == 0, done.stderr
    items = {i["what"]: i["detail"] for i in json.loads(done.stdout)["items"]}
    assert items["subscription orders"].startswith("ORDER_CHANGE, LISTINGS_ITEM_STATUS_CHANGE from ")
    assert "spd-sqs-secret" not in done.stdout


@pytest.mark.parametrize("extra, message", [
    ({"reconcile_with": "nope"}, "subscriptions.orders.reconcile_with (line 18): unknown poller \"nope\""),
    ({"fetch": "true", "notification_types": None}, None),
    ({"processing_directive": {"LISTINGS_ITEM_STATUS_CHANGE": {"eventFilter": {"eventFilterType": "X"}}}},
     "Amazon takes an eventFilter only for ANY_OFFER_CHANGED, ORDER_CHANGE, SHIPMENT_TRACKING_MILESTONE_CHANGED"),
    ({"processing_directive": {"ORDER_CHANGE": {"eventFilter": {}, "filterExpression": "x"}}},
     "mutually exclusive"),
    ({"wait_time": "30s"}, "at most 20s"),
    ({"visibility_timeout": "1s"}, "between 10s and 12h"),
])
def test_bad_subscription_keys_are_one_line_errors(tmp_path: Path, sqs: MotoSqs,
                                                    extra: dict[str, Any], message: str | None) -> None:
    if message is None:  # fetch on a subscription without ORDER_CHANGE
        sub = subscription_yaml("orders", sqs, "http://127.0.0.1:1/1/q", types=["FEED_PROCESSING_FINISHED"],
                                emitters=["archive"], extra={"fetch": "true"})
        path = write_subscription_config(tmp_path, account_yaml("sim", SIM_URL), [sub])
        message = "fetch: true fetches the order of an ORDER_CHANGE notification"
    else:
        path = config_for(tmp_path, sqs, "http://127.0.0.1:1/123456789012/q", extra=extra)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_two_subscriptions_may_not_read_one_type_of_one_queue(tmp_path: Path, sqs: MotoSqs) -> None:
    subs = [subscription_yaml(n, sqs, "http://127.0.0.1:1/1/q", types=["ORDER_CHANGE"], emitters=["archive"])
            for n in ("a", "b")]
    path = write_subscription_config(tmp_path, account_yaml("sim", SIM_URL), subs)
    with pytest.raises(ConfigError, match="ORDER_CHANGE from this queue is already read by subscription a"):
        load_config(path)


# -- the consumer in this process, against moto's SQS ---------------------------------------------

async def start(path: Path, recorder: RecordingEmitter | None = None) -> Runtime:
    config = load_config(path)
    store = StateStore(Path(config.state.path))
    await store.open()
    factory = None if recorder is None else (lambda name, cfg: recorder)
    runtime = Runtime(config, store, **({"emitter_factory": factory} if factory else {}))
    await runtime.start()
    return runtime


async def run_until(runtime: Runtime, predicate: Any, timeout: float = 30.0) -> None:
    tasks = [asyncio.ensure_future(c.run()) for c in runtime.consumers.values()]
    try:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not met in time"
            await asyncio.sleep(0.05)
    finally:
        runtime.stop_pollers()
        await asyncio.wait(tasks, timeout=10)
        await runtime.close()
        await runtime.store.close()


async def test_notifications_are_emitted_and_deleted_after_delivery(tmp_path: Path, sqs: MotoSqs) -> None:
    queue = sqs.queue()
    sent = [order_change(f"111-{i}", notification_id=f"n{i}") for i in range(25)]
    sent.append(camel_notification("LISTINGS_ITEM_STATUS_CHANGE", {"sku": "S1"}, notification_id="c1",
                                   event_time="2026-11-30T09:00:00.5Z"))
    for body in sent:
        sqs.send(queue, body)
    runtime = await start(config_for(tmp_path, sqs, queue, extra={"wait_time": "1s"}))
    out = tmp_path / "out" / "orders.jsonl"  # {poller} is the subscription's name
    await run_until(runtime, lambda: len(read_jsonl_so_far(out)) >= 26)
    lines = read_jsonl(out)
    assert sorted(line["notification_id"] for line in lines) == sorted([f"n{i}" for i in range(25)] + ["c1"])
    by_id = {line["notification_id"]: line for line in lines}
    assert set(by_id["n3"]) == {"subscription", "account", "notification_type", "event_time",
                                "notification_id", "data"}
    assert by_id["n3"]["data"] == sent[3]["Payload"]  # the payload exactly
    assert (by_id["n3"]["subscription"], by_id["n3"]["account"]) == ("orders", "sim")
    assert by_id["c1"]["event_time"] == "2026-11-30T09:00:00.500Z"
    assert by_id["c1"]["data"] == {"sku": "S1"}
    assert wait_for(lambda: sqs.counts(queue) == (0, 0), timeout=10)
    stats = runtime.subscriptions["orders"].stats
    assert (stats.received, stats.emitted, stats.dead_lettered) == (26, 26, 0)


async def test_a_poison_message_is_dead_lettered_and_stops_nothing(tmp_path: Path, sqs: MotoSqs) -> None:
    queue = sqs.queue()
    sqs.send(queue, "{not json")
    sqs.send(queue, order_change("111-1", notification_id="before"))
    sqs.send(queue, {"NotificationType": "ANY_OFFER_CHANGED", "EventTime": "2026-01-01T00:00:00Z",
                     "Payload": {}})  # a type no subscription on this queue names
    sqs.send(queue, order_change("111-2", notification_id="after"))
    dead = tmp_path / "dead.jsonl"
    runtime = await start(config_for(tmp_path, sqs, queue, extra={"wait_time": "1s", "dead_letter": str(dead)}))
    out = tmp_path / "out" / "orders.jsonl"
    await run_until(runtime, lambda: len(read_jsonl_so_far(out)) >= 2 and len(read_jsonl_so_far(dead)) >= 2)
    assert sorted(line["notification_id"] for line in read_jsonl(out)) == ["after", "before"]
    errors = sorted(d["error"] for d in read_jsonl(dead))
    assert "not JSON" in errors[1] and "no subscription on this queue names ANY_OFFER_CHANGED" in errors[0]
    assert {d["body"] for d in read_jsonl(dead)} >= {"{not json"}
    assert wait_for(lambda: sqs.counts(queue) == (0, 0), timeout=10)
    assert runtime.subscriptions["orders"].stats.dead_lettered == 2


async def test_without_dead_letter_a_poison_message_stays_for_the_redrive_policy(tmp_path: Path,
                                                                                 sqs: MotoSqs) -> None:
    queue = sqs.queue()
    sqs.send(queue, "garbage")
    sqs.send(queue, order_change("111-1", notification_id="good"))
    runtime = await start(config_for(tmp_path, sqs, queue, extra={"wait_time": "1s",
                                                                   "visibility_timeout": "30s"}))
    out = tmp_path / "out" / "orders.jsonl"
    await run_until(runtime, lambda: len(read_jsonl_so_far(out)) >= 1)
    assert [line["notification_id"] for line in read_jsonl(out)] == ["good"]
    assert wait_for(lambda: sqs.counts(queue) == (0, 1), timeout=10)  # in flight, not deleted
    assert runtime.subscriptions["orders"].stats.malformed == 1


async def test_a_refused_delivery_leaves_the_message_and_a_retry_goes_only_where_it_failed(
        tmp_path: Path, sqs: MotoSqs) -> None:
    queue = sqs.queue()
    sqs.send(queue, order_change("111-1", notification_id="once"))
    good, flaky = RecordingEmitter("good"), RecordingEmitter("flaky")
    flaky.fail_on = {1}
    path = config_for(tmp_path, sqs, queue, emitters=["good", "flaky"],
                      extra={"wait_time": "1s", "visibility_timeout": "10s"})
    text = path.read_text().replace("emitters:\n", "emitters:\n  good: {type: stdout}\n  flaky: {type: stdout}\n", 1)
    path.write_text(text)
    config = load_config(path)
    store = StateStore(Path(config.state.path))
    await store.open()
    runtime = Runtime(config, store, emitter_factory=lambda name, cfg: {"good": good, "flaky": flaky}.get(name, good))
    await runtime.start()
    # the refused message comes back after the 10 s visibility timeout and is delivered then
    await run_until(runtime, lambda: len(flaky.messages) == 1, timeout=40)
    assert [m["notification_id"] for m in good.messages] == ["once"]  # not twice
    assert flaky.sends == 2
    assert wait_for(lambda: sqs.counts(queue) == (0, 0), timeout=10)


async def test_visibility_is_extended_while_a_delivery_is_still_retrying(tmp_path: Path, sqs: MotoSqs) -> None:
    queue = sqs.queue()
    sqs.send(queue, order_change("111-1", notification_id="slow"))
    slow = RecordingEmitter("archive")
    slow.delay_on = {1: 14.0}  # longer than the 10 s visibility timeout
    runtime = await start(config_for(tmp_path, sqs, queue, extra={"wait_time": "1s",
                                                                   "visibility_timeout": "10s"}), slow)
    await run_until(runtime, lambda: len(slow.messages) == 1, timeout=40)
    await asyncio.sleep(0.5)
    # had the visibility not been extended, SQS would have handed the message out again at 10 s
    assert slow.sends == 1
    assert wait_for(lambda: sqs.counts(queue) == (0, 0), timeout=10)


# -- `spd run`: signals and crashes ---------------------------------------------------------------

def test_sigterm_during_a_long_poll_exits_0_quickly(tmp_path: Path, sqs: MotoSqs) -> None:
    queue = sqs.queue()
    path = config_for(tmp_path, sqs, queue)  # wait_time 20 s: the long poll of production
    proc = start_spd("run", "-c", str(path))
    try:
        sqs.send(queue, order_change("111-1", notification_id="first"))
        out = tmp_path / "out" / "orders.jsonl"
        wait_for(lambda: read_jsonl_so_far(out), timeout=30)
        time.sleep(1.0)  # now inside the next 20 s long poll
        began = time.monotonic()
        code = stop_spd(proc, signal.SIGTERM, timeout=35)
        elapsed = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, proc.stderr.read().decode() if proc.stderr else ""
    assert elapsed < 30
    assert elapsed < 10, f"took {elapsed:.1f}s: the long poll should end at once"


def test_a_sigkilled_run_loses_nothing(tmp_path: Path, sqs: MotoSqs) -> None:
    queue = sqs.queue()
    ids = [f"k{i}" for i in range(15)]
    for i, nid in enumerate(ids):
        sqs.send(queue, order_change(f"111-{i}", notification_id=nid))
    hook = WebhookReceiver(secret="s3cret").start()
    try:
        hook.set(mode="slow", delay=30.0)  # the first batch hangs in delivery
        more = ""
        path = config_for(tmp_path, sqs, queue, emitters=["hook"],
                          extra={"wait_time": "1s", "visibility_timeout": "10s"}, more=more)
        text = path.read_text().replace(
            "emitters:\n", f"emitters:\n  hook: {{type: webhook, url: \"{hook.url}\", secret: s3cret}}\n", 1)
        path.write_text(text)
        proc = start_spd("run", "-c", str(path))
        wait_for(lambda: hook.in_flight > 0, timeout=30)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert sqs.counts(queue)[0] < len(ids)  # some were in flight when it died
        hook.set(mode="ok")
        proc = start_spd("run", "-c", str(path))
        try:
            wait_for(lambda: {d.doc["notification_id"] for d in hook.requests if d.status == 200} >= set(ids),
                     timeout=60)
            wait_for(lambda: sqs.counts(queue) == (0, 0), timeout=20)
        finally:
            assert stop_spd(proc) == 0
    finally:
        hook.stop()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metric(url: str, name: str) -> float | None:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
    except OSError:  # not listening yet
        return None
    for line in text.splitlines():
        if line.startswith(name + '{subscription="orders"}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_status_and_metrics_count_per_subscription_across_restarts(tmp_path: Path, sqs: MotoSqs) -> None:
    queue = sqs.queue()
    for i in range(3):
        sqs.send(queue, order_change(f"111-{i}", notification_id=f"m{i}"))
    sqs.send(queue, "poison")
    port = free_port()
    path = config_for(tmp_path, sqs, queue, extra={"wait_time": "1s", "dead_letter": str(tmp_path / "dead.jsonl")},
                      more=f"http: {{listen: 127.0.0.1:{port}}}")
    metrics = f"http://127.0.0.1:{port}/metrics"
    proc = start_spd("run", "-c", str(path))
    try:
        wait_for(lambda: metric(metrics, "spd_notifications_emitted_total") == 3.0, timeout=30)
        assert metric(metrics, "spd_notifications_received_total") == 4.0
        assert metric(metrics, "spd_notifications_dead_lettered_total") == 1.0
        assert metric(metrics, "spd_subscription_queue_lag_seconds") is not None
    finally:
        assert stop_spd(proc) == 0
    done = run_spd("status", "-c", str(path), "--json")
    assert done.returncode == 0, done.stderr
    row = next(r for r in json.loads(done.stdout) if r.get("subscription") == "orders")
    assert (row["received"], row["emitted"], row["dead_lettered"]) == (4, 3, 1)
    # The stop cut the daemon's 1 s long poll short on its side only: the queue still answers
    # that receive, and a message sent before it ends would be handed to it and stay invisible
    # for the visibility timeout (as on SQS). Send the next one after that poll has ended.
    time.sleep(2)
    sqs.send(queue, order_change("111-9", notification_id="m9"))
    proc = start_spd("run", "-c", str(path))
    try:
        wait_for(lambda: metric(metrics, "spd_notifications_emitted_total") == 4.0, timeout=30)
    finally:
        assert stop_spd(proc) == 0
    table = run_spd_tty("status", "-c", str(path))  # a person's table
    assert table.returncode == 0, table.text
    header, row = [line for line in table.lines if line.strip()][-2:]
    assert header.split()[:5] == ["SUBSCRIPTION", "RECEIVED", "EMITTED", "DEAD-LETTERED", "REFUSED"]
    assert row.split()[:5] == ["orders", "5", "4", "1", "0"]


def test_the_reconcile_poller_runs_at_once_when_the_queue_is_back(tmp_path: Path, sqs: MotoSqs,
                                                                  sim_factory: Any) -> None:
    sim = sim_factory(orders=50)
    name = f"later-{time.time_ns()}"
    queue = f"{sqs.url}/123456789012/{name}"  # not created yet: the subscription fails and retries
    pollers = "\n".join(["pollers:", "  orders:", "    object: ordersV0.getOrders",
                         "    timestamp_field: updated", "    interval: 1h", "    emitters: [archive]"])
    sub = subscription_yaml("changes", sqs, queue, types=["ORDER_CHANGE"], emitters=["archive"],
                            extra={"wait_time": "1s", "reconcile_with": "orders"})
    path = write_subscription_config(tmp_path, account_yaml("sim", sim.url), [sub], pollers=pollers)

    def last_run() -> str | None:
        done = run_spd("status", "-c", str(path), "--json")
        row = next((r for r in json.loads(done.stdout or "[]") if r.get("poller") == "orders"), None)
        return row["last_run"] if row else None

    proc = start_spd("run", "-c", str(path))
    try:
        first = wait_for(last_run, timeout=60)  # the first scheduled run; the next is an hour away
        time.sleep(2)
        assert last_run() == first
        sqs.queue(name)  # the queue is back
        wait_for(lambda: last_run() not in (None, first), timeout=40)
    finally:
        assert stop_spd(proc) == 0
    log = proc.stderr.read().decode() if proc.stderr else ""
    assert "reconcile_poller_triggered" in log and "subscription_failed" in log


async def test_a_role_arn_is_assumed_through_sts_before_reading_the_queue(tmp_path: Path, sqs: MotoSqs) -> None:
    queue = sqs.queue()
    sqs.send(queue, order_change("111-1", notification_id="via-role"))
    path = config_for(tmp_path, sqs, queue, extra={"wait_time": "1s"})
    role = "arn:aws:iam::123456789012:role/SpdQueueReader"
    text = path.read_text().replace("region: us-east-1}", f"region: us-east-1, role_arn: \"{role}\", "
                                                          f"sts_endpoint: \"{sqs.url}\"}}")
    path.write_text(text)
    runtime = await start(path)
    queue_client = runtime.consumers["orders"].queue
    out = tmp_path / "out" / "orders.jsonl"
    await run_until(runtime, lambda: len(read_jsonl_so_far(out)) >= 1)
    assert [line["notification_id"] for line in read_jsonl(out)] == ["via-role"]
    assert queue_client._roles is not None and queue_client._roles.assumed == 1  # moto's STS answered


def test_a_sighup_reload_keeps_reading_the_queue_and_the_counters(tmp_path: Path, sqs: MotoSqs) -> None:
    queue = sqs.queue()
    sqs.send(queue, order_change("111-1", notification_id="before-reload"))
    path = config_for(tmp_path, sqs, queue, extra={"wait_time": "1s"})
    out, log = tmp_path / "out" / "orders.jsonl", tmp_path / "spd.log"
    with log.open("wb") as stderr:
        proc = start_spd("run", "-c", str(path), stderr=stderr)
    try:
        wait_for(lambda: read_jsonl_so_far(out), timeout=30)
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "config_reloaded" in log.read_text(), timeout=30)
        # The reload cut the old consumer's 1 s long poll on its side only: a message sent
        # before that poll ends on the queue's side would be handed to it and stay invisible for
        # the visibility timeout (as on SQS). The reload's length varies with the machine's load.
        time.sleep(1.5)
        sqs.send(queue, order_change("111-2", notification_id="after-reload"))
        wait_for(lambda: len(read_jsonl_so_far(out)) >= 2, timeout=30)
    finally:
        assert stop_spd(proc) == 0
    assert [line["notification_id"] for line in read_jsonl(out)] == ["before-reload", "after-reload"]
    done = run_spd("status", "-c", str(path), "--json")
    row = next(r for r in json.loads(done.stdout) if r.get("subscription") == "orders")
    assert (row["received"], row["emitted"]) == (2, 2)  # not reset by the reload
