"""The fixtures every test module may use (tests/conftest.py registers them): simulators on
loopback, a tmpfs that can fill up, the hostile SP-API stub and the static sandbox."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .hostile import HostileThread
from .kafka_broker import TansuBroker
from .sim import SimThread
from .static_sandbox import sandbox, write_sandbox_config

__all__ = ["broker", "exec_config", "exec_sim", "hostile_thread", "sandbox", "sim_factory", "tmpfs"]


@pytest.fixture(scope="module")
def exec_sim() -> Iterator[SimThread]:
    """One simulator without rate limits for a module's `spd exec` subprocesses; its stats
    (`reached`, `requests`) count what reached it."""
    sim = SimThread(rate_limit=False).start()
    yield sim
    sim.stop()


@pytest.fixture
def exec_config(exec_sim: SimThread, tmp_path: Path) -> Path:
    """A config whose one account `sandbox` points at exec_sim (marketplace ATVPDKIKX0DER)."""
    return write_sandbox_config(tmp_path, exec_sim.url)


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


@pytest.fixture
def hostile_thread() -> Iterator[Any]:
    """The hostile SP-API of tests/hostile.py served from its own thread (for `spd` subprocesses)."""
    stub = HostileThread().start()
    yield stub
    stub.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A tansu Kafka-protocol broker of its own (skipped where the binary is not installed)."""
    b = TansuBroker.find_or_skip(log=tmp_path / "tansu.log").start()
    yield b
    b.close()
