"""Restricted Data Tokens: the Tokens API's createRestrictedDataToken, cached until expiresIn.

An RDT stands in for the LWA token (`x-amz-access-token`) on operations that return personal
data. It is asked for the exact method and path of the request; for getOrders that is the
generic `/orders/v0/orders`, so one token serves every page.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from spd.client.data_elements import ROLES
from spd.client.singleflight import SingleFlight
from spd.core.errors import ApiError, AuthError
from spd.core.lazylog import get_logger

log = get_logger(__name__)

TOKENS_API = "tokens_2021-03-01"
CREATE_RDT = "createRestrictedDataToken"
MAX_MARGIN = 60.0  # stop using an RDT up to a minute before it expires

Key = tuple[str, str, str, tuple[str, ...]]  # account, method, path, data elements
CreateCall = Callable[[str, dict[str, Any]], Awaitable[Any]]  # (account, body) -> Response


@dataclass
class _Rdt:
    value: str
    expires_at: float  # monotonic


class RestrictedTokens:
    """RDTs per (account, method, path, data elements), requested once however many wait."""

    def __init__(self, create: CreateCall, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._create = create
        self._clock = clock
        self._cache: dict[Key, _Rdt] = {}
        self._flights: SingleFlight[str] = SingleFlight()
        self.requested = 0  # createRestrictedDataToken calls, for tests and metrics

    async def token(self, name: str, method: str, path: str, elements: tuple[str, ...]) -> str:
        """An RDT valid for `method path` with `elements` (empty: an operation without them)."""
        key = (name, method.upper(), path, elements)
        cached = self._cache.get(key)
        if cached is not None and self._clock() < cached.expires_at:
            return cached.value
        return await self._flights.run(key, lambda: self._request(key))

    def invalidate(self, name: str, token: str) -> bool:
        """Forget `token` if it is a cached RDT of `name`; True when it was one."""
        for key, rdt in list(self._cache.items()):
            if key[0] == name and rdt.value == token:
                del self._cache[key]
                return True
        return False

    def close(self) -> None:
        self._flights.close()

    async def _request(self, key: Key) -> str:
        name, method, path, elements = key
        resource: dict[str, Any] = {"method": method, "path": path}
        if elements:  # only Orders operations take dataElements; others must omit them
            resource["dataElements"] = list(elements)
        self.requested += 1
        try:
            resp = await self._create(name, {"restrictedResources": [resource]})
        except ApiError as exc:
            raise rdt_error(name, method, path, elements, exc) from None
        body = resp.body if isinstance(resp.body, dict) else {}
        token = body.get("restrictedDataToken")
        if not isinstance(token, str) or not token:
            raise ApiError(f"{TOKENS_API}.{CREATE_RDT}: malformed response, no "
                           "restrictedDataToken", retriable=True)
        try:
            expires_in = float(body.get("expiresIn", 3600))
        except (TypeError, ValueError):
            expires_in = 3600.0
        margin = min(MAX_MARGIN, expires_in / 10)
        self._cache[key] = _Rdt(token, self._clock() + expires_in - margin)
        log.info("restricted_token_issued", account=name, method=method, path=path,
                 elements=list(elements), expires_in=expires_in)
        return token


def rdt_error(name: str, method: str, path: str, elements: tuple[str, ...],
              exc: ApiError) -> Exception:
    """A refusal because the application lacks a restricted role names the role to request."""
    text = " ".join(str(e.get("message", "")) for e in exc.errors) or exc.message
    # "Application does not have access to one or more requested data elements: [...]", or
    # "Application do not have access to some or all requested resource"
    if exc.status in (400, 403) and "not have access" in text.lower():
        wanted = [e for e in elements if e.lower() in text.lower()] or list(elements)
        roles = sorted({ROLES[e] for e in wanted if e in ROLES})
        role = f"the {' and '.join(roles)} role" if roles else "the restricted role it needs"
        what = ", ".join(wanted) if wanted else f"{method} {path}"
        return AuthError(f"account {name}: the application may not read restricted data "
                         f"({what}); request {role} for the app, then re-authorize the "
                         "selling partner")
    exc.message = f"account {name}: no restricted data token for {method} {path}: {exc.message}"
    return exc
