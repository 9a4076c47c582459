"""The simulator served from a background thread (SimThread), for sync tests and `spd`
subprocesses, or as `spd sim` in its own process (SimProcess), for the benches and for tests whose
`spd` must not share a CPU-bound process with it."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from typing import Any

import orjson
import psutil

from spd.sim import SimSettings, Simulator

from .spd import ROOT


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

    def post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(f"{self.url}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())


class SimProcess:
    """`spd sim` in its own process on a free port; `url` once started."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> "SimProcess":
        cmd = [sys.executable, "-m", "spd.cli", "sim", "--port", "0", *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "spd simulator listening on http://..."
        if "http://" not in line:
            self.proc.kill()
            raise SystemExit(f"simulator did not start: {line!r}")
        self.url = line.split()[-1]
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:  # a big seeded dataset can be slow to let go
                self.proc.kill()
                self.proc.wait(15)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as resp:
            return orjson.loads(resp.read())

    def cpu_seconds(self) -> float:
        """CPU (user + system) the simulator has used so far."""
        assert self.proc is not None
        return cpu_seconds(psutil.Process(self.proc.pid))


def cpu_seconds(proc: psutil.Process) -> float:
    """CPU seconds (user + system) a running process has used so far."""
    return float(sum(proc.cpu_times()[:2]))
