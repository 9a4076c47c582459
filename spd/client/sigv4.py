"""SigV4 for accounts registered the old way (`aws:`): STS AssumeRole through aioboto3, cached
temporary credentials, and botocore's signer (service `execute-api`, the account's region).

Only imported when an account has `aws:`; accounts without it never load boto.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aioboto3
import structlog
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession
from botocore.credentials import Credentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    HTTPClientError,
)

from spd.client.gate import FailureGate
from spd.client.singleflight import SingleFlight
from spd.client.transport import RedirectRefused, refuse_redirects
from spd.core.errors import AuthError

log = structlog.get_logger(__name__)
# botocore logs the canonical request at DEBUG: it holds the access and security tokens
logging.getLogger("botocore.auth").setLevel(logging.WARNING)

SERVICE = "execute-api"
REFRESH_MARGIN = 300.0  # assume the role again 5 minutes before the credentials expire
SESSION_SECONDS = 3600


class NoRedirectHttpSession(AIOHTTPSession):  # type: ignore[misc]  # aiobotocore is untyped
    """botocore's aiohttp session under spd's rule for requests carrying credentials
    (spd.client.transport): a redirect is refused, never followed."""

    async def _get_session(self, proxy_url: Any) -> Any:
        session = await super()._get_session(proxy_url)
        if REFUSE_REDIRECTS not in session.trace_configs:
            session.trace_configs.append(REFUSE_REDIRECTS)
        return session


REFUSE_REDIRECTS = refuse_redirects()
STS_CONFIG = AioConfig(connect_timeout=10, read_timeout=30,
                       retries={"max_attempts": 3, "mode": "standard"},
                       http_session_cls=NoRedirectHttpSession)
_RETRIABLE_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded",
                              "ServiceUnavailable", "InternalFailure", "IDPCommunicationError"})
_EXPLAIN = {
    "InvalidClientTokenId": "AWS does not know the access key id; check aws.access_key_id",
    "SignatureDoesNotMatch": "the secret access key does not match the access key id; "
                             "check aws.secret_access_key",
    "AccessDenied": "the IAM user may not assume this role; allow sts:AssumeRole on it "
                    "and check aws.role_arn",
    "ExpiredToken": "the AWS keys have expired; issue new ones",
}


@dataclass(frozen=True)
class TempCredentials:
    """Temporary credentials from AssumeRole; `expires_at` is epoch seconds."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: float


class AssumedRoles:
    """Temporary credentials per account, assumed once however many requests wait."""

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 margin: float = REFRESH_MARGIN, duration: int = SESSION_SECONDS) -> None:
        self._clock = clock
        self._margin = margin
        self._duration = duration
        self._cache: dict[str, TempCredentials] = {}
        self._flights: SingleFlight[TempCredentials] = SingleFlight()
        self.gate = FailureGate()
        self.assumed = 0  # AssumeRole calls sent, for tests and metrics

    async def get(self, name: str, account: Any) -> TempCredentials:
        """Valid credentials for `account`, assuming its role when none are cached."""
        cached = self._cache.get(name)
        if cached is not None and self._clock() < cached.expires_at - self._margin:
            return cached
        self.gate.check(name)
        return await self._flights.run(name, lambda: self._refresh(name, account))

    def invalidate(self, name: str, access_key_id: str | None = None) -> None:
        """Forget the account's credentials (SP-API said the security token expired)."""
        cached = self._cache.get(name)
        if cached is not None and access_key_id in (None, cached.access_key_id):
            del self._cache[name]

    def close(self) -> None:
        self._flights.close()

    async def _refresh(self, name: str, account: Any) -> TempCredentials:
        try:
            creds = await self._assume(name, account)
        except AuthError as exc:
            if not exc.retriable:
                self.gate.failed(name, exc)
            raise
        self.gate.passed(name)
        self._cache[name] = creds
        log.info("aws_role_assumed", account=name, role_arn=account.aws.role_arn,
                 expires_in=round(creds.expires_at - self._clock()))
        return creds

    async def _assume(self, name: str, account: Any) -> TempCredentials:
        aws = account.aws
        session = aioboto3.Session(
            aws_access_key_id=aws.access_key_id,
            aws_secret_access_key=aws.secret_access_key.get_secret_value(),
            region_name=aws.region or account.region,
        )
        self.assumed += 1
        try:
            async with session.client("sts", endpoint_url=aws.sts_endpoint,
                                      config=STS_CONFIG) as sts:
                answer = await sts.assume_role(RoleArn=aws.role_arn,
                                               RoleSessionName=aws.role_session_name,
                                               DurationSeconds=self._duration)
        except (ClientError, BotoCoreError) as exc:
            raise sts_error(name, aws.role_arn, exc) from None
        c = answer["Credentials"]
        expiration = c["Expiration"]
        expires = expiration.timestamp() if isinstance(expiration, datetime) else float(expiration)
        # never trust a clock skew that would make the credentials look expired at once
        expires = max(expires, self._clock() + 2 * self._margin)
        return TempCredentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], expires)


def sts_error(name: str, role_arn: str, exc: Exception) -> AuthError:
    """One line naming the account and the role; retriable only when STS may answer later."""
    prefix = f"account {name}: STS AssumeRole of {role_arn} failed"
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        retriable = code in _RETRIABLE_CODES or status >= 500
        detail = _EXPLAIN.get(code) or " ".join(str(err.get("Message", "")).split())
        return AuthError(f"{prefix} ({code}): {detail}", retriable=retriable)
    refused = exc.kwargs.get("error") if isinstance(exc, HTTPClientError) else None
    if isinstance(refused, RedirectRefused):
        return AuthError(f"{prefix}: the STS endpoint answered {refused}; check aws.sts_endpoint")
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return AuthError(f"{prefix}: STS endpoint unreachable ({type(exc).__name__})",
                         retriable=True)
    return AuthError(f"{prefix}: {' '.join(str(exc).split())}")


class SigV4Signer:
    """Signs SP-API requests of accounts with `aws:` using their assumed role."""

    def __init__(self, roles: AssumedRoles | None = None) -> None:
        self.roles = roles or AssumedRoles()

    async def sign(self, name: str, account: Any, method: str, url: str,
                   headers: dict[str, str], body: bytes | None) -> None:
        """Adds Authorization, x-amz-date and x-amz-security-token to `headers`."""
        creds = await self.roles.get(name, account)
        sign_request(creds, account.region, method, url, headers, body)

    def close(self) -> None:
        self.roles.close()


def sign_request(creds: TempCredentials, region: str, method: str, url: str,
                 headers: dict[str, str], body: bytes | None) -> None:
    """SigV4 over method, URL, every header except User-Agent, and the body (in place)."""
    for key in [k for k in headers if k.lower() in ("authorization", "x-amz-date",
                                                     "x-amz-security-token")]:
        del headers[key]
    signed = {k: v for k, v in headers.items() if k.lower() != "user-agent"}
    request = AWSRequest(method=method, url=url, headers=signed, data=body or b"")
    credentials = Credentials(creds.access_key_id, creds.secret_access_key, creds.session_token)
    SigV4Auth(credentials, SERVICE, region).add_auth(request)
    headers["x-amz-date"] = request.headers["X-Amz-Date"]
    headers["x-amz-security-token"] = request.headers["X-Amz-Security-Token"]
    headers["Authorization"] = request.headers["Authorization"]

