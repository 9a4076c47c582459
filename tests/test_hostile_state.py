"""State files that try to break spd (issue 10, items 6 and 7): real SQLite files damaged by
the tests, a read-only `spd status`, the daemon lock through a symlink, and a real tmpfs that
fills up under a running daemon."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from support.config import POLLERS, write_config
from support.hostile import write_hostile_config
from spd.core.errors import StateFullError, StateLockedError
from spd.state.store import StateStore
from support.sim_process import SimProcess
from support.spd import fill_disk, iso, read_jsonl, read_jsonl_so_far, run_spd, start_spd, stop_spd, wait_for
from support.terminal import run_spd_tty

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def make_state(db: Path) -> None:
    """A real state file with poller p, as `spd once` leaves it."""
    async def write() -> None:
        async with StateStore(db, daemon=True) as store:
            await store.ensure("p", "identity", T0)
            await store.record_run("p", error=None)

    asyncio.run(write())


def damage(db: Path, sql: str) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(sql)


def assert_one_line(result, code: int, start: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(start), result.stderr


def files_of(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir() if p.is_file()}


# -- 7. damaged state: one line naming the file, exit 78 --------------------------------------


@pytest.mark.parametrize("sql,problem", [
    ("UPDATE pollers SET watermark = 'garbage' WHERE poller = 'p'",
     "(poller p has an unreadable value: Invalid isoformat string: 'garbage'"),
    ("DROP TABLE pollers", "(table pollers is missing)"),
    ("UPDATE meta SET value = 'one' WHERE key = 'schema_version'", "(schema version 'one')"),
], ids=["garbage-watermark", "missing-table", "garbage-version"])
def test_damaged_state_is_one_line_and_exit_78_for_status_and_run(tmp_path, sql, problem) -> None:
    config = write_hostile_config(tmp_path, "http://127.0.0.1:9")
    db = tmp_path / "state.db"
    make_state(db)
    damage(db, sql)
    expected = f"spd: state {db}: the state database is damaged {problem}"
    status = run_spd("status", "-c", str(config))
    assert_one_line(status, 78, expected)
    run = run_spd("run", "-c", str(config), timeout=60)
    assert_one_line(run, 78, expected)
    stopped = [json.loads(line) for line in run.stderr.splitlines() if '"daemon_stopped"' in line]
    assert [e["exit_code"] for e in stopped] == [78]  # the log says what the process exits with


def test_a_file_that_is_not_a_database_is_damaged_too(tmp_path) -> None:
    config = write_hostile_config(tmp_path, "http://127.0.0.1:9")
    (tmp_path / "state.db").write_bytes(b"this is not SQLite at all" * 100)
    assert_one_line(run_spd("status", "-c", str(config)), 78,
                    f"spd: state {tmp_path / 'state.db'}: the state database is damaged (file is not a database)")


def test_status_never_creates_or_migrates_a_state_database(tmp_path) -> None:
    config = write_hostile_config(tmp_path, "http://127.0.0.1:9")
    missing = run_spd("status", "-c", str(config), "--json")
    assert missing.returncode == 0 and json.loads(missing.stdout)[0]["last_run"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spd.yaml"]  # nothing created

    db = tmp_path / "state.db"
    make_state(db)
    before = files_of(tmp_path)
    status = run_spd("status", "-c", str(config), "--json")
    assert status.returncode == 0 and json.loads(status.stdout)[0]["last_run"] is not None
    assert files_of(tmp_path) == before  # read only: no -wal, -shm or lock file, no write

    sqlite3.connect(tmp_path / "empty.db").close()  # an SQLite file spd never wrote
    other = write_hostile_config(tmp_path, "http://127.0.0.1:9", state=tmp_path / "empty.db")
    empty_before = (tmp_path / "empty.db").read_bytes()
    assert run_spd("status", "-c", str(other)).returncode == 78
    assert (tmp_path / "empty.db").read_bytes() == empty_before  # no schema written into it


async def test_the_daemon_lock_follows_a_symlink_to_the_same_file(tmp_path) -> None:
    db = tmp_path / "real" / "state.db"
    await asyncio.to_thread(make_state, db)
    link = tmp_path / "link.db"
    link.symlink_to(db)
    async with StateStore(db, daemon=True):
        with pytest.raises(StateLockedError, match=r"is held by a running spd daemon"):
            await StateStore(link, daemon=True).open()
    async with StateStore(link, daemon=True):  # released: the link's daemon may run now
        with pytest.raises(StateLockedError):
            await StateStore(db, daemon=True).open()


# -- 6. a full disk under the state directory --------------------------------------------------


def metric(port: int, name: str) -> float | None:
    """Poller p's value of `name` in the daemon's /metrics (None until it is there)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            lines = resp.read().decode().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(name + "{") and 'poller="p"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_full_disk_under_the_state_is_recorded_on_the_poller(tmp_path, tmpfs, hostile_thread) -> None:
    port = free_port()
    config = write_hostile_config(tmp_path, hostile_thread.url, {"interval": "1s"}, state=tmpfs / "state.db",
                          extra=f"http: {{listen: '0.0.0.0:{port}'}}")
    proc = start_spd("run", "-c", str(config))
    try:
        wait_for(lambda: metric(port, "spd_objects_emitted_total"), 60)  # a run went through
        fill_disk(tmpfs)
        wait_for(lambda: metric(port, "spd_poller_failing") == 1.0, 60)
        error = json.loads(run_spd("status", "-c", str(config), "--json").stdout)[0]["last_error"]
        assert error.startswith(f"state {tmpfs / 'state.db'}: cannot write the state database")
        assert "full" in error
        table = run_spd_tty("status", "-c", str(config)).lines  # what a person reads
        row = next(line for line in table if line.startswith("p "))
        assert f"state {tmpfs / 'state.db'}: cannot write" in row and " - " not in row.split("state ")[0]
    finally:
        code = stop_spd(proc, signal.SIGTERM)
        stderr = proc.stderr.read().decode()
    assert "Traceback" not in stderr
    assert '"http_listen_not_loopback"' in stderr  # item 9: 0.0.0.0 is said to be reachable
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(e["event"] == "poll_failed" and "full" in e["error"] for e in events)
    assert code in (0, 1)
    once = run_spd("once", "-c", str(config))  # the disk is still full: one line, no traceback
    assert once.returncode != 0 and "Traceback" not in once.stderr
    assert once.stderr.strip().splitlines()[-1].startswith(("spd: state ", "p: failed: state "))


