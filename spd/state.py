"""Poller state: watermarks, windows in progress and counters in one SQLite file.

Writes are tiny and rare (one per delivered page), so the stdlib `sqlite3` is used synchronously.
WAL mode with `synchronous=FULL`: when a checkpoint call returns, it is on disk. The file and its
-wal/-shm companions are mode 0600. A running daemon holds an exclusive `flock` on `<db>.lock`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import structlog

from spd.errors import IdentityChangedError, StateError, StateLockedError

log = structlog.get_logger(__name__)

SCHEMA_VERSION = 1
MAX_ERROR_CHARS = 500
# A daemon starting while a CLI command holds the lock for a few milliseconds should not fail.
DAEMON_LOCK_WAIT = 2.0

_SCHEMA_V1 = """
CREATE TABLE pollers (
    poller TEXT PRIMARY KEY, identity TEXT NOT NULL, watermark TEXT NOT NULL,
    window_start TEXT, window_end TEXT, next_token TEXT, page INTEGER NOT NULL DEFAULT 0,
    objects_emitted INTEGER NOT NULL DEFAULT 0, pages_emitted INTEGER NOT NULL DEFAULT 0,
    runs INTEGER NOT NULL DEFAULT 0, last_run_at TEXT, last_success_at TEXT, last_error TEXT,
    note TEXT, updated_at TEXT NOT NULL
)
"""
# Index i upgrades schema version i to i + 1; later issues append here.
_MIGRATIONS: list[str] = []

_COLUMNS = (
    "poller, identity, watermark, window_start, window_end, next_token, page, objects_emitted,"
    " pages_emitted, runs, last_run_at, last_success_at, last_error, note"
)


@dataclass
class PollerState:
    """One poller's saved position and counters; datetimes are aware UTC."""

    poller: str
    identity: str
    watermark: datetime
    window_start: datetime | None
    window_end: datetime | None
    next_token: str | None
    page: int
    objects_emitted: int
    pages_emitted: int
    runs: int
    last_run_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    note: str | None


def to_iso(dt: datetime) -> str:
    """A fixed-width ISO 8601 UTC string with `Z` (sorts as text)."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: state timestamps must carry a time zone")
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_iso(text: str | None) -> datetime | None:
    """Parses a stored timestamp back into an aware UTC datetime."""
    if text is None:
        return None
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def one_line(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Collapses whitespace to one line and truncates to `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _now() -> str:
    return to_iso(datetime.now(timezone.utc))


def _row_to_state(row: tuple[Any, ...]) -> PollerState:
    return PollerState(
        poller=row[0], identity=row[1], watermark=from_iso(row[2]),  # type: ignore[arg-type]
        window_start=from_iso(row[3]), window_end=from_iso(row[4]), next_token=row[5],
        page=row[6], objects_emitted=row[7], pages_emitted=row[8], runs=row[9],
        last_run_at=from_iso(row[10]), last_success_at=from_iso(row[11]),
        last_error=row[12], note=row[13],
    )


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


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    """Files created inside (db, -wal, -shm, lock) get mode 0600 whatever the process umask."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


