"""Running `spd` as a user does: real subprocesses, their environment, and waiting on what they write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def iso(dt: datetime) -> str:
    """UTC to the second with Z, as configs and the simulator write times."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


ROOT = Path(__file__).resolve().parents[2]


SHARED_MODELS = next(
    (p for p in (ROOT.parent / "shared" / "sp-api-models", Path("/work/shared/sp-api-models")) if p.is_dir()),
    None,
)


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


def kill_left(procs: Iterable[subprocess.Popen]) -> None:
    """SIGKILLs (and reaps) those of `procs` still running: a test's cleanup after a failure."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


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


def read_jsonl_so_far(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a file spd may be writing right now: a last line without its newline
    is still being written (read_jsonl, for a finished file, would fail on it)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines() if line.strip()]


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
