"""A real webhook receiver for end-to-end tests: aiohttp on loopback, served from its own thread.

    hook = WebhookReceiver(secret="s3cret").start()   # hook.url for the spd config
    hook.set(mode="slow", delay=0.02)                 # ok | slow | 500 | <status int>
    hook.down(); hook.up()                            # port closed, then reopened on the same port
    hook.accepted_ids()                               # (id, cursor) of every 2xx-answered message

Every request's X-SPD-Signature is checked against the secret the receiver currently holds; a
bad one is counted and answered 401. `reject` can answer a status for chosen messages only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """The receiver-side check documented in spd/emitters/webhook.py."""
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


@dataclass(frozen=True)
class Delivery:
    """One request as received and the status it was answered."""

    delivery: str  # X-SPD-Delivery
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def doc(self) -> dict[str, Any]:
        return json.loads(self.body)


class WebhookReceiver:
    """See the module docstring. All counters are safe to read from the test's thread."""

    def __init__(self, secret: str, path: str = "/hook") -> None:
        self.secret = secret.encode()
        self.path = path
        self.mode: str | int = "ok"
        self.delay = 0.0  # seconds before answering in mode "slow"
        self.reject: Callable[[dict[str, Any]], int | None] | None = None  # body -> status or None
        self.port = 0
        self.requests: list[Delivery] = []
        self.bad_signatures = 0
        self.in_flight = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self.up()

    def stop(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def up(self) -> WebhookReceiver:
        """Listens (again) on the same port."""
        asyncio.run_coroutine_threadsafe(self._up(), self._loop).result(10)
        return self

    def down(self) -> None:
        """Closes the port and every open connection: POSTs get connection refused."""
        asyncio.run_coroutine_threadsafe(self._down(), self._loop).result(10)

    def set(self, mode: str | int = "ok", *, delay: float | None = None,
            secret: str | None = None) -> None:
        """Switches the default answer: ok, slow (ok after `delay`), 500 or any status."""
        self.mode = mode
        if delay is not None:
            self.delay = delay
        if secret is not None:
            self.secret = secret.encode()

    async def _up(self) -> None:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()
        self.port = self._runner.addresses[0][1]

    async def _down(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        with self._lock:
            self.in_flight += 1
        try:
            status = await self._answer(body, request.headers.get("X-SPD-Signature", ""))
        finally:
            with self._lock:
                self.in_flight -= 1
        record = Delivery(request.headers.get("X-SPD-Delivery", ""), dict(request.headers), body, status)
        with self._lock:
            self.requests.append(record)
        return web.Response(status=status, text="ok" if status < 300 else f"receiver says {status}")

    async def _answer(self, body: bytes, signature: str) -> int:
        if not verify(self.secret, body, signature):
            with self._lock:
                self.bad_signatures += 1
            return 401
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        elif self.mode != "ok":
            return int(self.mode)
        status = self.reject(json.loads(body)) if self.reject else None
        return status or 200

    # -- what arrived -------------------------------------------------------------------------

    def received(self, status: int | None = None) -> list[Delivery]:
        """Requests answered `status` (every request when None)."""
        with self._lock:
            found = list(self.requests)
        return found if status is None else [r for r in found if r.status == status]

    def accepted(self) -> list[Delivery]:
        """Requests answered 2xx, in arrival order."""
        return [r for r in self.received() if 200 <= r.status < 300]

    def accepted_ids(self) -> list[tuple[str, str]]:
        """(object id, cursor) of every accepted message (emit: individually)."""
        return [(d["id"], d["cursor"]) for d in (r.doc for r in self.accepted())]

    def by_delivery(self) -> Counter[str]:
        """Accepted deliveries counted by X-SPD-Delivery."""
        return Counter(r.delivery for r in self.accepted())

    def count(self) -> int:
        with self._lock:
            return sum(1 for r in self.requests if 200 <= r.status < 300)
