"""Many accounts in one client and one daemon: tokens, credentials and buckets per account; a
revoked refresh token or refused AWS keys stop only their own account; LWA one-liners."""

from __future__ import annotations

import json
import signal
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from support.aws_peer import ROLE_ARN, MotoSts, account_yaml, write_accounts_config
from spd.catalog.model import load_catalog
from spd.client.http import SpClient
from spd.client.policy import RetryPolicy
from spd.client.gate import FailureGate
from spd.config.validate import load_config
from spd.core.errors import AuthError
from spd.sim import SimSettings, Simulator
from support.spd import read_jsonl, read_jsonl_so_far, run_spd, start_spd, stop_spd, wait_for

MARKETPLACE = "ATVPDKIKX0DER"
NOTIFICATIONS = "sellingpartnerapi::notifications"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def moto():
    peer = MotoSts().start()
    yield peer
    peer.stop()


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def params() -> dict:
    return {"MarketplaceIds": [MARKETPLACE],
            "CreatedAfter": datetime.now(timezone.utc) - timedelta(days=2)}


def dead_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def poller(account: str, start: datetime) -> dict[str, str]:
    return {"account": account, "object": "ordersV0.getOrders", "timestamp_field": "updated",
            "interval": "1s", "start_time": iso(start)}


def aws(moto: MotoSts, keys: tuple[str, str]) -> dict[str, str]:
    return {"access_key_id": keys[0], "secret_access_key": keys[1], "role_arn": ROLE_ARN,
            "sts_endpoint": moto.url}


def states(tmp_path: Path) -> dict[str, dict[str, Any]]:
    rows = json.loads(run_spd("status", "-c", str(tmp_path / "spd.yaml"), "--json").stdout)
    return {row["poller"]: row for row in rows}


# --- one client, several accounts -----------------------------------------------------------


async def test_tokens_and_buckets_are_per_account(catalog, tmp_path):
    async with Simulator(SimSettings(orders=50, purchase_orders=0, live=False)) as sim:
        cfg = load_config(write_accounts_config(
            tmp_path, [account_yaml("a", sim.url, refresh_token="rt-a"),
                       account_yaml("b", sim.url, refresh_token="rt-b")],
            {"orders": {"account": "a", "object": "ordersV0.getOrders"}}))
        op = catalog.operation("ordersV0", "getOrders")
        async with SpClient(dict(cfg.accounts), catalog) as c:
            for name in ("a", "b", "a"):
                assert (await c.call(name, op, params())).status == 200
            stats = c.bucket_stats()
            assert stats["a"]["ordersV0.getOrders"]["requests"] == 2
            assert stats["b"]["ordersV0.getOrders"]["requests"] == 1
            assert c.auth.refreshes == 2
            assert {k[0] for k in c.auth._cache} == {"a", "b"}
    assert sim.state.auth.issued == 2


async def test_revoked_account_fails_fast_while_the_other_keeps_working(catalog, tmp_path):
    settings = SimSettings(orders=50, purchase_orders=0, live=False,
                           revoked_refresh_tokens=frozenset({"rt-revoked"}))
    async with Simulator(settings) as sim:
        cfg = load_config(write_accounts_config(
            tmp_path, [account_yaml("good", sim.url), account_yaml("gone", sim.url,
                                                                   refresh_token="rt-revoked")],
            {"orders": {"account": "good", "object": "ordersV0.getOrders"}}))
        op = catalog.operation("ordersV0", "getOrders")
        now = [0.0]
        async with SpClient(dict(cfg.accounts), catalog) as c:
            c.auth.gate = FailureGate(clock=lambda: now[0], base=30)
            with pytest.raises(AuthError, match=r"^account gone: .*\(invalid_grant\)$"):
                await c.call("gone", op, params())
            for _ in range(3):
                with pytest.raises(AuthError, match=r"\(invalid_grant\); next attempt in 30s$"):
                    await c.call("gone", op, params())
                assert (await c.call("good", op, params())).status == 200
            assert sim.state.auth.refused == 1  # LWA was not asked again
            now[0] = 31  # the backoff passed: asked again, refused again, the next wait doubles
            with pytest.raises(AuthError, match=r"\(invalid_grant\)$"):
                await c.call("gone", op, params())
            with pytest.raises(AuthError, match=r"next attempt in 60s$"):
                await c.call("gone", op, params())
            assert sim.state.auth.refused == 2


# --- LWA one-liners against the simulator's token endpoint ------------------------------------


@pytest.mark.parametrize(("case", "expected"), [
    ("invalid_client", "account acme: LWA rejected the client id/secret (invalid_client)"),
    ("invalid_grant", "account acme: LWA rejected the refresh token: refresh token revoked or "
                      "issued for another application (invalid_grant)"),
])
async def test_lwa_refusals_are_one_line(catalog, tmp_path, case, expected):
    settings = SimSettings(orders=10, purchase_orders=0, live=False,
                           clients={"test-client": "test-secret-value"},
                           revoked_refresh_tokens=frozenset({"rt-revoked"}))
    async with Simulator(settings) as sim:
        account = (account_yaml("acme", sim.url, client_secret="wrong-secret")
                   if case == "invalid_client"
                   else account_yaml("acme", sim.url, refresh_token="rt-revoked"))
        cfg = load_config(write_accounts_config(tmp_path, [account], {}))
        async with SpClient(dict(cfg.accounts), catalog) as c:
            with pytest.raises(AuthError) as info:
                await c.call("acme", catalog.operation("ordersV0", "getOrders"), params())
    assert str(info.value) == expected
    assert "wrong-secret" not in str(info.value) and "rt-revoked" not in str(info.value)


