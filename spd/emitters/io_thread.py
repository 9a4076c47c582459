"""One thread per emitter for its blocking calls (writes, fsyncs), run in the order given.

`asyncio.to_thread` goes through the loop's ThreadPoolExecutor: per call it copies the context,
takes the pool's locks, checks for an idle worker with a pure-Python semaphore (and starts another
thread when the last one has not gone back to idle yet) and chains two futures. A file emitter
makes that hop once per page; here it is a put on a queue, the call, and one wake-up of the loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# A job: the loop to answer on, the future it awaits, the call. None ends the thread.
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]] | None


class IoThread:
    """Runs blocking calls one at a time in a thread of its own, started on first use."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job] | None = None

    async def run(self, call: Callable[[], T]) -> T:
        """The result of `call()` run in the thread (or what it raised). Cancelling the caller
        does not stop a call already queued: it runs, and its outcome is dropped."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            threading.Thread(target=_work, args=(self._jobs,), name=self.name, daemon=True).start()
        self._jobs.put((loop, future, call))
        return await future

    def close(self) -> None:
        """Ends the thread once the calls queued before have run; a later `run` starts another."""
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None

    @property
    def running(self) -> bool:
        """Whether a thread is started (tests)."""
        return self._jobs is not None


def _work(jobs: queue.SimpleQueue[_Job]) -> None:
    while (job := jobs.get()) is not None:
        loop, future, call = job
        try:
            outcome: tuple[Any, BaseException | None] = (call(), None)
        except BaseException as exc:  # handed to the awaiting task, as to_thread does
            outcome = (None, exc)
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
