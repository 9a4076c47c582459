"""The file emitter at work: group-committed appends, fsyncs, torn-line repair, reopening.

What it writes and where is described in spd.emitters.file, which owns the emitter's config and
imports this module only when it builds one (asyncio stays unimported for `spd validate`).
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import stat
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from datetime import datetime, timezone
from pathlib import Path

from spd.core.errors import DeliveryError
from spd.core.lazylog import get_logger
from spd.emitters.base import Emitter, Message
from spd.emitters.io_thread import INLINE_LIMIT_S, IoThread

log = get_logger(__name__)

MAX_OPEN_FILES = 256  # least recently used handles beyond this are closed (1,000 pollers)
MAX_KNOWN_PATHS = 4096  # resolved paths kept (one per poller, object type, account and day)
SYNC_THREADS = 16  # files of one batch fsynced at once
_UNSAFE = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')
_CHUNK = 65536


def safe_component(value: str) -> str:
    """A template value made safe as (part of) one file name: unsafe characters become `_`."""
    cleaned = _UNSAFE.sub("_", value)
    if cleaned.strip(".") == "":  # "", "." and ".." must not walk the tree
        cleaned = cleaned.replace(".", "_") or "_"
    return cleaned


def make_private_dirs(directory: Path) -> None:
    """Creates `directory` and any missing parents with mode 0700 (existing ones are left)."""
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by someone else: left as it is
        d.chmod(0o700)  # mkdir's mode is masked by the umask


def _last_line_end(fd: int, size: int) -> int:
    """The offset just after the file's last newline (0 when it has none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - _CHUNK)
        index = os.pread(fd, pos - start, start).rfind(b"\n")
        if index >= 0:
            return start + index + 1
        pos = start
    return 0


@dataclass
class _Pending:
    """One send waiting for its batch: its lines per file, its day, and its outcome."""

    groups: dict[Path, list[bytes]]
    date: str
    done: asyncio.Future[None]


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for pending in batch:
        if not pending.done.done():
            pending.done.set_exception(exc)


