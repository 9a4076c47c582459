"""Bounded reads of HTTP bodies: whatever a server sends, memory stays bounded."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only the types: spd.sources' report formats use format_size without aiohttp
    import aiohttp

_CHUNK = 64 * 2**10


class BodyTooLarge(Exception):
    """A reply body exceeded its cap; nothing more of it was read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body is larger than {format_size(limit)}")
        self.limit = limit


def format_size(size: int) -> str:
    """`16 MiB`, `64 KiB`, or bytes."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or BodyTooLarge as soon as it is known to exceed `limit` bytes."""
    length = response.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(limit)
    if length is not None and response.headers.get("Content-Encoding", "identity") == "identity":
        # The parser reads exactly Content-Length bytes of an uncompressed body: one read, no
        # copies (a compressed body may inflate beyond its length, so it is counted chunk by chunk).
        return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)


async def discard_body(response: aiohttp.ClientResponse, limit: int) -> None:
    """Reads and drops a body nobody needs, up to `limit` bytes so the connection can be
    reused; a longer one closes the connection instead of being read."""
    try:
        await read_capped(response, limit)
    except BodyTooLarge:
        response.close()
