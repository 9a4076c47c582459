"""The SP-API wire format: request encoding (path, query, headers, JSON body) and responses.

Everything is percent-encoded the way SigV4 wants it (RFC 3986 unreserved characters only), so
the URL we send is also the canonical one a signer would use.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import orjson

from spd.core.times import rfc3339
from spd.catalog.model import Operation
from spd.core.errors import ApiError, UsageError
from spd.core.retry import retry_after as parse_retry_after

_PATH_PARAM = re.compile(r"\{([^{}]+)\}")
_UNRESERVED = "-_.~"
_RESERVED_ASCII = re.compile(r"[^A-Za-z0-9\-_.~]")
_ESCAPED_ASCII = {chr(c): f"%{c:02X}" for c in range(128)}


@dataclass
class EncodedRequest:
    """The parts of a request built from an operation and its parameter values."""

    path: str
    query: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def format_value(value: Any) -> str:
    """One scalar as SP-API expects it: booleans lower-case, datetimes ISO 8601 UTC with Z."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return format_value(value.value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


def fill_path(
    template: str, values: Mapping[str, Any], *, label: str, greedy: Iterable[str] = ()
) -> str:
    """Substitute `{name}` placeholders with URL-encoded values; UsageError when one is missing.

    `greedy` names parameters whose values may span segments: their "/" stays unescaped.
    """
    missing = [n for n in _PATH_PARAM.findall(template) if values.get(n) is None]
    if missing:
        names = ", ".join(missing)
        raise UsageError(f"{label}: missing path parameter {names}; it is required")
    greedy = frozenset(greedy)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        safe = _UNRESERVED + "/" if name in greedy else _UNRESERVED
        return quote(format_value(values[name]), safe=safe)

    return _PATH_PARAM.sub(substitute, template)


def encode_query(items: Iterable[tuple[str, Any, str | None]]) -> str:
    """Encode (name, value, collection_format) triples; arrays csv unless "multi"; None dropped."""
    pairs: list[tuple[str, str]] = []
    for name, value, collection_format in items:
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            values = [format_value(v) for v in value if v is not None]
            if not values:
                continue
            if collection_format == "multi":
                pairs.extend((name, v) for v in values)
            else:
                pairs.append((name, _join(values, collection_format)))
        else:
            pairs.append((name, format_value(value)))
    return "&".join(f"{quote_unreserved(n)}={quote_unreserved(v)}" for n, v in pairs)


def quote_unreserved(text: str) -> str:
    """`quote(text, safe="-_.~")`: all but RFC 3986's unreserved characters percent-encoded.
    ASCII text (next tokens: hundreds of characters, a few of them `+`, `/` or `=`) is escaped
    only where it needs it, not byte by byte in Python as urllib does once one byte needs it."""
    if not text.isascii():
        return quote(text, safe=_UNRESERVED)
    return _RESERVED_ASCII.sub(_escape_ascii, text)


def _escape_ascii(match: re.Match[str]) -> str:
    return _ESCAPED_ASCII[match.group()]


def _join(values: list[str], collection_format: str | None) -> str:
    separator = {"ssv": " ", "tsv": "\t", "pipes": "|"}.get(collection_format or "csv", ",")
    return separator.join(values)


def encode_body(body: Any) -> bytes | None:
    """JSON body bytes via orjson; bytes and str pass through; None means no body."""
    if body is None:
        return None
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    return orjson.dumps(body, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z)


def encode_operation(op: Operation, params: Mapping[str, Any] | None, body: Any) -> EncodedRequest:
    """Split `params` by the catalog's parameter locations and encode each part.

    Names the catalog does not know go to the query string (Amazon rejects them if wrong).
    """
    params = dict(params or {})
    by_name = {p.name: p for p in op.params}
    path_values: dict[str, Any] = {}
    query: list[tuple[str, Any, str | None]] = []
    headers: dict[str, str] = {}
    for name, value in params.items():
        param = by_name.get(name)
        location = param.location if param else "query"
        if location == "path":
            path_values[name] = value
        elif location == "header":
            if value is not None:
                headers[name] = format_value(value)
        elif location == "body":
            body = value if body is None else body
        else:
            query.append((name, value, _collection_format(param)))
    greedy = [p.name for p in op.params if getattr(p, "greedy", False)]
    path = fill_path(op.path, path_values, label=f"{op.api}.{op.id}", greedy=greedy)
    return EncodedRequest(path, encode_query(query), headers, encode_body(body))


def _collection_format(param: Any) -> str | None:
    if param is None:
        return None
    return getattr(param, "collection_format", None)


def encode_raw_query(query: Mapping[str, Any] | None, op: Operation | None = None) -> str:
    """A raw request's query dict, with collection formats from the matched operation if any."""
    by_name = {p.name: p for p in op.params} if op is not None else {}
    items = [(k, v, _collection_format(by_name.get(k))) for k, v in (query or {}).items()]
    return encode_query(items)


# --- responses -------------------------------------------------------------------------------

RETRY_STATUSES = frozenset({500, 502, 503, 504})
_TOKEN_HINTS = ("expired", "invalid", "revoked", "malformed", "denied")


