"""Emitters against real files, real pipes and real subprocesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

import spd.emitters.file_writer as file_mod
import pydantic

from spd.core.errors import DeliveryError
from spd.emitters.file import FileEmitterConfig, template_folder
from spd.emitters.file_writer import FileEmitter
from spd.emitters.registry import EMITTER_TYPES, build_emitter
from spd.emitters.stdout import StdoutEmitterConfig
from spd.emitters.stdout_writer import StdoutEmitter
from spd.pipeline.messages import Message, build_messages
from support.spd import fill_disk

UTC = timezone.utc
W = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 1, 1, tzinfo=UTC))
REPO = Path(__file__).resolve().parents[1]


def msgs(n: int = 3, *, poller: str = "orders", account: str = "acme-us",
         object_type: str = "ordersV0.getOrders", start: int = 0) -> list[Message]:
    objects = [(f"id-{i}", "2025-03-01T00:30:00Z", {"n": i}) for i in range(start, start + n)]
    return build_messages(poller=poller, account=account, object_type=object_type,
                          emit="individually", window=W, page=1, objects=objects)


def lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert data.endswith(b"\n") or not data
    return [orjson.loads(line) for line in data.splitlines()]


@pytest.fixture
async def file_emitter(tmp_path: Path):
    emitters: list[FileEmitter] = []

    def make(template: str = "out/{poller}.jsonl", **kw) -> FileEmitter:
        e = FileEmitter("archive", str(tmp_path / template), **kw)
        emitters.append(e)
        return e

    yield make
    for e in emitters:
        await e.close()


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


# -- build_emitter -----------------------------------------------------------------------------


def test_build_emitter_builds_what_the_config_model_says(tmp_path: Path) -> None:
    assert EMITTER_TYPES == ("stdout", "file", "webhook", "kafka")
    assert isinstance(build_emitter("out", StdoutEmitterConfig()), StdoutEmitter)
    fe = build_emitter("arch", FileEmitterConfig(path=str(tmp_path / "{poller}.jsonl")))
    assert isinstance(fe, FileEmitter) and fe.fsync is True and fe.name == "arch"
    fe2 = build_emitter("arch", FileEmitterConfig(path="x.jsonl", fsync=False))
    assert fe2.fsync is False


def test_a_bad_template_never_reaches_the_builder() -> None:
    for template in ("/tmp/{region}.jsonl", "/tmp/{poller.jsonl"):
        with pytest.raises(pydantic.ValidationError, match="has a placeholder other than"):
            FileEmitterConfig(path=template)


@pytest.mark.parametrize(("template", "folder"), [
    ("out/{poller}.jsonl", "out"), ("out/{poller}/{date}.jsonl", "out"), ("out/x-{date}.jsonl", "out"),
    ("/var/lib/spd/all.jsonl", "/var/lib/spd"), ("{poller}.jsonl", "."), ("a{{b}}/{poller}", "a{b}"),
])
def test_template_folder_is_the_part_before_the_first_placeholder(template: str, folder: str) -> None:
    assert template_folder(template) == Path(folder)


# -- stdout ------------------------------------------------------------------------------------


async def test_stdout_writes_one_line_per_message(capsysbinary) -> None:
    batch = msgs(3)
    async with StdoutEmitter("out") as e:
        await e.send(batch)
        await e.send([])
    out = capsysbinary.readouterr().out
    assert out == b"".join(m.body + b"\n" for m in batch)


async def test_stdout_concurrent_sends_are_written_whole_and_in_order(tmp_path: Path) -> None:
    """Sends from many pollers at once: each send's lines together, in the order sent."""
    out = tmp_path / "out.jsonl"
    with out.open("wb", buffering=0) as stream:  # unbuffered: each write reaches the file as is
        async with StdoutEmitter("out", stream=stream) as e:
            batches = [msgs(50, start=100 * i) for i in range(20)]
            await asyncio.gather(*(e.send(b) for b in batches))
    assert out.read_bytes() == b"".join(m.body + b"\n" for b in batches for m in b)


async def test_stdout_broken_pipe_is_a_delivery_error() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)  # the reader went away
    with open(write_fd, "wb", buffering=0) as stream:
        e = StdoutEmitter("out", stream=stream)
        with pytest.raises(DeliveryError, match="emitter out: stdout is closed \\(broken pipe\\)"):
            await e.send(msgs(1))
        await e.close()


