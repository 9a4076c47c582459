"""Helpers every simulated operation shares: Amazon-style errors, timestamps, next tokens."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
from multidict import MultiMapping

UTC = timezone.utc

BAD_INPUT = "The input you have submitted is not valid. Please check your input and try again."
LAG_MESSAGE = (
    "The input you have submitted is not valid. Note that the error may be due to a systematic "
    "delay in data retrieval. The most updated data is 2 minutes after an order is created or "
    "last updated. If you set the CreatedBefore or LastUpdatedBefore parameters, please provide "
    "a date that is at least 2 minutes before current time and try again."
)
UNDECODABLE_TOKEN = (
    "We could not decode your NextToken. Possible reasons include: a transmission error, "
    "improper quoting or a truncation problem."
)
# Prepended to every token so that real tokens carry '+' and '/' (and usually '='), the
# characters that break clients which forget to URL-encode query values.
_TOKEN_MAGIC = b"\xfb\xff\xbf"
_MAC_LEN = 12


@dataclass
class Call:
    """One SP-API request as an operation handler sees it."""

    operation: str
    method: str
    path: str
    query: MultiMapping[str]
    body: Any
    now: float  # the simulator's clock, epoch seconds
    grant: Any  # lwa.Grant of the access token, or None when auth is off
    state: Any  # app.SimState


class ApiReject(Exception):
    """An SP-API error response: status plus one entry of Amazon's `errors` array."""

    def __init__(self, status: int, code: str, message: str, details: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        """The JSON document Amazon returns for this error."""
        return error_body(self.code, self.message, self.details)


def error_body(code: str, message: str, details: str = "") -> dict[str, Any]:
    """Amazon's error document: {"errors": [{"code", "message", "details"}]}."""
    return {"errors": [{"code": code, "message": message, "details": details}]}


def invalid(message: str = BAD_INPUT, details: str = "", code: str = "InvalidInput") -> ApiReject:
    """A 400 InvalidInput rejection."""
    return ApiReject(400, code, message, details)


def iso(epoch: float) -> str:
    """UTC RFC 3339 with Z; whole seconds unless the value has a fraction."""
    if epoch == int(epoch):
        return _iso_second(int(epoch))
    dt = datetime.fromtimestamp(epoch, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@functools.lru_cache(maxsize=1 << 16)
def _iso_second(epoch: int) -> str:
    # Rendering pages formats the same few seconds over and over: cache them.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def to_epoch(dt: datetime) -> float:
    """Seconds since the epoch of an aware (or UTC-naive) datetime."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_time(name: str, value: str) -> float:
    """Parse an ISO 8601 query value (zone optional, UTC assumed) into epoch seconds."""
    text = value.strip()
    if not text or len(text) < 10:
        raise invalid(BAD_INPUT, f"Invalid date-time field(s) [{name}].")
    try:
        dt = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise invalid(BAD_INPUT, f"Invalid date-time field(s) [{name}].") from None
    return to_epoch(dt)


def floor_second(epoch: float) -> int:
    """The whole second at or before `epoch`."""
    return math.floor(epoch)


def query_list(query: MultiMapping[str], name: str) -> list[str]:
    """An array parameter sent either comma-separated (csv) or repeated (multi)."""
    values: list[str] = []
    for raw in query.getall(name, []):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return values


def query_int(query: MultiMapping[str], name: str, low: int, high: int, default: int) -> int:
    """An integer parameter within [low, high]; 400 otherwise."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise invalid(BAD_INPUT, f"{name} must be an integer from {low} to {high}; got {raw!r}.")
    return value


def check_enum(name: str, values: Iterable[str], allowed: Iterable[str]) -> None:
    """400 when any value is outside the allowed set."""
    allowed_set = set(allowed)
    bad = [v for v in values if v not in allowed_set]
    if bad:
        raise invalid(
            BAD_INPUT, f"Invalid {name} value(s) {bad}; allowed: {', '.join(sorted(allowed_set))}."
        )


class TokenCodec:
    """Opaque, tamper-evident, expiring next tokens that carry the query and the position."""

    def __init__(self, seed: int) -> None:
        self._key = hashlib.sha256(f"spd-sim-token:{seed}".encode()).digest()

    def encode(self, payload: dict[str, Any]) -> str:
        """Sign and encode; the result uses the standard base64 alphabet, padding included."""
        data = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        mac = hmac.new(self._key, data, hashlib.sha256).digest()[:_MAC_LEN]
        return base64.b64encode(_TOKEN_MAGIC + mac + data).decode("ascii")

    def decode(self, token: str, *, op: str, now: float, ttl: float, name: str) -> dict[str, Any]:
        """Verify and decode a token issued for `op`; 400 InvalidInput when bad or expired."""
        try:
            raw = base64.b64decode(token.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise invalid(UNDECODABLE_TOKEN) from None
        head = len(_TOKEN_MAGIC)
        mac, data = raw[head : head + _MAC_LEN], raw[head + _MAC_LEN :]
        good = hmac.new(self._key, data, hashlib.sha256).digest()[:_MAC_LEN]
        if not raw.startswith(_TOKEN_MAGIC) or not hmac.compare_digest(mac, good):
            raise invalid(UNDECODABLE_TOKEN)
        payload: dict[str, Any] = orjson.loads(data)
        if payload.get("op") != op:
            raise invalid(f"Invalid {name}.", f"The {name} was issued for another operation.")
        if now - float(payload["iat"]) > ttl:
            raise invalid(
                f"Invalid {name}.",
                f"The {name} has expired; repeat the request without {name} to start over.",
            )
        return payload
