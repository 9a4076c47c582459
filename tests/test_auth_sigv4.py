"""SigV4 with an assumed role: moto's STS on loopback issues the credentials, the simulator
recomputes every signature with botocore from what moto issued."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from support.aws_peer import ROLE_ARN, MotoSts, account_yaml, write_accounts_config
from spd.catalog.model import load_catalog
from spd.client.http import SpClient
from spd.client.policy import RetryPolicy
from spd.client.sigv4 import AssumedRoles, SigV4Signer, TempCredentials
from spd.config.validate import load_config
from spd.core.errors import ApiError, AuthError
from spd.sim import SimSettings, Simulator

MARKETPLACE = "ATVPDKIKX0DER"


@pytest.fixture(scope="module")
def moto():
    peer = MotoSts().start()
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture
async def sim():
    settings = SimSettings(orders=100, purchase_orders=0, live=False, rate_limit=False,
                           aws_credentials=MotoSts.credentials, aws_region="us-east-1")
    async with Simulator(settings) as s:
        yield s


def accounts(tmp_path: Path, sim_url: str, **aws: str) -> dict:
    """AccountConfigs loaded from a real config file; `aws` keys go under `aws:` when given."""
    path = write_accounts_config(tmp_path, [account_yaml("acme", sim_url, aws=aws or None)],
                                 {"orders": {"account": "acme", "object": "ordersV0.getOrders"}})
    return dict(load_config(path).accounts)


def aws_keys(moto: MotoSts, keys: tuple[str, str], **extra: str) -> dict[str, str]:
    return {"access_key_id": keys[0], "secret_access_key": keys[1], "role_arn": ROLE_ARN,
            "region": "us-east-1", "sts_endpoint": moto.url, **extra}


def orders_params() -> dict:
    return {"MarketplaceIds": [MARKETPLACE],
            "CreatedAfter": datetime.now(timezone.utc) - timedelta(days=2)}


async def test_signed_requests_accepted_and_credentials_reused(moto, sim, catalog, tmp_path):
    op = catalog.operation("ordersV0", "getOrders")
    async with SpClient(accounts(tmp_path, sim.url, **aws_keys(moto, moto.good)), catalog) as c:
        for _ in range(3):
            resp = await c.call("acme", op, orders_params())
            assert resp.status == 200 and resp.body["payload"]["Orders"]
        assert c.signer.roles.assumed == 1
    assert sim.state.stats["ordersV0.getOrders"]["ok"] == 3


async def test_concurrent_requests_assume_the_role_once(moto, sim, catalog, tmp_path):
    op = catalog.operation("ordersV0", "getOrders")
    async with SpClient(accounts(tmp_path, sim.url, **aws_keys(moto, moto.good)), catalog) as c:
        answers = await asyncio.gather(*(c.call("acme", op, orders_params()) for _ in range(8)))
        assert {a.status for a in answers} == {200}
        assert c.signer.roles.assumed == 1


async def test_unsigned_and_badly_signed_requests_are_rejected(moto, sim, catalog, tmp_path):
    op = catalog.operation("ordersV0", "getOrders")
    async with SpClient(accounts(tmp_path, sim.url), catalog) as c:  # no aws: unsigned
        with pytest.raises(ApiError) as info:
            await c.call("acme", op, orders_params())
        assert info.value.status == 403
    async with SpClient(accounts(tmp_path, sim.url, **aws_keys(moto, moto.good)), catalog) as c:
        good = await c.signer.roles.get("acme", c._accounts["acme"])
        forged = TempCredentials(good.access_key_id, "not-the-secret", good.session_token,
                                 good.expires_at)
        c.signer.roles._cache["acme"] = forged
        with pytest.raises(ApiError) as info:
            await c.call("acme", op, orders_params())
        assert info.value.status == 403
        assert info.value.errors[0]["code"] == "InvalidSignature"
        assert "signature we calculated does not match" in info.value.errors[0]["message"]
    assert sim.state.stats["ordersV0.getOrders"]["ok"] == 0


async def test_signature_for_another_region_is_rejected(moto, sim, catalog, tmp_path):
    accts = accounts(tmp_path, sim.url, **aws_keys(moto, moto.good))
    accts["acme"] = accts["acme"].model_copy(update={"region": "eu-west-1"})
    async with SpClient(accts, catalog) as c:
        with pytest.raises(ApiError, match="InvalidSignature"):
            await c.call("acme", catalog.operation("ordersV0", "getOrders"), orders_params())


async def test_credentials_refreshed_a_few_minutes_before_expiry(moto, sim, catalog, tmp_path):
    op = catalog.operation("ordersV0", "getOrders")
    now = [datetime.now(timezone.utc).timestamp()]
    async with SpClient(accounts(tmp_path, sim.url, **aws_keys(moto, moto.good)), catalog) as c:
        c.signer = SigV4Signer(AssumedRoles(clock=lambda: now[0]))
        await c.call("acme", op, orders_params())
        first = c.signer.roles._cache["acme"]
        now[0] = first.expires_at - 301  # still more than 5 minutes left: reused
        await c.call("acme", op, orders_params())
        assert c.signer.roles.assumed == 1
        now[0] = first.expires_at - 299  # inside the margin: assumed again
        resp = await c.call("acme", op, orders_params())
        assert resp.status == 200
        assert c.signer.roles.assumed == 2
        assert c.signer.roles._cache["acme"].access_key_id != first.access_key_id


async def test_expired_sts_credential_is_refreshed(moto, sim, catalog, tmp_path):
    """Amazon says the security token expired: the client assumes the role again and retries."""
    op = catalog.operation("ordersV0", "getOrders")
    async with SpClient(accounts(tmp_path, sim.url, **aws_keys(moto, moto.good)), catalog) as c:
        await c.call("acme", op, orders_params())
        first = c.signer.roles._cache["acme"].access_key_id
        expire_in_moto(first)
        resp = await c.call("acme", op, orders_params())
        assert resp.status == 200
        assert c.signer.roles.assumed == 2
        assert c.signer.roles._cache["acme"].access_key_id != first
        assert c.auth.refreshes == 1  # the LWA token was not the problem
    stats = sim.state.stats["ordersV0.getOrders"]
    assert (stats["ok"], stats["client_errors"]) == (2, 1)


def expire_in_moto(access_key_id: str) -> None:
    from moto.sts.models import sts_backends

    for backends in list(sts_backends.values()):
        for backend in list(backends.values()):
            role = backend.get_assumed_role_from_access_key(access_key_id)
            if role is not None:
                role.expiration = role.expiration - timedelta(days=1)
                return
    raise AssertionError("moto did not issue these credentials")


@pytest.mark.parametrize(("which", "code"), [
    ("wrong_secret", "SignatureDoesNotMatch"),
    ("unknown_key", "InvalidClientTokenId"),
    ("denied", "AccessDenied"),
])
async def test_role_that_cannot_be_assumed_is_a_one_line_error(moto, sim, catalog, tmp_path,
                                                               which, code):
    keys = {"wrong_secret": (moto.good[0], "wrong-secret-value"),
            "unknown_key": ("AKIA_FAKE_UNKNOWN_KEY", "whatever-secret"),
            "denied": moto.denied}[which]
    op = catalog.operation("ordersV0", "getOrders")
    async with SpClient(accounts(tmp_path, sim.url, **aws_keys(moto, keys)), catalog) as c:
        with pytest.raises(AuthError) as info:
            await c.call("acme", op, orders_params())
        message = str(info.value)
        assert message.startswith(f"account acme: STS AssumeRole of {ROLE_ARN} failed ({code})")
        assert "\n" not in message and keys[1] not in message
        assert info.value.retriable is False
        # the next request fails fast without asking STS again, and says when it will
        with pytest.raises(AuthError, match=r"next attempt in \d+s"):
            await c.call("acme", op, orders_params())
        assert c.signer.roles.assumed == 1
    assert sim.state.stats["ordersV0.getOrders"]["requests"] == 0


async def test_unreachable_sts_is_retriable(moto, sim, catalog, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    accts = accounts(tmp_path, sim.url, **aws_keys(moto, moto.good, sts_endpoint=dead))
    async with SpClient(accts, catalog, retry=RetryPolicy(max_attempts=2, backoff_base=0.01)) as c:
        with pytest.raises(AuthError) as info:
            await c.call("acme", catalog.operation("ordersV0", "getOrders"), orders_params())
    assert info.value.retriable is True
    assert "unreachable" in str(info.value) and "account acme" in str(info.value)


def test_accounts_without_aws_never_import_boto(tmp_path):
    code = (
        "import sys\n"
        "from spd.config.validate import load_config\n"
        "from spd.client.http import SpClient\n"
        "from spd.catalog.model import load_catalog\n"
        "import spd.app.runtime, spd.app.daemon, spd.app.once\n"
        f"cfg = load_config({str(config_without_aws(tmp_path))!r})\n"
        "SpClient(dict(cfg.accounts), load_catalog())\n"
        "loaded = [m for m in ('boto3', 'botocore', 'aioboto3', 'aiobotocore') if m in sys.modules]\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def config_without_aws(tmp_path: Path) -> Path:
    return write_accounts_config(tmp_path, [account_yaml("acme", "http://127.0.0.1:9")],
                                 {"orders": {"account": "acme", "object": "ordersV0.getOrders"}})
