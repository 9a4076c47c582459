"""What spd tells systemd (READY, RELOADING, STOPPING, WATCHDOG, STATUS), without a dependency.
($STATE_DIRECTORY, the default state folder, is read by spd.config.model.)

`StatusBoard` keeps the outcome of every poller's and job's last run and renders the one-line
`STATUS=` that `systemctl status spd` shows.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from spd.core.times import format_ts

STATUS_ERROR_CHARS = 200  # systemctl status shows one line; the full error is in the journal


def notify(message: str) -> bool:
    """Sends one sd_notify message; False when not under systemd (no NOTIFY_SOCKET)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def notify_reloading(status: str) -> bool:
    """RELOADING=1 with the monotonic timestamp systemd (Type=notify-reload) expects beside it."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS={status}")


def under_systemd() -> bool:
    """True when systemd listens for notifications (the daemon then keeps STATUS= current)."""
    return bool(os.environ.get("NOTIFY_SOCKET"))


def watchdog_interval() -> float | None:
    """Half of WATCHDOG_USEC in seconds when systemd asks for keep-alives for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


@dataclass
class LastError:
    name: str  # "poller orders", "job inventory", "reload"
    message: str
    at: datetime


@dataclass
class StatusBoard:
    """The outcome of each poller's and job's last run, rendered as one STATUS= line."""

    failed: dict[str, bool] = field(default_factory=dict)  # key -> stalled (an emitter refused)?
    reasons: dict[str, str] = field(default_factory=dict)  # key -> the error of its failed run
    last_error: LastError | None = None

    def succeeded(self, key: str) -> None:
        """The run of `key` ("orders", "job:inventory") completed."""
        self.failed.pop(key, None)
        self.reasons.pop(key, None)

    def failure(self, key: str, error: str, *, stalled: bool) -> None:
        """The run of `key` failed; `stalled` when an emitter could not deliver (watermark held)."""
        self.failed[key] = stalled
        self.reasons[key] = " ".join(error.split())
        self.error(_label(key), error)

    def error(self, name: str, message: str) -> None:
        """Remembers the latest error for the status line (a failed reload, too)."""
        self.last_error = LastError(name, message, datetime.now(timezone.utc))

    def line(self, pollers: list[str], jobs: list[str], waiting: set[str]) -> str:
        """`3 pollers, 1 job: 2 ok, 1 waiting for quota, 1 stalled; last error ...`."""
        keys = list(pollers) + [f"job:{name}" for name in jobs]
        counts = {"ok": 0, "waiting for quota": 0, "stalled": 0, "failing": 0}
        for key in keys:
            counts[self._condition(key, waiting)] += 1
        parts = [_plural(len(pollers), "poller")] + ([_plural(len(jobs), "job")] if jobs else [])
        text = ", ".join(parts) + ": " + ", ".join(f"{n} {c}" for c, n in counts.items() if n or c == "ok")
        if self.last_error is not None:
            err = self.last_error
            message = " ".join(err.message.split())
            if len(message) > STATUS_ERROR_CHARS:
                message = message[:STATUS_ERROR_CHARS - 1] + "…"
            text += f"; last error {format_ts(err.at.replace(microsecond=0))} {err.name}: {message}"
        return text

    def _condition(self, key: str, waiting: set[str]) -> str:
        if key in self.failed:
            return "stalled" if self.failed[key] else "failing"
        return "waiting for quota" if key in waiting else "ok"


def _label(key: str) -> str:
    return f"job {key[4:]}" if key.startswith("job:") else f"poller {key}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
