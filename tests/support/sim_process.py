"""`spd sim` in its own process (SimProcess), for the benches and for tests whose `spd` must not
share a CPU-bound process with it.

Light on purpose: the throughput bench's clients run as `python -m tests.bench.throughput
--client ...`, so whatever this module imports is counted in every client's start-up (importing
spd.sim here added about 0.3 s of CPU to each)."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from typing import Any

import orjson
import psutil

from .spd import ROOT


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
