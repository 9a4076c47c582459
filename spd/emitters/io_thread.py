"""An emitter's blocking calls (writes, fsyncs), run one at a time in the order given: on the
event loop while they are quick, in a thread of the emitter's own when they are not.

A thread keeps a slow disk or a stalled reader from stalling every poller. But on a 2-core VM
each hop to a thread and back (a put, a wake-up, the GIL handed over twice, a wake-up of the loop)
cost more than the write and fsync it carried: `spd once` of 200,000 orders into a file, one
fsync per page, took 6.2 s of CPU with every batch in the thread and 4.9 s with every batch on
the loop (interleaved rounds, docs/PERFORMANCE.md). So with an `inline_limit` the calls run on the
loop, timed, until one takes longer than the limit; the calls of the next THREAD_AFTER_SLOW_S
seconds then go to the thread. A slow disk thus blocks the loop at most once a minute, for as
long as that one call takes (a call cannot be moved once it runs: a hung mount holds the loop
with it, where the thread would have held only this emitter). Without a limit (stdout: a pipe whose reader stops blocks for ever) every call
goes to the thread.

The thread: `asyncio.to_thread` goes through the loop's ThreadPoolExecutor: per call it copies
the context, takes the pool's locks, checks for an idle worker with a pure-Python semaphore (and
starts another thread when the last one has not gone back to idle yet) and chains two futures.
Here it is a put on a queue, the call, and one wake-up of the loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from spd.core.lazylog import get_logger

log = get_logger(__name__)

T = TypeVar("T")

# What the emitters pass as `inline_limit`. A write and fsync of a page takes about 1 ms on an SSD
# (0.8 ms median, 2.5 ms p99, 5.7 ms max on the benchmarks' idle VM; over 10 ms now and then when
# it is busy). A stall of 50 ms now and then is far inside the 250 ms lateness a scheduled run is
# allowed; a disk slow for good has its writes in the thread.
INLINE_LIMIT_S = 0.05

# After a call on the loop took longer than its limit, the calls go to the thread for this long
# before the loop is tried again: one slow call a minute at most blocks the loop.
THREAD_AFTER_SLOW_S = 60.0

# A job: the loop to answer on, the future it awaits, the call. None ends the thread.
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]] | None


class IoThread:
    """Runs blocking calls one at a time and in order: on the loop while each takes at most
    `inline_limit` seconds (None: never), otherwise in a thread of its own, started on first use."""

    def __init__(self, name: str, inline_limit: float | None = None) -> None:
        self.name = name
        self.inline_limit = inline_limit
        self._jobs: queue.SimpleQueue[_Job] | None = None
        self._thread_until = 0.0  # time.monotonic() before which calls go to the thread
        # Jobs handed to a thread, and those finished: written by the loop and by the threads
        # (under the lock) respectively. A call runs on the loop only when they are equal, so it
        # never overtakes, nor runs beside, a call still in a thread.
        self._handed = 0
        self._finished = _Counter()

    async def run(self, call: Callable[[], T]) -> T:
        """The result of `call()` (or what it raised). Cancelling the caller does not stop a call
        already handed to the thread: it runs, and its outcome is dropped."""
        if self._on_loop():
            return self._run_here(call)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            threading.Thread(target=_work, args=(self._jobs, self._finished), name=self.name,
                             daemon=True).start()
        self._handed += 1
        self._jobs.put((loop, future, call))
        return await future

    def _on_loop(self) -> bool:
        return (self.inline_limit is not None and self._handed == self._finished.value
                and time.monotonic() >= self._thread_until)

    def _run_here(self, call: Callable[[], T]) -> T:
        began = time.monotonic()
        try:
            return call()
        finally:
            self._note_duration(time.monotonic() - began)

    def _note_duration(self, took: float) -> None:
        """After a call on the loop slower than the limit, the next ones go to the thread."""
        limit = self.inline_limit
        if limit is not None and took > limit:
            self._thread_until = time.monotonic() + THREAD_AFTER_SLOW_S
            log.info("io_moved_to_thread", io=self.name, took_ms=round(took * 1000, 1),
                     limit_ms=round(limit * 1000, 1), for_s=THREAD_AFTER_SLOW_S)

    def close(self) -> None:
        """Ends the thread once the calls queued before have run; a later `run` starts another."""
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None

    @property
    def running(self) -> bool:
        """Whether a thread is started (tests)."""
        return self._jobs is not None


class _Counter:
    """A count that several threads add to (a thread left finishing after `close` and its
    successor)."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add_one(self) -> None:
        with self._lock:
            self.value += 1


def _work(jobs: queue.SimpleQueue[_Job], finished: _Counter) -> None:
    while (job := jobs.get()) is not None:
        loop, future, call = job
        try:
            outcome: tuple[Any, BaseException | None] = (call(), None)
        except BaseException as exc:  # handed to the awaiting task, as to_thread does
            outcome = (None, exc)
        finished.add_one()  # before the answer: the caller's next call may then run on the loop
        try:
            loop.call_soon_threadsafe(_settle, future, *outcome)
        except RuntimeError:  # the loop closed meanwhile: nobody waits for this any more
            pass
        del job, future, call, outcome  # a batch is not kept alive until the next job


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # the caller was cancelled
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)
