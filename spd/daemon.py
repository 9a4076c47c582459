"""The daemon: schedules every poller with APScheduler, handles signals, talks to systemd.

Startup: load config → open state → client → emitters → schedule → READY=1. SIGTERM/SIGINT:
stop scheduling, let in-flight pages finish and checkpoint, flush emitters, exit 0 within 30 s.
SIGHUP: reload the config; a bad one is reported and the old one keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from spd import systemd
from spd.config import load_config
from spd.durations import format_ts
from spd.errors import EXIT_CONFIG, IdentityChangedError, SpdError
from spd.logging import configure_logging
from spd.catalog import load_catalog
from spd.runtime import EmitterFactory, Runtime, check_config
from spd.emitters import build_emitter
from spd.state import StateStore

log = structlog.get_logger("spd.daemon")

FIRST_RUN_SPREAD = 5.0  # seconds; also the most jitter any run gets
DRAIN_TIMEOUT = 15.0  # in-flight pages get this long to finish; with the emitters' bounded close
# (CLOSE_TIMEOUT each) the whole stop stays under 30 s


class Daemon:
    """Runs the pollers of one config on their intervals until stopped."""

    def __init__(self, config_path: Path, *, emitter_factory: EmitterFactory = build_emitter,
                 install_signals: bool = True) -> None:
        self.config_path = config_path
        self.emitter_factory = emitter_factory
        self.install_signals = install_signals
        self.config: Any = None
        self.store: StateStore | None = None
        self.runtime: Runtime | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.inflight: set[asyncio.Task] = set()
        self.stopped = asyncio.Event()
        self.exit_code = 0
        self._watchdog: asyncio.Task | None = None
        self.http: Any = None

    async def start(self) -> None:
        """Opens everything in order and schedules the pollers; ready when it returns."""
        self.config = load_config(self.config_path)
        configure_logging(self.config.log.level, self.config.log.format)
        self.store = StateStore(Path(self.config.state.path), daemon=True)
        self.store.open()
        self.runtime = await self.open_runtime(self.config)
        self.scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self.schedule(self.config)
        self.scheduler.start()
        if self.install_signals:
            self.add_signal_handlers()
        self.start_watchdog()
        await self.start_http()
        systemd.notify("READY=1\nSTATUS=polling")
        log.info("daemon_started", pollers=sorted(self.config.pollers), config=str(self.config_path))

    async def open_runtime(self, config: Any) -> Runtime:
        runtime = Runtime(config, self.store, self.emitter_factory)  # type: ignore[arg-type]
        try:
            await runtime.start()
        except BaseException:
            await runtime.close()
            raise
        return runtime

    def schedule(self, config: Any) -> None:
        """One interval job per poller and per job: one run at a time, missed runs coalesced,
        small jitter, first runs spread over a few seconds rather than all at once."""
        assert self.scheduler is not None
        for name, cfg in config.pollers.items():
            self.add_interval_job(self.run_poller, name, name, cfg.interval.total_seconds())
        for name, cfg in config.jobs.items():  # ids cannot clash: names never contain ":"
            self.add_interval_job(self.run_job, name, f"job:{name}", cfg.interval.total_seconds())

    def add_interval_job(self, func: Any, name: str, job_id: str, seconds: float) -> None:
        jitter = min(FIRST_RUN_SPREAD, seconds * 0.05)
        first = datetime.now(timezone.utc) + timedelta(seconds=random.uniform(0, jitter))
        self.scheduler.add_job(  # type: ignore[union-attr]
            func, "interval", seconds=seconds, args=[name], id=job_id, max_instances=1,
            coalesce=True, misfire_grace_time=None, jitter=jitter, next_run_time=first,
            replace_existing=True,
        )

    async def run_poller(self, name: str) -> None:
        """One scheduled poller run; errors are recorded and logged, the next run tries again."""
        runtime = self.runtime
        if runtime is None or name not in runtime.pollers or self.stopped.is_set():
            return
        async with self.tracked("poll", poller=name):
            result = await runtime.pollers[name].run()
            log.info("poll_completed", poller=name, pages=result.pages, objects=result.objects,
                     watermark=format_ts(result.watermark) if result.watermark else None,
                     caught_up=result.caught_up)

    async def run_job(self, name: str) -> None:
        """One scheduled job run: call the operation, emit the result; failures wait for the next run."""
        runtime = self.runtime
        if runtime is None or name not in runtime.jobs or self.stopped.is_set():
            return
        async with self.tracked("job", job=name):
            await runtime.jobs[name].run()
            log.info("job_completed", job=name)

    @contextlib.asynccontextmanager
    async def tracked(self, kind: str, **context: str) -> AsyncIterator[None]:
        """Counts the run as in flight (the stop drains it) and turns its errors into log
        events: `{kind}_failed`, `_abandoned` at shutdown, `_crashed` for a bug."""
        task = asyncio.current_task()
        assert task is not None
        self.inflight.add(task)
        try:
            yield
        except IdentityChangedError as exc:
            log.error("poller_identity_changed", error=str(exc), **context)
            self.exit_code = EXIT_CONFIG
            self.request_stop()
        except SpdError as exc:
            log.error(f"{kind}_failed", error=str(exc), retriable=exc.retriable, **context)
        except asyncio.CancelledError:
            # Abandoned at shutdown without a checkpoint; the restart repeats that page.
            log.warning(f"{kind}_abandoned", **context)
        except Exception as exc:  # a bug must not kill the daemon; the next run retries
            log.exception(f"{kind}_crashed", error=repr(exc), **context)
        finally:
            self.inflight.discard(task)

    def add_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))

    def request_stop(self) -> None:
        """Begins a graceful stop (signal handlers, identity errors, the demo's timer)."""
        if not self.stopped.is_set():
            log.info("daemon_stopping")
            systemd.notify("STOPPING=1")
            self.stopped.set()

    async def wait(self) -> int:
        """Waits for a stop request, then shuts down in phases; returns the exit code."""
        await self.stopped.wait()
        await self.close()
        return self.exit_code

    async def drain(self) -> None:
        """Stops the pollers after their page in flight; cancels what is still running after the timeout."""
        if self.runtime is not None:
            self.runtime.stop_pollers()
        pending = set(self.inflight)
        if pending:
            _, late = await asyncio.wait(pending, timeout=DRAIN_TIMEOUT)
            for task in late:
                task.cancel()
            if late:
                log.warning("work_abandoned", tasks=len(late))
                await asyncio.wait(late, timeout=2)

    async def close(self) -> None:
        """Stop scheduling → drain in-flight pages → flush and close emitters → close state."""
        # Pause first: shutting APScheduler's executor down would cancel the runs in flight.
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()
        await self.drain()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.runtime is not None:
            await self.runtime.close()
            self.runtime = None
        if self.http is not None:
            await self.http.close()
        if self.store is not None:
            self.store.close()
        log.info("daemon_stopped", exit_code=self.exit_code)

    async def reload(self) -> None:
        """SIGHUP: swaps in the new config after draining; a bad config keeps the old one."""
        try:
            config = load_config(self.config_path)
            check_config(config, load_catalog())
            Runtime(config, self.store).check_identities()  # type: ignore[arg-type]
        except SpdError as exc:
            log.error("reload_failed", error=str(exc), config=str(self.config_path))
            return
        assert self.scheduler is not None
        self.scheduler.remove_all_jobs()
        await self.drain()
        if self.runtime is not None:
            await self.runtime.close()
        configure_logging(config.log.level, config.log.format)
        try:
            self.runtime = await self.open_runtime(config)
        except SpdError as exc:  # e.g. an emitter that cannot start: go back to the old config
            log.error("reload_failed", error=str(exc), config=str(self.config_path))
            config = self.config
            self.runtime = await self.open_runtime(config)
        self.config = config
        self.schedule(config)
        log.info("config_reloaded", pollers=sorted(config.pollers))

    async def start_http(self) -> None:
        """The optional /metrics, /healthz and /readyz endpoint (`http.listen`)."""
        if self.config.http is None:
            return
        from spd.metrics import MetricsServer

        server = MetricsServer(self.config.http.listen, self, ready=self.is_ready)
        try:
            await server.start()
        except OSError as exc:
            raise SpdError(f"{self.config_path}: http.listen: cannot listen on "
                           f"{self.config.http.listen}: {exc.strerror or exc}") from None
        self.http = server

    def is_ready(self) -> bool:
        """Ready while the pollers are scheduled and no stop was requested."""
        return self.runtime is not None and not self.stopped.is_set()

    def start_watchdog(self) -> None:
        interval = systemd.watchdog_interval()
        if interval:
            self._watchdog = asyncio.ensure_future(self._keepalive(interval))

    async def _keepalive(self, interval: float) -> None:
        while True:
            systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval)


async def serve(config_path: Path) -> int:
    """Runs the daemon until SIGTERM/SIGINT; returns the exit code."""
    daemon = Daemon(config_path)
    try:
        await daemon.start()
    except BaseException:
        await daemon.close()
        raise
    return await daemon.wait()


def run_daemon(config_path: Path) -> int:
    """`spd run`: the daemon in the foreground."""
    quiet_library_logs()
    return asyncio.run(serve(config_path))


def quiet_library_logs() -> None:
    """APScheduler logs through the standard library; only its errors are worth a line."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    # While a broker is down aiokafka logs plain-text ERRORs on every reconnect attempt (dozens
    # a second), breaking JSON logs; spd logs kafka_unavailable / kafka_delivery_failed itself.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
