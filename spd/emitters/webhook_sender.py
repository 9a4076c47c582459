"""The webhook emitter at work: POSTs through aiohttp, retries, dead letters.

What it sends and when it retries is described in spd.emitters.webhook, which owns the
emitter's config and imports this module only when it builds one (aiohttp stays unimported
for `spd validate`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
import orjson
import structlog
from multidict import CIMultiDict
from yarl import URL

from spd import __version__
from spd.core.errors import DeliveryError
from spd.core.http import discard_body
from spd.core.proxy import EnvProxies
from spd.core.retry import Backoff, retry_after
from spd.core.times import format_ts, utcnow
from spd.emitters.base import Emitter, Message
from spd.emitters.deadletter import DeadLetter

log = structlog.get_logger(__name__)

USER_AGENT = f"spd/{__version__}"
SNIPPET = 200  # characters of an error answer kept for logs and the dead-letter file
# An acknowledgement's body is read (so the connection is reused) up to this much; a longer
# one closes the connection rather than being read into memory.
MAX_ANSWER_BYTES = 64 * 2**10


def delivery_id(body: bytes) -> str:
    """X-SPD-Delivery: SHA-256 hex of the message JSON without its top-level `emitted_at`."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return hashlib.sha256(body).hexdigest()
    if isinstance(doc, dict) and "emitted_at" in doc:
        del doc["emitted_at"]
        # spd writes keys in a fixed order; sorting keeps the id stable even if that changes.
        body = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()