async def test_stdout_writes_on_the_loop_into_a_file_and_from_its_thread_into_a_pipe(
        tmp_path: Path) -> None:
    import threading

    async def writer_thread(stream) -> str:
        e = StdoutEmitter("out", stream=stream)
        names: list[str] = []
        write = e._write
        e._write = lambda data: (names.append(threading.current_thread().name), write(data))[1]  # type: ignore[method-assign]
        async with e:
            await e.send(msgs(2))
        return names[0]

    with (tmp_path / "out.jsonl").open("wb") as stream:  # `spd once > out.jsonl`
        assert await writer_thread(stream) == threading.current_thread().name
    assert len(lines(tmp_path / "out.jsonl")) == 2
    read_fd, write_fd = os.pipe()  # `spd run | jq`: a reader that stops must not block the loop
    with open(read_fd, "rb") as reader, open(write_fd, "wb", buffering=0) as stream:
        assert await writer_thread(stream) == "spd-stdout-out"
        assert reader.read(1) == b"{"


STDOUT_CHILD = """
import asyncio, sys
from datetime import datetime, timezone
from spd.core.errors import DeliveryError
from spd.emitters.stdout import StdoutEmitterConfig
from spd.pipeline.messages import build_messages

async def main(count):
    w = (datetime(2025, 3, 1, tzinfo=timezone.utc),) * 2
    e = StdoutEmitterConfig().build("out")
    async with e:
        for i in range(count):
            m = build_messages(poller="p", account="a", object_type="t", emit="individually",
                               window=w, page=1, objects=[(str(i), None, {"i": i})])
            try:
                await e.send(m)
            except DeliveryError as exc:
                print(f"ERR {exc}", file=sys.stderr, flush=True)
                return 3
            if i == 0:
                sys.stderr.write("sent-first\\n"); sys.stderr.flush()
    return 0

sys.exit(asyncio.run(main(int(sys.argv[1]))))
"""


def _stdout_child(tmp_path: Path, count: int) -> subprocess.Popen[bytes]:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(STDOUT_CHILD))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(script), str(count)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


def test_stdout_in_a_real_process(tmp_path: Path) -> None:
    child = _stdout_child(tmp_path, 5)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert [orjson.loads(line)["id"] for line in out.splitlines()] == ["0", "1", "2", "3", "4"]
    assert out.count(b"\n") == 5


def test_stdout_reader_gone_in_a_real_process(tmp_path: Path) -> None:
    child = _stdout_child(tmp_path, 1_000_000)
    assert child.stderr.readline() == b"sent-first\n"
    child.stdout.close()  # like `spd run | head -1`
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 3, err
    assert "ERR emitter out: stdout is closed (broken pipe)" in err


async def test_send_after_close_is_refused_and_close_is_idempotent() -> None:
    e = StdoutEmitter("out")
    await e.start()
    await e.close()
    await e.close()
    with pytest.raises(DeliveryError, match="closed"):
        await e.send(msgs(1))


# -- file: templating, modes, fsync ------------------------------------------------------------


async def test_file_templating_with_unsafe_values_and_private_mode(file_emitter, tmp_path) -> None:
    old = os.umask(0)
    try:
        e = file_emitter("out/{account}/{object_type}/{poller}-{date}.jsonl")
        batch = msgs(2, account="acme/us", object_type="report:GET_FLAT_FILE", poller="..")
        await e.send(batch)
    finally:
        os.umask(old)
    path = tmp_path / "out" / "acme_us" / "report_GET_FLAT_FILE" / f"__-{today()}.jsonl"
    assert e.open_files == [path]
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_bytes() == b"".join(m.body + b"\n" for m in batch)


async def test_file_appends_with_one_handle_per_path_and_one_fsync_per_send(
    file_emitter, tmp_path, monkeypatch
) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    e = file_emitter()
    await e.send(msgs(5))
    await e.send(msgs(5, start=5))
    await e.send(msgs(2, poller="vendor") + msgs(2, start=10))
    orders = lines(tmp_path / "out" / "orders.jsonl")
    assert [r["id"] for r in orders] == [f"id-{i}" for i in list(range(10)) + [10, 11]]
    assert len(lines(tmp_path / "out" / "vendor.jsonl")) == 2
    assert len(e.open_files) == 2
    assert len(calls) == 1 + 1 + 2  # once per file per send, never per message


async def test_file_without_fsync_syncs_only_on_close(file_emitter, tmp_path, monkeypatch) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd))[1])
    e = file_emitter(fsync=False)
    await e.send(msgs(3))
    await e.send(msgs(3))
    assert calls == [] and len(lines(tmp_path / "out" / "orders.jsonl")) == 6
    await e.close()
    assert len(calls) == 1 and e.open_files == []


async def test_concurrent_sends_never_interleave(file_emitter, tmp_path) -> None:
    e = file_emitter("all.jsonl")
    await asyncio.gather(*(e.send(msgs(50, start=k * 50)) for k in range(8)))
    ids = [r["id"] for r in lines(tmp_path / "all.jsonl")]
    assert sorted(ids) == sorted(f"id-{i}" for i in range(400))
    for k in range(8):  # each send's lines stay together and in order
        start = ids.index(f"id-{k * 50}")
        assert ids[start:start + 50] == [f"id-{i}" for i in range(k * 50, k * 50 + 50)]