def plain_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Response headers as a plain dict (the last value wins for repeated names)."""
    return {str(k): v for k, v in headers.items()}


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup in a plain dict."""
    lname = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lname), None)


def parse_body(raw: bytes, content_type: str, *, strict: bool) -> Any:
    """JSON via orjson; text when not JSON; None when empty.

    `strict`: a body that claims to be JSON but does not parse (truncated) raises ValueError.
    """
    if not raw:
        return None
    looks_json = "json" in content_type.lower() or raw.lstrip()[:1] in (b"{", b"[")
    if looks_json:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if strict:
                raise ValueError(f"response body is not valid JSON ({len(raw)} bytes: {exc})")
    return raw.decode("utf-8", "replace")


def extract_errors(body: Any) -> list[dict[str, Any]]:
    """Amazon's `errors` array from an error body (empty when there is none)."""
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return [e for e in body["errors"] if isinstance(e, dict)]
    return []


def token_rejected(status: int, body: Any) -> bool:
    """True for a 401, or a 403 whose body says the access token expired or is invalid."""
    if status == 401:
        return True
    if status != 403:
        return False
    errors = extract_errors(body)
    texts = [" ".join(str(e.get(k, "")) for k in ("code", "message", "details")) for e in errors]
    if not errors and isinstance(body, str):
        texts = [body]
    return any("token" in t.lower() and any(h in t.lower() for h in _TOKEN_HINTS) for t in texts)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    return parse_retry_after(header(headers, "Retry-After"))


def header_rate(value: str | None) -> float | None:
    """The rate from `x-amzn-RateLimit-Limit`, or None when absent or unusable."""
    if not value:
        return None
    try:
        rate = float(value.split(",")[0].strip())
    except ValueError:
        return None
    return rate if rate > 0 and rate != float("inf") else None


def api_error(label: str, resp: Any, *, attempts: int = 1, retriable: bool = False) -> ApiError:
    """ApiError `<label>: HTTP <status> <code>: <message>` carrying Amazon's `errors`."""
    errors = extract_errors(resp.body)
    text = f"{label}: HTTP {resp.status}"
    if errors:
        first = errors[0]
        if first.get("code"):
            text += f" {first['code']}"
        if first.get("message"):
            text += f": {first['message']}"
        if first.get("details"):
            text += f" ({first['details']})"
        if len(errors) > 1:
            text += f" (+{len(errors) - 1} more)"
    elif isinstance(resp.body, str) and resp.body.strip():
        text += f": {resp.body.strip()[:200]}"
    if attempts > 1:
        text += f" (gave up after {attempts} attempts)"
    return ApiError(
        " ".join(text.split()),
        status=resp.status,
        errors=errors,
        body=resp.body,
        request_id=resp.request_id,
        retriable=retriable,
    )


def never_reached(exc: BaseException) -> bool:
    """The peer was never reached, so the request never left: refused, no such host, TLS, or the
    TCP handshake never completed within sock_connect (aiohttp's ConnectionTimeoutError: SYNs
    dropped by a firewall, a wrong proxy, a black-holed address). As safe to retry as any unsent
    request, and to a person waiting the same answer: it cannot be reached (RetryPolicy)."""
    return isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))


def describe(exc: BaseException, url: str | None = None) -> str:
    """A one-line reason for a transport failure, in words rather than aiohttp's (`Cannot connect
    to host H:P ssl:default [Connect call failed ('H', P)]`, which names TLS on an http:// URL
    and quotes a Python tuple): `cannot connect to H:P: connection refused`, `cannot resolve H:
    name or service not known`, `cannot connect to H:P: connection timed out`, `H:P: no answer within the
    timeout`. `url`, where known, names the peer of a timeout (its exception does not)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {exc.host}: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"cannot connect to {_peer(exc.host, exc.port)}: TLS certificate: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {_peer(exc.host, exc.port)}: {_os_reason(exc.os_error)}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return f"cannot connect to {_url_peer(url)}: connection timed out" if url else "connection timed out"
    if isinstance(exc, TimeoutError):  # the total timeout, or a read (aiohttp.SocketTimeoutError)
        return f"{_url_peer(url)}: no answer within the timeout" if url else "no answer within the timeout"
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


_ERRNO = re.compile(r"\[Errno (-?\d+)\]")


def _os_reason(err: OSError | None) -> str:
    """An OSError's reason in lower case: `connection refused`, not `Connect call failed (...)`.
    asyncio words a refused connection as its own text with the errno beside it, and one failure
    per address of a host (`Multiple exceptions: [Errno 111] ..., [Errno 111] ...`)."""
    if err is None:
        return "failed"
    if isinstance(err, socket.gaierror) and err.strerror:  # its errno is not an OS errno
        return err.strerror.lower()
    codes = {err.errno} if err.errno else {int(n) for n in _ERRNO.findall(str(err))}
    if len(codes) == 1:
        return os.strerror(codes.pop()).lower()
    return " ".join((err.strerror or str(err) or type(err).__name__).split())


def _peer(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port is not None else host


def _url_peer(url: str) -> str:
    parsed = urlsplit(url)
    return _peer(parsed.hostname or url, parsed.port or {"http": 80, "https": 443}.get(parsed.scheme))
