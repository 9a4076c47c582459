"""Requests that carry credentials, and bounded reads of whatever comes back.

Every request with a secret in it goes through `send_credentialed`: the LWA token request
(client secret, refresh token), every SP-API call (access token or Restricted Data Token — the
Tokens API included), and STS AssumeRole (through `refuse_redirects`, see spd.client.sigv4).
None of them follows a redirect: a 3xx is answered to the caller, which reports it, so a secret
never reaches a host it was not configured for, and a token another host hands out is never used.

Bodies are read up to a cap, so whatever a server sends, memory stays bounded: SP-API replies
up to MAX_RESPONSE_BYTES (Amazon's API Gateway caps payloads at 10 MB, so no real reply is
refused), LWA answers up to MAX_TOKEN_RESPONSE_BYTES. Report documents stream
(spd.sources.reports.document) and are bounded per row instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from spd.core.proxy import EnvProxies
from spd.core.http import read_capped

MAX_RESPONSE_BYTES = 10 * 2**20
MAX_TOKEN_RESPONSE_BYTES = 64 * 2**10
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class RedirectRefused(aiohttp.ClientError):
    """A request that carries a credential was answered with a redirect (never followed)."""

    def __init__(self, status: int, location: str | None) -> None:
        super().__init__(f"HTTP {status} redirect to {location or 'nowhere'} (not followed: the "
                         "request carries credentials)")
        self.status = status
        self.location = location


@dataclass
class Reply:
    """A whole, bounded reply: status, headers and body bytes."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def location(self) -> str | None:
        """Where a redirect points, without any user:password in it."""
        return public_location(self.headers.get("Location"))


def public_location(location: str | None) -> str | None:
    """A Location header as messages show it: no credentials, no query (it may hold a token)."""
    if not location:
        return None
    try:
        url = URL(location)
    except ValueError:
        return "an invalid URL"
    return str(url.with_user(None).with_query(None).with_fragment(None))


async def send_credentialed(session: aiohttp.ClientSession, method: str, url: str | URL, *,
                            limit: int = MAX_RESPONSE_BYTES, proxies: EnvProxies | None = None,
                            **kwargs: Any) -> Reply:
    """Sends a request that carries a credential: redirects are never followed, the body is
    read up to `limit` (BodyTooLarge beyond), through the environment's proxy for its host when
    `proxies` is given. Transport errors propagate as aiohttp raises them."""
    if proxies is not None:
        kwargs["proxy"] = proxies.proxy_for(url if isinstance(url, URL) else URL(url))
    async with session.request(method, url, allow_redirects=False, **kwargs) as response:
        if response.status in REDIRECTS:
            return Reply(response.status, response.headers, b"")  # the body is of no use
        return Reply(response.status, response.headers, await read_capped(response, limit))


async def _refuse(session: Any, context: Any, params: aiohttp.TraceRequestRedirectParams) -> None:
    params.response.close()
    raise RedirectRefused(params.response.status, public_location(params.response.headers.get("Location")))


def refuse_redirects() -> aiohttp.TraceConfig:
    """A trace config that aborts a session's request before it follows any redirect (for
    sessions spd does not call itself, such as botocore's for STS)."""
    config = aiohttp.TraceConfig()
    config.on_request_redirect.append(_refuse)
    config.freeze()
    return config