def test_a_reset_on_a_full_disk_is_a_failed_write_not_a_damaged_file(tmp_path, tmpfs) -> None:
    # SQLite reports the full disk as SQLITE_IOERR_SHMSIZE (the -shm file cannot grow): an
    # extended code of an I/O error, which must not tell the operator to restore a backup.
    db = tmpfs / "state.db"
    config = write_hostile_config(tmp_path, "http://127.0.0.1:9", state=db)
    make_state(db)
    filler = fill_disk(tmpfs)
    reset = ("reset", "-c", str(config), "p", "--to", "2025-01-01T00:00:00Z", "--yes")
    assert_one_line(run_spd(*reset), 1, f"spd: state {db}: cannot write the state database (disk I/O error)")
    filler.unlink()
    assert run_spd(*reset).returncode == 0  # nothing was damaged: with room again, it works


def _open_fds_of(path: Path) -> list[str]:
    """This process's descriptors open on `path`."""
    fds = Path("/proc/self/fd")
    return [fd.name for fd in fds.iterdir() if os.path.realpath(fd) == str(path)]


def test_a_daemon_started_on_a_full_disk_says_so_in_one_line(tmp_path, tmpfs) -> None:
    # A clean stop empties the lock file; writing the new daemon's pid into it on a full disk
    # fails before SQLite is reached.
    db = tmpfs / "state.db"
    config = write_hostile_config(tmp_path, "http://127.0.0.1:9", state=db)
    make_state(db)
    filler = fill_disk(tmpfs)
    expected = (f"spd: state {db}: cannot write the daemon lock {tmpfs / 'state.db.lock'}"
                " (No space left on device)")
    for command in ("once", "run"):
        started = run_spd(command, "-c", str(config), timeout=60)
        assert_one_line(started, 1, expected)
        assert [line for line in started.stderr.splitlines() if not line.startswith("{")] == [expected]

    with pytest.raises(StateFullError) as info:  # in this process: nothing is left open
        StateStore(db, daemon=True).open_now()
    assert (info.value.exit_code, str(info.value)) == (1, expected.removeprefix("spd: "))
    assert _open_fds_of(tmpfs / "state.db.lock") == []
    filler.unlink()
    again = StateStore(db, daemon=True)  # with room, the lock is free to take: no flock leaked
    again.open_now()
    again.close_now()


