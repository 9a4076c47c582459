"""The simulator served from a background thread (SimThread), for sync tests and `spd`
subprocesses. `spd sim` in its own process is tests.support.sim_process's SimProcess."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from spd.sim import SimSettings, Simulator


class SimThread:
    """The simulator served from a background thread, so sync tests and subprocesses can use it."""

    def __init__(self, **settings: Any) -> None:
        self.settings = SimSettings(**settings)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._sim: Any = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._sim = Simulator(self.settings)
        self._loop.run_until_complete(self._sim.start())
        self.url = self._sim.url
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._sim.close())

    def start(self) -> "SimThread":
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("simulator did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def get(self, path: str, **query: Any) -> Any:
        """GET a simulator admin endpoint (`/_sim/...`) and parse its JSON."""
        url = f"{self.url}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.loads(resp.read())

    def reached(self) -> int:
        """Every SP-API request and LWA token the simulator has seen."""
        stats = self.get("/_sim/stats")
        return sum(c.get("requests", 0) for c in stats["operations"].values()) + stats["lwa"]["tokens_issued"]

    def requests(self, operation: str) -> int:
        """The requests of one operation ("api.operationId") the simulator has seen."""
        return int(self.get("/_sim/stats")["operations"].get(operation, {}).get("requests", 0))

    def post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())


def call(sim: SimThread, method: str, path: str, body: Any = None, token: bool = True,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request to the simulator (with an access token unless told otherwise)."""
    all_headers = dict(headers or {})
    if token:
        all_headers["x-amz-access-token"] = access_token(sim)
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    req = urllib.request.Request(sim.url + path, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def access_token(sim: SimThread) -> str:
    form = ("grant_type=refresh_token&refresh_token=r&client_id=c&client_secret=s").encode()
    req = urllib.request.Request(sim.url + "/auth/o2/token", data=form, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["access_token"]
