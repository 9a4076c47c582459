"""StateStore against real SQLite files: durability, modes, identity, the daemon lock, crashes,
another connection's write lock, the disk reserve, a failing disk that is not a damaged file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from spd.core.errors import StateBusyError, StateError, StateFullError, StateWriteError
from spd.core.typing import BucketLevel
from spd.state import sqlite as sqlite_module
from spd.state.files import RESERVE_BYTES
from spd.state.store import SCHEMA_VERSION, StateStore
from support.spd import fill_disk

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "var" / "lib" / "spd" / "state.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[StateStore]:
    async with StateStore(db) as s:
        yield s


def _spawn(tmp_path: Path, body: str, *, stdin: bool = False) -> subprocess.Popen[str]:
    """Starts a Python subprocess running `body` (with spd importable), stdout piped (and
    stdin, when asked)."""
    script = tmp_path / "child.py"
    logs_to_stderr = (
        "import structlog, sys\n"
        "structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))\n"
    )
    script.write_text(logs_to_stderr + textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.PIPE if stdin else None, text=True, env=env, cwd=str(tmp_path),
    )


# -- file, modes, pragmas ------------------------------------------------------------------


async def test_creates_parent_in_wal_mode_with_private_files(db: Path) -> None:
    old = os.umask(0o022)  # a permissive umask must not leak into the state files
    try:
        async with StateStore(db, daemon=True) as s:
            await s.ensure("orders", "id", T0)
            files = {p.name: p.stat().st_mode & 0o777 for p in db.parent.iterdir()}
            sync = s._conn.execute("PRAGMA synchronous").fetchone()[0]  # type: ignore[union-attr]
    finally:
        os.umask(old)
    assert files == {n: 0o600 for n in ("state.db", "state.db-wal", "state.db-shm", "state.db.lock",
                                        "state.db.reserve")}
    assert sync == 1  # NORMAL: WAL fsynced at checkpoints, not at every commit
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = raw.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION


def test_existing_permissive_file_is_made_private(db: Path) -> None:
    StateStore(db).open_now()
    db.chmod(0o644)
    store = StateStore(db)
    store.open_now()
    try:
        assert db.stat().st_mode & 0o777 == 0o600
    finally:
        store.close_now()


async def test_timestamps_are_stored_as_utc_iso_strings(store: StateStore, db: Path) -> None:
    plus2 = timezone(timedelta(hours=2))
    await store.ensure("orders", "id", datetime(2025, 3, 1, 12, 30, tzinfo=plus2))
    with sqlite3.connect(db) as raw:
        (watermark,) = raw.execute("SELECT watermark FROM pollers").fetchone()
    assert watermark == "2025-03-01T10:30:00.000000Z"
    assert (await store.require("orders")).watermark == datetime(2025, 3, 1, 10, 30, tzinfo=UTC)


def test_newer_schema_is_refused(db: Path) -> None:
    StateStore(db).open_now()
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StateError, match="schema version 99 was written by a newer spd"):
        StateStore(db).open_now()


@pytest.mark.parametrize("kind", ["parent_is_file", "path_is_dir", "not_a_database"])
def test_unusable_path_is_one_line_state_error(tmp_path: Path, kind: str) -> None:
    if kind == "parent_is_file":
        (tmp_path / "blocker").write_text("x")
        path = tmp_path / "blocker" / "state.db"
    elif kind == "path_is_dir":
        path = tmp_path / "dir.db"
        path.mkdir()
    else:
        path = tmp_path / "junk.db"
        path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StateError) as info:
        StateStore(path).open_now()
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert info.value.exit_code == 78


async def test_use_before_open_is_a_state_error(db: Path) -> None:
    with pytest.raises(StateError, match="not open"):
        await StateStore(db).get("orders")


# -- survives a reopen ---------------------------------------------------------------------------


async def test_checkpoint_round_trip_survives_reopen(db: Path) -> None:
    w_end = T0 + timedelta(hours=1)
    async with StateStore(db) as s:
        await s.ensure("orders", "id", T0)
        await s.save_page("orders", T0, w_end, "tok-1", 1, 100)
        await s.save_page("orders", T0, w_end, "tok-2", 2, 40)
        await s.ledger.requested("rep", T0, "r1")
    async with StateStore(db) as s:
        st = await s.require("orders")
        attempt = await s.ledger.attempt("rep")
    assert (st.window_start, st.window_end, st.next_token, st.page) == (T0, w_end, "tok-2", 2)
    assert (st.objects_emitted, st.pages_emitted, st.watermark) == (140, 2, T0)
    assert attempt is not None and attempt.report_id == "r1"


async def test_report_tables_share_the_store_connection(db: Path) -> None:
    async with StateStore(db) as s:
        await s.ensure("orders", "id", T0)
        await s.ledger.requested("rep", T0, "r1")
        s.close_now()
        with pytest.raises(StateError, match="not open"):  # no connection of its own
            await s.ledger.attempt("rep")


# -- the daemon lock ---------------------------------------------------------------------------

HOLDER = """
import asyncio, time
from datetime import datetime, timezone
from spd.state.store import StateStore
store = StateStore({db!r}, daemon=True)
store.open_now()
asyncio.run(store.ensure("orders", "id", datetime(2025, 1, 1, tzinfo=timezone.utc)))
print("ready", flush=True)
time.sleep(60)
"""


async def test_daemon_lock_held_by_another_process(tmp_path: Path, db: Path) -> None:
    child = _spawn(tmp_path, HOLDER.format(db=str(db)))
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        held = f"state {db} is held by a running spd daemon (pid {child.pid})"
        async with StateStore(db) as cli:
            assert await cli.is_locked_by_daemon()
            with pytest.raises(StateError) as info:
                await cli.reset("orders", T0 - timedelta(days=1))
            assert str(info.value) == held
            assert (await cli.require("orders")).watermark == T0  # reads still work (spd status)
        with pytest.raises(StateError) as info:
            await StateStore(db, daemon=True).open()
        assert str(info.value) == held
    finally:
        child.kill()
        child.wait()
    # SIGKILL released the lock: reset works without it, and a new daemon can start.
    async with StateStore(db) as cli:
        assert not await cli.is_locked_by_daemon()
        await cli.reset("orders", T0 - timedelta(days=1))
        assert (await cli.require("orders")).watermark == T0 - timedelta(days=1)
    async with StateStore(db, daemon=True) as daemon:
        assert await daemon.is_locked_by_daemon()
        await daemon.reset("orders", T0)  # the daemon itself may reset
        assert (db.parent / "state.db.lock").read_text().strip() == str(os.getpid())
    assert (db.parent / "state.db.lock").read_text() == ""  # a clean stop leaves no pid


async def test_second_daemon_in_same_process_is_refused(db: Path) -> None:
    async with StateStore(db, daemon=True):
        with pytest.raises(StateError, match=rf"held by a running spd daemon \(pid {os.getpid()}\)"):
            await StateStore(db, daemon=True).open()


async def test_close_is_idempotent_and_releases_lock(db: Path) -> None:
    s = StateStore(db, daemon=True)
    await s.open()
    await s.close()
    await s.close()
    async with StateStore(db) as cli:
        assert not await cli.is_locked_by_daemon()


# -- crash consistency -------------------------------------------------------------------------

WRITER = """
import asyncio
from datetime import datetime, timedelta, timezone
from spd.state.store import StateStore
t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)

