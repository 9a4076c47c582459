"""SpClient: every SP-API request goes bucket → auth → sign → send → parse → retry.

One aiohttp session per client (proxy variables honoured, looked up once per host: see
spd.core.proxy), one token bucket per (account, operation), LWA tokens from `auth.LwaAuth`.
429s drain the bucket and retry; 5xx, timeouts and dropped connections retry with full-jitter
backoff only when the request is idempotent. How many attempts, and how soon an endpoint that
cannot be reached at all is given up, is the caller's RetryPolicy (spd.client.policy).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import structlog
from yarl import URL

from spd import __version__
from spd.client import encode as rsp
from spd.catalog.model import Catalog, Operation, load_catalog
from spd.client.auth import LwaAuth, make_signer
from spd.client.documents import DocumentDownloads
from spd.client.observe import QuotaWait, current_wait, quota_wait
from spd.core.proxy import EnvProxies
from spd.client.encode import encode_body, encode_operation, encode_raw_query
from spd.client.data_elements import check_elements
from spd.client.policy import DAEMON, RetryPolicy
from spd.client.rdt import CREATE_RDT, TOKENS_API, RestrictedTokens
from spd.client import transport
from spd.client.transport import REDIRECTS, RedirectRefused, public_location, send_credentialed
from spd.core.http import BodyTooLarge
from spd.core.retry import Backoff
from spd.client.ratelimit import (
    DEFAULT_BURST,
    DEFAULT_GUARD,
    DEFAULT_RATE,
    QuotaJournal,
    SavedBuckets,
    TokenBucket,
    initial_limits,
)
from spd.core.errors import ApiError, AuthError, SpdError, UsageError
from spd.core.typing import Account

log = structlog.get_logger(__name__)

USER_AGENT = f"spd/{__version__} (Language=Python)"
RATE_HEADER = "x-amzn-RateLimit-Limit"
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})
RAW_BUCKET = "raw"
# SP-API requests on the wire at once. Beyond it a request waits here rather than in aiohttp's
# connection pool, whose wait would count against its timeout: thousands of pollers due at once
# would otherwise time out before sending. The pool's connections beyond this serve what takes no
# slot: LWA token exchanges and report document downloads. A Restricted Data Token is an SP-API
# call (Tokens API createRestrictedDataToken) and takes a slot like any other; the request that
# needs it fetches it before taking its own (acquire_to_send), so it never waits on a slot it holds.
MAX_IN_FLIGHT = 96
POOL_SIZE = 128
# Reads the bytes of a successful answer (a page read without building its objects), or None.
Decode = Callable[[bytes], Any]


@dataclass
class Response:
    """A parsed SP-API answer: body is the JSON value, text when not JSON, None when empty
    (or what the caller's `decode` made of a successful answer)."""

    status: int
    headers: dict[str, str]
    body: Any
    request_id: str | None = None


@dataclass
class _Request:
    name: str  # account name
    account: Account
    label: str  # "ordersV0.getOrders" or "GET /path" for raw requests
    method: str
    url: str  # fully percent-encoded
    headers: dict[str, str]
    body: bytes | None
    bucket: TokenBucket
    idempotent: bool
    op: Operation | None = None
    scope: str | None = None  # grantless LWA scope
    restricted: tuple[str, ...] | None = None  # data elements: use a Restricted Data Token
    path: str = ""  # the encoded path, what an RDT is asked for
    decode: Decode | None = None  # reads a successful answer's body instead of orjson


class _Transient(Exception):
    """An attempt failed before an HTTP status could be trusted (network, timeout, bad body)."""

    def __init__(self, reason: str, *, unsent: bool = False, unreachable: bool = False,
                 cause: Exception | None = None):
        super().__init__(reason)
        self.reason = reason
        self.unsent = unsent  # the request never left: safe to retry whatever the method
        self.unreachable = unreachable  # refused, no such host, connect timeout: RetryPolicy.connect_attempts
        self.cause = cause
        self.request_id: str | None = None


class SpClient(DocumentDownloads):
    """The SP-API client of pollers, jobs and the CLI; `async with` it or start()/close()."""

    def __init__(
        self,
        accounts: Mapping[str, Account],
        catalog: Catalog | None,
        *,
        session: aiohttp.ClientSession | None = None,
        user_agent: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float | None = None,
        retry: RetryPolicy = DAEMON,
        guard: float = DEFAULT_GUARD,
        journal: QuotaJournal | None = None,
    ) -> None:
        self._accounts = accounts
        self._catalog = catalog
        self._session = session
        self._owns_session = session is None
        self.user_agent = user_agent or USER_AGENT
        if connect_timeout is None:  # the policy's: a person waiting gives up sooner
            connect_timeout = retry.connect_timeout
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, connect_timeout))
        self.retry = retry
        self._guard = guard
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._saved = SavedBuckets(journal) if journal is not None else None  # levels kept across restarts
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.proxies = EnvProxies()
        self.auth = LwaAuth(lambda: self.session, proxies=self.proxies, connect_timeout=connect_timeout)
        self.rdt = RestrictedTokens(self._create_rdt)
        self.signer = make_signer(accounts)

    async def start(self) -> None:
        """Open the HTTP session (HTTP(S)_PROXY / NO_PROXY are honoured per request through
        `proxies`, not aiohttp's trust_env, which looks them up in a thread for every request);
        read the saved bucket levels."""
        if self._saved is not None:
            await self._saved.load()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                trust_env=False, timeout=self._timeout, headers={"User-Agent": self.user_agent},
                connector=aiohttp.TCPConnector(limit=POOL_SIZE),
            )
            self._owns_session = True

    async def close(self) -> None:
        """Save the bucket levels, cancel token refreshes in flight, close the session if ours."""
        if self._saved is not None and self._buckets:
            try:
                await self._saved.save_all(self._buckets)
            except SpdError as exc:  # the levels saved before each take still hold: safe to go on
                log.warning("rate_limit_levels_not_saved", error=str(exc))
        self.auth.close()
        self.rdt.close()
        if self.signer is not None:
            self.signer.close()
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    async def account_taken(self, account: str) -> None:
        """This replica just claimed the account's lease: its buckets continue from the levels
        the last holder saved (never fuller), so a takeover does not burst past Amazon's quota."""
        if self._saved is not None:
            await self._saved.reload_account(account, self._buckets)

    async def account_leaving(self, account: str) -> None:
        """The account's pollers stopped here and its lease is still held: its exact levels are
        saved for the next holder (the levels saved before each take stay if this fails)."""
        if self._saved is not None:
            try:
                await self._saved.save_account(account, self._buckets)
            except SpdError as exc:
                log.warning("rate_limit_levels_not_saved", account=account, error=str(exc))

    async def __aenter__(self) -> SpClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("SpClient used before start()")
        return self._session

    async def call(
        self,
        account: str,
        op: Operation,
        params: dict[str, Any] | None = None,
        body: Any = None,
        *,
        raise_errors: bool = True,
        restricted: list[str] | None = None,
        decode: Decode | None = None,
    ) -> Response:
        """Call a catalog operation; ApiError on 4xx or when retries are exhausted.

        `restricted` (data elements, may be empty) sends a Restricted Data Token instead of
        the LWA token. `decode` reads a 2xx answer's bytes in place of the JSON parse; when it
        returns None the body is parsed as usual."""
        acct = self._account(account)
        elements = None if restricted is None else check_elements(f"{op.api}.{op.id}", restricted)
        encoded = encode_operation(op, params, body)
        url = _join_url(acct.base_url, encoded.path, encoded.query)
        method = op.method.upper()
        req = _Request(
            name=account, account=acct, label=f"{op.api}.{op.id}", method=method, url=url,
            headers=encoded.headers, body=encoded.body, bucket=self.bucket(account, op),
            idempotent=_idempotent(method, op), op=op, scope=getattr(op, "grantless_scope", None),
            restricted=elements, path=encoded.path, decode=decode,
        )  # fmt: skip
        return await self._execute(req, raise_errors)

    async def raw(
        self,
        account: str,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        *,
        raise_errors: bool = True,
    ) -> Response:
        """Send any request (`spd request`); the bucket is the matching operation's, else "raw"."""
        acct = self._account(account)
        method = method.upper()
        path, _, inline_query = path.partition("?")
        path = "/" + path.lstrip("/")
        op = self._catalog.find(method, path) if self._catalog is not None else None
        query_str = "&".join(q for q in (inline_query, encode_raw_query(query, op)) if q)
        bucket = self.bucket(account, op) if op is not None else self._raw_bucket(account)
        label = f"{op.api}.{op.id}" if op is not None else f"{method} {path}"
        req = _Request(
            name=account, account=acct, label=label, method=method,
            url=_join_url(acct.base_url, path, query_str), headers={}, body=encode_body(body),
            bucket=bucket, idempotent=_idempotent(method, op), op=op,
            scope=getattr(op, "grantless_scope", None),
        )  # fmt: skip
        return await self._execute(req, raise_errors)

    def bucket(self, account: str, op: Operation) -> TokenBucket:
        """The token bucket of (account, op.api + "." + op.id), created on first use."""
        key = (account, f"{op.api}.{op.id}")
        bucket = self._buckets.get(key)
        if bucket is None:
            rate, burst = initial_limits(self._account(account), op)
            bucket = self._new_bucket(key, rate, burst)
        return bucket

    def _new_bucket(self, key: tuple[str, str], rate: float, burst: int) -> TokenBucket:
        bucket = self._buckets[key] = TokenBucket(rate, burst, guard=self._guard, name=key[1])
        if self._saved is not None:
            self._saved.attach(*key, bucket)
        return bucket

    def bucket_stats(self) -> dict[str, dict[str, dict[str, Any]]]:
        """{account: {"api.op": {rate, burst, tokens, waiting, requests, throttled, retries,
        errors}}} for every bucket used so far."""
        stats: dict[str, dict[str, dict[str, Any]]] = {}
        for (account, key), bucket in self._buckets.items():
            stats.setdefault(account, {})[key] = bucket.snapshot()
        return stats

    def quota_waits(self) -> list[QuotaWait]:
        """Every wait for quota in progress, of any operation and account, longest first."""
        waits = [current_wait(b) for b in self._buckets.values() if b.waiting and b.delay() > 0]
        return sorted(waits, key=lambda w: -w.seconds)

    def _account(self, name: str) -> Any:
        acct = self._accounts.get(name)
        if acct is None:
            known = ", ".join(sorted(self._accounts)) or "none"
            raise UsageError(f"unknown account {name!r}; configured accounts: {known}")
        return acct

    def _raw_bucket(self, account: str) -> TokenBucket:
        key = (account, RAW_BUCKET)
        if key not in self._buckets:
            self._new_bucket(key, DEFAULT_RATE, DEFAULT_BURST)
        return self._buckets[key]

    async def _execute(self, req: _Request, raise_errors: bool) -> Response:
        """Attempt until success, a final answer, or the attempts the retry policy gives."""
        refreshed = False
        max_attempts = self.retry.attempts(unreachable=False)
        for attempt in range(1, max_attempts + 1):
            last = attempt == max_attempts
            try:
                resp, token = await self._attempt(req)
            except _Transient as exc:
                req.bucket.stats.errors += 1
                final = attempt >= self.retry.attempts(exc.unreachable)
                if final or not (req.idempotent or exc.unsent):
                    raise _transport_error(req, exc, attempt) from None
                await self._retry(req, attempt, exc.reason, self._backoff(attempt), exc.request_id)
                continue
            if not refreshed and rsp.token_rejected(resp.status, resp.body):
                refreshed = True  # one forced refresh, one retry
                self._forget(req, token, resp.body)
                if not last:
                    await self._retry(req, attempt, "access token rejected", 0.0, resp.request_id)
                    continue
            delay = self._retry_delay(req, resp, attempt)
            if delay is None or last:
                return self._final(req, resp, raise_errors, attempt)
            await self._retry(req, attempt, f"HTTP {resp.status}", delay, resp.request_id,
                              quota=resp.status == 429)
        raise AssertionError("unreachable")

    def _retry_delay(self, req: _Request, resp: Response, attempt: int) -> float | None:
        """Seconds to wait before retrying `resp`, or None when it is the final answer."""
        if resp.status == 429:
            req.bucket.stats.throttled += 1
            req.bucket.drain()
            retry_after = rsp.retry_after(resp.headers)
            if retry_after is not None:
                delay = min(retry_after, self.retry.max_retry_after)
            else:  # acquire() waits ~1/rate after the drain; add jitter growing per attempt
                delay = Backoff(0.25 * attempt, 0.25 * attempt).delay(1) / req.bucket.rate
            log.warning(
                "rate_limited", account=req.name, operation=req.label, attempt=attempt,
                request_id=resp.request_id, rate=req.bucket.rate, delay=round(delay, 3),
            )  # fmt: skip
            return delay
        if resp.status < 400:
            return None
        req.bucket.stats.errors += 1
        if resp.status in rsp.RETRY_STATUSES and req.idempotent:
            return self._backoff(attempt)
        return None

    def _final(self, req: _Request, resp: Response, raise_errors: bool, attempt: int) -> Response:
        if resp.status in REDIRECTS and raise_errors:
            location = public_location(rsp.header(resp.headers, "Location"))
            raise ApiError(f"{req.label}: {RedirectRefused(resp.status, location)}",
                           status=resp.status, request_id=resp.request_id)
        if resp.status < 400 or not raise_errors:
            return resp
        retriable = resp.status == 429 or resp.status in rsp.RETRY_STATUSES
        raise rsp.api_error(req.label, resp, attempts=attempt, retriable=retriable)

    async def _retry(
        self, req: _Request, attempt: int, reason: str, delay: float, request_id: str | None,
        *, quota: bool = False,
    ) -> None:
        """Logs and waits before the next attempt; after a 429 the wait is a wait for quota."""
        req.bucket.stats.retries += 1
        log.warning(
            "request_retry", account=req.name, operation=req.label, attempt=attempt,
            reason=reason, delay=round(delay, 3), request_id=request_id,
        )  # fmt: skip
        if delay > 0:
            with quota_wait(req.bucket) if quota else contextlib.nullcontext():
                await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: many clients share Amazon's quotas."""
        return Backoff(self.retry.backoff_base, self.retry.backoff_cap, "full").delay(attempt)

    async def _attempt(self, req: _Request) -> tuple[Response, str]:
        """One try: token bucket and in-flight slot, access token, signing, send, parse."""
        try:
            # Amazon's bucket refills from when the request arrives, ours from the take (with a
            # guard for jitter): the take must come right before the send. The access token is
            # fetched (or found cached) before it: first before any wait, so that a refused grant
            # fails at once, then again once a token is there (cached, unless it expired during
            # the wait). An in-flight slot is taken just before the take (acquire_to_send), and
            # only signing comes between the take and the send.
            await self._access_token(req)
            token = await req.bucket.acquire_to_send(self._in_flight, lambda: self._access_token(req))
        except AuthError as exc:
            raise _unsent(exc) from None
        try:
            headers = {
                "User-Agent": self.user_agent,
                "Accept": "application/json",
                "x-amz-access-token": token,
                "x-amz-date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),  # 3x datetime's
                **req.headers,
            }
            if req.body is not None:
                headers["Content-Type"] = "application/json"
            await self._sign(req, headers)
        except BaseException as exc:
            self._in_flight.release()
            if isinstance(exc, AuthError):
                raise _unsent(exc) from None
            raise
        req.bucket.stats.requests += 1
        return await self._send(req, headers), token

    async def _send(self, req: _Request, headers: dict[str, str]) -> Response:
        """Sends on the in-flight slot `_attempt` holds, and gives it back once answered."""
        started = time.monotonic()
        try:
            reply = await send_credentialed(  # the timeout starts now: the request goes out
                self.session, req.method, URL(req.url, encoded=True), data=req.body,
                headers=headers, timeout=self._timeout, limit=transport.MAX_RESPONSE_BYTES,
                proxies=self.proxies,
            )  # fmt: skip
        except BodyTooLarge as exc:  # the same request would get the same answer: no retry
            raise ApiError(f"{req.label}: {exc}; refused (Amazon's replies are at most 10 MB)",
                           retriable=False) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            # No connection (refused, no such host, TLS, the connect timed out): it never left.
            never = rsp.never_reached(exc)
            raise _Transient(rsp.describe(exc, req.url), unsent=never, unreachable=never) from None
        finally:
            self._in_flight.release()
        req.bucket.stats.latency.observe(time.monotonic() - started)
        resp = Response(reply.status, rsp.plain_headers(reply.headers), None,
                        reply.headers.get("x-amzn-RequestId"))  # fmt: skip
        self._adapt(req, resp)
        try:
            resp.body = _read_body(reply.body, reply.headers.get("Content-Type", ""),
                                   resp.status, req.decode)
        except ValueError as exc:
            transient = _Transient(str(exc))
            transient.request_id = resp.request_id
            raise transient from None
        return resp

    def _adapt(self, req: _Request, resp: Response) -> None:
        """Follow `x-amzn-RateLimit-Limit` (the rate only; the burst stays)."""
        rate = rsp.header_rate(rsp.header(resp.headers, RATE_HEADER))
        if rate is not None and req.bucket.set_rate(rate):
            log.info("rate_limit_changed", account=req.name, operation=req.label, rate=rate)

    async def _access_token(self, req: _Request) -> str:
        """The LWA token for the request, or a Restricted Data Token when asked for one."""
        if req.restricted is not None:
            return await self.rdt.token(req.name, req.method, req.path, req.restricted)
        return await self.auth.token(req.name, req.account, req.scope)

    async def _sign(self, req: _Request, headers: dict[str, str]) -> None:
        """SigV4 with the assumed role's credentials for accounts that have `aws`."""
        if self.signer is not None and getattr(req.account, "aws", None) is not None:
            await self.signer.sign(req.name, req.account, req.method, req.url, headers, req.body)

    def _forget(self, req: _Request, token: str, body: Any) -> None:
        """SP-API rejected a token: forget the STS credentials, the RDT or the LWA token."""
        if self.signer is not None and "security token" in str(body).lower():
            self.signer.roles.invalidate(req.name)
        elif not self.rdt.invalidate(req.name, token):
            self.auth.invalidate(req.name, token, req.scope)

    async def _create_rdt(self, account: str, body: dict[str, Any]) -> Response:
        catalog = self._catalog if self._catalog is not None else load_catalog()
        op = catalog.operation(TOKENS_API, CREATE_RDT)
        return await self.call(account, op, body=body)


def _read_body(raw: bytes, content_type: str, status: int, decode: Decode | None) -> Any:
    """What `decode` reads in a successful answer, else the body parsed (parse_body)."""
    if decode is not None and status < 300:
        decoded = decode(raw)
        if decoded is not None:
            return decoded
    return rsp.parse_body(raw, content_type, strict=status < 300)


def _idempotent(method: str, op: Operation | None) -> bool:
    """GET/HEAD, or an operation the catalog marks `safe` (a read-only POST)."""
    return method in IDEMPOTENT_METHODS or bool(getattr(op, "safe", False))


def _join_url(base_url: str, path: str, query: str) -> str:
    url = base_url.rstrip("/") + path
    return f"{url}?{query}" if query else url


def _unsent(exc: AuthError) -> Exception:
    """An access token or signature that could not be had: the request never left."""
    if not exc.retriable:
        return exc
    return _Transient(exc.message, unsent=True, unreachable=exc.unreachable, cause=exc)


def _transport_error(req: _Request, exc: _Transient, attempts: int) -> Exception:
    if isinstance(exc.cause, AuthError):
        return exc.cause
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    return ApiError(
        f"{req.label}: request failed{tried}: {exc.reason}",
        request_id=exc.request_id,
        retriable=True,
    )
