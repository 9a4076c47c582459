"""The type aliases and Protocols that cross layers, named once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from orjson import Fragment

JsonObject = dict[str, Any]
"""A JSON object as orjson parses it: an SP-API object, a report row, a response body."""

Triple = tuple[str, str | None, JsonObject | Fragment]
"""An object as it is delivered: (id, cursor, data); the cursor is None when it has no time.
The data is a parsed object, or the object's JSON as Amazon sent it (spd.pipeline.raw_page)."""


class Secret(Protocol):
    """A value that hides itself (pydantic's SecretStr)."""

    def get_secret_value(self) -> str: ...


class LwaCredentials(Protocol):
    """What Login With Amazon needs of an account."""

    @property
    def client_id(self) -> str: ...
    @property
    def client_secret(self) -> Secret: ...
    @property
    def refresh_token(self) -> Secret: ...
    @property
    def token_url(self) -> str: ...


class AwsRole(Protocol):
    """The IAM role an account assumes for legacy SigV4 signing."""

    @property
    def access_key_id(self) -> str: ...
    @property
    def secret_access_key(self) -> Secret: ...
    @property
    def role_arn(self) -> str: ...
    @property
    def role_session_name(self) -> str: ...
    @property
    def region(self) -> str | None: ...
    @property
    def sts_endpoint(self) -> str | None: ...


class RateLimit(Protocol):
    """A configured rate (requests per second) and burst for one operation."""

    @property
    def rate(self) -> float: ...
    @property
    def burst(self) -> int | None: ...


class Account(Protocol):
    """What the SP-API client needs of an account (spd.config.sections.AccountConfig is one)."""

    @property
    def base_url(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def lwa(self) -> LwaCredentials: ...
    @property
    def aws(self) -> AwsRole | None: ...
    @property
    def rate_limits(self) -> Mapping[str, RateLimit]: ...


@dataclass(frozen=True)
class BucketLevel:
    """A rate-limit bucket's level at a wall-clock time, as the state keeps it across restarts.
    `tokens` may be below zero: takes the client reserved before sending them."""

    account: str
    operation: str  # "api.operation", or "raw" for requests that match no operation
    rate: float  # tokens per second when the level was taken
    burst: int
    tokens: float
    at: float  # epoch seconds
