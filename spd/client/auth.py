"""Login With Amazon: access tokens per account, cached, refreshed one at a time.

`refresh_token` grant for ordinary operations, `client_credentials` with a scope for grantless
ones. Tokens and secrets never reach a log event or an error message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import structlog

from spd.client.encode import describe, never_reached
from spd.client.gate import FailureGate
from spd.core.proxy import EnvProxies
from spd.client.singleflight import SingleFlight
from spd.client.transport import (MAX_TOKEN_RESPONSE_BYTES, REDIRECTS, RedirectRefused,
                                  send_credentialed)
from spd.core.http import BodyTooLarge
from spd.core.errors import AuthError, ConfigError
from spd.core.typing import Account

if TYPE_CHECKING:  # imported when an account has `aws` (aioboto3)
    from spd.client.sigv4 import SigV4Signer

log = structlog.get_logger(__name__)

EXPIRY_MARGIN = 60.0  # use a token until 60 s before it expires
LWA_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)

_KNOWN_ERRORS = {
    "invalid_client": "LWA rejected the client id/secret (invalid_client)",
    "invalid_grant": "LWA rejected the refresh token: refresh token revoked or issued for "
    "another application (invalid_grant)",
    "unauthorized_client": "LWA says the application may not use this grant "
    "(unauthorized_client)",
    "invalid_scope": "LWA rejected the scope of a grantless operation (invalid_scope)",
}


@dataclass
class _Token:
    value: str
    expires_at: float  # on the monotonic clock


class LwaAuth:
    """Access-token cache with single-flight refresh per (account, scope)."""

    def __init__(
        self,
        session_getter: Callable[[], aiohttp.ClientSession],
        *,
        proxies: EnvProxies | None = None,
        clock: Callable[[], float] = time.monotonic,
        margin: float = EXPIRY_MARGIN,
        connect_timeout: float | None = None,
    ) -> None:
        self._session = session_getter
        self._connect_timeout = connect_timeout  # caps LWA_TIMEOUT's connect (one-shot commands)
        self._proxies = proxies
        self._clock = clock
        self._margin = margin
        self._cache: dict[tuple[str, str | None], _Token] = {}
        self._flights: SingleFlight[str] = SingleFlight()
        self.refreshes = 0  # token requests sent, for tests and metrics
        self.gate = FailureGate(clock=clock)

    async def token(self, name: str, account: Account, scope: str | None = None) -> str:
        """A valid access token for `account` (grantless when `scope` is given)."""
        key = (name, scope)
        cached = self._cache.get(key)
        if cached is not None and cached.expires_at > self._clock():
            return cached.value
        self.gate.check(key)
        return await self._flights.run(key, lambda: self._refresh(key, account))

    def invalidate(self, name: str, token: str, scope: str | None = None) -> None:
        """Forget `token` if it is still the cached one (SP-API said it expired)."""
        cached = self._cache.get((name, scope))
        if cached is not None and cached.value == token:
            del self._cache[(name, scope)]

    def close(self) -> None:
        """Cancel refreshes in flight."""
        self._flights.close()

    async def _refresh(self, key: tuple[str, str | None], account: Account) -> str:
        name, scope = key
        lwa = account.lwa
        form = {
            "client_id": lwa.client_id,
            "client_secret": lwa.client_secret.get_secret_value(),
        }
        if scope is None:
            form |= {
                "grant_type": "refresh_token",
                "refresh_token": lwa.refresh_token.get_secret_value(),
            }
        else:
            form |= {"grant_type": "client_credentials", "scope": scope}
        self.refreshes += 1
        status, payload = await self._post(name, lwa.token_url, form)
        try:
            token, expires_in = _parse_grant(name, status, payload)
        except AuthError as exc:
            if not exc.retriable:
                self.gate.failed(key, exc)
            raise
        self.gate.passed(key)
        lifetime = expires_in - self._margin if expires_in > 2 * self._margin else expires_in / 2
        self._cache[key] = _Token(token, self._clock() + lifetime)
        log.info(
            "token_refreshed",
            account=name,
            grant=form["grant_type"],
            scope=scope,
            expires_in=expires_in,
        )
        return token

    def _timeout(self) -> aiohttp.ClientTimeout:
        """LWA_TIMEOUT, its connect no longer than the client's."""
        connect = LWA_TIMEOUT.sock_connect
        if self._connect_timeout is None or (connect is not None and connect <= self._connect_timeout):
            return LWA_TIMEOUT
        return aiohttp.ClientTimeout(total=LWA_TIMEOUT.total, sock_connect=self._connect_timeout)

    async def _post(self, name: str, url: str, form: dict[str, str]) -> tuple[int, Any]:
        try:
            reply = await send_credentialed(
                self._session(), "POST", url, data=form, timeout=self._timeout(),
                headers={"Accept": "application/json"}, limit=MAX_TOKEN_RESPONSE_BYTES,
                proxies=self._proxies)
        except BodyTooLarge as exc:
            raise AuthError(f"account {name}: LWA token endpoint {url}: {exc}; refused") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AuthError(
                f"account {name}: LWA token endpoint {url} unreachable ({describe(exc, url)})",
                retriable=True, unreachable=never_reached(exc),
            ) from None
        if reply.status in REDIRECTS:
            raise AuthError(f"account {name}: LWA token endpoint {url} answered "
                            f"{RedirectRefused(reply.status, reply.location)}; check lwa.token_url")
        try:
            return reply.status, orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            return reply.status, None


def _parse_grant(name: str, status: int, payload: Any) -> tuple[str, float]:
    """Access token and lifetime from an LWA answer, or an AuthError that says what to fix."""
    if status == 200 and isinstance(payload, dict) and payload.get("access_token"):
        try:
            expires_in = float(payload.get("expires_in", 3600))
        except (TypeError, ValueError):
            expires_in = 3600.0
        return str(payload["access_token"]), expires_in
    code = payload.get("error") if isinstance(payload, dict) else None
    if status >= 500 or status == 429 or (status == 200 and code is None):
        raise AuthError(
            f"account {name}: LWA token endpoint answered HTTP {status}",
            retriable=True,
        )
    if code in _KNOWN_ERRORS:
        raise AuthError(f"account {name}: {_KNOWN_ERRORS[code]}")
    description = payload.get("error_description") if isinstance(payload, dict) else None
    detail = f"{code}: {description}" if description else str(code or "no error code")
    raise AuthError(f"account {name}: LWA refused the token request (HTTP {status} {detail})")


def make_signer(accounts: Mapping[str, Account]) -> SigV4Signer | None:
    """A SigV4Signer when any account has `aws` (boto is imported only then), else None."""
    names = [n for n, a in accounts.items() if getattr(a, "aws", None) is not None]
    if not names:
        return None
    try:
        from spd.client.sigv4 import SigV4Signer
    except ImportError:
        raise ConfigError(f"accounts.{names[0]}.aws: SigV4 signing needs aioboto3; install "
                          "spd[aws] (pip install 'spd[aws]') or remove aws") from None
    return SigV4Signer()