def sign(secret: bytes, body: bytes) -> str:
    """The X-SPD-Signature value for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Attempt:
    """The outcome of one POST."""

    status: int | None  # HTTP status, None when no answer came
    error: str | None  # None: acknowledged
    retriable: bool = False
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class WebhookEmitter(Emitter):
    """POSTs each message to `url`; see the module docstring for headers, retries and dead letters."""

    type = "webhook"

    def __init__(
        self, name: str, url: str, *, secret: str | None = None, timeout: float = 10.0,
        headers: Mapping[str, str] | None = None, max_retry_time: float = 3600.0,
        dead_letter: str | None = None, verify_tls: bool = True, concurrency: int = 1,
        backoff: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        super().__init__(name)
        self.url = url
        self.timeout = timeout
        self.max_retry_time = max_retry_time
        self.verify_tls = verify_tls
        self.concurrency = max(1, concurrency)
        self.backoff = backoff  # (first delay, largest delay) in seconds
        self._secret = secret.encode() if secret else None
        self._headers = self._base_headers(headers or {})
        self.dead_letter = DeadLetter(name, dead_letter) if dead_letter else None
        self._session: aiohttp.ClientSession | None = None
        self._proxy: URL | None = None
        # For messages: the URL without any user:password in it.
        self.shown_url = str(URL(url).with_user(None))

    def _base_headers(self, custom: Mapping[str, str]) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict({"User-Agent": USER_AGENT})
        for key, value in custom.items():  # the config refused the headers spd sets itself
            headers[key] = value  # replaces case-insensitively (a custom User-Agent wins)
        headers["Content-Type"] = "application/json"
        return headers

    async def start(self) -> None:
        """Opens the HTTP session (connections are made on the first POST)."""
        await super().start()
        self._open_session()

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # HTTPS_PROXY / NO_PROXY are honoured as by the SP-API client, read once here:
            # trust_env=True would look them up in a thread on every POST.
            self._proxy = EnvProxies().proxy_for(URL(self.url))
            connector = aiohttp.TCPConnector(ssl=True if self.verify_tls else False)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    async def send(self, messages: list[Message]) -> None:
        """POSTs the messages; returns once each got a 2xx or was dead-lettered."""
        self._check_open()
        if not messages:
            return
        session = self._open_session()
        deadline = time.monotonic() + self.max_retry_time
        if self.concurrency == 1 or len(messages) == 1:
            for message in messages:
                await self._deliver(session, message, deadline)
            return
        await self._deliver_concurrently(session, messages, deadline)

    async def _deliver_concurrently(
        self, session: aiohttp.ClientSession, messages: list[Message], deadline: float,
    ) -> None:
        pending = iter(messages)  # shared: workers take messages in order, each exactly once

        async def worker() -> None:
            for message in pending:
                await self._deliver(session, message, deadline)

        workers = [asyncio.create_task(worker()) for _ in range(min(self.concurrency, len(messages)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise

    async def _deliver(self, session: aiohttp.ClientSession, message: Message, deadline: float) -> None:
        delivery = delivery_id(message.body)
        headers = self._headers_for(message, delivery)
        attempts = 0
        while True:
            attempts += 1
            outcome = await self._post(session, message.body, headers)
            if outcome.ok:
                return
            if outcome.retriable:
                delay = outcome.retry_after
                if delay is None:
                    delay = self._backoff(attempts)
                if time.monotonic() + delay <= deadline:
                    log.warning(
                        "webhook_retry", emitter=self.name, poller=message.poller,
                        delivery=delivery, attempt=attempts, status=outcome.status,
                        error=outcome.error, delay=round(delay, 3),
                    )
                    await asyncio.sleep(delay)
                    continue
            await self._give_up(message, delivery, outcome, attempts)
            return

    def _headers_for(self, message: Message, delivery: str) -> CIMultiDict[str]:
        headers = self._headers.copy()
        headers["X-SPD-Poller"] = message.poller
        headers["X-SPD-Account"] = message.account
        headers["X-SPD-Object-Type"] = message.object_type
        headers["X-SPD-Delivery"] = delivery
        if self._secret is not None:
            headers["X-SPD-Signature"] = sign(self._secret, message.body)
        return headers

    async def _post(self, session: aiohttp.ClientSession, body: bytes, headers: CIMultiDict[str]) -> Attempt:
        # Redirects are not followed: aiohttp would turn a POST into a bodiless GET on 301/302.
        try:
            async with session.post(self.url, data=body, headers=headers, allow_redirects=False,
                                    proxy=self._proxy) as resp:
                if 200 <= resp.status < 300:
                    await discard_body(resp, MAX_ANSWER_BYTES)  # bounded, whatever it sends
                    return Attempt(resp.status, None)
                snippet = await _snippet(resp)
                retriable = resp.status in (408, 429) or resp.status >= 500
                return Attempt(
                    resp.status, f"HTTP {resp.status}" + (f": {snippet}" if snippet else ""), retriable,
                    retry_after(resp.headers.get("Retry-After")) if retriable else None,
                )
        except asyncio.TimeoutError:
            return Attempt(None, f"no answer within {self.timeout:g}s", True)
        except aiohttp.ClientError as exc:
            return Attempt(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, True)

    async def probe(self) -> str | None:
        """`spd check`: one signed test delivery marked `X-SPD-Test: 1`, not retried; a 2xx
        answer passes."""
        body = orjson.dumps({"test": True, "emitter": self.name, "emitted_at": format_ts(utcnow())})
        headers = self._headers.copy()
        headers["X-SPD-Test"] = "1"
        headers["X-SPD-Delivery"] = delivery_id(body)
        if self._secret is not None:
            headers["X-SPD-Signature"] = sign(self._secret, body)
        started = time.monotonic()
        outcome = await self._post(self._open_session(), body, headers)
        if not outcome.ok:
            raise DeliveryError(f"POST {self.shown_url}: {outcome.error}")
        return f"HTTP {outcome.status} in {(time.monotonic() - started) * 1000:.0f} ms"

    def _backoff(self, attempts: int) -> float:
        first, largest = self.backoff
        return Backoff(first, largest, "half").delay(attempts)

    async def _give_up(self, message: Message, delivery: str, outcome: Attempt, attempts: int) -> None:
        """Dead-letters the message (then it counts as handled), else raises DeliveryError."""
        kind = "a permanent error" if not outcome.retriable else f"max_retry_time ({self.max_retry_time:g}s)"
        error = f"{outcome.error} after {attempts} attempt{'s' if attempts > 1 else ''} ({kind})"
        if self.dead_letter is None:
            raise DeliveryError(
                f"emitter {self.name}: POST {self.shown_url} failed: {error}; no dead_letter is "
                "configured, so the poller holds its watermark and retries on its next run"
            )
        await self.dead_letter.record(message, error=error, status=outcome.status, delivery=delivery,
                                      attempts=attempts)
        log.error(
            "webhook_dead_lettered", emitter=self.name, poller=message.poller, delivery=delivery,
            status=outcome.status, error=error, attempts=attempts,
        )

    def reopen(self) -> None:
        """SIGHUP: reopens the dead-letter file (logrotate)."""
        if self.dead_letter is not None:
            self.dead_letter.reopen()

    async def _close(self) -> None:
        session, self._session = self._session, None
        try:
            if session is not None:
                await session.close()
        finally:
            if self.dead_letter is not None:
                await self.dead_letter.close()


async def _snippet(resp: aiohttp.ClientResponse) -> str:
    """The start of an error answer's body, on one line."""
    try:
        raw = await resp.content.read(SNIPPET * 4)
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return ""
    return " ".join(raw.decode("utf-8", "replace").split())[:SNIPPET]
