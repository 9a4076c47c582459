"""Running `spd` on a real pseudo-terminal, as a person at a terminal runs it.

stdin, stdout and stderr are the pty's slave end (so `isatty()` is true for all of them, as in
a shell); what the terminal receives is read from the master end until the process exits.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from dataclasses import dataclass

from .spd import ROOT, spd_cmd, spd_env

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>]")


@dataclass
class TtyResult:
    returncode: int
    raw: str  # every byte the terminal received, escape sequences included

    @property
    def text(self) -> str:
        """What was printed, without escape sequences, with `\\n` line ends."""
        return _ANSI.sub("", self.raw).replace("\r\n", "\n")

    @property
    def lines(self) -> list[str]:
        """The final lines: a line rewritten in place (`\\r`) counts as its last version."""
        return [line.rsplit("\r", 1)[-1].rstrip() for line in self.text.split("\n")]


def run_spd_tty(*args: str, columns: int = 200, rows: int = 50, timeout: float = 120,
                env: dict[str, str] | None = None) -> TtyResult:
    """Runs `spd ARGS` with a pty of `columns` x `rows` as its terminal; returns what it printed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    environment = {**(env or spd_env()), "TERM": "xterm-256color", "COLUMNS": str(columns),
                   "LINES": str(rows)}
    environment.pop("NO_COLOR", None)
    proc = subprocess.Popen(spd_cmd(*args), stdin=slave, stdout=slave, stderr=slave, cwd=ROOT,
                            env=environment, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"spd {' '.join(args)} did not exit within {timeout}s")
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None and not _more(master):
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave end closed (the process exited)
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return TtyResult(proc.wait(timeout=10), b"".join(chunks).decode(errors="replace"))


def _more(fd: int) -> bool:
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)