async def test_date_rollover_opens_a_new_file(file_emitter, tmp_path, monkeypatch) -> None:
    class Clock(datetime):
        now_value = datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC)

        @classmethod
        def now(cls, tz=None):
            return cls.now_value

    monkeypatch.setattr(file_mod, "datetime", Clock)
    e = file_emitter("{poller}-{date}.jsonl")
    await e.send(msgs(1))
    Clock.now_value = datetime(2025, 3, 2, 0, 0, 1, tzinfo=UTC)
    await e.send(msgs(1, start=1))
    assert lines(tmp_path / "orders-2025-03-01.jsonl")[0]["id"] == "id-0"
    assert lines(tmp_path / "orders-2025-03-02.jsonl")[0]["id"] == "id-1"
    assert e.open_files == [tmp_path / "orders-2025-03-02.jsonl"]


async def test_paths_are_resolved_once_per_key_and_the_memory_of_them_is_capped(
        file_emitter, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(file_mod, "MAX_KNOWN_PATHS", 2)
    e = file_emitter("{account}/{poller}.jsonl")
    resolved: list[str] = []
    resolve = e.resolve
    monkeypatch.setattr(e, "resolve", lambda m, date: (resolved.append(m.poller), resolve(m, date))[1])
    for name in ("a", "a", "b", "a", "c", "a", "c"):
        await e.send(msgs(1, poller=name, account="acme"))
    assert resolved == ["a", "b", "c", "a"]  # a third key forgot the first two
    assert [len(lines(tmp_path / "acme" / f"{n}.jsonl")) for n in "abc"] == [4, 1, 2]
    assert len(e._paths) <= 2


async def test_writes_run_on_the_loop_while_quick_then_in_the_emitters_own_thread(
        file_emitter, tmp_path, monkeypatch) -> None:
    import threading
    import time

    e = file_emitter("{poller}.jsonl")
    e._io.inline_limit = 0.2  # a real write and fsync stays under it even on a loaded machine
    threads: list[str] = []
    write = e._write_batch
    monkeypatch.setattr(e, "_write_batch", lambda batch: (
        threads.append(threading.current_thread().name), write(batch))[1])
    loop_thread = threading.current_thread().name
    await e.send(msgs(1))
    assert threads == [loop_thread] and not e._io.running  # a real write and fsync: quick
    real_fsync = os.fsync
    monkeypatch.setattr(file_mod.os, "fsync", lambda fd: (time.sleep(0.25), real_fsync(fd))[1])
    with capture_logs() as logs:
        await e.send(msgs(1, start=1))  # slower than the limit: still on the loop, then ...
    assert [l["event"] for l in logs] == ["io_moved_to_thread"] and logs[0]["took_ms"] >= 250
    monkeypatch.setattr(file_mod.os, "fsync", real_fsync)
    await e.send(msgs(1, start=2))  # ... quick again, but in the thread for a while
    assert threads == [loop_thread, loop_thread, "spd-file-archive"]
    assert e._io.running
    await e.close()
    assert not e._io.running
    assert len(lines(tmp_path / "orders.jsonl")) == 3


async def test_open_handles_are_capped(file_emitter, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(file_mod, "MAX_OPEN_FILES", 2)
    e = file_emitter("{poller}.jsonl")
    for name in ("a", "b", "c", "a"):
        await e.send(msgs(1, poller=name))
    assert len(e.open_files) == 2
    assert len(lines(tmp_path / "a.jsonl")) == 2


# -- file: repair, rotation, errors --------------------------------------------------------------


@pytest.mark.parametrize("torn", [b'{"poller":"orders","id":"x', b"y" * 200_000])
async def test_torn_last_line_is_repaired_on_first_open(file_emitter, tmp_path, torn) -> None:
    path = tmp_path / "out" / "orders.jsonl"
    path.parent.mkdir()
    whole = b'{"n":1}\n{"n":2}\n'
    path.write_bytes(whole + torn)
    e = file_emitter()
    batch = msgs(1)
    with capture_logs() as logs:
        await e.send(batch)
    assert path.read_bytes() == whole + batch[0].body + b"\n"
    repaired = [r for r in logs if r["event"] == "torn_line_repaired"]
    assert repaired and repaired[0]["bytes_dropped"] == len(torn)
    assert repaired[0]["path"] == str(path) and repaired[0]["log_level"] == "warning"


async def test_file_with_only_a_torn_line_is_emptied_and_whole_files_untouched(
    file_emitter, tmp_path
) -> None:
    torn_only = tmp_path / "torn.jsonl"
    torn_only.write_bytes(b'{"half')
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(b'{"n":1}\n')
    with capture_logs() as logs:
        await file_emitter("torn.jsonl").send(msgs(1))
        await file_emitter("whole.jsonl").send(msgs(1))
    assert [r["id"] for r in lines(torn_only)] == ["id-0"]
    assert lines(whole)[0] == {"n": 1} and len(lines(whole)) == 2
    assert [r["bytes_dropped"] for r in logs if r["event"] == "torn_line_repaired"] == [6]


async def test_reopen_after_logrotate_rename_creates_a_new_file(file_emitter, tmp_path) -> None:
    path = tmp_path / "out" / "orders.jsonl"
    rotated = path.with_name("orders.jsonl.1")
    e = file_emitter()
    await e.send(msgs(1))
    path.rename(rotated)
    await e.send(msgs(1, start=1))  # the kept handle still writes to the renamed file
    assert not path.exists()
    e.reopen()
    assert e.open_files == []
    await e.send(msgs(1, start=2))
    assert [r["id"] for r in lines(rotated)] == ["id-0", "id-1"]
    assert [r["id"] for r in lines(path)] == ["id-2"]
    assert path.stat().st_mode & 0o777 == 0o600


async def test_reopen_during_a_send_takes_effect_on_the_next_send(file_emitter, tmp_path) -> None:
    path = tmp_path / "out" / "orders.jsonl"
    e = file_emitter()
    await e.send(msgs(1))
    path.rename(path.with_name("old.jsonl"))
    with e._io_lock:  # as if the I/O thread were writing when SIGHUP arrived
        e.reopen()
    assert e.open_files  # not closed under the writer's feet
    await e.send(msgs(1, start=1))
    assert [r["id"] for r in lines(path)] == ["id-1"]


async def test_unwritable_directory_is_a_delivery_error_naming_the_path(file_emitter, tmp_path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    e = file_emitter("blocker/{poller}.jsonl")
    with pytest.raises(DeliveryError) as info:
        await e.send(msgs(1))
    assert str(tmp_path / "blocker" / "orders.jsonl") in str(info.value)
    assert info.value.retriable
    assert e.open_files == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
async def test_permission_denied_is_a_delivery_error(file_emitter, tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    e = file_emitter("locked/{poller}.jsonl")
    with pytest.raises(DeliveryError, match="Permission denied"):
        await e.send(msgs(1))


async def test_disk_full_is_a_delivery_error_and_the_handle_is_dropped(tmpfs: Path) -> None:
    e = FileEmitter("archive", str(tmpfs / "out" / "{poller}.jsonl"))
    try:
        await e.send(msgs(1))
        fill_disk(tmpfs)
        with pytest.raises(DeliveryError) as info:
            await e.send(msgs(200))
        assert str(info.value) == f"emitter archive: cannot write {tmpfs}/out/orders.jsonl (No space left on device)"
        assert e.open_files == []
        with pytest.raises(DeliveryError):  # still failing, not silently dropped
            await e.send(msgs(200))
        lines = (tmpfs / "out" / "orders.jsonl").read_bytes().split(b"\n")
        assert lines[-1] == b"" and all(orjson.loads(line) for line in lines[:-1])  # no torn line
    finally:
        await e.close()


async def test_a_symlinked_output_is_refused_and_its_target_left_alone(file_emitter, tmp_path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious line\nlast line without newline")
    out = tmp_path / "out"
    out.mkdir()
    (out / "orders.jsonl").symlink_to(victim)
    e = file_emitter(str(out / "{poller}.jsonl"))
    with pytest.raises(DeliveryError, match=r"orders.jsonl is a symbolic link; spd does not write "
                                            r"through links"):
        await e.send(msgs(2))
    assert victim.read_bytes() == b"precious line\nlast line without newline"  # not "repaired"


async def test_a_fifo_output_is_refused(file_emitter, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "orders.jsonl")
    e = file_emitter(str(out / "{poller}.jsonl"))
    with pytest.raises(DeliveryError, match="orders.jsonl is not a regular file"):
        await e.send(msgs(1))


async def test_directories_are_created_private(file_emitter, tmp_path) -> None:
    old = os.umask(0o022)
    try:
        e = file_emitter(str(tmp_path / "a" / "b" / "{poller}.jsonl"))
        await e.send(msgs(1))
    finally:
        os.umask(old)
    modes = [(tmp_path / d).stat().st_mode & 0o777 for d in ("a", "a/b")]
    assert modes == [0o700, 0o700]
    assert (tmp_path / "a" / "b" / "orders.jsonl").stat().st_mode & 0o777 == 0o600
