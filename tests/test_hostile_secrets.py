"""Secrets a server echoes back, and failures spd did not anticipate (issue 10, items 5, 6 and 9):
the same redaction as the logs runs on the state, `spd status`, `spd once`, `spd exec` and
dead letters; an unexpected error is recorded on its poller as one line."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import orjson
import pytest
import structlog
from aiohttp import web
from structlog.testing import capture_logs

from support.hostile import (ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN, Harness, Hostile,
                     write_hostile_config)
from spd.config.validate import load_config
from spd.app.daemon import Daemon
from spd.emitters.registry import build_emitter
from spd.core.redaction import REDACTED
from spd.pipeline.messages import build_messages
from spd.config.secrets import register_config_secrets
from support.recording import RecordingEmitter
from support.spd import run_spd


def last_error_in_db(tmp_path: Path) -> str:
    with sqlite3.connect(tmp_path / "state.db") as db:
        return db.execute("SELECT last_error FROM pollers WHERE poller = 'p'").fetchone()[0]


# -- 5. what a server echoed back is redacted wherever spd writes or prints it ------------------


def test_a_refresh_token_echoed_by_lwa_is_never_stored_or_printed(tmp_path, hostile_thread) -> None:
    hostile_thread.set("lwa_echo")
    config = write_hostile_config(tmp_path, hostile_thread.url)
    once = run_spd("once", "-c", str(config))
    status = run_spd("status", "-c", str(config))
    status_json = run_spd("status", "-c", str(config), "--json")
    stored = last_error_in_db(tmp_path)
    assert once.returncode == 1 and "LWA refused the token request" in once.stderr
    assert "bad refresh_token" in stored and REDACTED in stored
    for text in (once.stdout, once.stderr, status.stdout, status_json.stdout, stored):
        assert REFRESH_TOKEN not in text and CLIENT_SECRET not in text


def test_an_access_token_echoed_by_sp_api_is_never_stored_or_printed(tmp_path, hostile_thread) -> None:
    hostile_thread.set("echo_access_token")
    config = write_hostile_config(tmp_path, hostile_thread.url)
    once = run_spd("once", "-c", str(config))
    exec_ = run_spd("exec", "ordersV0", "getOrders", "-p", "MarketplaceIds=ATVPDKIKX0DER",
                    "-p", "CreatedAfter=2025-01-01T00:00:00Z", "-c", str(config))
    assert once.returncode == 1 and exec_.returncode == 1
    error = json.loads(exec_.stderr.strip().splitlines()[-1])  # Amazon's error JSON, redacted
    assert error["errors"][0]["message"] == f"token {REDACTED} is not valid here"
    for text in (once.stderr, exec_.stderr, last_error_in_db(tmp_path),
                 run_spd("status", "-c", str(config)).stdout):
        assert ACCESS_TOKEN not in text and "Atza|" not in text


async def test_a_webhook_answer_that_repeats_its_headers_is_redacted_in_the_dead_letter(tmp_path) -> None:
    async def echo(request: web.Request) -> web.Response:  # a receiver that quotes its input
        return web.Response(status=400, text=f"rejected: {dict(request.headers)}")

    app = web.Application()
    app.router.add_post("/hook", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    authorization, api_key = "Bearer hook-bearer-token-0123456789", "hook-api-key-9876543210"
    emitters = {"hook": f"{{type: webhook, url: '{url}', dead_letter: '{tmp_path}/dead.jsonl', "
                        f"headers: {{Authorization: '{authorization}', X-Api-Key: '{api_key}'}}}}"}
    config = load_config(write_hostile_config(tmp_path, "http://127.0.0.1:9", emitters=emitters))
    register_config_secrets(config)  # as every runtime does when it starts
    hook = build_emitter("hook", config.emitters["hook"])
    try:
        await hook.start()
        messages = build_messages(poller="p", account="acme", object_type="t", emit="individually",
                                  window=(config.pollers["p"].start_time, None), page=1,
                                  objects=[("id-1", None, {"x": 1})])
        await hook.send(messages)
    finally:
        await hook.close()
        await runner.cleanup()
    record = orjson.loads((tmp_path / "dead.jsonl").read_bytes())
    assert record["status"] == 400 and "rejected:" in record["error"]
    assert authorization not in record["error"] and "hook-bearer-token" not in record["error"]
    assert api_key not in record["error"] and REDACTED in record["error"]


# -- 6. errors spd did not anticipate: recorded on the poller, one line ------------------------


class CrashingEmitter(RecordingEmitter):
    async def send(self, messages) -> None:
        raise RuntimeError("emitter bug: tuple index out of range")


async def test_an_unexpected_error_is_recorded_on_its_poller_as_one_line(tmp_path) -> None:
    async with Hostile() as hostile:
        async with Harness(tmp_path, hostile.url, CrashingEmitter("archive")) as h:
            with pytest.raises(RuntimeError):
                await h.run()
            state = (await h.state())
            assert state.last_error == "internal error: RuntimeError: emitter bug: tuple index out of range"
            assert state.last_run_at is not None
            assert h.runtime.pollers["p"].failure == state.last_error  # /metrics' failing gauge


async def test_the_daemon_logs_a_crash_as_one_line_and_the_traceback_at_debug(tmp_path) -> None:
    daemon = Daemon(tmp_path / "spd.yaml", install_signals=False)
    structlog.reset_defaults()  # a daemon started earlier in this process set level info: no debug
    with capture_logs() as logs:
        async with daemon.tracked("poll", "p", poller="p"):
            raise KeyError("bug")
    crashed = [e for e in logs if e["event"] == "poll_crashed"]
    assert crashed == [{"event": "poll_crashed", "error": "internal error: KeyError: 'bug'",
                        "poller": "p", "log_level": "error"}]
    traceback = [e for e in logs if e["event"] == "poll_traceback"]
    assert traceback[0]["log_level"] == "debug" and isinstance(traceback[0]["exc_info"], KeyError)


def test_a_webhook_with_credentials_twice_fails_validate_not_every_run(tmp_path) -> None:
    emitters = {"hook": "{type: webhook, url: 'https://user:pw@example.com/spd', "
                        "headers: {Authorization: 'Bearer abcdefghij'}}"}
    config = write_hostile_config(tmp_path, "http://127.0.0.1:9", emitters=emitters)
    result = run_spd("validate", "-c", str(config))
    assert result.returncode == 78
    assert result.stderr.strip() == (
        f"spd: {config}: emitters.hook.url (line 9): has user:password@ and headers has "
        "Authorization; HTTP sends only one: remove one of them")


# -- 9. objects without an id or a timestamp are not emitted silently ---------------------------


async def test_objects_without_id_or_timestamp_are_logged_once_per_page(tmp_path) -> None:
    recorder = RecordingEmitter("archive")
    async with Hostile(mode="no_id") as hostile:
        async with Harness(tmp_path, hostile.url, recorder) as h:
            with capture_logs() as logs:
                await h.run()
    events = [e for e in logs if e["event"] == "objects_without_id_or_time"]
    assert events and events[0]["log_level"] == "warning"
    assert events[0]["fallbacks"] == {"id: content hash (no AmazonOrderId)": 1,
                                      "cursor: null (no LastUpdateDate)": 1}
    assert recorder.messages[0]["id"].startswith("sha256:") and recorder.messages[0]["cursor"] is None