CRASHED_WRITER = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("UPDATE pollers SET note = 'in the WAL only'")
os._exit(0)  # a crash: the -wal and -shm files stay behind
"""


def test_status_that_cannot_read_on_a_full_disk_says_read(tmp_path, tmpfs) -> None:
    # A writer crashed and left its WAL; reading it grows the -shm index, which a full disk
    # refuses (SQLITE_IOERR_SHMSIZE): status only reads, so the line must not say "write".
    db = tmpfs / "state.db"
    config = write_hostile_config(tmp_path, "http://127.0.0.1:9", state=db)
    make_state(db)
    subprocess.run([sys.executable, "-c", CRASHED_WRITER, str(db)], check=True, timeout=60)
    os.truncate(f"{db}-shm", 0)
    filler = fill_disk(tmpfs)
    status = run_spd("status", "-c", str(config))
    assert_one_line(status, 1, f"spd: state {db}: cannot read the state database (disk I/O error)")
    filler.unlink()
    assert "in the WAL only" in run_spd("status", "-c", str(config)).stdout  # nothing was damaged


LOSSES = ["deleted", "replaced by another file", "WAL deleted"]


def lose_state_file(db: Path, how: str) -> None:
    """Deletes the state file, or replaces it by a copy (another inode, the same content), or
    deletes its -wal (SQLite goes on appending to the unlinked log)."""
    if how == "deleted":
        db.unlink()
    elif how == "WAL deleted":
        Path(f"{db}-wal").unlink()
    else:
        copy = db.with_name("copy.db")
        copy.write_bytes(db.read_bytes())
        copy.replace(db)


def lost_message(db: Path, how: str) -> str:
    """How spd's one line about the loss `how` begins."""
    if how == "WAL deleted":
        return f"state {db}: its WAL file {db}-wal was deleted while spd had it open"
    return f"state {db}: the state database was {how} while spd had it open"


def assert_state_file_lost(proc: subprocess.Popen, db: Path, how: str) -> tuple[list[dict[str, Any]], list[str]]:
    """`proc` (`spd run` or `spd once`, ended) noticed the loss: exit 78, no traceback, one
    `state_file_lost` error naming the file. Its JSON log events, and its other stderr lines."""
    code = proc.returncode
    stderr = proc.stderr.read().decode()  # type: ignore[union-attr]
    assert code == 78, stderr
    assert "Traceback" not in stderr
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    lost = [e for e in events if e["event"] == "state_file_lost"]
    assert [(e["level"], e["path"]) for e in lost] == [("error", str(db))]
    assert lost[0]["error"].startswith(lost_message(db, how))
    return events, [line for line in stderr.splitlines() if not line.startswith("{")]


# "SIGTERM": stopped at once after the loss. The watch looks every 5 s: a file deleted within the
# last 5 s before SIGTERM used to end with exit 0, the drain's checkpoints written into the deleted
# file; the stop now looks once more after the last checkpoint, as `spd once` does.
@pytest.mark.parametrize("how, then", [(how, "wait") for how in LOSSES] + [("deleted", "SIGTERM")])
def test_a_state_file_or_its_wal_deleted_or_replaced_under_the_daemon_stops_it(tmp_path, sim_factory, how, then) -> None:
    # In WAL mode SQLite goes on writing into the unlinked (or replaced) file without an error:
    # every checkpoint since would be lost at the next start.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=50, start=now - timedelta(days=1), end=now, rate_limit=False)
    config = write_config(tmp_path, sim.url, {"orders": {**POLLERS["orders"],
                                                         "start_time": iso(now - timedelta(days=1))}})
    db = tmp_path / "state.db"
    proc = start_spd("run", "-c", str(config))
    try:
        wait_for(lambda: read_jsonl_so_far(tmp_path / "out" / "orders.jsonl"), 60)  # it writes
        lose_state_file(db, how)
        if then == "SIGTERM":
            proc.send_signal(signal.SIGTERM)  # long before the watch's next look
        proc.wait(60)
    finally:
        stop_spd(proc, signal.SIGKILL)
    events, _ = assert_state_file_lost(proc, db, how)
    assert events[-1]["event"] == "daemon_stopped" and events[-1]["exit_code"] == 78


