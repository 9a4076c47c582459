"""Login with Amazon (refresh_token and client_credentials grants) and Restricted Data Tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from spd.sim.common import ApiReject, Call, invalid

DENIED = "Access to requested resource is denied."
EXPIRED = "The access token you provided has expired."
RESTRICTED_ELEMENTS = frozenset({"buyerInfo", "shippingAddress", "buyerTaxInformation"})
# the scopes LWA grants with client_credentials (grantless operations)
GRANTLESS_SCOPES = frozenset({"sellingpartnerapi::notifications",
                              "sellingpartnerapi::client_credential:rotation",
                              "sellingpartnerapi::migration"})


@dataclass(frozen=True)
class Grant:
    """What an access token (or RDT) stands for."""

    caller: str  # rate-limit key: the selling partner + application, not the token itself
    expires: float
    rdt: tuple[tuple[str, str, frozenset[str]], ...] | None = None  # (method, path, elements)
    scope: str | None = None  # set for client_credentials (grantless) tokens

    def elements(self, method: str, path: str) -> frozenset[str]:
        """Restricted data elements this token grants for a request."""
        for m, p, elems in self.rdt or ():
            if m == method and p == path:
                return elems
        return frozenset()


@dataclass
class AuthSettings:
    """Which credentials the LWA endpoint accepts; None means any non-empty value."""

    clients: dict[str, str] | None = None
    refresh_tokens: frozenset[str] | None = None
    revoked: set[str] = field(default_factory=set)
    access_token_ttl: float = 3600.0
    rdt_ttl: float = 3600.0
    denied_elements: frozenset[str] = frozenset()  # data elements the app has no role for


def _lwa_error(status: int, error: str, description: str) -> web.Response:
    body = {"error_description": description, "error": error}
    return web.json_response(body, status=status, dumps=lambda o: orjson.dumps(o).decode())


class AuthStore:
    """Issues and checks access tokens and RDTs; counts what it issued."""

    def __init__(self, settings: AuthSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self._clock = clock
        self._grants: dict[str, Grant] = {}
        self.issued = 0
        self.rdt_issued = 0
        self.refused = 0

    def _client_ok(self, client_id: str, secret: str) -> bool:
        clients = self.settings.clients
        if clients is None:
            return bool(client_id and secret)
        return clients.get(client_id) == secret

    def _refresh_ok(self, token: str) -> bool:
        if not token or token in self.settings.revoked:
            return False
        allowed = self.settings.refresh_tokens
        return allowed is None or token in allowed

    def exchange(self, form: dict[str, str]) -> web.Response:
        """Answer one POST /auth/o2/token like Amazon's LWA server."""
        grant_type = form.get("grant_type", "")
        if grant_type not in ("refresh_token", "client_credentials"):
            self.refused += 1
            if not grant_type:
                return _lwa_error(400, "invalid_request",
                                  "The request is missing a required parameter : grant_type")
            return _lwa_error(400, "unsupported_grant_type",
                              "The authorization grant type is not supported by the "
                              "authorization server")
        needed = ["client_id", "client_secret"]
        needed.append("refresh_token" if grant_type == "refresh_token" else "scope")
        for name in needed:
            if not form.get(name):
                self.refused += 1
                return _lwa_error(400, "invalid_request",
                                  f"The request is missing a required parameter : {name}")
        if not self._client_ok(form["client_id"], form["client_secret"]):
            self.refused += 1
            return _lwa_error(401, "invalid_client", "Client authentication failed")
        if grant_type == "client_credentials":
            if form["scope"] not in GRANTLESS_SCOPES:
                self.refused += 1
                return _lwa_error(400, "invalid_scope", "The request has an invalid parameter "
                                  ": scope")
            return self._issue(form["client_id"], "", scope=form["scope"])
        if not self._refresh_ok(form["refresh_token"]):
            self.refused += 1
            return _lwa_error(400, "invalid_grant",
                              "The request has an invalid grant parameter : refresh_token")
        return self._issue(form["client_id"], form["refresh_token"])

    def _issue(self, client_id: str, refresh: str, scope: str | None = None) -> web.Response:
        caller = hashlib.sha256(f"{client_id}\0{refresh}".encode()).hexdigest()[:16]
        token = "Atza|sim-" + secrets.token_urlsafe(24)
        ttl = self.settings.access_token_ttl
        self._grants[token] = Grant(caller, self._clock() + ttl, scope=scope)
        self.issued += 1
        body: dict[str, Any] = {"access_token": token, "token_type": "bearer",
                                "expires_in": int(ttl)}
        if scope is None:
            body["refresh_token"] = refresh
        else:
            body["scope"] = scope
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())

    def check(self, token: str | None) -> Grant:
        """The grant behind `x-amz-access-token`; 403 Unauthorized when missing or expired."""
        grant = self._grants.get(token or "")
        if grant is None:
            raise ApiReject(403, "Unauthorized", DENIED)
        if self._clock() >= grant.expires:
            raise ApiReject(403, "Unauthorized", EXPIRED)
        return grant

    def expire_all(self) -> int:
        """Make every issued token expired now (tests of the refresh path)."""
        now = self._clock()
        for token, grant in list(self._grants.items()):
            self._grants[token] = Grant(grant.caller, now, grant.rdt, grant.scope)
        return len(self._grants)

    def create_rdt(self, grant: Grant, body: Any) -> dict[str, Any]:
        """createRestrictedDataToken: an RDT for the listed (method, path, dataElements)."""
        if grant.rdt is not None:
            raise ApiReject(403, "Unauthorized", DENIED)
        resources = body.get("restrictedResources") if isinstance(body, dict) else None
        if not isinstance(resources, list) or not resources or len(resources) > 50:
            raise invalid("restrictedResources must list 1 to 50 resources.")
        granted = []
        for res in resources:
            if not isinstance(res, dict) or not res.get("method") or not res.get("path"):
                raise invalid("Each restricted resource needs a method and a path.")
            elems = frozenset(res.get("dataElements") or ())
            if not elems <= RESTRICTED_ELEMENTS:
                raise invalid(f"Invalid dataElements {sorted(elems - RESTRICTED_ELEMENTS)}.")
            granted.append((str(res["method"]).upper(), str(res["path"]), elems))
        denied = sorted({e for _m, _p, elems in granted for e in elems}
                        & self.settings.denied_elements)
        if denied:  # what Amazon answers when the app lacks the restricted role
            raise invalid("Application does not have access to one or more requested data "
                          f"elements: [{', '.join(denied)}]")
        token = "Atz.sprdt|sim-" + secrets.token_urlsafe(24)
        ttl = self.settings.rdt_ttl
        self._grants[token] = Grant(grant.caller, self._clock() + ttl, tuple(granted))
        self.rdt_issued += 1
        return {"restrictedDataToken": token, "expiresIn": int(ttl)}


AUTH = web.AppKey("spd_sim_auth", AuthStore)


async def token_endpoint(request: web.Request) -> web.Response:
    """POST /auth/o2/token (form-encoded, as Amazon expects; JSON is accepted too)."""
    store = request.app[AUTH]
    if request.content_type == "application/json":
        try:
            data = await request.json(loads=orjson.loads)
        except ValueError:
            data = None
        form = {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    else:
        form = {k: str(v) for k, v in (await request.post()).items()}
    resp = store.exchange(form)
    resp.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return resp


async def create_restricted_data_token(call: Call) -> dict[str, Any]:
    """Handler of tokens_2021-03-01.createRestrictedDataToken."""
    if call.grant is None:
        raise ApiReject(403, "Unauthorized", DENIED)
    token: dict[str, Any] = call.state.auth.create_rdt(call.grant, call.body)
    return token
