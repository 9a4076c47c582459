"""Report documents: GETs of pre-signed URLs, without SP-API auth, retried like any GET; whole
(at most MAX_RESPONSE_BYTES) or streamed in bounded memory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import structlog
from yarl import URL

from spd.client import encode as rsp
from spd.client import transport
from spd.client.policy import RetryPolicy
from spd.core.proxy import EnvProxies
from spd.core.errors import ApiError
from spd.core.http import BodyTooLarge, read_capped

log = structlog.get_logger(__name__)


@dataclass
class Download:
    """An open document download (`SpClient.download_stream`): headers now, body in chunks."""

    status: int
    headers: dict[str, str]
    content_type: str | None
    _response: aiohttp.ClientResponse

    @property
    def size(self) -> int | None:
        """Bytes the server says the body has (Content-Length), if it says."""
        length = self.headers.get("Content-Length") or self.headers.get("content-length")
        return int(length) if length and length.isdigit() else None

    async def chunks(self, size: int = 64 * 1024) -> AsyncIterator[bytes]:
        """The body as it arrives; a broken connection is a retriable ApiError."""
        try:
            async for chunk in self._response.content.iter_chunked(size):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(f"download interrupted: {rsp.describe(exc)}", retriable=True) from None


class DocumentDownloads:
    """The document downloads of SpClient, over its session, timeout, attempts and backoff."""

    user_agent: str
    retry: RetryPolicy
    proxies: EnvProxies
    _timeout: aiohttp.ClientTimeout

    @property
    def session(self) -> aiohttp.ClientSession:
        raise NotImplementedError

    def _backoff(self, attempt: int) -> float:
        raise NotImplementedError

    async def download(self, url: str) -> bytes:
        """GET a pre-signed URL (report documents): no SP-API auth, retried like any GET; at most
        MAX_RESPONSE_BYTES (documents of any size stream through `download_stream`)."""
        # no total limit for big documents; a stalled read still times out
        timeout = aiohttp.ClientTimeout(sock_connect=15.0, sock_read=self._timeout.total)
        headers = {"User-Agent": self.user_agent}
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                target = URL(url, encoded=True)
                async with self.session.get(
                    target, headers=headers, timeout=timeout, proxy=self.proxies.proxy_for(target)
                ) as r:
                    data = await read_capped(r, transport.MAX_RESPONSE_BYTES)
                    if r.status < 400:
                        return data
                    if r.status not in rsp.RETRY_STATUSES or attempt == self.retry.max_attempts:
                        raise ApiError(
                            f"download: HTTP {r.status} from the document URL",
                            status=r.status, retriable=r.status in rsp.RETRY_STATUSES,
                        )  # fmt: skip
                    reason = f"HTTP {r.status}"
            except BodyTooLarge as exc:
                raise ApiError(f"download: {exc}; use download_stream") from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = rsp.describe(exc)
                if attempt == self.retry.max_attempts:
                    raise ApiError(f"download failed: {reason}", retriable=True) from None
            delay = self._backoff(attempt)
            log.warning("request_retry", operation="download", attempt=attempt, reason=reason,
                        delay=round(delay, 3))  # fmt: skip
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def download_stream(self, url: str) -> AsyncIterator[Download]:
        """Like `download`, but the body streams (`async for c in d.chunks()`) in bounded memory.
        Opening is retried like any GET; a failure mid-body is not (the caller resumes)."""
        timeout = aiohttp.ClientTimeout(sock_connect=15.0, sock_read=self._timeout.total)
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                target = URL(url, encoded=True)
                r = await self.session.get(target, timeout=timeout,
                                           proxy=self.proxies.proxy_for(target),
                                           headers={"User-Agent": self.user_agent})
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = rsp.describe(exc)
                if attempt == self.retry.max_attempts:
                    raise ApiError(f"download failed: {reason}", retriable=True) from None
            else:
                if r.status < 400:
                    try:
                        yield Download(r.status, rsp.plain_headers(r.headers),
                                       r.headers.get("Content-Type"), r)
                    finally:  # a body left unread must not go back to the pool
                        r.release() if r.content.at_eof() else r.close()
                    return
                r.release()
                retriable = r.status in rsp.RETRY_STATUSES
                if not retriable or attempt == self.retry.max_attempts:
                    raise ApiError(f"download: HTTP {r.status} from the document URL",
                                   status=r.status, retriable=retriable)
                reason = f"HTTP {r.status}"
            delay = self._backoff(attempt)
            log.warning("request_retry", operation="download", attempt=attempt, reason=reason,
                        delay=round(delay, 3))  # fmt: skip
            await asyncio.sleep(delay)
