"""The simulator's aiohttp application: settings, the request pipeline and the `Simulator`."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from spd.sim import (generic, get_order, lwa, notifications, order_items, orders, pager, publisher, reports,
                     sellers, sigv4, vendor)
from spd.sim.common import ApiReject, Call, TokenCodec, error_body, iso, parse_time, to_epoch
from spd.sim.data import Dataset, order_factory, po_factory
from spd.sim.render import RenderCache, render_2026, render_po, render_v0
from spd.sim.faults import FaultInjector, FaultKnobs, drop_connection, send_truncated
from spd.sim.limits import RateLimiter
from spd.sim.sandbox import add_sandbox_routes
from spd.sim.success import success_status

QUOTA_EXCEEDED = "You exceeded your quota for the requested resource."
Handler = Callable[[Call], Awaitable[dict[str, Any]]]
# operation -> (method, path, handler)
OPERATIONS: dict[str, tuple[str, str, Handler]] = {
    orders.GET_ORDERS: ("GET", "/orders/v0/orders", orders.get_orders),
    orders.SEARCH_ORDERS: ("GET", "/orders/2026-01-01/orders", orders.search_orders),
    vendor.GET_PURCHASE_ORDERS: ("GET", "/vendor/orders/v1/purchaseOrders",
                                 vendor.get_purchase_orders),
    "tokens_2021-03-01.createRestrictedDataToken": (
        "POST", "/tokens/2021-03-01/restrictedDataToken", lwa.create_restricted_data_token),
    order_items.GET_ORDER_ITEMS: ("GET", "/orders/v0/orders/{orderId}/orderItems",
                                  order_items.get_order_items),
}
OPERATIONS[get_order.GET_ORDER] = ("GET", "/orders/v0/orders/{orderId}", get_order.get_order)
OPERATIONS[sellers.GET_MARKETPLACE_PARTICIPATIONS] = ("GET", sellers.PATH,
                                                    sellers.get_marketplace_participations)
OPERATIONS.update(notifications.operations())  # destinations and subscriptions (spd.sim.notifications)
OPERATIONS.update(generic.operations())  # every other pollable object type (spd.sim.generic)
OPERATIONS.update(reports.operations(OPERATIONS))  # the reports flow (spd.sim.reports)


@dataclass
class SimSettings:
    """Everything the simulator can be told; the defaults behave like a busy seller."""

    seed: int = 42
    orders: int = 2000  # orders created in [start, end)
    purchase_orders: int = 500  # vendor purchase orders created in [start, end)
    objects_per_type: int = 300  # objects of each generic type (spd.sim.generic) in [start, end)
    start: datetime | None = None  # default: end - 3 days
    end: datetime | None = None  # default: when the simulator starts
    live: bool = True  # keep creating and updating objects after `end`, at the same pace
    marketplaces: tuple[str, ...] = ("ATVPDKIKX0DER",)
    host: str = "127.0.0.1"
    port: int = 0
    error_rate: float = 0.0
    latency_ms: float = 0.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    rate_limit: bool = True
    rate_limits: dict[str, tuple[float, int]] = field(default_factory=dict)  # op -> (rate, burst)
    next_token_ttl: timedelta = timedelta(minutes=30)
    token_on_full_page: bool = False  # a full last page still gets a token (to an empty page)
    lag: timedelta = timedelta(minutes=2)  # Orders: *Before must be this far in the past
    index_delay: timedelta = timedelta(seconds=30)  # orders show up to this late (< lag)
    max_vendor_window: timedelta = timedelta(days=7)
    require_auth: bool = True
    clients: dict[str, str] | None = None  # client_id -> secret; None: any non-empty pair
    refresh_tokens: frozenset[str] | None = None  # None: any non-empty refresh token
    revoked_refresh_tokens: frozenset[str] = frozenset()
    access_token_ttl: timedelta = timedelta(hours=1)
    clock_offset: timedelta = timedelta(0)  # the simulator's clock = real UTC time + offset
    clock: Callable[[], datetime] | None = None  # replaces real time (tests freeze or step it)
    aws_credentials: sigv4.CredentialSource | None = None  # set: every call must be SigV4-signed
    aws_region: str | None = None  # set: the signature's credential scope must name it
    denied_data_elements: frozenset[str] = frozenset()  # RDT elements the app has no role for
    sandbox_models: Path | None = None  # static sandbox of these model files (spd.sim.sandbox)
    pager: bool = False  # every paged operation answers two pages (spd.sim.pager)
    sqs_endpoint: str | None = None  # set: publish ORDER_CHANGE into subscribed SQS queues there
    sqs_keys: tuple[str, str, str] = ("simulator", "simulator", "us-east-1")  # key id, secret, region

    def __post_init__(self) -> None:
        for name in ("error_rate", "drop_rate", "truncate_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.orders < 0 or self.purchase_orders < 0:
            raise ValueError("orders and purchase_orders must be >= 0")
        if not timedelta(0) <= self.index_delay < self.lag:
            raise ValueError("index_delay must be >= 0 and shorter than lag")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("start must be before end")


class SimState:
    """The simulator's mutable world: data, tokens, buckets, fault knobs and counters."""

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self._offset = settings.clock_offset.total_seconds()
        now = self.now()
        end = to_epoch(settings.end) if settings.end else now
        start = to_epoch(settings.start) if settings.start else end - 3 * 86400
        live_from = int(max(end, now)) if settings.live else None
        common: dict[str, Any] = {"seed": settings.seed, "start": int(start), "end": int(end),
                  "live_from": live_from, "marketplaces": settings.marketplaces}
        delay = int(settings.index_delay.total_seconds())
        self.orders = Dataset("order", order_factory(delay), count=settings.orders, **common)
        self.purchase_orders = Dataset("po", po_factory, count=settings.purchase_orders, **common)
        self.rendered = RenderCache()
        self.generic = generic.GenericWorld(settings, common)
        self.lag = settings.lag.total_seconds()
        self.token_ttl = settings.next_token_ttl.total_seconds()
        self.max_vendor_window = settings.max_vendor_window.total_seconds()
        self.token_on_full_page = settings.token_on_full_page
        self.known_markets = orders.known_markets(settings.marketplaces)
        self.codec = TokenCodec(settings.seed)
        self.limiter = RateLimiter({**generic.usage_plans(), **notifications.usage_plans(),
                                    **settings.rate_limits},
                                   enabled=settings.rate_limit)
        knobs = FaultKnobs(settings.error_rate, settings.latency_ms, settings.drop_rate,
                           settings.truncate_rate)
        self.faults = FaultInjector(knobs, settings.seed)
        auth = lwa.AuthSettings(settings.clients, settings.refresh_tokens,
                                set(settings.revoked_refresh_tokens),
                                settings.access_token_ttl.total_seconds(),
                                denied_elements=settings.denied_data_elements)
        self.auth = lwa.AuthStore(auth, self.now)
        self.stats: dict[str, Counter[str]] = {op: Counter() for op in OPERATIONS}
        self.notifications = notifications.NotificationWorld()

    def now(self) -> float:
        """The simulator's clock in epoch seconds."""
        clock = self.settings.clock
        return (to_epoch(clock()) if clock else time.time()) + self._offset

    def _authorize(self, request: web.Request) -> tuple[Any, str]:
        token = request.headers.get("x-amz-access-token")
        if self.settings.require_auth:
            grant = self.auth.check(token)
            return grant, grant.caller
        try:
            grant = self.auth.check(token)
        except ApiReject:
            return None, token or "anonymous"
        return grant, grant.caller

    async def serve(self, request: web.Request, op: str, handler: Handler) -> web.StreamResponse:
        """The pipeline every SP-API call goes through, in Amazon's order of checks."""
        stats = self.stats[op]
        stats["requests"] += 1
        headers = {"x-amzn-RequestId": str(uuid.uuid4()),
                   "x-amzn-RateLimit-Limit": self.limiter.header(op)}
        await self.faults.delay()
        if self.faults.drop():
            stats["dropped"] += 1
            return drop_connection(request)
        try:
            if self.settings.aws_credentials is not None:  # API Gateway checks SigV4 first
                sigv4.verify(request, await request.read(), self.settings.aws_credentials,
                             region=self.settings.aws_region, now=time.time())
            grant, caller = self._authorize(request)
            if not self.limiter.allow(caller, op):
                stats["throttled"] += 1
                raise ApiReject(429, "QuotaExceeded", QUOTA_EXCEEDED)
            failure = self.faults.error()
            if failure is not None:
                stats["server_errors"] += 1
                return _json(failure[1], failure[0], headers)
            body = await _body(request)
            call = Call(op, request.method, request.path, request.query, body, self.now(),
                        grant, self)
            result = await handler(call)
        except ApiReject as exc:
            if exc.status != 429:
                stats["client_errors"] += 1
            return _json(exc.body(), exc.status, headers)
        data, status = orjson.dumps(result), success_status(op)  # 202 for createReport, as Amazon's
        mode = self.faults.truncate()
        if mode is not None:
            stats["truncated"] += 1
            return await send_truncated(request, data, headers, mode, status)
        stats["ok"] += 1
        return web.Response(body=data, status=status, headers=headers, content_type="application/json")


