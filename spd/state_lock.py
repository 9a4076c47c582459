"""The daemon lock of a state database: an exclusive `flock` on `<real path of the db>.lock`.

The lock is keyed on the database file's real path (symlinks resolved), not on the path string
a config wrote: two daemons given the same file through a symlink take the same lock, and the
second is refused. The lock file holds the daemon's pid for messages; a clean stop empties it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from spd.errors import StateError, StateLockedError

# A daemon starting while a CLI command holds the lock for a few milliseconds should not fail.
DAEMON_LOCK_WAIT = 2.0


def lock_path_for(db: Path) -> Path:
    """`<db>.lock` next to the database's real file (symlinks resolved)."""
    real = Path(os.path.realpath(db))
    return real.with_name(real.name + ".lock")


def _alive(pid: int | None) -> bool:
    """True when `pid` names a running process (a daemon holding the lock, not a CLI command)."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return True


class DaemonLock:
    """The lock of one state database; `unwritable` turns an OSError into the store's error."""

    def __init__(self, db: Path, unwritable: Callable[[BaseException], StateError]) -> None:
        self.db = db
        self.path = lock_path_for(db)
        self._unwritable = unwritable
        self.fd: int | None = None

    def acquire(self) -> None:
        """Takes the lock for this process (a daemon or `spd once`), waiting briefly for a CLI
        command; StateLockedError while another daemon holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise self._unwritable(exc) from None
        deadline = time.monotonic() + DAEMON_LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline or _alive(self.read_pid()):
                    os.close(fd)
                    raise self.held_error() from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        """Empties the pid and releases the lock; safe to call twice."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)  # no stale pid after a clean stop
            os.close(self.fd)  # releases the flock
            self.fd = None

    def read_pid(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def held_error(self) -> StateError:
        pid = self.read_pid()
        who = f"pid {pid}" if pid is not None else "pid unknown"
        return StateLockedError(f"state {self.db} is held by a running spd daemon ({who})")

    def is_held(self) -> bool:
        """True when a daemon (this process, or another one) holds the lock."""
        if self.fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing also releases a lock we did take
        return False

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Holds the lock for the duration of a non-daemon write (spd reset)."""
        if self.fd is not None:
            yield
            return
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self.held_error() from None
            yield
        finally:
            os.close(fd)
