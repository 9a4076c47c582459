"""The SQLite state database file: opening it, its schema, its connection and WAL checkpoints.

Writes are tiny (one per delivered page), so the stdlib `sqlite3` is used synchronously, on the
event loop, each in one transaction (`_transaction`). While another connection holds SQLite's
write lock (an operator's `sqlite3` shell inside a transaction, another spd command; the
store's own checkpoints below are PASSIVE and never take it) a write does not wait in SQLite's
busy handler, which would stall every task of the loop: SQLite waits BUSY_MS at most, then the
write is tried again after an `asyncio.sleep`, for up to LOCK_WAIT seconds (a StateBusyError
after that). Readers never wait for the writer in WAL mode.

WAL mode with `synchronous=NORMAL`: a commit is an append to the WAL without an fsync
(microseconds, less than a hop to a worker thread); only folding the WAL back into the
database fsyncs, and that runs in a thread, on a connection of its own, every
CHECKPOINT_COMMITS commits (SQLite's own automatic checkpoint would run it inside a commit, on
the loop). So 10,000 pollers do not mean 10,000 fsyncs a minute, nor a stalled loop. A commit survives a crash of spd; a power loss may undo the last ones,
which moves watermarks back to pages already delivered: they are emitted again, never lost,
because every checkpoint is written only after the emitters acknowledged its page (the file
emitter after its own fsync). At-least-once holds either way. The file and its
-wal/-shm companions are mode 0600. A running daemon holds an exclusive `flock` on the lock file
of the database's real path (spd.state.files), so a symlink to the same file takes the same lock.

Every SQLite failure becomes one line, chosen by its primary result code (`_error_class`):
a damaged file (missing table, garbage value, not a database) is a StateError (exit 78); a write
that cannot happen now (disk full, I/O error, a read-only file, a lock) is a StateWriteError
(exit 1). Python reports SQLite's extended codes (SQLITE_IOERR_FSYNC, SQLITE_BUSY_SNAPSHOT), so
a code is compared by its low byte, the primary code: a transient disk error must never tell the
operator to restore a backup. A full disk (SQLITE_FULL) is the subclass StateFullError: only then
is the reserve file next to the database given up, so that the failure of the run can still be
recorded; a lock held too long (StateBusyError) leaves the reserve alone. `readonly=True`
(spd status) never creates, migrates or writes anything.

`SqliteDatabase` is the mechanics only; the reads and writes of the tables are in
spd.state.store (pollers, meta), spd.state.ledger and spd.state.buckets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Iterator, TypeVar

import structlog

from spd.core.errors import StateBusyError, StateError, StateFullError, StateWriteError
from spd.state.buckets import BUCKETS_TABLE
from spd.state.files import DaemonLock, DiskReserve
from spd.state.ledger import LEDGER_TABLES

log = structlog.get_logger(__name__)

SCHEMA_VERSION = 1
# Commits between two WAL checkpoints (SQLite's automatic one comes every 1,000 WAL pages).
CHECKPOINT_COMMITS = 1000
# How long a write waits for another connection's write lock before it fails, in seconds.
LOCK_WAIT = 10.0
# SQLite's own wait for a lock, on the loop: a lock held for a moment (another connection's
# commit) is waited for without an asyncio round; a longer one is waited for by _transaction.
BUSY_MS = 5
# SQLite's wait while the file is opened (the schema, before the daemon serves anything).
_OPEN_BUSY_MS = 10_000
# _transaction's sleeps between two tries: the first, doubled after each try up to the longest.
_RETRY_FIRST = 0.005
_RETRY_LONGEST = 0.1
# SQLite's primary result codes of a write that may work later, and their errors (exit 1); any
# other code is a damaged file (exit 78).
_WRITE_ERRORS: dict[int, type[StateWriteError]] = {
    sqlite3.SQLITE_FULL: StateFullError,  # the one failure the disk reserve helps (record_run)
    sqlite3.SQLITE_BUSY: StateBusyError,
    # SQLITE_PROTOCOL: a race between connections over the WAL's locks that SQLite gave up
    # retrying; transient, as its documentation says, not a damaged file.
    **dict.fromkeys((sqlite3.SQLITE_IOERR, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY,
                     sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL),
                    StateWriteError),
}

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

# The pollers table's columns, in the order spd.state.store reads them.
POLLER_COLUMNS = (
    "poller, identity, watermark, window_start, window_end, next_token, page, objects_emitted,"
    " pages_emitted, runs, last_run_at, last_success_at, last_error, note"
)


T = TypeVar("T")


class _Busy(Exception):
    """Another connection holds SQLite's write lock: nothing was written, the write may be tried
    again."""


def _primary_code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code of `exc`: the low byte of the extended code Python reports
    (SQLITE_IOERR for SQLITE_IOERR_FSYNC); None for an error SQLite did not report (raised by
    the sqlite3 module itself, or by spd)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _error_class(exc: sqlite3.Error) -> type[StateError]:
    """The error an SQLite failure is: a StateWriteError (or its StateFullError, StateBusyError)
    for a write that may work later, else StateError, a damaged file; an error without a code
    is not the disk's either, so it is a damaged file too."""
    code = _primary_code(exc)
    return StateError if code is None else _WRITE_ERRORS.get(code, StateError)


