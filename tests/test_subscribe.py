"""`spd subscribe` against the simulator's Notifications API (its rules read from Amazon's model),
and push end to end: the simulator publishes ORDER_CHANGE into moto's SQS, `spd run` emits it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spd.catalog.model import load_catalog
from spd.client.http import SpClient
from spd.client.policy import RetryPolicy
from spd.config.validate import load_config
from spd.core.errors import ApiError
from spd.sim import SimSettings, Simulator
from support.aws_peer import account_yaml
from support.spd import SHARED_MODELS, read_jsonl_so_far, run_spd, start_spd, stop_spd, wait_for
from support.sqs_peer import KEYS, MotoSqs, subscription_yaml, write_subscription_config

DIRECTIVE = {"eventFilter": {"eventFilterType": "ORDER_CHANGE", "orderChangeTypes": ["OrderStatusChange"]}}


@pytest.fixture(scope="module")
def sqs() -> Iterator[MotoSqs]:
    peer = MotoSqs().start()
    yield peer
    peer.stop()


def write(tmp_path: Path, sim_url: str, sqs: MotoSqs, queue: str, *, extra: dict[str, Any] | None = None,
          pollers: str = "") -> Path:
    sub = subscription_yaml("changes", sqs, queue, types=["ORDER_CHANGE", "FEED_PROCESSING_FINISHED"],
                            emitters=["archive"],
                            extra={"processing_directive": {"ORDER_CHANGE": DIRECTIVE}, "wait_time": "1s",
                                   **(extra or {})})
    return write_subscription_config(tmp_path, account_yaml("sim", sim_url), [sub], pollers=pollers)


def subscribe(path: Path, *args: str) -> list[dict[str, Any]]:
    done = run_spd("subscribe", "-c", str(path), *args)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)  # piped: JSON
    return rows


def test_subscribe_twice_changes_nothing_the_second_time(tmp_path: Path, sim_factory: Any, sqs: MotoSqs) -> None:
    sim = sim_factory(orders=10, live=False)
    queue = sqs.queue()
    path = write(tmp_path, sim.url, sqs, queue)
    first = subscribe(path, "changes")
    assert [(r["kind"], r["name"], r["action"]) for r in first] == [
        ("destination", "spd-changes", "created"), ("subscription", "ORDER_CHANGE", "created"),
        ("subscription", "FEED_PROCESSING_FINISHED", "created")]
    assert first[0]["destination"] == sqs.arn(queue)  # the ARN SQS itself gives the queue
    world = sim._sim.state.notifications
    before = (dict(world.destinations), dict(world.subscriptions))
    assert [s.get("processingDirective") for s in world.subscriptions.values()] == [DIRECTIVE, None]

    second = subscribe(path, "changes")
    assert [r["action"] for r in second] == ["exists", "exists", "exists"]
    assert [r["id"] for r in second] == [r["id"] for r in first]
    assert (world.destinations, world.subscriptions) == before
    creates = sim.get("/_sim/stats")["operations"]
    assert creates["notifications.createDestination"]["ok"] == 1
    assert creates["notifications.createSubscription"]["ok"] == 2

    listed = subscribe(path, "changes", "--list")
    assert sorted((r["kind"], r["name"]) for r in listed) == [
        ("destination", "spd-changes"), ("subscription", "FEED_PROCESSING_FINISHED"),
        ("subscription", "ORDER_CHANGE")]

    removed = subscribe(path, "changes", "--delete")
    assert [r["action"] for r in removed] == ["deleted", "deleted", "deleted"]
    assert (world.destinations, world.subscriptions) == ({}, {})
    assert [r["action"] for r in subscribe(path, "changes", "--delete")] == ["absent"] * 3


def test_subscribe_names_an_unknown_subscription_as_a_usage_error(tmp_path: Path, sqs: MotoSqs) -> None:
    path = write(tmp_path, "http://127.0.0.1:9", sqs, "http://127.0.0.1:1/123456789012/q")
    done = run_spd("subscribe", "-c", str(path), "nope")
    assert done.returncode == 2
    assert done.stderr.strip() == "spd: unknown subscription nope; the config has: changes"


# -- the simulator's Notifications API: Amazon's rules, from the model file ------------------------

def model_rules() -> dict[str, Any]:
    if SHARED_MODELS is None:
        pytest.skip("Amazon's model files (../shared/sp-api-models) are not here")
    model = json.loads((SHARED_MODELS / "notifications-api-model" / "notifications.json").read_text())
    defs = model["definitions"]
    enum = next(p["properties"]["eventFilterType"]["enum"] for p in defs["EventFilter"]["allOf"]
                if "eventFilterType" in p.get("properties", {}))
    return {"required": defs["CreateSubscriptionRequest"]["required"], "event_filter_types": enum,
            "arn_pattern": defs["SqsResource"]["properties"]["arn"]["pattern"],
            "grantless": {op["operationId"] for path in model["paths"].values() for op in path.values()
                          if isinstance(op, dict) and "grantless" in op.get("description", "")}}


async def test_the_simulator_enforces_the_models_rules(tmp_path: Path) -> None:
    rules = model_rules()
    assert rules["required"] == ["destinationId", "payloadVersion"]
    assert "createDestination" in rules["grantless"] and "createSubscription" not in rules["grantless"]
    catalog = load_catalog()
    accounts = {}
    async with Simulator(SimSettings(orders=0, live=False)) as sim:
        accounts["sim"] = load_config(write_subscription_config(
            tmp_path, account_yaml("sim", sim.url), [])).accounts["sim"]
        async with SpClient(accounts, catalog, retry=RetryPolicy(max_attempts=1)) as client:
            async def call(op: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
                return (await client.call("sim", catalog.operation("notifications", op), params, body)).body

            async def refused(op: str, params: dict[str, Any] | None = None, body: Any = None) -> int:
                with pytest.raises(ApiError) as err:
                    await call(op, params, body)
                assert err.value.status is not None
                return err.value.status

            arn = "arn:aws:sqs:us-east-1:123456789012:spd"
            assert await refused("createDestination", body={"name": "x", "resourceSpecification":
                                                            {"sqs": {"arn": "not-an-arn"}}}) == 400
            dest = (await call("createDestination", body={"name": "x", "resourceSpecification":
                                                          {"sqs": {"arn": arn}}}))["payload"]
            assert await refused("createDestination", body={"name": "y", "resourceSpecification":
                                                            {"sqs": {"arn": arn}}}) == 409
            params = {"notificationType": "ORDER_CHANGE"}
            assert await refused("createSubscription", params, {"destinationId": dest["destinationId"]}) == 400
            not_filterable = "FEED_PROCESSING_FINISHED"
            assert not_filterable not in rules["event_filter_types"]
            bad = {"destinationId": dest["destinationId"], "payloadVersion": "1.0",
                   "processingDirective": {"eventFilter": {"eventFilterType": not_filterable}}}
            assert await refused("createSubscription", {"notificationType": not_filterable}, bad) == 400
            both = {"destinationId": dest["destinationId"], "payloadVersion": "1.0",
                    "processingDirective": {"eventFilter": {"eventFilterType": "ORDER_CHANGE"},
                                            "filterExpression": "x"}}
            assert await refused("createSubscription", params, both) == 400
            good = {"destinationId": dest["destinationId"], "payloadVersion": "1.0"}
            await call("createSubscription", params, good)
            assert await refused("createSubscription", params, good) == 409
            assert await refused("getSubscription", {"notificationType": "ANY_OFFER_CHANGED"}) == 404
            assert await refused("getDestination", {"destinationId": "nope"}) == 404


# -- push end to end: the simulator publishes, spd emits -------------------------------------------

def test_simulator_pushes_order_changes_that_spd_run_emits_with_the_full_order(
        tmp_path: Path, sim_factory: Any, sqs: MotoSqs) -> None:
    busy = datetime.now(timezone.utc) - timedelta(minutes=10)  # about one order change a second
    sim = sim_factory(orders=600, start=busy, live=True, sqs_endpoint=sqs.url,
                      sqs_keys=(KEYS["access_key_id"], KEYS["secret_access_key"], KEYS["region"]))
    queue = sqs.queue()
    path = write(tmp_path, sim.url, sqs, queue, extra={"fetch": "true", "restricted": ["buyerInfo"]})
    subscribe(path, "changes")
    proc = start_spd("run", "-c", str(path))
    try:
        out = tmp_path / "out" / "changes.jsonl"
        lines = wait_for(lambda: read_jsonl_so_far(out), timeout=60)
    finally:
        assert stop_spd(proc) == 0
    first = lines[0]
    change = first["data"]["OrderChangeNotification"]
    assert first["notification_type"] == "ORDER_CHANGE"
    assert first["order"]["AmazonOrderId"] == change["AmazonOrderId"]
    assert "BuyerInfo" in first["order"]  # fetched through a Restricted Data Token
    assert first["order"]["LastUpdateDate"] >= first["event_time"]

    def announced() -> bool:  # the change is the simulator's (searches see it after its index delay)
        truth = sim.get("/_sim/objects", type="ordersV0.getOrders", field="updated")
        return (change["AmazonOrderId"], first["event_time"]) in {(o["id"], o["version_time"])
                                                                  for o in truth["objects"]}

    wait_for(announced, timeout=60)
    assert sim.get("/_sim/stats")["lwa"]["rdt_issued"] >= 1


def test_demo_push_shows_pushed_notifications_beside_the_pollers() -> None:
    done = run_spd("demo", "--push", "--seconds", "20", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    pushed = [line for line in done.stdout.splitlines() if line.startswith("push:order-changes ")]
    polled = [line for line in done.stdout.splitlines() if line.startswith("orders ")]
    assert pushed and polled, done.stdout[-2000:]
    assert all(" ORDER_CHANGE " in line for line in pushed)
    assert "push:order-changes ORDER_CHANGE from SQS" in done.stderr
    assert "push:order-changes: " in done.stderr.strip().splitlines()[-1]  # counted in the summary
