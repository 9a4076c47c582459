"""An endpoint that cannot be reached: one-shot commands give up within a few attempts and say so
in one plain line; a live server that fails or is slow still gets the patient retries.

Real `spd exec` / `spd request` subprocesses against a closed loopback port (and the simulator's
LWA) and a port whose handshakes never complete, and SpClient against a closed port, a port whose handshakes never complete (a connect
timeout, on the SP-API and the LWA side), a real aiohttp server answering 503 and one that never
answers. Attempts are counted from the retry log lines, the client's counters and the server's
own count: no clock is read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from spd.catalog.model import load_catalog
from spd.client import auth
from spd.client.http import SpClient
from spd.client.policy import DAEMON, ONE_SHOT, RetryPolicy
from spd.config.validate import load_config
from spd.core.errors import ApiError, AuthError
from support.sim import SimThread
from support.spd import run_spd
from support.unreachable import blackholed_port, closed_port, config_to

PROBE = "sellers.getMarketplaceParticipations"


def retries_and_line(stderr: str) -> tuple[list[dict[str, Any]], str]:
    """The retry log events (JSON lines: stderr is not a terminal) and the last line."""
    *logs, last = stderr.splitlines()
    return [json.loads(line) for line in logs], last


def assert_gave_up_after(stderr: str, attempts: int, reason: str) -> str:
    events, last = retries_and_line(stderr)
    assert [(e["event"], e["attempt"]) for e in events] == [
        ("request_retry", n) for n in range(1, attempts)]
    assert all(reason in e["reason"] for e in events), events
    assert not last.startswith("{") and '"errors"' not in stderr  # no error document of Amazon's
    return last


@pytest.mark.parametrize("command", [
    ["exec", "sellers", "getMarketplaceParticipations"],
    ["request", "GET", "/sellers/v1/marketplaceParticipations"],
], ids=["exec", "request"])
def test_a_refused_endpoint_is_one_plain_line_after_three_attempts(
        exec_sim: SimThread, tmp_path: Path, command: list[str]) -> None:
    port = closed_port()
    config = config_to(tmp_path, f"http://127.0.0.1:{port}", f"{exec_sim.url}/auth/o2/token")
    result = run_spd(*command, "-c", str(config))
    refused = f"cannot connect to 127.0.0.1:{port}: connection refused"
    assert (result.returncode, result.stdout) == (1, ""), result
    last = assert_gave_up_after(result.stderr, ONE_SHOT.connect_attempts or 0, refused)
    assert ONE_SHOT.connect_attempts == 3
    assert last == f"spd: {PROBE}: request failed after 3 attempts: {refused}"


def test_a_refused_lwa_endpoint_is_one_plain_line_after_three_attempts(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    result = run_spd("exec", "sellers", "getMarketplaceParticipations",
                     "-c", str(config_to(tmp_path, dead, f"{dead}/auth/o2/token")))
    assert (result.returncode, result.stdout) == (1, ""), result
    last = assert_gave_up_after(result.stderr, 3, "connection refused")
    assert last == (f"spd: account acme: LWA token endpoint {dead}/auth/o2/token unreachable "
                    f"(cannot connect to {dead.removeprefix('http://')}: connection refused)")


def test_an_unresolvable_host_is_one_plain_line_after_three_attempts(exec_sim: SimThread,
                                                                     tmp_path: Path) -> None:
    host = "no-such-host.invalid"  # .invalid never resolves (RFC 6761)
    config = config_to(tmp_path, f"http://{host}", f"{exec_sim.url}/auth/o2/token")
    result = run_spd("exec", "sellers", "getMarketplaceParticipations", "-c", str(config))
    assert (result.returncode, result.stdout) == (1, ""), result
    last = assert_gave_up_after(result.stderr, 3, f"cannot resolve {host}: ")
    assert last.startswith(f"spd: {PROBE}: request failed after 3 attempts: cannot resolve {host}: ")


# --- the policy, on the client ---------------------------------------------------------------

FAST = 0.001  # backoff base: the count of attempts is what is tested, not the waits


def fast(policy: RetryPolicy) -> RetryPolicy:
    return replace(policy, backoff_base=FAST, backoff_cap=FAST)


async def attempts_until_failure(endpoint: str, token_url: str, policy: RetryPolicy,
                                 tmp_path: Path, timeout: float = 60.0,
                                 connect_timeout: float = 15.0) -> tuple[int, str]:
    """(attempts SpClient made, its error) for one probe call."""
    config = load_config(config_to(tmp_path, endpoint, token_url))
    async with SpClient(config.accounts, load_catalog(), timeout=timeout,
                        connect_timeout=connect_timeout, retry=policy) as client:
        with pytest.raises((ApiError, AuthError)) as info:
            await client.call("acme", load_catalog().operation(*PROBE.split(".")))
        stats = client.bucket_stats()["acme"][PROBE]
    assert stats["retries"] == stats["errors"] - 1
    return stats["errors"], str(info.value)


async def test_one_shot_gives_up_on_a_refused_port_the_daemon_does_not(exec_sim: SimThread,
                                                                      tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    lwa = f"{exec_sim.url}/auth/o2/token"
    one_shot, _ = await attempts_until_failure(dead, lwa, fast(ONE_SHOT), tmp_path)
    daemon, message = await attempts_until_failure(dead, lwa, fast(DAEMON), tmp_path)
    assert (one_shot, daemon) == (3, DAEMON.max_attempts) == (3, 8)
    assert message.endswith("request failed after 8 attempts: "
                            f"cannot connect to {dead.removeprefix('http://')}: connection refused")


@pytest.fixture
async def live(exec_sim: SimThread) -> AsyncIterator[dict[str, Any]]:
    """A real server on loopback: 503 on /sellers/..., or (`silent`) holding the request."""
    seen = {"requests": 0, "silent": False, "url": ""}

    async def answer(request: web.Request) -> web.StreamResponse:
        seen["requests"] += 1
        if seen["silent"]:
            await asyncio.sleep(3600)  # cancelled when the client gives up and the server stops
        return web.json_response({"errors": [{"code": "ServiceUnavailable", "message": "m"}]},
                                 status=503)

    app = web.Application()
    app.router.add_get("/sellers/v1/marketplaceParticipations", answer)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    seen["url"] = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield seen
    await runner.cleanup()


async def test_one_shot_keeps_patient_retries_for_a_live_server_answering_503(
        exec_sim: SimThread, live: dict[str, Any], tmp_path: Path) -> None:
    attempts, message = await attempts_until_failure(live["url"], f"{exec_sim.url}/auth/o2/token",
                                                     fast(ONE_SHOT), tmp_path)
    assert attempts == live["requests"] == ONE_SHOT.max_attempts == 8
    assert "HTTP 503 ServiceUnavailable" in message and "(gave up after 8 attempts)" in message


async def test_one_shot_keeps_patient_retries_for_timeouts(exec_sim: SimThread, live: dict[str, Any],
                                                           tmp_path: Path) -> None:
    live["silent"] = True
    attempts, message = await attempts_until_failure(live["url"], f"{exec_sim.url}/auth/o2/token",
                                                     fast(ONE_SHOT), tmp_path, timeout=0.2)
    assert attempts == live["requests"] == 8
    assert message.endswith("no answer within the timeout")


# --- a connect that times out (SYNs dropped): unreachable too ----------------------------------
# At client level with a short connect timeout; and once through a real `spd exec`, which waits
# out ONE_SHOT's 3 connect timeouts of 5 s (the daemon's 15 s would make it 45 s).

def test_a_firewalled_endpoint_is_one_plain_line_after_three_short_connects(
        exec_sim: SimThread, tmp_path: Path) -> None:
    with blackholed_port() as port:
        config = config_to(tmp_path, f"http://127.0.0.1:{port}", f"{exec_sim.url}/auth/o2/token")
        result = run_spd("exec", "sellers", "getMarketplaceParticipations", "-c", str(config))
    timed_out = f"cannot connect to 127.0.0.1:{port}: connection timed out"
    assert (result.returncode, result.stdout) == (1, ""), result
    last = assert_gave_up_after(result.stderr, 3, timed_out)
    assert last == f"spd: {PROBE}: request failed after 3 attempts: {timed_out}"


def test_one_shot_connects_are_cut_sooner_than_the_daemons_on_both_endpoints() -> None:
    seen = {}
    for name, policy in (("one-shot", ONE_SHOT), ("daemon", DAEMON)):
        client = SpClient({}, None, retry=policy)
        seen[name] = (client._timeout.sock_connect, client.auth._timeout().sock_connect)
    assert seen == {"one-shot": (5.0, 5.0), "daemon": (15.0, auth.LWA_TIMEOUT.sock_connect)}
    assert auth.LWA_TIMEOUT.sock_connect == 10  # the daemon's LWA connect is its own, shorter one
    given = SpClient({}, None, retry=ONE_SHOT, connect_timeout=0.2)  # an explicit one wins
    assert (given._timeout.sock_connect, given.auth._timeout().sock_connect) == (0.2, 0.2)


CONNECT = 0.2  # sock_connect of these clients; the total stays long, so the connect is what times out


@pytest.mark.parametrize(("policy", "attempts"), [(ONE_SHOT, 3), (DAEMON, 8)], ids=["one-shot", "daemon"])
async def test_a_connect_timeout_is_unreachable(exec_sim: SimThread, tmp_path: Path,
                                                policy: RetryPolicy, attempts: int) -> None:
    assert policy.attempts(unreachable=True) == attempts
    with blackholed_port() as port:
        made, message = await attempts_until_failure(
            f"http://127.0.0.1:{port}", f"{exec_sim.url}/auth/o2/token", fast(policy), tmp_path,
            connect_timeout=CONNECT)
    assert made == attempts
    assert message == (f"{PROBE}: request failed after {attempts} attempts: "
                       f"cannot connect to 127.0.0.1:{port}: connection timed out")


@pytest.mark.parametrize(("policy", "attempts"), [(ONE_SHOT, 3), (DAEMON, 8)], ids=["one-shot", "daemon"])
async def test_an_lwa_connect_timeout_is_unreachable(exec_sim: SimThread, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     policy: RetryPolicy, attempts: int) -> None:
    monkeypatch.setattr(auth, "LWA_TIMEOUT", aiohttp.ClientTimeout(total=30, sock_connect=CONNECT))
    before = exec_sim.requests(PROBE)
    with blackholed_port() as port:
        token_url = f"http://127.0.0.1:{port}/auth/o2/token"
        made, message = await attempts_until_failure(exec_sim.url, token_url, fast(policy), tmp_path)
    assert made == attempts
    assert message == (f"account acme: LWA token endpoint {token_url} unreachable "
                       f"(cannot connect to 127.0.0.1:{port}: connection timed out)")
    assert exec_sim.requests(PROBE) == before  # no token, so nothing was sent to the SP-API