class FileEmitter(Emitter):
    """Appends JSON lines to `path` (a template) with fsync per send by default."""

    type = "file"

    def __init__(self, name: str, path: str, *, fsync: bool = True) -> None:
        super().__init__(name)
        self.template = os.path.expanduser(path)
        self.fsync = fsync
        self._uses_date = "{date}" in self.template
        self._handles: OrderedDict[Path, int] = OrderedDict()
        self._date: str | None = None
        self._lock = asyncio.Lock()  # one batch at a time, in order
        self._queue: list[_Pending] = []  # sends waiting for the next batch
        self._writer: asyncio.Future[None] | None = None
        self._io = IoThread(f"spd-file-{name}", INLINE_LIMIT_S)  # writes and fsyncs, in turn
        self._sync_pool: ThreadPoolExecutor | None = None  # parallel fsyncs of a batch
        self._paths: dict[tuple[str, str, str, str], Path] = {}  # resolve() of each send's keys
        self._io_lock = threading.Lock()  # guards handles between a batch (loop or thread) and reopen()
        self._reopen_pending = False

    def resolve(self, message: Message, date: str) -> Path:
        """The file a message goes to on `date` (YYYY-MM-DD, UTC)."""
        values = {
            "poller": message.poller, "object_type": message.object_type,
            "account": message.account, "date": date,
        }
        return Path(self.template.format_map({k: safe_component(v) for k, v in values.items()}))

    async def send(self, messages: list[Message]) -> None:
        """Appends the messages; returns after write, flush and (with `fsync`) fsync.

        Sends that arrive while a batch is being written are written together next (group
        commit): each file is appended to in arrival order and fsynced once per batch, the
        files of one batch in parallel, so thousands of pollers sharing the emitter do not queue
        behind one fsync each."""
        self._check_open()
        if not messages:
            return
        date = datetime.now(timezone.utc).date().isoformat()  # YYYY-MM-DD; strftime costs 4x
        groups: dict[Path, list[bytes]] = {}
        for m in messages:
            groups.setdefault(self._path(m, date), []).append(m.body)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(groups, date, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._drain())
        await done

    def _path(self, message: Message, date: str) -> Path:
        """`resolve(message, date)`, built once per poller, object type, account and day."""
        key = (message.poller, message.object_type, message.account, date)
        path = self._paths.get(key)
        if path is None:
            if len(self._paths) >= MAX_KNOWN_PATHS:
                self._paths.clear()
            path = self._paths[key] = self.resolve(message, date)
        return path

    async def _drain(self) -> None:
        """Writes the queued sends batch after batch until none is left."""
        async with self._lock:
            while self._queue:
                batch = [p for p in self._take_batch() if not p.done.cancelled()]
                if not batch:
                    continue
                try:
                    # On the loop while quick, else in a thread: a slow fsync must not stall
                    # the pollers.
                    errors = await self._io.run(partial(self._write_batch, batch))
                except Exception as exc:  # a bug: its sends fail with it, the next batch runs
                    _fail(batch, exc)
                    continue
                except BaseException as exc:  # cancelled: no send of the batch may hang
                    _fail(batch, exc)
                    raise
                for pending in batch:
                    if pending.done.done():
                        continue
                    failed = next((errors[p] for p in pending.groups if p in errors), None)
                    if failed is None:
                        pending.done.set_result(None)
                    else:
                        pending.done.set_exception(failed)

    def _take_batch(self) -> list[_Pending]:
        """The queued sends of the same day as the oldest one, in arrival order."""
        date = self._queue[0].date
        batch = [p for p in self._queue if p.date == date]
        self._queue = [p for p in self._queue if p.date != date]
        return batch

    def _write_batch(self, batch: list[_Pending]) -> dict[Path, DeliveryError]:
        """Appends every send of `batch` (one day), then fsyncs each file once; the error of
        each path that failed."""
        merged: dict[Path, list[bytes]] = {}
        for pending in batch:
            for path, bodies in pending.groups.items():
                merged.setdefault(path, []).extend(bodies)
        errors: dict[Path, DeliveryError] = {}
        with self._io_lock:
            date = batch[0].date
            if self._reopen_pending or (self._uses_date and date != self._date):
                self._close_all()  # SIGHUP came mid-send, or a new day: new files
                self._reopen_pending = False
            self._date = date
            written = []
            for path, bodies in merged.items():
                try:
                    fd = self._fd_for(path)
                    self._append(path, fd, b"\n".join(bodies) + b"\n")
                except DeliveryError as exc:
                    errors[path] = exc
                    continue
                written.append((path, fd))
            if self.fsync:
                errors.update(self._sync_each(written))
            self._trim_handles()
        return errors

    def _sync_each(self, written: list[tuple[Path, int]]) -> dict[Path, DeliveryError]:
        """fsyncs the written files, several at once when there are several (the filesystem
        commits concurrent fsyncs together); the error of each that failed."""
        def sync(item: tuple[Path, int]) -> DeliveryError | None:
            try:
                self._sync(*item)
            except DeliveryError as exc:
                return exc
            return None

        if len(written) <= 1:
            results = [sync(item) for item in written]
        else:
            if self._sync_pool is None:
                self._sync_pool = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix=f"spd-fsync-{self.name}")
            results = list(self._sync_pool.map(sync, written))
        return {path: exc for (path, _), exc in zip(written, results) if exc is not None}

    def _fd_for(self, path: Path) -> int:
        fd = self._handles.get(path)
        if fd is not None:
            self._handles.move_to_end(path)
            return fd
        try:
            make_private_dirs(path.parent)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise DeliveryError(f"emitter {self.name}: {path} is a symbolic link; spd does not "
                                    "write through links: make it a regular file") from None
            raise self._error(path, exc) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise DeliveryError(f"emitter {self.name}: {path} is not a regular file; "
                                    "point the emitter's path at a file")
            self._repair(path, fd)
        except OSError as exc:
            os.close(fd)
            raise self._error(path, exc) from None
        self._handles[path] = fd
        return fd

    def _trim_handles(self) -> None:
        """Closes the least recently used handles beyond MAX_OPEN_FILES (after a batch, whose
        own handles must stay open until they are fsynced)."""
        while len(self._handles) > MAX_OPEN_FILES:
            os.close(self._handles.popitem(last=False)[1])

    def _repair(self, path: Path, fd: int) -> None:
        """Cuts a torn last line (no trailing newline) left by a crash mid-write."""
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return
        if os.pread(fd, 1, st.st_size - 1) == b"\n":
            return
        keep = _last_line_end(fd, st.st_size)
        os.ftruncate(fd, keep)
        if self.fsync:
            os.fsync(fd)
        log.warning(
            "torn_line_repaired", emitter=self.name, path=str(path),
            bytes_dropped=st.st_size - keep,
        )

    def _append(self, path: Path, fd: int, data: bytes) -> None:
        before = None
        try:
            before = os.fstat(fd).st_size
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as exc:
            self._discard(path, fd, before)
            raise self._error(path, exc) from None

    def _sync(self, path: Path, fd: int) -> None:
        try:
            os.fsync(fd)
        except OSError as exc:
            self._discard(path, fd, None)
            raise self._error(path, exc) from None

    def _discard(self, path: Path, fd: int, size: int | None) -> None:
        """After a failed write: cut back what was half written, and drop the handle."""
        if size is not None:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass  # the next open repairs a torn line instead
        self._handles.pop(path, None)
        try:
            os.close(fd)
        except OSError:
            pass

    def _error(self, path: Path, exc: OSError) -> DeliveryError:
        reason = exc.strerror or str(exc)
        return DeliveryError(f"emitter {self.name}: cannot write {path} ({reason})")

    def _close_all(self) -> None:
        while self._handles:
            _, fd = self._handles.popitem()
            try:
                os.close(fd)
            except OSError:
                pass

    def reopen(self) -> None:
        """Closes every file so the next write reopens by name (logrotate); safe from signals."""
        if self._io_lock.acquire(blocking=False):
            try:
                count = len(self._handles)
                self._close_all()
            finally:
                self._io_lock.release()
            log.info("emitter_reopened", emitter=self.name, files_closed=count)
        else:
            self._reopen_pending = True  # a send is writing: its thread closes them next time

    async def flush(self) -> None:
        """Without per-send fsync, makes what was written durable (at shutdown)."""
        if not self.fsync and self._handles:
            async with self._lock:
                await self._io.run(self._sync_all)

    def _sync_all(self) -> None:
        with self._io_lock:
            for path, fd in list(self._handles.items()):
                self._sync(path, fd)

    async def _close(self) -> None:
        async with self._lock:
            await self._io.run(self._locked_close_all)
        self._io.close()
        if self._sync_pool is not None:
            self._sync_pool.shutdown(wait=False)
            self._sync_pool = None

    def _locked_close_all(self) -> None:
        with self._io_lock:
            self._close_all()

    @property
    def open_files(self) -> list[Path]:
        """The paths currently held open (tests, status)."""
        return list(self._handles)
