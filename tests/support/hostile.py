"""A hostile SP-API on loopback: LWA, getOrders and the reports flow, each misbehaving as its
`mode` says. A thief on a second loopback address (127.0.0.2) receives whatever a redirect sends
it. Used by tests/test_hostile.py (in process, or served from a thread for `spd` subprocesses)
and by tests/bench/hostile.py (memory figures at full size).

    async with Hostile() as h:       # or HostileThread().start() for subprocesses
        h.mode = "echo_future"       # see MODES
        h.size = 4 * 2**20           # bytes of a huge body or a document line
        h.url, h.token_url, h.thief.forms

Every mode answers like Amazon would except for the one thing it breaks.
"""

from __future__ import annotations

import asyncio
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from spd.app.runtime import Runtime
from spd.config.validate import load_config
from spd.state.store import StateStore

from .config import write_config
from .spd import iso

ACCESS_TOKEN = "Atza|hostile-access-token-0123456789"
STOLEN_TOKEN = "Atza|issued-by-the-thief"
MODES = {
    "ok": "getOrders answers one order and a valid LastUpdatedBefore echo",
    "echo_future": "the echoed LastUpdatedBefore lies in 2099",
    "echo_start": "the echoed LastUpdatedBefore equals LastUpdatedAfter (the window start)",
    "echo_skew": "the echo stays three minutes behind now (Amazon's clock a minute behind)",
    "echo_malformed": "the echoed LastUpdatedBefore is not a timestamp",
    "repeat_token": "every page has the same NextToken",
    "token_cycle": "NextTokens cycle a -> b -> a",
    "redirect": "getOrders answers 302 to the thief",
    "huge": "a getOrders body of `size` bytes with Content-Length",
    "chunked": "a getOrders body of `size` bytes, chunked, without Content-Length",
    "echo_access_token": "a 400 whose message repeats the access token it was sent",
    "lwa_redirect": "the LWA token endpoint answers 307 to the thief",
    "lwa_echo": "LWA refuses with an error_description that repeats the refresh token",
    "report_line": "a report document with one line of `size` bytes (gzipped)",
    "report_trickle": "a report document whose second line trickles in forever",
    "no_id": "the order has neither AmazonOrderId nor LastUpdateDate",
}


def order(n: int, updated: datetime) -> dict[str, Any]:
    stamp = iso(updated)
    return {"AmazonOrderId": f"902-{n:07d}-0000000", "PurchaseDate": stamp,
            "LastUpdateDate": stamp, "OrderStatus": "Shipped", "MarketplaceId": "ATVPDKIKX0DER"}


