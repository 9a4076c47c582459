"""Shared fixtures: a simulator on loopback in its own thread, configs in tmp_path, `spd` subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = next(
    (p for p in (ROOT.parent / "shared" / "sp-api-models", Path("/work/shared/sp-api-models")) if p.is_dir()),
    None,
)


class SimThread:
    """The simulator served from a background thread, so sync tests and subprocesses can use it."""

    def __init__(self, **settings: Any) -> None:
        from spd.sim import SimSettings

        self.settings = SimSettings(**settings)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._sim: Any = None

    def _serve(self) -> None:
        from spd.sim import Simulator

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


@pytest.fixture
def sim_factory() -> Iterator[Any]:
    """Starts simulators with given settings; stops them at the end of the test."""
    started: list[SimThread] = []

    def make(**settings: Any) -> SimThread:
        sim = SimThread(**settings).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


def spd_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPD_")}
    env.update(extra)
    env.pop("NOTIFY_SOCKET", None)
    return env


def spd_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "spd.cli", *args]


def run_spd(*args: str, timeout: float = 120, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess:
    """Runs `spd ARGS` as a real subprocess and returns its completed process (text)."""
    return subprocess.run(spd_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          env=env or spd_env(), input=input, cwd=ROOT)


def start_spd(*args: str, stdout: Any = subprocess.DEVNULL, stderr: Any = None,
              env: dict[str, str] | None = None) -> subprocess.Popen:
    """Starts `spd ARGS` in the background."""
    return subprocess.Popen(spd_cmd(*args), stdout=stdout, stderr=stderr or subprocess.PIPE,
                            env=env or spd_env(), cwd=ROOT)


def stop_spd(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 35) -> int:
    """Sends a signal and waits for the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout)


def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.1) -> Any:
    """Polls `predicate` until it returns something truthy; fails the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Any]:
    """A real tmpfs of 8 MiB at tmp_path/"tmpfs" (a disk that can fill up); skipped where the
    machine does not allow mounting one (not root, no mount namespace)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill_disk(directory: Path) -> Path:
    """Fills the file system of `directory` to its last byte with a filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


@pytest.fixture
def hostile_thread() -> Iterator[Any]:
    """The hostile SP-API of tests/hostile.py served from its own thread (for `spd` subprocesses)."""
    from hostile import HostileThread

    stub = HostileThread().start()
    yield stub
    stub.stop()