def _is_busy(exc: sqlite3.Error) -> bool:
    """True for SQLITE_BUSY and its extended codes ("database is locked")."""
    return _primary_code(exc) == sqlite3.SQLITE_BUSY


def _gone(now: tuple[int, int] | None) -> str:
    """How a file whose identity at its path is `now` (None: no file) went."""
    return "deleted" if now is None else "replaced by another file"


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    """Files created inside (db, -wal, -shm, lock) get mode 0600 whatever the process umask."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


class SqliteDatabase:
    """The state database file and its one connection: `daemon=True` also takes the daemon's
    exclusive lock, `readonly=True` only reads (and never creates or migrates the file)."""

    def __init__(self, path: Path | str, *, daemon: bool = False, readonly: bool = False) -> None:
        self.path = Path(path)
        self.daemon = daemon
        self.readonly = readonly
        self.lock = DaemonLock(self.path, self._unwritable)
        self.reserve = DiskReserve(self.path)
        self._conn: sqlite3.Connection | None = None
        self._opened: tuple[int, int] | None = None  # (device, inode) of the file opened to write
        self._wal_opened: tuple[int, int] | None = None  # and of its -wal, once it exists
        self._mutex = threading.RLock()
        self._commits = 0  # since the last WAL checkpoint
        self._checkpoint: asyncio.Future[None] | None = None  # the checkpoint in its thread
        self._checkpointer: sqlite3.Connection | None = None  # its own connection
        self._checkpoint_lock = threading.Lock()

    @property
    def where(self) -> str:
        """The database's path, for messages."""
        return str(self.path)

    async def open(self) -> None:
        """Creates or opens the database (and takes the daemon lock when `daemon=True`)."""
        self.open_now()

    def open_now(self) -> None:
        """`open` without an event loop (opening a local file does not wait on anything)."""
        if self._conn is not None:
            return
        if self.readonly:
            self._conn = self._connect_readonly()
            return
        try:
            with _private_umask():
                self._make_parent()
                if self.daemon:
                    self.lock.acquire()
                self._conn = self._connect()
                self._opened = self._identity(self.path)
                # _connect committed (the schema's version), so SQLite has created the -wal.
                self._wal_opened = self._identity(self.wal_path)
                if self.daemon:
                    self.reserve.keep()
            self._tighten_modes()
        except BaseException:
            self.close_now()
            raise

    async def close(self) -> None:
        """Closes the database and releases the daemon lock; safe to call twice."""
        checkpoint, self._checkpoint = self._checkpoint, None
        if checkpoint is not None and checkpoint.get_loop() is asyncio.get_running_loop():
            await checkpoint  # close_now() would wait for its thread, but block the loop
        self.close_now()

    def close_now(self) -> None:
        """`close` without an event loop."""
        with self._checkpoint_lock:  # after a checkpoint in progress
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._opened = self._wal_opened = None
            self.lock.release()

    @property
    def wal_path(self) -> Path:
        """SQLite's write-ahead log next to the database: the commits not yet checkpointed."""
        return Path(f"{self.path}-wal")

    @staticmethod
    def _identity(path: Path) -> tuple[int, int] | None:
        """(device, inode) of the file at `path` now (a symlink followed); None when there is
        none."""
        try:
            found = os.stat(path)
        except FileNotFoundError:
            return None
        return found.st_dev, found.st_ino

    def check_file(self) -> None:
        """StateError unless the file at the database's path, and its -wal, are still the ones
        opened: in WAL mode, writes into a file deleted or replaced meanwhile go on without an
        error and are lost when it closes. A stat each: for a periodic check
        (spd.app.state.StateFileWatch), never per commit."""
        if self._opened is None:
            return  # not open for writing
        try:
            now, wal = self._identity(self.path), self._identity(self.wal_path)
        except OSError:
            return  # cannot look (a directory made unreadable): nothing to judge by
        if now != self._opened:
            raise StateError(f"state {self.path}: the state database was {_gone(now)} while spd had it "
                             "open, so what spd wrote since is lost; put the file back, or start "
                             "spd again to use what is at that path now")
        if self._wal_opened is None:
            # SQLite creates the -wal lazily (normally _connect's commit did): the first one
            # seen is this connection's. It truncates it in place (the same inode) and deletes
            # it only when the last connection closes, never while this one is open.
            self._wal_opened = wal
        elif wal != self._wal_opened:
            # SQLite goes on appending to the unlinked file: a crash loses every commit since
            # its last checkpoint, and other processes (spd status) read a fresh -wal that does
            # not match the -shm. Only a clean close still folds it into the database.
            raise StateError(f"state {self.path}: its WAL file {self.wal_path} was {_gone(wal)} while "
                             "spd had it open, so what spd wrote since is in no file others read "
                             "and a crash loses it; start spd again")

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

    def _damaged(self, reason: str) -> StateError:
        return StateError(f"state {self.path}: the state database is damaged ({reason}); restore "
                          "it from a backup, or move it away to start every poller again")

    def _sql_error(self, exc: sqlite3.Error, doing: str = "write") -> StateError:
        """One line for an SQLite failure: damaged file (78) or a `doing` ("write", "read")
        that failed now (1)."""
        reason = " ".join(str(exc).split()) or type(exc).__name__
        error = _error_class(exc)
        if error is StateError:
            return self._damaged(reason)
        return error(f"state {self.path}: cannot {doing} the state database ({reason})")

    def _connect(self) -> sqlite3.Connection:
        if self.path.is_dir():
            raise self._unwritable(IsADirectoryError(21, "it is a directory"))
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._unwritable(exc) from None
        try:
            conn.execute(f"PRAGMA busy_timeout={_OPEN_BUSY_MS}")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal_mode is {mode}, WAL is needed")
            conn.execute("PRAGMA synchronous=NORMAL")  # see the module docstring: at-least-once
            conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints in a thread: _committed()
            self._migrate(conn)
            self._check_schema(conn)
            conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")  # from now on on the loop: _transaction
        except sqlite3.Error as exc:
            conn.close()
            if _primary_code(exc) in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN):
                raise self._unwritable(exc) from None
            raise self._sql_error(exc) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_readonly(self) -> sqlite3.Connection:
        """A read-only connection that creates nothing: `immutable` when no daemon left a WAL
        (the file is complete), else read-only through the existing WAL."""
        wal = Path(str(self.path) + "-wal").exists()
        uri = f"{self.path.absolute().as_uri()}?mode=ro" + ("" if wal else "&immutable=1")
        try:
            with _private_umask():
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._sql_error(exc, "read") from None
        try:
            self._check_version(self._version(conn))
            self._check_schema(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self._sql_error(exc, "read") from None
        except BaseException:
            conn.close()
            raise
        return conn

    def _version(self, conn: sqlite3.Connection) -> int:
        """The schema version the file says it has (0: none yet)."""
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        try:
            return int(row[0]) if row else 0
        except (TypeError, ValueError):
            raise self._damaged(f"schema version {row[0]!r}") from None

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StateError(
                f"state {self.path}: schema version {version} was written by a newer spd;"
                f" this version reads versions up to {SCHEMA_VERSION}"
            )
        if version < SCHEMA_VERSION and self.readonly:
            raise StateError(f"state {self.path}: schema version {version} is older than this "
                             "spd's; run `spd once` or `spd run` to upgrade it first")

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        """StateError (damaged) unless the pollers table is there with its columns."""
        columns = {row[1] for row in conn.execute("PRAGMA table_info(pollers)")}
        missing = [c.strip() for c in POLLER_COLUMNS.split(",") if c.strip() not in columns]
        if missing:
            what = "table pollers is missing" if not columns else f"pollers lacks {', '.join(missing)}"
            raise self._damaged(what)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Creates the schema on a new file, or upgrades an older one step by step."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            for table in (*LEDGER_TABLES, BUCKETS_TABLE):  # created where missing
                conn.execute(table)
            version = self._version(conn)
            self._check_version(version)
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
        for suffix in ("", "-wal", "-shm", ".lock", ".reserve"):
            with contextlib.suppress(OSError):
                p = Path(str(self.path) + suffix)
                if p.exists() and (p.stat().st_mode & 0o777) != 0o600:
                    p.chmod(0o600)

    async def is_locked_by_daemon(self) -> bool:
        """True when a daemon (this store, or another process) holds the state's lock."""
        return self.lock.is_held()

    @contextlib.contextmanager
    def _sql(self, doing: str = "read") -> Iterator[sqlite3.Connection]:
        """The connection, under the mutex, with SQLite errors as one-line StateErrors that say
        what failed: a "read" (the default) or, in _try_transaction, a "write"."""
        with self._mutex:
            if self._conn is None:
                raise StateError(f"state {self.path} is not open")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise self._sql_error(exc, doing) from None

    async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `work` (a few statements, no await) in one write transaction on the loop and
        returns its result. While another connection holds the write lock, it waits on the loop
        and tries again (`_retry`)."""
        try:
            result = self._try_transaction(work)
        except _Busy:
            result = await self._retry(work)
        self._committed()
        return result

    async def _retry(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Tries `work` again after growing sleeps while the lock stays held; after LOCK_WAIT
        seconds, StateBusyError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_WAIT
        pause = _RETRY_FIRST
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(pause, left))
            pause = min(2 * pause, _RETRY_LONGEST)
            try:
                return self._try_transaction(work)
            except _Busy:
                pass
        raise self._locked()

    def _try_transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """One try of `_transaction`: `work` between BEGIN IMMEDIATE (which takes the write lock
        or fails busy before anything was done) and COMMIT; on any failure it is rolled back,
        so a retry starts from the same state. _Busy when the lock was held."""
        with self._sql("write") as db:
            try:
                db.execute("BEGIN IMMEDIATE")
                result = work(db)
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:  # a failed COMMIT (or statement) may leave it open
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and _is_busy(exc):
                    raise _Busy() from None
                raise
        return result

    def _locked(self) -> StateBusyError:
        return StateBusyError(f"state {self.path}: cannot write the state database: another "
                              f"connection held its lock for {LOCK_WAIT:g} s")

    def _committed(self) -> None:
        """Counts a commit; every CHECKPOINT_COMMITS starts a WAL checkpoint in a thread."""
        self._commits += 1
        if self._commits < CHECKPOINT_COMMITS or (self._checkpoint is not None
                                                  and not self._checkpoint.done()):
            return
        self._commits = 0
        self._checkpoint = asyncio.ensure_future(asyncio.to_thread(self._checkpoint_now))

    def _checkpoint_now(self) -> None:
        """Folds the WAL into the database and fsyncs it. PASSIVE: it neither waits for nor
        blocks the commits on the loop; what it leaves is folded next time. A failure is only
        logged: the commits are in the WAL, and the next checkpoint tries again."""
        with self._checkpoint_lock:
            try:
                if self._checkpointer is None:
                    self._checkpointer = sqlite3.connect(self.path, isolation_level=None,
                                                         check_same_thread=False)
                self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                log.warning("state_checkpoint_failed", path=str(self.path),
                            error=" ".join(str(exc).split()))