@dataclass
class Thief:
    """Whatever arrives on 127.0.0.2: form fields and headers, answered with a token of its own."""

    forms: list[dict[str, str]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        if request.method == "POST":
            self.forms.append({k: str(v) for k, v in (await request.post()).items()})
        return web.json_response({"access_token": STOLEN_TOKEN, "expires_in": 3600,
                                  "payload": {"Orders": [], "LastUpdatedBefore": "2099-01-01T00:00:00Z"}})


@dataclass
class Hostile:
    """See the module docstring."""

    mode: str = "ok"
    size: int = 4 * 2**20
    fat: int = 0  # bytes of padding in each order of a big body
    url: str = ""
    thief: Thief = field(default_factory=Thief)
    calls: list[dict[str, str]] = field(default_factory=list)  # query of every getOrders call
    token_forms: list[dict[str, str]] = field(default_factory=list)
    _runners: list[web.AppRunner] = field(default_factory=list)

    @property
    def token_url(self) -> str:
        return f"{self.url}/auth/o2/token"

    async def start(self) -> Hostile:
        app = web.Application()
        app.router.add_post("/auth/o2/token", self.token)
        app.router.add_get("/orders/v0/orders", self.get_orders)
        app.router.add_post("/reports/2021-06-30/reports", self.create_report)
        app.router.add_get("/reports/2021-06-30/reports/{id}", self.get_report)
        app.router.add_get("/reports/2021-06-30/documents/{id}", self.get_document)
        app.router.add_get("/doc", self.document)
        app.router.add_post("/sts{tail:.*}", self.sts)
        app.router.add_post("/tokens/2021-03-01/restrictedDataToken", self.rdt)
        app.router.add_post("/hook", self.hook)
        self.url = await self._serve(app, "127.0.0.1")
        thief = web.Application()
        thief.router.add_route("*", "/{tail:.*}", self.thief.handle)
        self.thief.url = await self._serve(thief, "127.0.0.2")
        return self

    async def _serve(self, app: web.Application, host: str) -> str:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, host, 0).start()
        self._runners.append(runner)
        return f"http://{host}:{runner.addresses[0][1]}"

    async def close(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> Hostile:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- LWA ------------------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_forms.append(form)
        if self.mode == "lwa_redirect":
            raise web.HTTPTemporaryRedirect(f"{self.thief.url}/auth/o2/token")
        if self.mode == "lwa_echo":
            return web.json_response({"error": "invalid_request", "error_description":
                                      f"bad refresh_token {form.get('refresh_token')} for "
                                      f"client {form.get('client_id')}"}, status=400)
        return web.json_response({"access_token": ACCESS_TOKEN, "token_type": "bearer",
                                  "expires_in": 3600})

    async def sts(self, request: web.Request) -> web.StreamResponse:
        """STS AssumeRole: always a 307 to the thief (a signed request must not follow it)."""
        await request.read()
        raise web.HTTPTemporaryRedirect(f"{self.thief.url}/")

    async def rdt(self, request: web.Request) -> web.StreamResponse:
        """createRestrictedDataToken: redirected to the thief in mode "redirect"."""
        await request.read()
        if self.mode == "redirect":
            raise web.HTTPFound(f"{self.thief.url}/tokens/2021-03-01/restrictedDataToken")
        return web.json_response({"restrictedDataToken": "Atz.sprdt|hostile", "expiresIn": 3600})

    async def hook(self, request: web.Request) -> web.StreamResponse:
        """A webhook receiver that acknowledges with a 200 and `size` bytes of body."""
        await request.read()
        response = web.StreamResponse(status=200)
        response.enable_chunked_encoding()
        await response.prepare(request)
        block, sent = b"a" * 2**20, 0
        try:
            while sent < self.size:
                await response.write(block[: self.size - sent])
                sent += len(block)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the emitter hung up, as it should
        return response

    # -- getOrders ------------------------------------------------------------------------------

    async def get_orders(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.calls.append(query)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        after = query.get("LastUpdatedAfter") or query.get("CreatedAfter")
        echo = iso(now - timedelta(minutes=2, seconds=1))
        payload: dict[str, Any] = {"Orders": [order(len(self.calls), now - timedelta(minutes=3))]}
        mode = self.mode
        if mode == "redirect":
            raise web.HTTPFound(f"{self.thief.url}/orders/v0/orders")
        if mode == "echo_access_token":
            token = request.headers.get("x-amz-access-token", "")
            return web.json_response({"errors": [{"code": "InvalidInput", "message":
                                                  f"token {token} is not valid here"}]}, status=400)
        if mode in ("huge", "chunked"):
            return await self.big_body(request, chunked=mode == "chunked")
        if mode == "echo_future":
            echo = "2099-01-01T00:00:00Z"
        elif mode == "echo_start":
            echo = after or echo
        elif mode == "echo_skew":
            echo = iso(now - timedelta(minutes=3))
        elif mode == "echo_malformed":
            echo = "yesterday at noon"
        elif mode == "repeat_token":
            payload["NextToken"] = "the-same-token"
        elif mode == "token_cycle":
            payload["NextToken"] = "b" if query.get("NextToken") == "a" else "a"
        elif mode == "no_id":
            for o in payload["Orders"]:
                del o["AmazonOrderId"], o["LastUpdateDate"]
        payload["LastUpdatedBefore" if "LastUpdatedAfter" in query else "CreatedBefore"] = echo
        return web.json_response({"payload": payload})

    async def big_body(self, request: web.Request, *, chunked: bool) -> web.StreamResponse:
        """`size` bytes of valid getOrders JSON, with or without a Content-Length."""
        now = datetime.now(timezone.utc)
        fat = {"BuyerInfo": {"Note": "n" * self.fat}} if self.fat else {}
        one = orjson.dumps({**order(1, now - timedelta(minutes=3)), **fat})
        head, tail = b'{"payload": {"Orders": [', b"]}}"
        count = max(1, (self.size - len(head) - len(tail)) // (len(one) + 1))
        headers = {"Content-Type": "application/json"}
        if not chunked:
            headers["Content-Length"] = str(len(head) + count * (len(one) + 1) - 1 + len(tail))
        response = web.StreamResponse(headers=headers)
        if chunked:
            response.enable_chunked_encoding()
        await response.prepare(request)
        block = 2000
        try:
            await response.write(head)
            for start in range(0, count, block):
                items = min(block, count - start)
                data = b",".join([one] * items)
                await response.write((b"," if start else b"") + data)
            await response.write(tail)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client refused the rest, as it should
        return response

    # -- reports --------------------------------------------------------------------------------

    async def create_report(self, request: web.Request) -> web.Response:
        return web.json_response({"reportId": "R1"}, status=202)

    async def get_report(self, request: web.Request) -> web.Response:
        return web.json_response({"reportId": request.match_info["id"], "processingStatus": "DONE",
                                  "reportType": "GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL",
                                  "reportDocumentId": "D1", "marketplaceIds": ["ATVPDKIKX0DER"]})

    async def get_document(self, request: web.Request) -> web.Response:
        return web.json_response({"reportDocumentId": "D1", "url": f"{self.url}/doc",
                                  "compressionAlgorithm": "GZIP"})

    async def document(self, request: web.Request) -> web.StreamResponse:
        """A gzipped TSV: a header, one good row, then one line of `size` bytes without end
        (or, in mode report_trickle, a line that grows a little every 20 ms, forever)."""
        response = web.StreamResponse(headers={"Content-Type": "text/plain;charset=UTF-8"})
        await response.prepare(request)
        z = zlib.compressobj(6, zlib.DEFLATED, 31)
        await response.write(z.compress(b"amazon-order-id\tsku\n902-0000001-0000000\tSKU-1\n"))
        if self.mode == "report_trickle":
            try:
                while True:
                    await response.write(z.compress(b"y" * 1024) + z.flush(zlib.Z_SYNC_FLUSH))
                    await asyncio.sleep(0.02)
            except (ConnectionError, asyncio.CancelledError):
                return response
        block = b"x" * 2**20
        sent = 0
        try:
            while sent < self.size:
                piece = block[: min(len(block), self.size - sent)]
                sent += len(piece)
                out = z.compress(piece)
                if out:
                    await response.write(out)
            await response.write(z.flush())
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client gave up on the document, as it should
        return response


class HostileThread:
    """`Hostile` served from its own thread and loop, for `spd` subprocesses."""

    def __init__(self, **settings: Any) -> None:
        self.hostile = Hostile(**settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hostile, name)

    def start(self) -> HostileThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.hostile.start(), self._loop).result(10)
        return self

    def set(self, mode: str, size: int | None = None, fat: int = 0) -> None:
        self.hostile.mode, self.hostile.fat = mode, fat
        if size is not None:
            self.hostile.size = size

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.hostile.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


CLIENT_SECRET = "amzn1.oa2-cs.v1.hostile-client-secret-42"
REFRESH_TOKEN = "Atzr|hostile-refresh-token-0123456789"


def write_hostile_config(tmp_path: Any, url: str, poller: dict[str, Any] | None = None, *,
                         token_url: str | None = None, emitters: dict[str, str] | None = None,
                         state: Any = None, extra: str = "") -> Any:
    """write_config for the hostile stub: account `acme` with the secrets the stub echoes back,
    and a poller `p` (getOrders by update time from a day ago unless `poller` says otherwise)."""
    start = iso(datetime.now(timezone.utc) - timedelta(days=1))
    poller = {"object": "ordersV0.getOrders", "timestamp_field": "updated", "start_time": start,
              **(poller or {})}
    lwa = {"client_id": "amzn1.application-oa2-client.hostile", "client_secret": CLIENT_SECRET,
           "refresh_token": REFRESH_TOKEN}
    return write_config(tmp_path, url, {"p": poller}, account="acme", lwa=lwa, token_url=token_url,
                        emitters=emitters, state=state, extra=extra)


class Harness:
    """A started runtime with poller `p` against the stub (`poller` overrides its keys); every
    emitter is `emitter`. `async with Harness(...) as h:` then `h.runtime.pollers["p"]`."""

    def __init__(self, tmp_path: Any, url: str, emitter: Any, poller: dict[str, Any] | None = None) -> None:
        self.config = load_config(write_hostile_config(tmp_path, url, poller))
        self.recorder = emitter
        self.store = StateStore(Path(self.config.state.path))
        self.runtime = Runtime(self.config, self.store, emitter_factory=lambda n, c: emitter)

    async def __aenter__(self) -> Harness:
        await self.store.open()
        await self.runtime.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runtime.close()
        await self.store.close()

    async def run(self, limit: float = 30) -> Any:
        """One run of poller `p`; a run that takes longer than `limit` seconds is looping."""
        return await asyncio.wait_for(self.runtime.pollers["p"].run(), limit)

    async def state(self) -> Any:
        return await self.store.get("p")
