"""Scheduled jobs: the message they emit, their checks at start, a merged --all-pages result
against the simulator's ground truth, and a real `spd run` emitting a job to a file on schedule."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from spd.catalog.model import load_catalog
from spd.client.http import SpClient
from spd.config.validate import load_config, validate_config
from spd.emitters.base import Emitter
from spd.core.errors import ApiError, ConfigError, DeliveryError
from spd.pipeline.jobs import build_job_message, build_jobs
from spd.pipeline.messages import Message
from support.sim import SimThread
from support.spd import SHARED_MODELS, read_jsonl, read_jsonl_so_far, start_spd, stop_spd, wait_for
from support.static_sandbox import static_cases, write_sandbox_config


class Recorder(Emitter):
    """Keeps what it is sent; fails when told to."""

    def __init__(self, name: str = "rec", fail: bool = False) -> None:
        super().__init__(name)
        self.sent: list[Message] = []
        self.fail = fail

    async def send(self, messages: list[Message]) -> None:
        if self.fail:
            raise DeliveryError("receiver is down")
        self.sent.extend(messages)


def job_config(tmp_path: Path, url: str, job: str) -> Any:
    path = write_sandbox_config(tmp_path, url, "jobs:\n" + job)
    return load_config(path)


def test_job_message_shape() -> None:
    at = datetime(2025, 3, 1, 10, 0, 0, 123000, tzinfo=timezone.utc)
    msg = build_job_message(job="inventory", account="acme", api="fbaInventory",
                            operation="getInventorySummaries", result={"payload": [1]}, emitted_at=at)
    assert orjson.loads(msg.body) == {
        "job": "inventory", "account": "acme", "api": "fbaInventory",
        "operation": "getInventorySummaries", "emitted_at": "2025-03-01T10:00:00.123Z",
        "result": {"payload": [1]}}
    assert list(orjson.loads(msg.body)) == ["job", "account", "api", "operation", "emitted_at", "result"]
    assert (msg.key, msg.poller, msg.account, msg.object_type) == (
        "inventory", "inventory", "acme", "fbaInventory.getInventorySummaries")


@pytest.mark.parametrize("job, message", [
    ("  j: {api: sellers, operation: getMarketplaceParticipationz, emitters: [archive]}\n",
     "jobs.j: unknown operation 'getMarketplaceParticipationz' of API sellers; did you mean "
     "getMarketplaceParticipations? (see `spd ops sellers`)"),
    ("  j: {api: reports_2021-06-30, operation: getReport, emitters: [archive]}\n",
     "jobs.j: reports_2021-06-30.getReport: missing required parameter reportId (path); "
     "see `spd ops reports_2021-06-30 getReport`"),
    ("  j: {api: reports_2021-06-30, operation: getReport, params: {reportId: x}, all_pages: true, "
     "emitters: [archive]}\n",
     "jobs.j: reports_2021-06-30.getReport does not page; remove all_pages"),
    ("  j: {api: ordersV0, operation: getOrders, params: {MarketplaceIds: [A], MaxResultsPerPage: many}, "
     "emitters: [archive]}\n",
     "jobs.j: ordersV0.getOrders: parameter MaxResultsPerPage must be an integer, not 'many'"),
])
def test_jobs_are_checked_against_the_catalog_by_the_validation_pass(tmp_path: Path, job: str,
                                                                    message: str) -> None:
    path = write_sandbox_config(tmp_path, "http://127.0.0.1:9", "jobs:\n" + job)
    line = path.read_text().splitlines().index(job.rstrip("\n")) + 1
    problems = validate_config(path).errors
    assert [p.format(str(path)) for p in problems] == [
        f"{path}: " + message.replace("jobs.j: ", f"jobs.j (line {line}): ", 1)]
    with pytest.raises(ConfigError) as err:  # what `spd run` and `spd once` meet first
        load_config(path)
    assert str(err.value) == problems[0].format(str(path))


async def test_typed_yaml_params_and_all_pages(sim_factory: Any, tmp_path: Path) -> None:
    end = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    start = end - timedelta(days=1)
    sim = sim_factory(orders=300, start=start - timedelta(days=1), end=end, rate_limit=False)
    iso = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    config = job_config(tmp_path, sim.url, (
        "  orders:\n    api: ordersV0\n    operation: getOrders\n    all_pages: true\n"
        f"    params: {{MarketplaceIds: [ATVPDKIKX0DER], CreatedAfter: '{iso(start)}', "
        f"CreatedBefore: '{iso(end)}', MaxResultsPerPage: 20}}\n    emitters: [archive]\n"))
    recorder = Recorder()
    async with SpClient(config.accounts, load_catalog()) as client:
        jobs = build_jobs(config, load_catalog(), client, {"archive": recorder})
        await jobs["orders"].run()
    [msg] = recorder.sent
    body = orjson.loads(msg.body)
    truth = sim.get("/_sim/objects", type="ordersV0.getOrders", field="created", after=iso(start), before=iso(end))
    assert {o["AmazonOrderId"] for o in body["result"]["payload"]["Orders"]} == {o["id"] for o in truth["objects"]}
    assert len(body["result"]["payload"]["Orders"]) == truth["count"] > 40
    assert (body["job"], body["account"], body["api"], body["operation"]) == ("orders", "sandbox", "ordersV0", "getOrders")


@pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")
async def test_failures_emit_nothing(sandbox: SimThread, tmp_path: Path) -> None:
    config = job_config(tmp_path, sandbox.url, (
        "  bad: {api: reports_2021-06-30, operation: getReport, params: {reportId: nope}, emitters: [archive]}\n"
        "  down: {api: sellers, operation: getMarketplaceParticipations, emitters: [archive]}\n"))
    ok, broken = Recorder(), Recorder(fail=True)
    async with SpClient(config.accounts, load_catalog()) as client:
        jobs = build_jobs(config, load_catalog(), client, {"archive": ok})
        with pytest.raises(ApiError) as err:
            await jobs["bad"].run()
        assert err.value.status == 400 and ok.sent == []
        jobs["down"].emitters = [ok, broken]
        with pytest.raises(DeliveryError, match="^job down: result not delivered: receiver is down$"):
            await jobs["down"].run()


@pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")
def test_spd_run_emits_a_job_to_a_file_on_schedule(sandbox: SimThread, tmp_path: Path) -> None:
    expected = next(c["response"] for api, m, p, s, i, c in static_cases()
                    if (api, m, s) == ("sellers", "GET", 200) and p.endswith("marketplaceParticipations"))
    config = write_sandbox_config(tmp_path, sandbox.url, (
        "jobs:\n  participations:\n    api: sellers\n    operation: getMarketplaceParticipations\n"
        "    interval: 1s\n    emitters: [archive]\n"))
    out = tmp_path / "out" / "participations.jsonl"
    proc = start_spd("run", "-c", str(config))
    try:
        messages = wait_for(lambda: (lambda m: m if len(m) >= 3 else None)(read_jsonl_so_far(out)), timeout=30)
    finally:
        code = stop_spd(proc, signal.SIGTERM)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 0, stderr
    for msg in messages:
        assert set(msg) == {"job", "account", "api", "operation", "emitted_at", "result"}
        assert (msg["job"], msg["account"], msg["api"], msg["operation"]) == (
            "participations", "sandbox", "sellers", "getMarketplaceParticipations")
        assert msg["result"] == expected
    stamps = [datetime.fromisoformat(m["emitted_at"].replace("Z", "+00:00")) for m in messages]
    # on its interval, not in a burst; the second and third, since the first run's request also
    # fetched the access token and opened the connection (its stamp comes later by as much)
    assert stamps[2] - stamps[1] >= timedelta(milliseconds=800)
    assert "job_failed" not in stderr and "job_crashed" not in stderr


@pytest.mark.skipif(SHARED_MODELS is None, reason="Amazon's models are not available")
def test_sighup_with_a_bad_job_keeps_the_old_config(sandbox: SimThread, tmp_path: Path) -> None:
    job = ("jobs:\n  participations:\n    api: sellers\n    operation: getMarketplaceParticipations\n"
           "    interval: 1s\n    emitters: [archive]\n")
    config = write_sandbox_config(tmp_path, sandbox.url, job)
    out = tmp_path / "out"
    proc = start_spd("run", "-c", str(config))
    try:
        wait_for(lambda: len(read_jsonl_so_far(out / "participations.jsonl")) >= 1)
        write_sandbox_config(tmp_path, sandbox.url, job + (
            "  broken: {api: sellers, operation: getNothing, interval: 1s, emitters: [archive]}\n"))
        proc.send_signal(signal.SIGHUP)
        seen = len(read_jsonl(out / "participations.jsonl"))
        wait_for(lambda: len(read_jsonl_so_far(out / "participations.jsonl")) >= seen + 2)  # still running
        write_sandbox_config(tmp_path, sandbox.url, job + (
            "  account:\n    api: sellers\n    operation: getAccount\n    interval: 1s\n"
            "    emitters: [archive]\n"))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: read_jsonl_so_far(out / "account.jsonl"))
    finally:
        code = stop_spd(proc, signal.SIGTERM)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 0, stderr
    assert "reload_failed" in stderr and "jobs.broken (line " in stderr
    assert "unknown operation 'getNothing'" in stderr
    assert read_jsonl(out / "account.jsonl")[0]["operation"] == "getAccount"
