"""The files beside a state database: the daemon lock and the disk-full reserve.

The lock is an exclusive `flock` on `<real path of the db>.lock`: keyed on the database file's
real path (symlinks resolved), not on the path string a config wrote, so two daemons given the
same file through a symlink take the same lock and the second is refused. The lock file holds
the daemon's pid for messages; a clean stop empties it.

The reserve, `<db>.reserve`, takes RESERVE_BYTES of the disk while all is well; when the disk is
full it is given up, so that the failure of the run can still be written to the database.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog

from spd.core.errors import StateError, StateFullError, StateLockedError, StateWriteError

log = structlog.get_logger("spd.state.store")

# A daemon starting while a CLI command holds the lock for a few milliseconds should not fail.
DAEMON_LOCK_WAIT = 2.0
RESERVE_BYTES = 256 * 2**10


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
        try:
            self._wait_for(fd)
            self._write_pid(fd)
        except BaseException:
            os.close(fd)  # also releases a lock taken: nothing is left open on any failure
            raise
        self.fd = fd

    def _wait_for(self, fd: int) -> None:
        """Takes the flock on `fd`, waiting DAEMON_LOCK_WAIT for a CLI command to finish;
        StateLockedError while a daemon holds it."""
        deadline = time.monotonic() + DAEMON_LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline or _alive(self.read_pid()):
                    raise self.held_error() from None
                time.sleep(0.05)
            except OSError as exc:
                raise self._write_error(exc) from None

    def _write_pid(self, fd: int) -> None:
        """Writes this process's pid into the lock file (for other processes' messages)."""
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.fsync(fd)
        except OSError as exc:
            raise self._write_error(exc) from None

    def _write_error(self, exc: OSError) -> StateWriteError:
        """One line for a lock file that cannot be written now: StateFullError on a full disk,
        else StateWriteError (both exit 1: a later start may work)."""
        error = StateFullError if exc.errno in (errno.ENOSPC, errno.EDQUOT) else StateWriteError
        reason = exc.strerror or str(exc)
        return error(f"state {self.db}: cannot write the daemon lock {self.path} ({reason})")

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


class DiskReserve:
    """`<db>.reserve`: space given up on a full disk so that a run's failure can be recorded."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.path = Path(str(db) + ".reserve")

    def keep(self) -> None:
        """Grows the reserve back to RESERVE_BYTES as far as the disk allows (written, not
        sparse: the space is really taken, and a full disk keeps what fitted)."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError:
            return
        try:
            size = os.fstat(fd).st_size
            while size < RESERVE_BYTES:
                size += os.write(fd, b"\0" * min(4096, RESERVE_BYTES - size))
        except OSError:
            pass
        finally:
            os.close(fd)

    def give_up(self) -> bool:
        """Frees the reserve so that a write can happen on a full disk; False if there is none."""
        try:
            self.path.unlink()
        except OSError:
            return False
        log.warning("state_reserve_used", path=str(self.db),
                    reason="the disk is full; the reserve was freed to record the run's failure")
        return True
