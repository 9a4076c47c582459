"""The leaf sections of the config (DESIGN §3): state, log, http and accounts (each emitter type's
section lives in its module, spd.emitters.*, listed by spd.emitters.registry).

`spd.config.model` assembles them into `Config`; import them from there.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, computed_field, field_validator, model_validator

from spd.core.fields import ConfigModel, Duration, FilePath, Secret, Text, UniqueTexts, Url, check_url, fail, show
from spd.catalog.model import load_catalog
from spd.core.errors import SpdError

DEFAULT_TOKEN_URL = "https://api.amazon.com/auth/o2/token"
ENDPOINTS = {
    "na": ("https://sellingpartnerapi-na.amazon.com", "us-east-1"),
    "eu": ("https://sellingpartnerapi-eu.amazon.com", "eu-west-1"),
    "fe": ("https://sellingpartnerapi-fe.amazon.com", "us-west-2"),
    "sandbox-na": ("https://sandbox.sellingpartnerapi-na.amazon.com", "us-east-1"),
    "sandbox-eu": ("https://sandbox.sellingpartnerapi-eu.amazon.com", "eu-west-1"),
    "sandbox-fe": ("https://sandbox.sellingpartnerapi-fe.amazon.com", "us-west-2"),
}
ENDPOINT_HINT = "use na, eu, fe, sandbox-na, sandbox-eu, sandbox-fe or an https:// or http:// URL"
REGION_RE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")


class StateConfig(ConfigModel):
    """Where the state lives: one SQLite file (`path`), or a PostgreSQL database (`url`) that
    several replicas share (DESIGN §13)."""

    path: FilePath | None = None
    url: Text | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            raise fail(f"{show(_public(value))} is not a PostgreSQL URL; use "
                       "postgresql://USER@HOST:PORT/DATABASE")
        return value

    @model_validator(mode="after")
    def _one_place(self) -> StateConfig:
        if (self.path is None) == (self.url is None):
            raise fail("give state either path (an SQLite file) or url (postgresql://...), "
                       "exactly one of them")
        return self


def _public(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


class ClusterConfig(ConfigModel):
    """Replicas sharing pollers through `state.url`: how long a lease lives without a heartbeat."""

    lease_ttl: Duration = timedelta(seconds=15)

    @field_validator("lease_ttl")
    @classmethod
    def _ttl(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=3):
            raise fail(f"{value.total_seconds():g}s is too short for a lease; use 3s or more "
                       "(heartbeats come every lease_ttl / 3)")
        return value


class LogConfig(ConfigModel):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] | None = None  # None: console on a TTY, else json


class HttpConfig(ConfigModel):
    listen: str = "127.0.0.1:9464"

    @property
    def loopback(self) -> bool:
        """Whether `listen` is a loopback address (else /metrics is open to the network)."""
        host = self.listen.rpartition(":")[0].strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False  # a host name, or "" (every address)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise fail(f"{show(value)} is not HOST:PORT; use an address such as 127.0.0.1:9464")
        return value


class LwaConfig(ConfigModel):
    client_id: Text
    client_secret: Secret
    refresh_token: Secret
    token_url: Url = DEFAULT_TOKEN_URL


class AwsConfig(ConfigModel):
    access_key_id: Text
    secret_access_key: Secret
    role_arn: Text
    role_session_name: Text = "spd"
    region: str | None = None
    sts_endpoint: Url | None = None


class RateLimitConfig(ConfigModel):
    rate: float = Field(gt=0)  # requests per second
    burst: int | None = Field(default=None, ge=1)  # None: the catalog's burst


class AccountConfig(ConfigModel):
    endpoint: str
    marketplace_ids: UniqueTexts = []
    lwa: LwaConfig
    region: str = "us-east-1"  # always set by _derive_region; a default so no message calls it required
    aws: AwsConfig | None = None
    rate_limits: dict[str, RateLimitConfig] = {}
    default: bool = False

    @model_validator(mode="before")
    @classmethod
    def _derive_region(cls, data: Any) -> Any:
        # Always derived when left out, even from a missing or malformed endpoint: that endpoint is
        # the one error to report, not also a "missing required key region" the user never had to write.
        if isinstance(data, dict) and data.get("region") is None:
            endpoint = data.get("endpoint")
            return {**data, "region": _region_for(endpoint if isinstance(endpoint, str) else "")}
        return data

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if value in ENDPOINTS:
            return value
        if not value.startswith(("https://", "http://")):
            raise fail(f"{show(value)} is not an endpoint; {ENDPOINT_HINT}")
        return check_url(value)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return check_region(value)

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _known_operations(cls, value: Any) -> Any:
        for key in value if isinstance(value, dict) else ():
            _check_operation(key)
        return value

    @computed_field  # type: ignore[prop-decorator]
    @property
    def base_url(self) -> str:
        """The SP-API base URL the endpoint names, without a trailing slash."""
        return ENDPOINTS[self.endpoint][0] if self.endpoint in ENDPOINTS else self.endpoint


def check_region(value: str) -> str:
    """An AWS region name such as us-east-1 (a validation error otherwise)."""
    if not REGION_RE.fullmatch(value):
        raise fail(f"{show(value)} is not an AWS region; use one such as us-east-1")
    return value


def _region_for(endpoint: str) -> str:
    if endpoint in ENDPOINTS:
        return ENDPOINTS[endpoint][1]
    match = re.search(r"sellingpartnerapi-(na|eu|fe)\.", endpoint)
    return ENDPOINTS[match.group(1)][1] if match else "us-east-1"


def _check_operation(key: str) -> None:
    api, dot, op = key.partition(".")
    if not dot or not api or not op:
        raise fail(f"{show(key)} is not API.OPERATION; write it like ordersV0.getOrders", key)
    try:
        load_catalog().operation(api, op)
    except (SpdError, KeyError) as exc:
        raise fail(exc.args[0] if exc.args else str(exc), key) from None