async def test_unreachable_token_url_is_a_retriable_one_liner(catalog, tmp_path):
    token_url = dead_url() + "/auth/o2/token"
    cfg = load_config(write_accounts_config(
        tmp_path, [account_yaml("acme", dead_url(), token_url=token_url)], {}))
    async with SpClient(dict(cfg.accounts), catalog, retry=RetryPolicy(max_attempts=2, backoff_base=0.01)) as c:
        with pytest.raises(AuthError) as info:
            await c.call("acme", catalog.operation("ordersV0", "getOrders"), params())
    message = str(info.value)
    assert message.startswith(f"account acme: LWA token endpoint {token_url} unreachable")
    assert "will retry" not in message and "\n" not in message
    assert info.value.retriable is True


async def test_grantless_scope_checked_and_cached_apart(catalog, tmp_path):
    async with Simulator(SimSettings(orders=10, purchase_orders=0, live=False)) as sim:
        cfg = load_config(write_accounts_config(tmp_path, [account_yaml("acme", sim.url)], {}))
        acct = cfg.accounts["acme"]
        async with SpClient(dict(cfg.accounts), catalog) as c:
            seller = await c.auth.token("acme", acct)
            grantless = await c.auth.token("acme", acct, NOTIFICATIONS)
            assert grantless != seller
            assert await c.auth.token("acme", acct, NOTIFICATIONS) == grantless
            assert c.auth.refreshes == 2
            with pytest.raises(AuthError, match=r"^account acme: LWA rejected the scope .*"
                                                r"\(invalid_scope\)$"):
                await c.auth.token("acme", acct, "sellingpartnerapi::everything")
        grants = sim.state.auth._grants
        assert grants[grantless].scope == NOTIFICATIONS and grants[seller].scope is None
    op = catalog.operation("notifications", "getDestinations")
    assert op.grantless_scope == NOTIFICATIONS  # what SpClient.call asks LWA for


# --- real spd processes -----------------------------------------------------------------------


def test_daemon_keeps_polling_the_good_account(tmp_path, sim_factory, moto):
    """Three accounts in one `spd run`: one signs with an assumed role and polls; one has a
    revoked refresh token; one has AWS keys that may not assume the role. The daemon stays up,
    the two broken accounts say why in `spd status`, and LWA/STS are not hammered."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=800, purchase_orders=0, start=now - timedelta(days=1), end=now,
                      rate_limit=False, revoked_refresh_tokens=frozenset({"rt-revoked"}),
                      aws_credentials=MotoSts.credentials, aws_region="us-east-1")
    start = now - timedelta(days=2)
    write_accounts_config(tmp_path, [
        account_yaml("good", sim.url, aws=aws(moto, moto.good)),
        account_yaml("revoked", sim.url, refresh_token="rt-revoked", aws=aws(moto, moto.good)),
        account_yaml("noaws", sim.url, refresh_token="rt-other", aws=aws(moto, moto.denied)),
    ], {"good": poller("good", start), "revoked": poller("revoked", start),
        "noaws": poller("noaws", start)})
    proc = start_spd("run", "-c", str(tmp_path / "spd.yaml"))
    try:
        out = tmp_path / "out" / "good.jsonl"
        wait_for(lambda: len(read_jsonl_so_far(out)) >= 100, timeout=60)
        wait_for(lambda: all(states(tmp_path)[p]["last_error"] for p in ("revoked", "noaws")),
                 timeout=30)
        first = states(tmp_path)
        # several more runs of every poller (interval 1 s; a loaded machine may stretch them)
        later = wait_for(lambda: (lambda s: s if all(s[p]["last_run"] > first[p]["last_run"] for p in s)
                                  else None)(states(tmp_path)), timeout=30, interval=0.5)
        time.sleep(1)
        assert proc.poll() is None, "the daemon exited"
    finally:
        code = stop_spd(proc, signal.SIGTERM)
    assert code == 0
    assert later["good"]["last_error"] is None and later["good"]["objects_emitted"] >= 100
    assert later["revoked"]["last_run"] > first["revoked"]["last_run"]  # still scheduled
    assert later["revoked"]["last_error"].startswith(
        "account revoked: LWA rejected the refresh token")
    assert "invalid_grant" in later["revoked"]["last_error"]
    assert later["noaws"]["last_error"].startswith(
        f"account noaws: STS AssumeRole of {ROLE_ARN} failed (AccessDenied)")
    assert later["revoked"]["objects_emitted"] == later["noaws"]["objects_emitted"] == 0
    stats = sim.get("/_sim/stats")
    assert stats["lwa"]["refused"] == 1  # backoff: one refusal, not one per run
    assert stats["operations"]["ordersV0.getOrders"]["ok"] > 0
    assert stats["operations"]["ordersV0.getOrders"].get("client_errors", 0) == 0  # all signed
    text = " ".join(later[p]["last_error"] for p in ("revoked", "noaws"))
    assert moto.denied[1] not in text and "rt-revoked" not in text


def test_once_reports_each_account(tmp_path, sim_factory):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=300, purchase_orders=0, start=now - timedelta(days=1), end=now,
                      rate_limit=False, revoked_refresh_tokens=frozenset({"rt-revoked"}))
    start = now - timedelta(days=2)
    config = write_accounts_config(
        tmp_path, [account_yaml("good", sim.url), account_yaml("gone", sim.url,
                                                               refresh_token="rt-revoked")],
        {"good": poller("good", start), "gone": poller("gone", start)})
    result = run_spd("once", "-c", str(config))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert ("gone: failed: account gone: LWA rejected the refresh token: refresh token revoked "
            "or issued for another application (invalid_grant)") in lines
    assert any(line.startswith("good: ") and " objects in " in line for line in lines), lines
    assert "Traceback" not in result.stderr
    assert len(read_jsonl(tmp_path / "out" / "good.jsonl")) > 0
