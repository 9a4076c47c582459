"""The webhook emitter against a real aiohttp receiver on loopback.

The receiver verifies every signature, counts deliveries by X-SPD-Delivery and can be switched
to 500, 429, slow, 4xx and down (port closed, then reopened on the same port).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import shutil
import ssl
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pydantic
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from spd import __version__
from spd.emitters.registry import build_emitter
from spd.emitters.webhook import WebhookEmitterConfig
from spd.emitters.webhook_sender import WebhookEmitter
from spd.core.retry import retry_after as parse_retry_after
from spd.emitters.webhook_sender import delivery_id
from spd.core.errors import DeliveryError
from spd.pipeline.messages import Message, build_messages

UTC = timezone.utc
W = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 1, 1, tzinfo=UTC))
SECRET = "whsec-test-secret-0123456789"
FAST = (0.02, 0.1)  # backoff for tests: first delay, largest delay


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """The receiver-side check, exactly as documented in spd/emitters/webhook.py."""
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def msgs(n: int = 3, *, emit: str = "individually", start: int = 0, poller: str = "orders",
         emitted_at: datetime | None = None) -> list[Message]:
    objects = [(f"id-{i}", "2025-03-01T00:30:00Z", {"n": i}) for i in range(start, start + n)]
    return build_messages(poller=poller, account="acme-us", object_type="ordersV0.getOrders",
                          emit=emit, window=W, page=1, objects=objects, emitted_at=emitted_at)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1; `mode` sets the default answer, `script` the next ones."""

    secret: bytes = SECRET.encode()
    mode: str = "ok"  # ok | 500 | 400 | slow
    slow_seconds: float = 1.0
    script: list[Any] = field(default_factory=list)  # status, (status, headers) or "slow"
    requests: list[Received] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)  # X-SPD-Delivery -> 2xx answers
    bad_signatures: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def up(self) -> None:
        """Listens (again) on the same port."""
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def down(self) -> None:
        """Closes the port (and open connections): POSTs get connection refused."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = self.script.pop(0) if self.script else self.mode
        status, headers = _answer(answer)
        if answer == "slow" or self.mode == "slow" and not isinstance(answer, (int, tuple)):
            await asyncio.sleep(self.slow_seconds)
        if self.secret and not verify(self.secret, body, request.headers.get("X-SPD-Signature", "")):
            self.bad_signatures += 1
            status, headers = 401, {}
        self.requests.append(Received(dict(request.headers), body, status))
        if 200 <= status < 300:
            self.accepted[request.headers["X-SPD-Delivery"]] += 1
        text = "" if status < 300 else f"receiver says {status}\nsecond line"
        return web.Response(status=status, text=text, headers=headers)

    def bodies(self) -> list[bytes]:
        return [r.body for r in self.requests if 200 <= r.status < 300]


def _answer(answer: Any) -> tuple[int, dict[str, str]]:
    if isinstance(answer, tuple):
        return answer
    if isinstance(answer, int):
        return answer, {}
    return {"ok": 200, "slow": 200, "500": 500, "400": 400}[answer], {}


@pytest.fixture
async def receiver():
    r = Receiver()
    await r.up()
    yield r
    await r.down()


@pytest.fixture
async def hook(receiver: Receiver):
    made: list[WebhookEmitter] = []

    def make(**kw: Any) -> WebhookEmitter:
        kw.setdefault("secret", SECRET)
        kw.setdefault("backoff", FAST)
        kw.setdefault("timeout", 5.0)
        e = WebhookEmitter("hook", kw.pop("url", receiver.url), **kw)
        made.append(e)
        return e

    yield make
    for e in made:
        await e.close()


# -- headers, body, signature ------------------------------------------------------------------

async def test_posts_exact_bodies_with_headers_and_a_signature_that_verifies(receiver, hook) -> None:
    e = hook(headers={"Authorization": "Bearer t0ken", "X-Tenant": "acme"})
    await e.start()
    messages = msgs(3)
    await e.send(messages)
    assert receiver.bodies() == [m.body for m in messages]  # byte for byte, in order
    assert receiver.bad_signatures == 0
    for m, r in zip(messages, receiver.requests):
        h = r.headers
        assert h["Content-Type"] == "application/json"
        assert h["User-Agent"] == f"spd/{__version__}"
        assert h["X-SPD-Poller"] == "orders" and h["X-SPD-Account"] == "acme-us"
        assert h["X-SPD-Object-Type"] == "ordersV0.getOrders"
        assert h["X-SPD-Delivery"] == delivery_id(m.body)
        assert h["X-SPD-Signature"] == "sha256=" + hmac.new(SECRET.encode(), m.body, "sha256").hexdigest()
        assert h["Authorization"] == "Bearer t0ken" and h["X-Tenant"] == "acme"


async def test_a_receiver_with_another_secret_rejects_the_signature(receiver, hook) -> None:
    receiver.secret = b"not-the-secret"
    e = hook()
    with pytest.raises(DeliveryError, match="HTTP 401"):
        await e.send(msgs(1))
    assert receiver.bad_signatures == 1 and not receiver.accepted


async def test_without_a_secret_no_signature_header_is_sent(receiver, hook) -> None:
    receiver.secret = b""
    e = hook(secret=None)
    await e.send(msgs(1))
    assert "X-SPD-Signature" not in receiver.requests[0].headers


def test_delivery_id_ignores_emitted_at_but_nothing_else() -> None:
    a = msgs(2, emitted_at=datetime(2025, 3, 1, 2, tzinfo=UTC))
    b = msgs(2, emitted_at=datetime(2025, 3, 2, 9, 30, tzinfo=UTC))
    assert a[0].body != b[0].body
    assert [delivery_id(m.body) for m in a] == [delivery_id(m.body) for m in b]
    assert delivery_id(a[0].body) != delivery_id(a[1].body)
    page_a = msgs(2, emit="page", emitted_at=datetime(2025, 3, 1, 2, tzinfo=UTC))[0]
    page_b = msgs(2, emit="page", emitted_at=datetime(2025, 3, 1, 3, tzinfo=UTC))[0]
    assert delivery_id(page_a.body) == delivery_id(page_b.body)
    assert len(delivery_id(b"not json")) == 64


def test_parse_retry_after() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Sat, 01 Mar 2025 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sat, 01 Mar 2025 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


# -- retries -----------------------------------------------------------------------------------

async def test_5xx_and_408_are_retried_with_the_same_delivery_id(receiver, hook) -> None:
    receiver.script = [500, 503, 408]
    e = hook()
    with capture_logs() as logs:
        await e.send(msgs(1))
    deliveries = {r.headers["X-SPD-Delivery"] for r in receiver.requests}
    assert len(receiver.requests) == 4 and len(deliveries) == 1
    assert receiver.accepted == Counter({deliveries.pop(): 1})
    retries = [entry for entry in logs if entry["event"] == "webhook_retry"]
    assert [entry["status"] for entry in retries] == [500, 503, 408]
    assert SECRET not in repr(logs)


async def test_429_honours_retry_after(receiver, hook) -> None:
    receiver.script = [(429, {"Retry-After": "1"})]
    e = hook()
    started = time.monotonic()
    await e.send(msgs(1))
    assert time.monotonic() - started >= 0.95  # the backoff alone would be 20-40 ms
    assert [r.status for r in receiver.requests] == [429, 200]


async def test_a_slow_receiver_times_out_and_the_retry_keeps_the_delivery_id(receiver, hook) -> None:
    receiver.script = ["slow"]
    receiver.slow_seconds = 1.0
    e = hook(timeout=0.3)
    with capture_logs() as logs:
        await e.send(msgs(1))
    retry = next(entry for entry in logs if entry["event"] == "webhook_retry")
    assert retry["status"] is None and "no answer within 0.3s" in retry["error"]
    await asyncio.sleep(1.0)  # the slow answer completes on the receiver's side too
    ids = [r.headers["X-SPD-Delivery"] for r in receiver.requests]
    assert len(set(ids)) == 1  # so the receiver can tell the duplicate apart
    assert receiver.accepted[ids[0]] >= 1


async def test_receiver_down_then_back_on_the_same_port(receiver, hook) -> None:
    e = hook()
    await e.send(msgs(1))
    await receiver.down()
    task = asyncio.create_task(e.send(msgs(2, start=1)))
    await asyncio.sleep(0.5)
    assert not task.done()  # retrying connection errors, not failing
    await receiver.up()
    await asyncio.wait_for(task, 5)
    assert [orjson.loads(b)["id"] for b in receiver.bodies()] == ["id-0", "id-1", "id-2"]


# -- giving up: dead letter or stall -----------------------------------------------------------

async def test_permanent_4xx_goes_to_the_dead_letter_file_and_the_page_is_acked(
    receiver, hook, tmp_path: Path,
) -> None:
    receiver.script = [422]
    e = hook(dead_letter=str(tmp_path / "dead" / "{poller}.jsonl"))
    messages = msgs(2)
    with capture_logs() as logs:
        await e.send(messages)  # returns: the first is dead-lettered, the second delivered
    path = tmp_path / "dead" / "orders.jsonl"
    assert os.stat(path).st_mode & 0o777 == 0o600
    [line] = path.read_bytes().splitlines()
    record = orjson.loads(line)
    assert set(record) == {"failed_at", "error", "status", "delivery", "attempts", "message"}
    assert record["status"] == 422 and record["attempts"] == 1
    assert record["error"] == ("HTTP 422: receiver says 422 second line after 1 attempt "
                               "(a permanent error)")
    assert record["delivery"] == delivery_id(messages[0].body)
    assert record["message"] == orjson.loads(messages[0].body)
    assert record["failed_at"].endswith("Z")
    assert receiver.bodies() == [messages[1].body]
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == ["webhook_dead_lettered"]


async def test_permanent_4xx_without_dead_letter_stalls_at_once(receiver, hook) -> None:
    receiver.mode = "400"
    e = hook()
    started = time.monotonic()
    with pytest.raises(DeliveryError) as info:
        await e.send(msgs(2))
    assert time.monotonic() - started < 2 and len(receiver.requests) == 1
    assert "HTTP 400" in str(info.value) and "no dead_letter" in str(info.value)
    assert str(info.value).count("\n") == 0


async def test_max_retry_time_then_dead_letter(receiver, hook, tmp_path: Path) -> None:
    receiver.mode = "500"
    e = hook(max_retry_time=1.0, dead_letter=str(tmp_path / "{account}-{object_type}.jsonl"))
    started = time.monotonic()
    await e.send(msgs(3))
    # One deadline for the page: a deadline per message would take at least 3 s.
    assert time.monotonic() - started < 2.5
    lines = [orjson.loads(x) for x in (tmp_path / "acme-us-ordersV0.getOrders.jsonl").read_bytes().splitlines()]
    assert [x["message"]["id"] for x in lines] == ["id-0", "id-1", "id-2"]
    assert all(x["status"] == 500 and "max_retry_time (1s)" in x["error"] for x in lines)
    assert lines[0]["attempts"] > 2


async def test_without_dead_letter_the_poller_stalls_then_resumes(receiver, hook) -> None:
    receiver.mode = "500"
    e = hook(max_retry_time=0.3)
    with pytest.raises(DeliveryError, match=r"max_retry_time \(0.3s\).*holds its watermark"):
        await e.send(msgs(2))
    assert not receiver.accepted
    receiver.mode = "ok"
    await e.send(msgs(2))  # the next run gets through
    assert len(receiver.accepted) == 2


async def test_redirects_are_not_followed(receiver, hook) -> None:
    receiver.script = [(302, {"Location": "/elsewhere"})]
    e = hook()
    with pytest.raises(DeliveryError, match="HTTP 302"):
        await e.send(msgs(1))


# -- concurrency -------------------------------------------------------------------------------

async def test_concurrency_sends_in_parallel_and_still_delivers_all(receiver, hook) -> None:
    receiver.mode = "slow"
    receiver.slow_seconds = 0.2
    e = hook(concurrency=4)
    started = time.monotonic()
    await e.send(msgs(8))
    assert time.monotonic() - started < 1.2  # 8 × 0.2 s one by one would be 1.6 s
    assert sorted(orjson.loads(b)["id"] for b in receiver.bodies()) == [f"id-{i}" for i in range(8)]


async def test_concurrency_failure_cancels_the_rest_and_raises(receiver, hook) -> None:
    receiver.script = [200, 400]
    e = hook(concurrency=3)
    with pytest.raises(DeliveryError, match="HTTP 400"):
        await e.send(msgs(6))


async def test_proxy_from_the_environment_is_used(receiver, hook, monkeypatch) -> None:
    # The receiver stands in for the proxy: aiohttp sends it the absolute URL of the real target.
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{receiver.port}")
    e = hook(url="http://spd-target.invalid/hook", max_retry_time=1.0)
    await e.send(msgs(1))
    assert len(receiver.accepted) == 1


# -- TLS ---------------------------------------------------------------------------------------

@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


async def test_tls_is_verified_unless_disabled(self_signed, hook) -> None:
    cert, key = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    url = f"https://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        with pytest.raises(DeliveryError, match="(?i)certificate"):
            await hook(url=url, max_retry_time=0.2).send(msgs(1))
        await hook(url=url, verify_tls=False).send(msgs(1))
    finally:
        await runner.cleanup()


# -- configuration -----------------------------------------------------------------------------

def test_build_emitter_from_the_config_model(tmp_path: Path) -> None:
    cfg = WebhookEmitterConfig(
        url="https://user:pw@example.com/spd", secret=SECRET, timeout="3s", max_retry_time="10m",
        headers={"X-Api-Key": "k-123"}, dead_letter=str(tmp_path / "{poller}.jsonl"),
        verify_tls=False, concurrency=2,
    )
    e = build_emitter("hook", cfg)
    assert isinstance(e, WebhookEmitter)
    assert (e.timeout, e.max_retry_time, e.verify_tls, e.concurrency) == (3.0, 600.0, False, 2)
    assert e.dead_letter is not None and e.shown_url == "https://example.com/spd"
    assert SECRET not in repr(e)


def test_credentials_in_the_url_and_an_authorization_header_are_a_config_error() -> None:
    # aiohttp refuses to send both, so every POST would fail: say so before anything runs
    with pytest.raises(pydantic.ValidationError, match=r"has user:password@ and headers "
                                                       r"has Authorization; HTTP sends only one"):
        WebhookEmitterConfig(url="https://user:pw@example.com/spd", headers={"authorization": "Bearer x"})


def test_spd_headers_cannot_be_overridden() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"is set by spd; remove it"):
        WebhookEmitterConfig(url="http://127.0.0.1:1/", headers={"x-spd-delivery": "mine"})


async def test_closed_emitter_refuses_to_send(hook) -> None:
    e = hook()
    await e.start()
    await e.close()
    await e.close()
    with pytest.raises(DeliveryError, match="closed"):
        await e.send(msgs(1))


def test_timedelta_fields_are_read_as_seconds() -> None:
    e = build_emitter("h", WebhookEmitterConfig(url="http://127.0.0.1:1/h", timeout=timedelta(milliseconds=1500)))
    assert e.timeout == 1.5 and e.concurrency == 1 and e.max_retry_time == 3600.0
