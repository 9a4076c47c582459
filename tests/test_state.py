"""StateStore against real SQLite files: durability, modes, identity, the daemon lock, crashes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from spd.core.errors import IdentityChangedError, StateError
from spd.state.store import MAX_ERROR_CHARS, SCHEMA_VERSION, StateStore

UTC = timezone.utc
T0 = datetime(2025, 1, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "var" / "lib" / "spd" / "state.db"


@pytest.fixture
def store(db: Path):
    with StateStore(db) as s:
        yield s


def _spawn(tmp_path: Path, body: str) -> subprocess.Popen[str]:
    """Starts a Python subprocess running `body` (with spd importable), stdout piped."""
    script = tmp_path / "child.py"
    logs_to_stderr = (
        "import structlog, sys\n"
        "structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))\n"
    )
    script.write_text(logs_to_stderr + textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, cwd=str(tmp_path),
    )


# -- file, modes, pragmas ------------------------------------------------------------------


def test_creates_parent_in_wal_mode_with_private_files(db: Path) -> None:
    old = os.umask(0o022)  # a permissive umask must not leak into the state files
    try:
        with StateStore(db, daemon=True) as s:
            s.ensure("orders", "id", T0)
            files = {p.name: p.stat().st_mode & 0o777 for p in db.parent.iterdir()}
            sync = s._conn.execute("PRAGMA synchronous").fetchone()[0]  # type: ignore[union-attr]
    finally:
        os.umask(old)
    assert files == {n: 0o600 for n in ("state.db", "state.db-wal", "state.db-shm", "state.db.lock",
                                        "state.db.reserve")}
    assert sync == 2  # FULL
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = raw.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION


def test_existing_permissive_file_is_made_private(db: Path) -> None:
    StateStore(db).open()
    db.chmod(0o644)
    with StateStore(db):
        assert db.stat().st_mode & 0o777 == 0o600


def test_timestamps_are_stored_as_utc_iso_strings(store: StateStore, db: Path) -> None:
    plus2 = timezone(timedelta(hours=2))
    store.ensure("orders", "id", datetime(2025, 3, 1, 12, 30, tzinfo=plus2))
    with sqlite3.connect(db) as raw:
        (watermark,) = raw.execute("SELECT watermark FROM pollers").fetchone()
    assert watermark == "2025-03-01T10:30:00.000000Z"
    assert store.get("orders").watermark == datetime(2025, 3, 1, 10, 30, tzinfo=UTC)


def test_naive_datetimes_are_refused(store: StateStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.ensure("orders", "id", datetime(2025, 1, 1))


def test_newer_schema_is_refused(db: Path) -> None:
    StateStore(db).open()
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StateError, match="schema version 99 was written by a newer spd"):
        StateStore(db).open()


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
        StateStore(path).open()
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert info.value.exit_code == 78


def test_use_before_open_is_a_state_error(db: Path) -> None:
    with pytest.raises(StateError, match="not open"):
        StateStore(db).get("orders")


# -- checkpoints and counters ----------------------------------------------------------------


def test_ensure_creates_once_and_existing_watermark_wins(store: StateStore) -> None:
    first = store.ensure("orders", "id", T0)
    assert (first.watermark, first.page, first.window_start, first.runs) == (T0, 0, None, 0)
    again = store.ensure("orders", "id", T0 + timedelta(days=30))
    assert again.watermark == T0


def test_checkpoint_round_trip_survives_reopen(db: Path) -> None:
    w_end = T0 + timedelta(hours=1)
    with StateStore(db) as s:
        s.ensure("orders", "id", T0)
        s.save_page("orders", T0, w_end, "tok-1", 1, 100)
        s.save_page("orders", T0, w_end, "tok-2", 2, 40)
    with StateStore(db) as s:
        st = s.get("orders")
    assert (st.window_start, st.window_end, st.next_token, st.page) == (T0, w_end, "tok-2", 2)
    assert (st.objects_emitted, st.pages_emitted, st.watermark) == (140, 2, T0)


def test_finish_and_restart_window(store: StateStore) -> None:
    w_end = T0 + timedelta(hours=1)
    store.ensure("orders", "id", T0)
    store.save_page("orders", T0, w_end, "tok", 3, 10)
    store.restart_window("orders")
    st = store.get("orders")
    assert (st.window_start, st.window_end, st.next_token, st.page) == (T0, w_end, None, 0)
    store.finish_window("orders", w_end)
    st = store.get("orders")
    assert (st.watermark, st.window_start, st.window_end, st.next_token) == (w_end, None, None, None)
    assert st.objects_emitted == 10


def test_record_run_keeps_one_line_error_and_clears_it_on_success(store: StateStore) -> None:
    store.ensure("orders", "id", T0)
    store.record_run("orders", error="boom\n  at line 2\t" + "x" * 2000)
    st = store.get("orders")
    assert st.runs == 1 and st.last_run_at is not None and st.last_success_at is None
    assert st.last_error.startswith("boom at line 2 x") and "\n" not in st.last_error
    assert len(st.last_error) <= MAX_ERROR_CHARS
    store.record_run("orders", error=None)
    st = store.get("orders")
    assert st.runs == 2 and st.last_error is None and st.last_success_at == st.last_run_at


def test_note_pollers_all_and_delete(store: StateStore) -> None:
    store.ensure("orders", "a", T0)
    store.ensure("b-vendor", "b", T0)
    store.set_note("orders", "start_time clamped to 2023-01-01T00:00:00Z")
    assert store.get("orders").note == "start_time clamped to 2023-01-01T00:00:00Z"
    assert store.pollers() == ["b-vendor", "orders"]
    assert [s.poller for s in store.all()] == ["b-vendor", "orders"]
    assert store.delete("orders") is True and store.delete("orders") is False
    assert store.get("orders") is None and store.pollers() == ["b-vendor"]


def test_writes_to_unknown_poller_are_refused(store: StateStore) -> None:
    with pytest.raises(StateError, match="poller ghost has no saved state"):
        store.save_page("ghost", T0, T0, None, 1, 1)


def test_identity_change_names_poller_and_reset_command(store: StateStore) -> None:
    store.ensure("orders", "old-identity", T0)
    with pytest.raises(IdentityChangedError) as info:
        store.ensure("orders", "new-identity", T0, config_path="/etc/spd/spd.yaml")
    assert str(info.value) == (
        "poller orders: its account, object, timestamp_field or params changed since its"
        " watermark was saved; run `spd reset -c /etc/spd/spd.yaml orders` to start it again"
    )
    assert info.value.exit_code == 78
    assert store.get("orders").identity == "old-identity"  # nothing was overwritten


def test_reset_moves_watermark_takes_new_identity_and_keeps_counters(store: StateStore) -> None:
    store.ensure("orders", "old", T0)
    store.save_page("orders", T0, T0 + timedelta(hours=1), "tok", 1, 7)
    back = T0 - timedelta(days=3)
    store.reset("orders", back, identity="new")
    st = store.get("orders")
    assert (st.watermark, st.identity, st.window_start, st.next_token, st.page) == (
        back, "new", None, None, 0)
    assert st.objects_emitted == 7
    assert store.ensure("orders", "new", T0).watermark == back


def test_reset_of_unknown_poller(store: StateStore) -> None:
    with pytest.raises(StateError, match="no saved state"):
        store.reset("fresh", T0)
    store.reset("fresh", T0, identity="id")
    assert store.get("fresh").watermark == T0


# -- the daemon lock ---------------------------------------------------------------------------

HOLDER = """
import time
from datetime import datetime, timezone
from spd.state.store import StateStore
store = StateStore({db!r}, daemon=True)
store.open()
store.ensure("orders", "id", datetime(2025, 1, 1, tzinfo=timezone.utc))
print("ready", flush=True)
time.sleep(60)
"""


def test_daemon_lock_held_by_another_process(tmp_path: Path, db: Path) -> None:
    child = _spawn(tmp_path, HOLDER.format(db=str(db)))
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        held = f"state {db} is held by a running spd daemon (pid {child.pid})"
        with StateStore(db) as cli:
            assert cli.is_locked_by_daemon()
            with pytest.raises(StateError) as info:
                cli.reset("orders", T0 - timedelta(days=1))
            assert str(info.value) == held
            assert cli.get("orders").watermark == T0  # reads still work (spd status)
        with pytest.raises(StateError) as info:
            StateStore(db, daemon=True).open()
        assert str(info.value) == held
    finally:
        child.kill()
        child.wait()
    # SIGKILL released the lock: reset works without it, and a new daemon can start.
    with StateStore(db) as cli:
        assert not cli.is_locked_by_daemon()
        cli.reset("orders", T0 - timedelta(days=1))
        assert cli.get("orders").watermark == T0 - timedelta(days=1)
    with StateStore(db, daemon=True) as daemon:
        assert daemon.is_locked_by_daemon()
        daemon.reset("orders", T0)  # the daemon itself may reset
        assert (db.parent / "state.db.lock").read_text().strip() == str(os.getpid())
    assert (db.parent / "state.db.lock").read_text() == ""  # a clean stop leaves no pid


def test_second_daemon_in_same_process_is_refused(db: Path) -> None:
    with StateStore(db, daemon=True):
        with pytest.raises(StateError, match=rf"held by a running spd daemon \(pid {os.getpid()}\)"):
            StateStore(db, daemon=True).open()


def test_close_is_idempotent_and_releases_lock(db: Path) -> None:
    s = StateStore(db, daemon=True)
    s.open()
    s.close()
    s.close()
    with StateStore(db) as cli:
        assert not cli.is_locked_by_daemon()


# -- crash consistency -------------------------------------------------------------------------

WRITER = """
from datetime import datetime, timedelta, timezone
from spd.state.store import StateStore
t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
store = StateStore({db!r}, daemon=True)
store.open()
store.ensure("orders", "id", t0)
page = 0
while True:
    page += 1
    store.save_page("orders", t0, t0 + timedelta(hours=1), f"tok-{{page}}", page, 10)
    if page % 25 == 0:
        store.finish_window("orders", t0 + timedelta(minutes=page))
    print(page, flush=True)  # printed only after the checkpoint call returned
"""


def test_sigkilled_writer_keeps_every_returned_checkpoint(tmp_path: Path, db: Path) -> None:
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
    with StateStore(db, daemon=True) as s:  # the lock died with the writer
        st = s.get("orders")
    assert last <= st.pages_emitted <= last + 1
    assert st.objects_emitted == 10 * st.pages_emitted
    # Every finish_window that returned is there; the one in flight may or may not be.
    assert T0 + timedelta(minutes=last // 25 * 25) <= st.watermark
    assert st.watermark <= T0 + timedelta(minutes=(last + 1) // 25 * 25)
    assert st.page in (0, st.pages_emitted)
    if st.page:
        assert st.next_token == f"tok-{st.page}"