async def _body(request: web.Request) -> Any:
    if not request.body_exists:  # not can_read_body: SigV4 verification read it already
        return None
    raw = await request.read()
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        raise ApiReject(400, "InvalidInput", "The request body is not valid JSON.") from None


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=headers,
                        content_type="application/json")


STATE = web.AppKey("spd_sim_state", SimState)


def _endpoint(op: str, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        return await request.app[STATE].serve(request, op, handler)

    return endpoint


async def _not_found(request: web.Request) -> web.Response:
    return _json(error_body("NotFound", "The requested resource was not found."), 404,
                 {"x-amzn-RequestId": str(uuid.uuid4())})


# -- /_sim control endpoints (ground truth, counters, run-time knobs) -----------------------

GROUND_TRUTH = {
    orders.GET_ORDERS: "orders",
    orders.SEARCH_ORDERS: "orders",
    vendor.GET_PURCHASE_ORDERS: "purchase_orders",
}


def _control_error(message: str) -> web.Response:
    return _json({"error": message}, 400)


def _render(op: str, rec: Any, idx: int) -> dict[str, Any]:
    if op == orders.GET_ORDERS:
        return render_v0(rec, idx, lwa.RESTRICTED_ELEMENTS)
    if op == orders.SEARCH_ORDERS:
        return render_2026(rec, idx, frozenset(orders.INCLUDED_DATA))
    return render_po(rec, idx)


async def sim_objects(request: web.Request) -> web.Response:
    """GET /_sim/objects?type=&field=created|updated&after=&before=[&marketplace=][&data=1]."""
    st, q = request.app[STATE], request.query
    op = q.get("type", "")
    if op not in GROUND_TRUTH and op not in generic.sim_types():
        return _control_error(f"type must be one of {', '.join(GROUND_TRUTH)}")
    field_name = q.get("field", "updated")
    if field_name not in ("created", "updated", "changed"):
        return _control_error("field must be created or updated")
    now = st.now()
    try:
        after = parse_time("after", q["after"]) if q.get("after") else 0.0
        before = parse_time("before", q["before"]) if q.get("before") else now
    except ApiReject as exc:
        return _control_error(exc.details or exc.message)
    kind = "created" if field_name == "created" else "updated"
    markets = {m for m in q.get("marketplace", "").split(",") if m}
    if op in generic.sim_types():
        rows = generic.ground_truth(st, op, kind, after, before, markets, q.get("data") in ("1", "true"))
        return _json({"type": op, "field": kind, "after": iso(after), "before": iso(before),
                      "now": iso(now), "count": len(rows), "objects": rows})
    data: Dataset = getattr(st, GROUND_TRUTH[op])
    data.ensure(now)
    rows = data.ground_truth(kind, after, before, now)
    if markets:
        rows = [r for r in rows if r["marketplace_id"] in markets]
    for row in rows:
        if q.get("data") in ("1", "true"):
            row["data"] = _render(op, data.by_id[row["id"]], row["version"])
        for key in ("version_time", "visible_at", "superseded_at"):
            if row[key] is not None:
                row[key] = iso(row[key])
    return _json({"type": op, "field": kind, "after": iso(after), "before": iso(before),
                  "now": iso(now), "count": len(rows), "objects": rows})


async def sim_stats(request: web.Request) -> web.Response:
    """GET /_sim/stats: counters per operation and of the LWA endpoint."""
    st = request.app[STATE]
    return _json({
        "now": iso(st.now()),
        "operations": {op: dict(counter) for op, counter in st.stats.items()},
        "lwa": {"tokens_issued": st.auth.issued, "rdt_issued": st.auth.rdt_issued,
                "refused": st.auth.refused},
        "objects": {"orders": len(st.orders.records),
                    "purchase_orders": len(st.purchase_orders.records)},
    })


async def sim_faults(request: web.Request) -> web.Response:
    """GET or POST /_sim/faults: read or partially update the fault knobs."""
    knobs = request.app[STATE].faults.knobs
    if request.method == "POST":
        try:
            changes = orjson.loads(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object")
            knobs.update(changes)
        except ValueError as exc:
            return _control_error(str(exc))
    return _json(knobs.as_dict())


async def sim_auth(request: web.Request) -> web.Response:
    """POST /_sim/auth {"expire_access_tokens": true, "revoke": [refresh tokens]}."""
    auth = request.app[STATE].auth
    try:
        body = orjson.loads(await request.read() or b"{}")
    except ValueError:
        return _control_error("the body must be a JSON object")
    if not isinstance(body, dict):
        return _control_error("the body must be a JSON object")
    expired = auth.expire_all() if body.get("expire_access_tokens") else 0
    for token in body.get("revoke") or ():
        auth.settings.revoked.add(str(token))
    return _json({"expired": expired, "revoked": len(auth.settings.revoked)})


async def sim_info(request: web.Request) -> web.Response:
    """GET /_sim/info: the operations served and their rate limits."""
    st = request.app[STATE]
    ops = {}
    for op, (method, path, _handler) in OPERATIONS.items():
        rate, burst = st.limiter.plan(op)
        ops[op] = {"method": method, "path": path, "rate": rate, "burst": burst}
    s = st.settings
    return _json({"operations": ops, "rate_limit": st.limiter.enabled, "seed": s.seed,
                  "marketplaces": list(s.marketplaces), "lag_seconds": st.lag,
                  "next_token_ttl_seconds": st.token_ttl, "now": iso(st.now())})


def _add_control_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/objects", sim_objects)
    app.router.add_get("/_sim/stats", sim_stats)
    app.router.add_route("GET", "/_sim/faults", sim_faults)
    app.router.add_route("POST", "/_sim/faults", sim_faults)
    app.router.add_post("/_sim/auth", sim_auth)
    app.router.add_get("/_sim/info", sim_info)


def make_app(settings: SimSettings | None = None) -> web.Application:
    """The simulator as an aiohttp application (SP-API, LWA and the /_sim control endpoints)."""
    state = SimState(settings or SimSettings())
    app = web.Application()
    app[STATE] = state
    app[lwa.AUTH] = state.auth
    app.router.add_post("/auth/o2/token", lwa.token_endpoint)
    _add_control_routes(app)
    if state.settings.sandbox_models is not None:
        add_sandbox_routes(app, state.settings.sandbox_models, state)  # answers every path itself
        return app
    if state.settings.pager:
        pager.add_pager_routes(app, state)
        return app
    for op, (method, path, handler) in OPERATIONS.items():
        app.router.add_route(method, path, _endpoint(op, handler))
    if state.settings.sqs_endpoint is not None:
        app.cleanup_ctx.append(publisher.publisher_ctx(state))
    reports.add_routes(app, state)
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app


class Simulator:
    """Runs the simulator on a free loopback port: `async with Simulator(s) as sim: sim.url`."""

    def __init__(self, settings: SimSettings | None = None) -> None:
        self.settings = settings or SimSettings()
        self.app: web.Application | None = None
        self.url = ""
        self._runner: web.AppRunner | None = None

    @property
    def state(self) -> SimState:
        """The running simulator's world (data, stats, fault knobs)."""
        if self.app is None:
            raise RuntimeError("the simulator is not started")
        return self.app[STATE]

    @property
    def token_url(self) -> str:
        """Where LWA tokens are issued: url + /auth/o2/token."""
        return self.url + "/auth/o2/token"

    async def start(self) -> None:
        """Build the data and start listening."""
        self.app = make_app(self.settings)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop listening; idempotent."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