ONCE_ORDERS = 4000  # 40 pages of 100 at ONCE_LATENCY ms each: ~16 s, far beyond the 5 s to notice
ONCE_LATENCY = 400


@pytest.mark.parametrize("how", LOSSES)
def test_a_state_file_or_its_wal_deleted_or_replaced_under_spd_once_stops_it(tmp_path, how) -> None:
    # A backfill with `spd once` can run for hours; its checkpoints would go into the lost file
    # as the daemon's would. The simulator has its own process: the run's pace is its latency.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - timedelta(days=1)
    out = tmp_path / "out" / "orders.jsonl"
    db = tmp_path / "state.db"
    with SimProcess("--orders", str(ONCE_ORDERS), "--start", iso(start), "--end", iso(now),
                    "--latency", str(ONCE_LATENCY), "--no-rate-limit", "--no-live") as sim:
        config = write_config(tmp_path, sim.url, {"orders": {**POLLERS["orders"], "start_time": iso(start)}})
        proc = start_spd("once", "-c", str(config))
        try:
            wait_for(lambda: read_jsonl_so_far(out), 60)  # its first page is delivered
            before = read_jsonl_so_far(out)
            lose_state_file(db, how)
            proc.wait(60)
        finally:
            stop_spd(proc, signal.SIGKILL)
    _, lines = assert_state_file_lost(proc, db, how)
    assert lines[-1].startswith(f"spd: {lost_message(db, how)}")
    delivered = read_jsonl(out)  # whole lines only: the file emitter closed cleanly
    assert delivered[:len(before)] == before  # what was delivered before the loss stays
    assert len(delivered) < ONCE_ORDERS  # it stopped, rather than running to its end


NORMAL_ORDERS = 30_000  # 300 pages of 100, at NORMAL_LATENCY ms each: several 5 s looks
NORMAL_LATENCY = 40


def test_a_long_spd_once_with_nothing_lost_never_trips_the_state_file_check(tmp_path) -> None:
    # SQLite creates the -wal lazily, appends to it, restarts it from its start after a
    # checkpoint and truncates it in place: none of that is a lost file. `spd status` opening
    # and closing the database from another process mid-run does not delete the -wal either.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start = now - timedelta(days=1)
    out = tmp_path / "out" / "orders.jsonl"
    db = tmp_path / "state.db"
    with SimProcess("--orders", str(NORMAL_ORDERS), "--start", iso(start),  # all before the lag
                    "--end", iso(now - timedelta(hours=1)), "--latency", str(NORMAL_LATENCY), "--no-rate-limit", "--no-live") as sim:
        config = write_config(tmp_path, sim.url, {"orders": {**POLLERS["orders"], "start_time": iso(start)}})
        proc = start_spd("once", "-c", str(config))
        try:
            wait_for(lambda: read_jsonl_so_far(out), 60)
            wal = os.stat(f"{db}-wal").st_ino
            assert run_spd("status", "-c", str(config)).returncode == 0
            with sqlite3.connect(db) as other:  # another connection truncates the WAL in place
                other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            other.close()
            assert os.stat(f"{db}-wal").st_ino == wal
            code = proc.wait(300)
        finally:
            stop_spd(proc, signal.SIGKILL)
    stderr = proc.stderr.read().decode()  # type: ignore[union-attr]
    assert code == 0, stderr
    assert "state_file_lost" not in stderr
    with sqlite3.connect(db) as conn:  # every checkpoint reached the file: it agrees with the output
        pages, objects = conn.execute("SELECT pages_emitted, objects_emitted FROM pollers").fetchone()
    conn.close()
    assert pages >= NORMAL_ORDERS // 100 * 9 // 10  # a long run: ~300 pages (some orders fall outside)
    assert objects == len(read_jsonl(out))