async def main():
    store = StateStore({db!r}, daemon=True)
    await store.open()
    await store.ensure("orders", "id", t0)
    page = 0
    while True:
        page += 1
        await store.save_page("orders", t0, t0 + timedelta(hours=1), f"tok-{{page}}", page, 10)
        if page % 25 == 0:
            await store.finish_window("orders", t0 + timedelta(minutes=page))
        print(page, flush=True)  # printed only after the checkpoint call returned

asyncio.run(main())
"""


async def test_sigkilled_writer_keeps_every_returned_checkpoint(tmp_path: Path, db: Path) -> None:
    child = _spawn(tmp_path, WRITER.format(db=str(db)))
    last = 0
    try:
        for line in child.stdout:
            last = int(line)
            if last >= 120:
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert last >= 120, child.stderr.read()
    # The writer may have returned from more checkpoints than the test had read before the kill.
    last = max([last] + [int(line) for line in child.stdout.read().split()])
    async with StateStore(db, daemon=True) as s:  # the lock died with the writer
        st = await s.require("orders")
    assert last <= st.pages_emitted <= last + 1
    assert st.objects_emitted == 10 * st.pages_emitted
    # Every finish_window that returned is there; the one in flight may or may not be.
    assert T0 + timedelta(minutes=last // 25 * 25) <= st.watermark
    assert st.watermark <= T0 + timedelta(minutes=(last + 1) // 25 * 25)
    assert st.page in (0, st.pages_emitted)
    if st.page:
        assert st.next_token == f"tok-{st.page}"


async def test_a_checkpoint_is_one_transaction_on_the_loop(store: StateStore, monkeypatch) -> None:
    # A commit appends to the WAL without an fsync: no hop to a worker thread per page, and
    # exactly one write statement, in one transaction, per checkpointed page.
    await store.ensure("orders", "id", T0)
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)  # type: ignore[union-attr]
    loop = asyncio.get_running_loop()
    hops: list[object] = []
    real = loop.run_in_executor
    monkeypatch.setattr(loop, "run_in_executor", lambda ex, fn, *a: hops.append(fn) or real(ex, fn, *a))
    for page in range(1, 6):
        await store.save_page("orders", T0, None, f"tok-{page}", page, 10)
    assert hops == []
    assert len(statements) == 15
    for begin, update, commit in zip(statements[::3], statements[1::3], statements[2::3]):
        assert (begin, commit) == ("BEGIN IMMEDIATE", "COMMIT")
        assert update.startswith("UPDATE pollers SET window_start")
    assert (await store.require("orders")).pages_emitted == 5


async def test_the_wal_is_folded_back_in_a_thread(db: Path, monkeypatch) -> None:
    # SQLite's own checkpoint (inside a commit) is off: every CHECKPOINT_COMMITS commits one
    # runs in a thread, so the WAL stays small.
    from spd.state import sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "CHECKPOINT_COMMITS", 20)
    wal = Path(str(db) + "-wal")
    async with StateStore(db, daemon=True) as s:
        assert s._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # type: ignore[union-attr]
        await s.ensure("orders", "id", T0)
        sizes = []
        for page in range(1, 301):
            await s.save_page("orders", T0, None, f"tok-{page}", page, 10)
            if s._checkpoint is not None:
                await s._checkpoint
            sizes.append(wal.stat().st_size)
        frames = max(sizes) // 4096
    assert frames < 100, f"the WAL grew to {frames} pages: no checkpoint ran"
    async with StateStore(db) as s:
        assert (await s.require("orders")).pages_emitted == 300


# -- the file and its -wal deleted or replaced under the store (spd.app.state.StateFileWatch) --


@pytest.mark.parametrize("how", ["deleted", "replaced by another file"])
async def test_check_file_notices_the_wal_deleted_or_replaced(db: Path, how: str) -> None:
    wal = Path(f"{db}-wal")
    async with StateStore(db, daemon=True) as s:
        await s.ensure("orders", "id", T0)
        s.check_file()  # the -wal the connection opened
        if how == "deleted":
            wal.unlink()
        else:
            copy = wal.with_name("copy-wal")
            copy.write_bytes(wal.read_bytes())
            copy.replace(wal)
        await s.save_page("orders", T0, None, "tok-1", 1, 10)  # no error: into the old log
        with pytest.raises(StateError) as lost:
            s.check_file()
    assert str(lost.value).startswith(f"state {db}: its WAL file {wal} was {how} while spd had it open")


async def test_check_file_passes_through_checkpoints_truncation_and_other_processes(
        db: Path, monkeypatch) -> None:
    # What SQLite does to the -wal while it is open is no loss: it restarts it from its start
    # after a checkpoint and truncates it in place (the same inode); another process closing its
    # connection never deletes it while this one is open.
    monkeypatch.setattr(sqlite_module, "CHECKPOINT_COMMITS", 20)
    wal = Path(f"{db}-wal")
    truncate = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.close()"
    async with StateStore(db, daemon=True) as s:
        await s.ensure("orders", "id", T0)
        for page in range(1, 101):
            await s.save_page("orders", T0, None, f"tok-{page}", page, 10)
            if s._checkpoint is not None:
                await s._checkpoint
            s.check_file()
        subprocess.run([sys.executable, "-c", truncate, str(db)], check=True)
        assert wal.stat().st_size == 0  # truncated, not deleted
        async with StateStore(db, readonly=True) as status:  # `spd status`, opened and closed
            assert (await status.require("orders")).pages_emitted == 100
        s.check_file()
        await s.save_page("orders", T0, None, "tok-101", 101, 10)
        s.check_file()
    assert not wal.exists()  # the last connection closed: SQLite deleted it


# -- another connection's write lock -----------------------------------------------------------

# An operator's `sqlite3 state.db` inside BEGIN IMMEDIATE: holds SQLite's write lock, with a write
# of its own, until the test sends a line.
LOCKER = """
import sqlite3, sys
db = sqlite3.connect({db!r}, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO meta (key, value) VALUES ('operator', 'was here')")
print("locked", flush=True)
sys.stdin.readline()
db.execute("COMMIT")
print("released", flush=True)
"""


def _lock(tmp_path: Path, db: Path) -> subprocess.Popen[str]:
    """Another process holding the database's write lock until `_release`."""
    locker = _spawn(tmp_path, LOCKER.format(db=str(db)), stdin=True)
    assert locker.stdout is not None and locker.stdout.readline().strip() == "locked", locker.communicate()
    return locker


def _release(locker: subprocess.Popen[str]) -> None:
    out, err = locker.communicate("go\n")
    assert (locker.returncode, out.split()) == (0, ["released"]), err


@contextlib.contextmanager
def _held_lock(tmp_path: Path, db: Path) -> Iterator[None]:
    """Another process holds the database's write lock for the block; released after it."""
    locker = _lock(tmp_path, db)
    try:
        yield
        _release(locker)
    finally:
        locker.kill()
        locker.wait()


async def test_a_write_waits_for_a_foreign_lock_without_stalling_the_loop(
    tmp_path: Path, store: StateStore
) -> None:
    await store.ensure("orders", "id", T0)
    locker = _lock(tmp_path, store.path)
    ticks = 0

    async def tick() -> None:  # stands for the pollers, the scheduler, the HTTP server
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        save = asyncio.create_task(store.save_page("orders", T0, T0 + timedelta(hours=1), "tok-1", 1, 10))
        while ticks < 50:
            await asyncio.sleep(0.01)
        assert not save.done(), "the save did not wait for the lock while the loop ran"
        # Readers do not wait for a writer in WAL mode: the last committed state, at once.
        assert (await store.require("orders")).page == 0
        assert await store.meta_items("operator") == {}
        _release(locker)
        await save
    finally:
        ticker.cancel()
        locker.kill()
        locker.wait()
    st = await store.require("orders")
    assert (st.window_end, st.next_token, st.page) == (T0 + timedelta(hours=1), "tok-1", 1)
    assert (st.objects_emitted, st.pages_emitted) == (10, 1)
    assert await store.meta_items("operator") == {"": "was here"}  # both writes are there


async def test_a_lock_held_past_the_limit_is_a_one_line_write_error(
    tmp_path: Path, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "LOCK_WAIT", 0.3)
    await store.ensure("orders", "id", T0)
    with _held_lock(tmp_path, store.path), pytest.raises(StateBusyError) as info:
        await store.save_page("orders", T0, None, "tok-1", 1, 10)
    assert isinstance(info.value, StateWriteError) and info.value.exit_code == 1
    assert str(info.value) == (f"state {store.path}: cannot write the state database: another"
                               " connection held its lock for 0.3 s")
    assert info.value.retriable  # the run fails, the next one tries again
    # Nothing was half written, and the next write works.
    assert (await store.require("orders")).pages_emitted == 0
    await store.save_page("orders", T0, None, "tok-1", 1, 10)
    assert (await store.require("orders")).pages_emitted == 1


async def test_every_write_waits_for_a_foreign_lock_the_same_way(
    tmp_path: Path, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each write goes through the one transaction helper: none waits in SQLite's busy handler
    # (which would stall the loop), each gives the one-line error when the lock stays held.
    monkeypatch.setattr(sqlite_module, "LOCK_WAIT", 0.05)
    await store.ensure("orders", "id", T0)
    await store.ledger.requested("rep", T0, "r1")
    writes = {
        "ensure": lambda: store.ensure("new", "id", T0),
        "save_page": lambda: store.save_page("orders", T0, None, "tok-1", 1, 10),
        "finish_window": lambda: store.finish_window("orders", T0 + timedelta(hours=1)),
        "restart_window": lambda: store.restart_window("orders"),
        "record_run": lambda: store.record_run("orders", error=None),
        "set_note": lambda: store.set_note("orders", "a note"),
        "put_meta": lambda: store.put_meta("k", "v"),
        "delete": lambda: store.delete("orders"),
        "reset": lambda: store.reset("orders", T0 - timedelta(days=1)),
        "save_bucket_levels": lambda: store.save_bucket_levels([BucketLevel("a", "op", 1.0, 5, 5.0, 0.0)]),
        "ledger.requested": lambda: store.ledger.requested("rep", T0, "r2"),
        "ledger.failed": lambda: store.ledger.failed("rep", "FATAL", T0),
        "ledger.clear_attempt": lambda: store.ledger.clear_attempt("rep"),
        "ledger.done": lambda: store.ledger.done("rep", "r1", T0),
        "ledger.moved": lambda: store.ledger.moved("rep", T0),
    }
    errors: dict[str, str] = {}
    with _held_lock(tmp_path, store.path):
        for name, write in writes.items():
            try:
                await write()
            except StateBusyError as exc:
                errors[name] = str(exc)
    locked = f"state {store.path}: cannot write the state database: another connection held its lock for 0.05 s"
    assert errors == dict.fromkeys(writes, locked)
    assert await store.pollers() == ["orders"]  # nothing of them was written
    assert await store.load_bucket_levels() == []


# -- the disk reserve: given up for a full disk only ------------------------------------------


async def test_a_failed_run_is_recorded_on_a_full_disk_with_the_reserve(tmpfs: Path) -> None:
    async with StateStore(tmpfs / "state.db", daemon=True) as store:
        await store.ensure("orders", "id", T0)
        assert store.reserve.path.stat().st_size == RESERVE_BYTES
        fill_disk(tmpfs)
        with pytest.raises(StateFullError) as info:  # a success is not worth the reserve
            await store.record_run("orders", error=None)
        assert store.reserve.path.stat().st_size == RESERVE_BYTES
        with capture_logs() as logs:
            await store.record_run("orders", error="HTTP 503")
        assert (await store.require("orders")).last_error == "HTTP 503"
        assert store.reserve.path.stat().st_size < RESERVE_BYTES  # kept again as far as it fits
    assert str(info.value) == f"state {store.path}: cannot write the state database (database or disk is full)"
    assert [(e["event"], e["path"]) for e in logs] == [("state_reserve_used", str(store.path))]


async def test_a_run_failed_under_a_held_lock_keeps_the_reserve(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lock is not a full disk: its error is raised as it is, the reserve stays whole, and
    # nothing in the log says that the disk is full.
    monkeypatch.setattr(sqlite_module, "LOCK_WAIT", 0.3)
    async with StateStore(db, daemon=True) as store:
        await store.ensure("orders", "id", T0)
        with capture_logs() as logs, _held_lock(tmp_path, db), pytest.raises(StateBusyError) as info:
            await store.record_run("orders", error="HTTP 503")
        assert store.reserve.path.stat().st_size == RESERVE_BYTES
        assert (await store.require("orders")).runs == 0  # the run was not recorded
    assert str(info.value) == (f"state {db}: cannot write the state database: another"
                               " connection held its lock for 0.3 s")
    assert logs == []


# -- a failing disk is not a damaged file: SQLite's extended result codes ----------------------

# Files may grow to 1 MiB and no more: a larger write fails with EFBIG (SIGXFSZ ignored), which
# SQLite reports with an extended code, SQLITE_IOERR_WRITE ("disk I/O error").
IO_ERROR_WRITER = """
import asyncio, resource, signal
from datetime import datetime, timezone
from spd.core.errors import SpdError
from spd.state.store import StateStore

async def main():
    async with StateStore({db!r}) as store:
        await store.ensure("orders", "id", datetime(2025, 1, 1, tzinfo=timezone.utc))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, hard))
        try:
            await store.put_meta("big", "x" * 2**21)
        except SpdError as exc:
            print(type(exc).__name__, exc.exit_code, exc, sep="\\n")
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        await store.put_meta("small", "the next write works")
        print(await store.meta_items("small"))

asyncio.run(main())
"""


def test_an_io_error_on_a_write_fails_the_run_and_the_next_write_works(tmp_path: Path, db: Path) -> None:
    writer = _spawn(tmp_path, IO_ERROR_WRITER.format(db=str(db)))
    out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    assert out.splitlines() == [
        "StateWriteError", "1", f"state {db}: cannot write the state database (disk I/O error)",
        "{'': 'the next write works'}",
    ]


async def test_a_lock_held_through_the_open_is_a_busy_error(
    tmp_path: Path, store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "_OPEN_BUSY_MS", 50)
    with _held_lock(tmp_path, store.path), pytest.raises(StateBusyError) as info:
        StateStore(store.path).open_now()
    assert str(info.value) == f"state {store.path}: cannot write the state database (database is locked)"
    assert info.value.exit_code == 1


def _sqlite_error(name: str) -> sqlite3.OperationalError:
    """The error Python 3.11 raises for SQLite's result code `name` (an extended one, often)."""
    exc = sqlite3.OperationalError("what SQLite said")
    exc.sqlite_errorcode = getattr(sqlite3, name)
    exc.sqlite_errorname = name
    return exc


def test_every_sqlite_code_is_judged_by_its_primary_code(db: Path) -> None:
    # The codes no test here can cause for real (a failed fsync, a file moved under a rollback
    # journal, a stale WAL snapshot), as Python reports them.
    expected = {
        "SQLITE_IOERR_FSYNC": ("StateWriteError", 1),
        "SQLITE_READONLY_DBMOVED": ("StateWriteError", 1),
        "SQLITE_CANTOPEN_NOTEMPDIR": ("StateWriteError", 1),
        "SQLITE_LOCKED_SHAREDCACHE": ("StateWriteError", 1),
        "SQLITE_PROTOCOL": ("StateWriteError", 1),  # a lost race over the WAL's locks
        "SQLITE_BUSY_SNAPSHOT": ("StateBusyError", 1),
        "SQLITE_FULL": ("StateFullError", 1),
        "SQLITE_CORRUPT_VTAB": ("StateError", 78),
        "SQLITE_NOTADB": ("StateError", 78),
        "SQLITE_ERROR": ("StateError", 78),
    }
    store = StateStore(db)  # not opened: only its one-line errors
    errors = {name: store._sql_error(_sqlite_error(name)) for name in expected}
    assert {name: (type(e).__name__, e.exit_code) for name, e in errors.items()} == expected
    assert str(errors["SQLITE_IOERR_FSYNC"]) == f"state {db}: cannot write the state database (what SQLite said)"
    assert str(errors["SQLITE_CORRUPT_VTAB"]).startswith(
        f"state {db}: the state database is damaged (what SQLite said); restore it from a backup")
    # An error SQLite did not report (spd's own, the sqlite3 module's) is not the disk's.
    no_code = store._sql_error(sqlite3.OperationalError("journal_mode is delete, WAL is needed"))
    assert (type(no_code), no_code.exit_code) == (StateError, 78)


async def test_a_failed_read_says_read_and_a_failed_write_says_write(store: StateStore) -> None:
    def fails(db: sqlite3.Connection) -> None:
        raise _sqlite_error("SQLITE_IOERR_READ")

    with pytest.raises(StateWriteError) as read:
        with store._sql() as db:  # how every read of the store and its tables goes
            fails(db)
    with pytest.raises(StateWriteError) as write:
        await store._transaction(fails)
    assert str(read.value) == f"state {store.path}: cannot read the state database (what SQLite said)"
    assert str(write.value) == f"state {store.path}: cannot write the state database (what SQLite said)"
