"""The webhook emitter: each message is POSTed as JSON; a 2xx acknowledges it.

Each POST carries the message body byte for byte, with these headers:

- `Content-Type: application/json`, `User-Agent: spd/<version>`, and the configured `headers`;
- `X-SPD-Poller`, `X-SPD-Account`, `X-SPD-Object-Type`: where the message comes from;
- `X-SPD-Delivery`: the SHA-256 (hex) of the message without its top-level `emitted_at`. It is
  the same on every retry, and also when spd re-emits the same object version after a restart,
  so receivers can use it as an idempotency key;
- `X-SPD-Signature: sha256=<hex HMAC-SHA256 of the exact body, keyed with the secret>`, when a
  `secret` is configured. A receiver checks it like this (Python)::

      import hashlib, hmac

      def verify(secret: bytes, body: bytes, signature: str) -> bool:
          expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
          return hmac.compare_digest(expected, signature)

      # in the handler: body = await request.read()  (the raw bytes, before any JSON parsing)
      # if not verify(SECRET, body, request.headers.get("X-SPD-Signature", "")): return 401

  The body's `emitted_at` lets a receiver refuse old replays.

408, 429, 5xx, timeouts and connection errors are retried with exponential backoff and jitter
(a `Retry-After` header is honoured) until `max_retry_time` after the page was handed over;
other answers (3xx, 4xx) are permanent. A message given up on goes to the `dead_letter` file
and counts as handled; without a dead-letter file, `send` raises DeliveryError and the poller
holds its watermark until a later run gets through. `concurrency` messages of a page are in
flight at once; with 1 they are delivered strictly in order.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from spd.core.environment import unwritable_folder
from spd.core.fields import Duration, Interval, Secret, Template, Url, fail
from spd.core.problems import Problem, error
from spd.emitters.base import Emitter, EmitterSettings
from spd.emitters.file import template_folder

PROTECTED_HEADERS = frozenset({
    "content-type", "x-spd-poller", "x-spd-account", "x-spd-object-type", "x-spd-delivery",
    "x-spd-signature",
})


def without_credentials(url: str) -> str:
    """`url` without any user:password in it, for messages."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class WebhookEmitterConfig(EmitterSettings):
    summary = "each message POSTed as JSON (HMAC-signed with a secret); a 2xx acknowledges it"
    type: Literal["webhook"] = "webhook"
    url: Url
    secret: Secret | None = None  # HMAC-SHA256 key of X-SPD-Signature
    timeout: Interval = timedelta(seconds=10)
    headers: dict[str, SecretStr] = {}  # values may carry credentials (Authorization)
    max_retry_time: Duration = timedelta(hours=1)
    dead_letter: Template | None = None
    verify_tls: bool = True
    concurrency: int = Field(default=1, ge=1)  # 1: in order per poller

    @field_validator("headers", mode="before")
    @classmethod
    def _own_headers(cls, value: Any) -> Any:
        for key in value if isinstance(value, dict) else ():
            if str(key).lower() in PROTECTED_HEADERS:
                raise fail("is set by spd; remove it", key)
        return value

    @model_validator(mode="after")
    def _one_authorization(self) -> WebhookEmitterConfig:
        # aiohttp refuses to send both, so every POST would fail: say so before anything runs
        if urlsplit(self.url).username is not None and any(k.lower() == "authorization" for k in self.headers):
            raise fail("has user:password@ and headers has Authorization; HTTP sends only one: "
                       "remove one of them", "url")
        return self

    def build(self, name: str) -> Emitter:
        from spd.emitters.webhook_sender import WebhookEmitter  # lazy: aiohttp, for a built emitter only

        return WebhookEmitter(
            name, self.url, secret=self.secret.get_secret_value() if self.secret else None,
            timeout=self.timeout.total_seconds(),
            headers={k: v.get_secret_value() for k, v in self.headers.items()},
            max_retry_time=self.max_retry_time.total_seconds(), dead_letter=self.dead_letter,
            verify_tls=self.verify_tls, concurrency=self.concurrency,
        )

    def describe(self) -> str:
        return f"webhook {without_credentials(self.url)}"

    def resolved(self, base: Path) -> EmitterSettings:
        if self.dead_letter is None:
            return self
        return self.model_copy(update={"dead_letter": str(base / Path(self.dead_letter).expanduser())})

    def environment(self, name: str) -> list[Problem]:
        reason = unwritable_folder(template_folder(self.dead_letter)) if self.dead_letter else None
        return [] if reason is None else [error("emitters", name, "dead_letter", message=(
            f"cannot write there: {reason}; choose a folder the user spd runs as can write"))]
