"""SigV4 verification for the simulator: recompute the signature with botocore from the
credentials the test says are valid (those moto's STS issued) and compare.

Rejections carry Amazon's 403 bodies: `InvalidSignature` for a signature that does not match,
`Unauthorized` for an unknown, wrong or expired security token.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Union

from aiohttp import web

from spd.sim.common import ApiReject

SERVICE = "execute-api"
MISMATCH = ("The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.")
TOKEN_INVALID = "The security token included in the request is invalid."
TOKEN_EXPIRED = "The security token included in the request is expired"
DENIED = "Access to requested resource is denied."
_AUTH_RE = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<cred>[^,\s]+),\s*"
                      r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-f]{64})$")


@dataclass(frozen=True)
class AwsCredential:
    """What the simulator knows about one access key id."""

    secret_access_key: str
    session_token: str | None = None
    expires: float | None = None  # epoch seconds


# access key id -> credential, or a function answering for any key id (e.g. moto's backend)
CredentialSource = Union[Mapping[str, AwsCredential], Callable[[str], AwsCredential | None]]


def lookup(source: CredentialSource, access_key_id: str) -> AwsCredential | None:
    if callable(source):
        return source(access_key_id)
    return source.get(access_key_id)


def verify(request: web.Request, body: bytes, source: CredentialSource, *,
           region: str | None, now: float) -> None:
    """Raises ApiReject(403) unless the request carries a valid SigV4 signature."""
    match = _AUTH_RE.match(request.headers.get("Authorization", "").strip())
    if match is None:
        raise ApiReject(403, "Unauthorized", DENIED, "Missing or malformed SigV4 Authorization")
    parts = match["cred"].split("/")
    if len(parts) != 5 or parts[3] != SERVICE or parts[4] != "aws4_request":
        raise ApiReject(403, "InvalidSignature", MISMATCH)
    if region is not None and parts[2] != region:
        raise ApiReject(403, "InvalidSignature",
                        f"Credential should be scoped to a valid region, not '{parts[2]}'.")
    cred = lookup(source, parts[0])
    token = request.headers.get("x-amz-security-token")
    if cred is None or (cred.session_token is not None and token != cred.session_token):
        raise ApiReject(403, "Unauthorized", TOKEN_INVALID)
    if cred.expires is not None and now >= cred.expires:
        raise ApiReject(403, "Unauthorized", TOKEN_EXPIRED)
    date = request.headers.get("x-amz-date", "")
    if not date.startswith(parts[1]):
        raise ApiReject(403, "InvalidSignature", MISMATCH)
    expected = signature(request, body, parts[0], cred, parts[2], match["signed"].split(";"), date)
    if not hmac.compare_digest(expected, match["sig"]):
        raise ApiReject(403, "InvalidSignature", MISMATCH)


def signature(request: web.Request, body: bytes, access_key_id: str, cred: AwsCredential,
              region: str, signed: list[str], date: str) -> str:
    """The signature botocore computes for this request over the headers it says it signed."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {name: request.headers.get(name, "") for name in signed}
    url = f"{request.scheme}://{request.host}{request.raw_path}"
    aws = AWSRequest(method=request.method, url=url, headers=headers, data=body)
    aws.context["timestamp"] = date
    signer = SigV4Auth(Credentials(access_key_id, cred.secret_access_key, cred.session_token),
                       SERVICE, region)
    canonical = signer.canonical_request(aws)
    return str(signer.signature(signer.string_to_sign(aws, canonical), aws))