class StateStore:
    """The state database; `daemon=True` also takes the daemon's exclusive lock."""

    def __init__(self, path: Path | str, *, daemon: bool = False) -> None:
        self.path = Path(path)
        self.lock_path = Path(str(self.path) + ".lock")
        self.daemon = daemon
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._mutex = threading.RLock()


    def open(self) -> None:
        """Creates or opens the database (and takes the daemon lock when `daemon=True`)."""
        if self._conn is not None:
            return
        try:
            with _private_umask():
                self._make_parent()
                if self.daemon:
                    self._acquire_daemon_lock()
                self._conn = self._connect()
            self._tighten_modes()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Closes the database and releases the daemon lock; safe to call twice."""
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._lock_fd, 0)  # no stale pid after a clean stop
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = None

    def __enter__(self) -> StateStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make_parent(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise self._unwritable(exc) from None

    def _unwritable(self, exc: BaseException) -> StateError:
        reason = getattr(exc, "strerror", None) or str(exc)
        return StateError(
            f"state {self.path}: cannot open the state database for writing ({reason});"
            " state.path must name a writable SQLite file in a writable directory"
        )

    def _connect(self) -> sqlite3.Connection:
        if self.path.is_dir():
            raise self._unwritable(IsADirectoryError(21, "it is a directory"))
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._unwritable(exc) from None
        try:
            conn.execute("PRAGMA busy_timeout=10000")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal_mode is {mode}, WAL is needed")
            conn.execute("PRAGMA synchronous=FULL")
            self._migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._unwritable(exc) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Creates the schema on a new file, or upgrades an older one step by step."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"state {self.path}: schema version {version} was written by a newer spd;"
                    f" this version reads versions up to {SCHEMA_VERSION}"
                )
            if version == 0:
                conn.execute(_SCHEMA_V1)
                version = 1
                log.info("state_created", path=str(self.path), schema_version=SCHEMA_VERSION)
            for step in range(version - 1, SCHEMA_VERSION - 1):
                conn.execute(_MIGRATIONS[step])
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _tighten_modes(self) -> None:
        # Files created before this version (or by hand) are made private too.
        for suffix in ("", "-wal", "-shm", ".lock"):
            with contextlib.suppress(OSError):
                p = Path(str(self.path) + suffix)
                if p.exists() and (p.stat().st_mode & 0o777) != 0o600:
                    p.chmod(0o600)

    def _acquire_daemon_lock(self) -> None:
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise self._unwritable(exc) from None
        deadline = time.monotonic() + DAEMON_LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline or _alive(self._read_lock_pid()):
                    os.close(fd)
                    raise self._held_error() from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._lock_fd = fd

    def _read_lock_pid(self) -> int | None:
        try:
            text = self.lock_path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def _held_error(self) -> StateError:
        pid = self._read_lock_pid()
        who = f"pid {pid}" if pid is not None else "pid unknown"
        return StateLockedError(f"state {self.path} is held by a running spd daemon ({who})")

    def is_locked_by_daemon(self) -> bool:
        """True when a daemon (this store, or another process) holds the state's lock."""
        if self._lock_fd is not None:
            return True
        try:
            fd = os.open(self.lock_path, os.O_RDONLY | os.O_CLOEXEC)
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
    def _exclusive(self) -> Iterator[None]:
        """Holds the daemon lock for the duration of a non-daemon write (spd reset)."""
        if self._lock_fd is not None:
            yield
            return
        try:
            fd = os.open(self.lock_path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._held_error() from None
            yield
        finally:
            os.close(fd)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(f"state {self.path} is not open")
        return self._conn

    def get(self, poller: str) -> PollerState | None:
        """The saved state of `poller`, or None when it has none."""
        with self._mutex:
            row = self._db().execute(
                f"SELECT {_COLUMNS} FROM pollers WHERE poller = ?", (poller,)
            ).fetchone()
        return _row_to_state(row) if row else None

    def all(self) -> list[PollerState]:
        """Every poller's saved state, ordered by name."""
        with self._mutex:
            rows = self._db().execute(f"SELECT {_COLUMNS} FROM pollers ORDER BY poller").fetchall()
        return [_row_to_state(r) for r in rows]

    def pollers(self) -> list[str]:
        """The names of every poller with saved state, sorted."""
        with self._mutex:
            rows = self._db().execute("SELECT poller FROM pollers ORDER BY poller").fetchall()
        return [r[0] for r in rows]


    def _write(self, sql: str, args: tuple[Any, ...], poller: str) -> None:
        """Runs one UPDATE in its own durable transaction; the poller must exist."""
        with self._mutex:
            cur = self._db().execute(sql, args)
            if cur.rowcount == 0:
                raise StateError(f"state {self.path}: poller {poller} has no saved state")

    def ensure(
        self, poller: str, identity: str, start: datetime, *, config_path: str | Path | None = None
    ) -> PollerState:
        """The poller's state, created at `start` when new; IdentityChangedError on a mismatch."""
        with self._mutex:
            self._db().execute(
                "INSERT OR IGNORE INTO pollers (poller, identity, watermark, updated_at)"
                " VALUES (?, ?, ?, ?)",
                (poller, identity, to_iso(start), _now()),
            )
            state = self.get(poller)
        assert state is not None
        if state.identity != identity:
            cfg = config_path if config_path is not None else "CONFIG"
            raise IdentityChangedError(
                f"poller {poller}: its account, object, timestamp_field or params changed since"
                f" its watermark was saved; run `spd reset -c {cfg} {poller}` to start it again"
            )
        return state

    def save_page(
        self, poller: str, window_start: datetime, window_end: datetime | None,
        next_token: str | None, page: int, count: int,
    ) -> None:
        """Checkpoints a delivered page: window, next token, page number; adds to counters."""
        end = to_iso(window_end) if window_end is not None else None
        self._write(
            "UPDATE pollers SET window_start=?, window_end=?, next_token=?, page=?,"
            " objects_emitted=objects_emitted+?, pages_emitted=pages_emitted+1, updated_at=?"
            " WHERE poller=?",
            (to_iso(window_start), end, next_token, page, count, _now(), poller),
            poller,
        )

    def finish_window(self, poller: str, new_watermark: datetime) -> None:
        """Moves the watermark to the finished window's end and clears the window in progress."""
        self._write(
            "UPDATE pollers SET watermark=?, window_start=NULL, window_end=NULL, next_token=NULL,"
            " page=0, updated_at=? WHERE poller=?",
            (to_iso(new_watermark), _now(), poller),
            poller,
        )

    def restart_window(self, poller: str) -> None:
        """Forgets the next token and page count (an expired token) but keeps the window."""
        self._write(
            "UPDATE pollers SET next_token=NULL, page=0, updated_at=? WHERE poller=?",
            (_now(), poller),
            poller,
        )

    def record_run(self, poller: str, *, error: str | None) -> None:
        """Counts a run; an error is kept (one line), a success clears the last error."""
        now = _now()
        if error is None:
            sql = "UPDATE pollers SET runs=runs+1, last_run_at=?, last_success_at=?, last_error=NULL"
            args: tuple[Any, ...] = (now, now)
        else:
            sql = "UPDATE pollers SET runs=runs+1, last_run_at=?, last_error=?"
            args = (now, one_line(error))
        self._write(sql + ", updated_at=? WHERE poller=?", (*args, now, poller), poller)

    def set_note(self, poller: str, note: str | None) -> None:
        """Sets (or clears) the note `status` shows, e.g. that start_time was clamped."""
        text = one_line(note) if note is not None else None
        self._write(
            "UPDATE pollers SET note=?, updated_at=? WHERE poller=?", (text, _now(), poller), poller
        )

    def reset(self, poller: str, to: datetime, identity: str | None = None) -> None:
        """Moves the watermark to `to` and drops the window in progress; refused under a daemon."""
        with self._mutex, self._exclusive():
            cur = self._db().execute(
                "UPDATE pollers SET watermark=?, identity=COALESCE(?, identity), window_start=NULL,"
                " window_end=NULL, next_token=NULL, page=0, updated_at=? WHERE poller=?",
                (to_iso(to), identity, _now(), poller),
            )
            if cur.rowcount == 0:
                if identity is None:
                    raise StateError(f"state {self.path}: poller {poller} has no saved state")
                self.ensure(poller, identity, to)

    def delete(self, poller: str) -> bool:
        """Forgets a poller entirely; True when it had state."""
        with self._mutex:
            cur = self._db().execute("DELETE FROM pollers WHERE poller = ?", (poller,))
        return cur.rowcount > 0
