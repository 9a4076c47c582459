"""`spd check`: a config tried online against real peers on loopback: the simulator (LWA and
sellers getMarketplaceParticipations, from Amazon's sandbox examples), a real aiohttp webhook
receiver and tansu for Kafka."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.kafka_broker import TansuBroker, free_port
from support.sim import SimThread
from support.spd import SHARED_MODELS, run_spd, spd_env
from support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")

SECRET = "check-secret"


@pytest.fixture
def sandbox() -> Iterator[SimThread]:
    sim = SimThread(sandbox_models=SHARED_MODELS, orders=0, purchase_orders=0,
                    revoked_refresh_tokens=frozenset({"revoked-token"})).start()
    yield sim
    sim.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver(SECRET).start()
    yield hook
    hook.stop()


def account(name: str, url: str, refresh_token: str) -> str:
    return (f"  {name}:\n    endpoint: {url}\n    marketplace_ids: [ATVPDKIKX0DER]\n"
            f"    lwa: {{client_id: c, client_secret: s, refresh_token: {refresh_token}, "
            f"token_url: {url}/auth/o2/token}}\n")


def write(tmp_path: Path, accounts: str, emitters: str) -> Path:
    path = tmp_path / "spd.yaml"
    path.write_text(f"state: {{path: {tmp_path / 'state.db'}}}\nlog: {{level: warning, format: json}}\n"
                    f"accounts:\n{accounts}emitters:\n{emitters}")
    return path


def check(config: Path) -> tuple[int, list[dict[str, str]]]:
    result = run_spd("check", "-c", str(config), "--json", env=spd_env(), timeout=120)
    assert "Traceback" not in result.stderr
    return result.returncode, json.loads(result.stdout)


def test_check_reaches_every_account_and_emitter(tmp_path: Path, sandbox: SimThread,
                                                 receiver: WebhookReceiver, broker: TansuBroker) -> None:
    dead = free_port()
    config = write(
        tmp_path, account("good", sandbox.url, "Atzr|good") + account("revoked", sandbox.url, "revoked-token"),
        f"  hook: {{type: webhook, url: '{receiver.url}', secret: {SECRET}}}\n"
        f"  down: {{type: webhook, url: 'http://127.0.0.1:{dead}/hook'}}\n"
        f"  bus: {{type: kafka, bootstrap_servers: [{broker.bootstrap}], topic: spd}}\n"
        f"  gone: {{type: kafka, bootstrap_servers: ['127.0.0.1:{dead}'], topic: spd, request_timeout: 3s}}\n"
        "  out: {type: stdout}\n")
    code, rows = check(config)
    assert code == 1
    found = {(r["target"], r["check"]): (r["result"], r["detail"]) for r in rows}
    assert list(found) == [
        ("account good", "LWA token exchange"), ("account good", "sellers.getMarketplaceParticipations"),
        ("account revoked", "LWA token exchange"), ("account revoked", "sellers.getMarketplaceParticipations"),
        ("emitter hook", "webhook probe"), ("emitter down", "webhook probe"),
        ("emitter bus", "kafka probe"), ("emitter gone", "kafka probe"), ("emitter out", "stdout probe")]
    result = {key: value[0] for key, value in found.items()}
    assert result == {
        ("account good", "LWA token exchange"): "ok",
        ("account good", "sellers.getMarketplaceParticipations"): "ok",
        ("account revoked", "LWA token exchange"): "failed",
        ("account revoked", "sellers.getMarketplaceParticipations"): "skipped",
        ("emitter hook", "webhook probe"): "ok", ("emitter down", "webhook probe"): "failed",
        ("emitter bus", "kafka probe"): "ok", ("emitter gone", "kafka probe"): "failed",
        ("emitter out", "stdout probe"): "skipped"}
    assert "invalid_grant" in found[("account revoked", "LWA token exchange")][1]
    assert "marketplace participation" in found[("account good", "sellers.getMarketplaceParticipations")][1]
    assert found[("emitter hook", "webhook probe")][1].startswith("HTTP 200 in ")
    assert "broker" in found[("emitter bus", "kafka probe")][1]
    assert f"127.0.0.1:{dead}" in found[("emitter gone", "kafka probe")][1]
    # the test delivery: one signed POST marked as a test, nothing else
    [delivery] = receiver.received()
    assert delivery.status == 200 and receiver.bad_signatures == 0
    assert delivery.headers["X-SPD-Test"] == "1" and delivery.doc["test"] is True
    assert delivery.doc["emitter"] == "hook"
    assert not (tmp_path / "state.db").exists()  # nothing polled, no state made


def test_check_passes_when_everything_answers(tmp_path: Path, sandbox: SimThread,
                                             receiver: WebhookReceiver) -> None:
    config = write(tmp_path, account("good", sandbox.url, "Atzr|good"),
                   f"  hook: {{type: webhook, url: '{receiver.url}', secret: {SECRET}}}\n")
    code, rows = check(config)
    assert code == 0, rows
    assert [r["result"] for r in rows] == ["ok", "ok", "ok"]


def test_check_refuses_a_config_with_problems_before_going_online(tmp_path: Path,
                                                                   receiver: WebhookReceiver) -> None:
    config = write(tmp_path, account("good", "http://127.0.0.1:9", "Atzr|good"),
                   f"  hook: {{type: webhook, url: '{receiver.url}', concurrency: 0}}\n")
    result = run_spd("check", "-c", str(config), env=spd_env())
    assert result.returncode == 78
    assert result.stderr.startswith(f"spd: {config}: emitters.hook.concurrency (line 9): 0 is too small")
    assert receiver.received() == []


def test_an_unreachable_token_endpoint_does_not_promise_a_retry(tmp_path: Path) -> None:
    # `spd check` tries each account once and exits: a detail ending "will retry" (the wording of the
    # client's retry loop) told the user something that never happens; `spd once`/`exec` print the
    # same error after their last attempt.
    url = f"http://127.0.0.1:{free_port()}"
    code, rows = check(write(tmp_path, account("gone", url, "Atzr|x"), "  out: {type: stdout}\n"))
    assert code == 1
    token = next(r for r in rows if r["check"] == "LWA token exchange")
    assert token["result"] == "failed"
    assert token["detail"].startswith(f"account gone: LWA token endpoint {url}/auth/o2/token unreachable")
    assert "retry" not in token["detail"]


def test_check_passes_against_the_default_simulator(tmp_path: Path) -> None:
    # `spd check` against `spd sim` (not --sandbox) failed: the simulator had no
    # getMarketplaceParticipations, the one SP-API call check makes. Its answer follows Amazon's model.
    import jsonschema

    sim = SimThread(orders=0, purchase_orders=0, marketplaces=("ATVPDKIKX0DER", "A2EUQ1WTGCTBG2")).start()
    try:
        config = write(tmp_path, account("sim", sim.url, "Atzr|x"), "  out: {type: stdout}\n")
        code, rows = check(config)
        answer = run_spd("exec", "sellers", "getMarketplaceParticipations", "-c", str(config), env=spd_env())
    finally:
        sim.stop()
    assert code == 0, rows
    assert [(r["check"], r["result"]) for r in rows[:2]] == [
        ("LWA token exchange", "ok"), ("sellers.getMarketplaceParticipations", "ok")]
    assert answer.returncode == 0, answer.stderr
    model = json.loads((SHARED_MODELS / "sellers-api-model" / "sellers.json").read_text())
    schema = {"$ref": "#/definitions/GetMarketplaceParticipationsResponse", "definitions": model["definitions"]}
    body = json.loads(answer.stdout)
    jsonschema.validate(body, schema)
    assert [p["marketplace"]["countryCode"] for p in body["payload"]] == ["US", "CA"]
