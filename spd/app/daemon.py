"""The daemon: schedules every poller with APScheduler, handles signals, talks to systemd.

Startup: load config → open state → client → emitters → schedule → READY=1. SIGTERM/SIGINT:
stop scheduling, let in-flight pages finish and checkpoint, flush emitters, exit 0 within 30 s.
SIGHUP: reload the config (RELOADING=1 … READY=1); a bad one is reported and the old one keeps
running. Under systemd, STATUS= says how the pollers are doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import signal
from datetime import datetime, timedelta, timezone
from collections.abc import Callable
from pathlib import Path
from typing import Any, AsyncIterator

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from spd.app import systemd
from spd.app.live import live_path
from spd.config.model import Config
from spd.config.validate import validate_config
from spd.core.times import format_ts
from spd.core.errors import (EXIT_CONFIG, EXIT_FAILURE, DeliveryError, IdentityChangedError, SpdError,
                        StateError, describe_error)
from spd.core.logging import configure_logging, quiet_library_logs
from spd.app.push import Push
from spd.app.reporting import Reports
from spd.app.runtime import EmitterFactory, Runtime, drain_tasks
from spd.client.observe import QUOTA_CLOCK
from spd.emitters.registry import build_emitter
from spd.pipeline.types import RunResult
from spd.app.placement import Placement
from spd.app.state import StateFileWatch, open_state
from spd.state.backend import StateBackend

log = structlog.get_logger("spd.app.daemon")

FIRST_RUN_SPREAD = 5.0  # seconds; also the most jitter any run gets
# Many pollers: their first runs (and so every later one, the interval keeps the phase) are spread
# so that about this many start per second, at most over one interval; 10,000 pollers due in the
# same 5 seconds would start seconds late and hold thousands of pages in memory at once.
FIRST_RUNS_PER_SECOND = 100.0
DRAIN_TIMEOUT = 15.0  # in-flight pages get this long to finish; with the emitters' bounded close
# (CLOSE_TIMEOUT each) the whole stop stays under 30 s


class Daemon:
    """Runs the pollers of one config on their intervals until stopped."""

    def __init__(self, config_path: Path, *, emitter_factory: EmitterFactory = build_emitter,
                 install_signals: bool = True,
                 on_poll: Callable[[str, RunResult], None] | None = None) -> None:
        self.config_path = config_path
        self.emitter_factory = emitter_factory
        self.install_signals = install_signals
        self.on_poll = on_poll  # told of every completed poller run (the demo's narration)
        self.config: Config | None = None  # set by start()
        self.store: StateBackend | None = None
        self.runtime: Runtime | None = None
        self.placement = Placement(self)  # with state.url: the accounts this replica runs
        self.scheduler: AsyncIOScheduler | None = None
        self.inflight: dict[asyncio.Task[None], str] = {}  # run in flight -> poller name or "job:NAME"
        self.stopped = asyncio.Event()
        self.exit_code = 0
        self._reloading = asyncio.Lock()
        self._reloads: set[asyncio.Task[None]] = set()  # SIGHUP reloads in flight (supervised)
        self.reports = Reports(self)  # STATUS=, the watchdog, `spd status`'s live file, /readyz
        self.http: Any = None
        self.push = Push(self)  # the subscriptions' tasks and counters
        self._state_watch: StateFileWatch | None = None  # that the state file stays the one open

    async def start(self) -> None:
        """Opens everything in order and schedules the pollers; ready when it returns."""
        self.config, warnings = self.validated()
        configure_logging(self.config.log.level, self.config.log.format)
        for warning in warnings:
            log.warning("config_warning", problem=warning)
        self.store = store = open_state(self.config, daemon=True)
        await store.open()
        self.runtime = await self.open_runtime(self.config)
        self.scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self.placement.prepare(store, self.config)
        self.schedule(self.config)
        self.scheduler.start()
        await self.placement.join()
        if self.install_signals:
            self.add_signal_handlers()
        await self.start_http()
        self.reports.notify_ready()
        settle_heap()  # after READY=1 (systemd waits for it), still before any run can start
        self.reports.start()
        self._state_watch = StateFileWatch(store, self._state_file_lost)
        self._state_watch.start()
        log.info("daemon_started", pollers=sorted(self.config.pollers),
                 subscriptions=sorted(self.config.subscriptions), config=str(self.config_path))

    async def open_runtime(self, config: Config) -> Runtime:
        assert self.store is not None  # opened before any runtime
        runtime = Runtime(config, self.store, self.emitter_factory)
        try:
            await runtime.start()
        except BaseException:
            await runtime.close()
            raise
        self.reports.liveness.track({name: cfg.interval.total_seconds() for name, cfg in config.pollers.items()})
        for name, poller in runtime.pollers.items():
            poller.on_page = self._page_delivered
        return runtime

    def _page_delivered(self, key: str, *_: object) -> None:
        self.reports.liveness.progressed(key.partition("@")[0])  # "orders@MARKETPLACE" is poller orders

    def schedule(self, config: Config, accounts: set[str] | None = None) -> None:
        """One interval job per poller and per job: one run at a time, missed runs coalesced,
        small jitter, first runs spread at about FIRST_RUNS_PER_SECOND over at most one interval;
        in a cluster, only those of the accounts this replica holds, or of `accounts` (just
        taken: at once)."""
        assert self.scheduler is not None
        spread = (len(config.pollers) + len(config.jobs)) / FIRST_RUNS_PER_SECOND
        if accounts is None:  # the whole config (start, reload): its subscriptions' queues too
            self.push.start(config)
            accounts = self.placement.accounts()
        else:  # an account this replica just took: at once
            spread = 0.0
        for name, poller in config.pollers.items():
            if accounts is None or poller.account in accounts:
                self.add_interval_job(self.run_poller, name, name, poller.interval.total_seconds(), spread)
        for name, job in config.jobs.items():  # ids cannot clash: names never contain ":"
            if accounts is None or job.account in accounts:
                self.add_interval_job(self.run_job, name, f"job:{name}", job.interval.total_seconds(),
                                      spread)

    def add_interval_job(self, func: Any, name: str, job_id: str, seconds: float,
                         spread: float = 0.0) -> None:
        """Runs `func(name)` every `seconds` (with jitter), the first time within `spread`
        seconds (at most one interval) or the jitter, whichever is longer."""
        jitter = min(FIRST_RUN_SPREAD, seconds * 0.05)
        first_within = max(jitter, min(spread, seconds))
        first = datetime.now(timezone.utc) + timedelta(seconds=random.uniform(0, first_within))
        self.scheduler.add_job(  # type: ignore[union-attr]
            func, "interval", seconds=seconds, args=[name], id=job_id, max_instances=1,
            coalesce=True, misfire_grace_time=None, jitter=jitter, next_run_time=first,
            replace_existing=True,
        )

    async def run_poller(self, name: str) -> None:
        """One scheduled poller run; errors are recorded and logged, the next run tries again."""
        runtime = self.runtime
        if (runtime is None or name not in runtime.pollers or self.stopped.is_set()
                or not self.placement.runs_here(runtime.pollers[name].account_name)):
            return
        QUOTA_CLOCK.set(self.reports.liveness.quota_clock(name))  # this run's task and those it starts
        async with self.tracked("poll", name, poller=name):
            result = await runtime.pollers[name].run()
            self.reports.liveness.progressed(name)
            if self.on_poll is not None:
                self.on_poll(name, result)
            log.info("poll_completed", poller=name, pages=result.pages, objects=result.objects,
                     watermark=format_ts(result.watermark) if result.watermark else None,
                     caught_up=result.caught_up)

    async def run_job(self, name: str) -> None:
        """One scheduled job run: call the operation, emit the result; failures wait for the next run."""
        runtime = self.runtime
        if (runtime is None or name not in runtime.jobs or self.stopped.is_set()
                or not self.placement.runs_here(runtime.jobs[name].account)):
            return
        async with self.tracked("job", f"job:{name}", job=name):
            await runtime.jobs[name].run()
            log.info("job_completed", job=name)

    @contextlib.asynccontextmanager
    async def tracked(self, kind: str, key: str, **context: str) -> AsyncIterator[None]:
        """Counts the run of `key` as in flight (the stop drains it), turns its errors into log
        events (`{kind}_failed`, `_abandoned` at shutdown, `_crashed` for a bug) and its outcome
        into the status line."""
        task = asyncio.current_task()
        assert task is not None
        self.inflight[task] = key
        try:
            yield
            self.reports.board.succeeded(key)
        except IdentityChangedError as exc:
            log.error("poller_identity_changed", error=str(exc), **context)
            self.exit_code = EXIT_CONFIG
            self.request_stop()
        except SpdError as exc:
            log.error(f"{kind}_failed", error=str(exc), retriable=exc.retriable, **context)
            self.reports.board.failure(key, str(exc), stalled=isinstance(exc, DeliveryError))
        except asyncio.CancelledError:
            # Abandoned at shutdown without a checkpoint; the restart repeats that page.
            log.warning(f"{kind}_abandoned", **context)
        except Exception as exc:  # a bug must not kill the daemon; the next run retries
            log.error(f"{kind}_crashed", error=describe_error(exc), **context)
            log.debug(f"{kind}_traceback", exc_info=exc, **context)  # one line above debug
            self.reports.board.failure(key, describe_error(exc), stalled=False)
        finally:
            self.inflight.pop(task, None)
            self.reports.run_ended()

    def _state_file_lost(self, exc: StateError) -> None:
        """The state file was deleted or replaced under the daemon (logged by the watch): stop,
        exit 78, since a restart would start from whatever is at the path now."""
        self.exit_code = exc.exit_code
        self.request_stop()

    def add_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    def request_reload(self) -> None:
        """SIGHUP: reloads in a supervised task; one that fails outright stops the daemon."""
        task = asyncio.ensure_future(self.reload())
        self._reloads.add(task)
        task.add_done_callback(self._reload_done)

    def _reload_done(self, task: asyncio.Task[None]) -> None:
        """A reload whose fallback to the old config failed leaves no runtime: rather than idle
        with nothing running, the daemon says so and exits 1 (systemd restarts it)."""
        self._reloads.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        error = describe_error(exc)
        log.error("reload_fallback_failed", error=error, config=str(self.config_path),
                  hint="neither the new nor the old config could start; stopping with exit 1")
        self.reports.board.error("reload", error)
        self.exit_code = EXIT_FAILURE
        self.request_stop()

    def request_stop(self) -> None:
        """Begins a graceful stop (signal handlers, identity errors, the demo's timer)."""
        if not self.stopped.is_set():
            log.info("daemon_stopping")
            systemd.notify(f"STOPPING=1\nSTATUS=stopping: {len(self.inflight)} runs in flight finish their page")
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
        await drain_tasks(set(self.inflight), DRAIN_TIMEOUT)

    async def close(self) -> None:
        """Stop scheduling → drain in-flight pages → flush and close emitters → check that the
        state file is still the one open → close state."""
        for reload in list(self._reloads):  # a reload half done when the stop came
            reload.cancel()
        if self._state_watch is not None:
            await self._state_watch.stop()
        # Pause first: shutting APScheduler's executor down would cancel the runs in flight.
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()
        await self.drain()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.reports.stop()
        await self.push.stop()
        if self.config is not None and self.config.state is not None and self.config.state.path:
            live_path(self.config.state_path()).unlink(missing_ok=True)  # no daemon runs them now
        await self.placement.leave()  # after the drain: no page of this replica is in flight
        if self.runtime is not None:
            await self.runtime.close()
            self.runtime = None
        if self.http is not None:
            await self.http.close()
        if self._state_watch is not None:
            # One last look after the last checkpoint (as `spd once` takes): a file lost within
            # the watch's interval before the stop lost those checkpoints too; exit 78 says so.
            self._state_watch.check()
        if self.store is not None:
            await self.store.close()
        log.info("daemon_stopped", exit_code=self.exit_code)

    def load_checked(self) -> Config:
        """The config file loaded and checked as at startup (runs in a thread: parsing a big or
        hostile file must not stall the pollers)."""
        config, warnings = self.validated()
        for warning in warnings:
            log.warning("config_warning", problem=warning)
        return config

    def validated(self) -> tuple[Config, list[str]]:
        """The config file through the one validation pass (with the checks beyond the file), and
        its warnings; ConfigError with the first error."""
        validation = validate_config(self.config_path, environment=True)
        config = validation.checked()
        return config, [w.format(str(validation.file)) for w in validation.warnings]

    async def reload(self) -> None:
        """SIGHUP: swaps in the new config after draining; a bad config keeps the old one.
        systemd sees RELOADING=1 until READY=1, whatever the outcome; one reload at a time."""
        async with self._reloading:
            if self.stopped.is_set():
                return
            systemd.notify_reloading("reloading the config")
            try:
                await self._reload()
            finally:  # a stop meanwhile, or no runtime left (_reload_done), says STOPPING=1 instead
                if not self.stopped.is_set() and self.runtime is not None:
                    self.reports.notify_ready()

    async def _reload(self) -> None:
        try:
            config = await asyncio.to_thread(self.load_checked)
            assert self.store is not None  # reloads start after start()
            await Runtime(config, self.store).check_identities()
        except SpdError as exc:
            log.error("reload_failed", error=str(exc), config=str(self.config_path))
            self.reports.board.error("reload (old config kept)", str(exc))
            return
        assert self.scheduler is not None
        self.scheduler.remove_all_jobs()
        await self.drain()
        await self.push.runtime_closing()  # the next runtime continues from the saved counters
        if self.runtime is not None:
            runtime, self.runtime = self.runtime, None  # nothing runs on a closed runtime
            await runtime.close()
        configure_logging(config.log.level, config.log.format)
        try:
            self.runtime = await self.open_runtime(config)
        except SpdError as exc:  # e.g. an emitter that cannot start: go back to the old config
            log.error("reload_failed", error=str(exc), config=str(self.config_path))
            self.reports.board.error("reload (old config kept)", str(exc))
            assert self.config is not None  # reloads start after start()
            config = self.config
            self.runtime = await self.open_runtime(config)  # if this fails too: _reload_done
        self.config = config
        self.placement.reconfigure(config)
        settle_heap()
        self.schedule(config)
        log.info("config_reloaded", pollers=sorted(config.pollers))

    async def start_http(self) -> None:
        """The optional /metrics, /healthz and /readyz endpoint (`http.listen`)."""
        http = self.config.http if self.config is not None else None
        if http is None:
            return
        from spd.app.metrics import MetricsServer  # lazy: aiohttp.web and Prometheus, for http.listen only

        server = MetricsServer(http.listen, self, readiness=self.reports.readiness)
        try:
            await server.start()
        except OSError as exc:
            raise SpdError(f"{self.config_path}: http.listen: cannot listen on "
                           f"{http.listen}: {exc.strerror or exc}") from None
        self.http = server
        if not http.loopback:
            log.warning("http_listen_not_loopback", listen=http.listen,
                        hint="/metrics, /healthz and /readyz have no authentication and are "
                        "reachable from other hosts; listen on 127.0.0.1 unless that is meant")

    @property
    def reloading(self) -> bool:
        """Whether a SIGHUP reload is under way (STATUS= waits for its READY=1)."""
        return self._reloading.locked()


def settle_heap() -> None:
    """Collects what start-up (or a reload) left behind and exempts everything that is left, the
    config, catalog, pollers and jobs, from later collections: with 10,000 pollers a full
    collection walks them for a third of a second, holding up every run due meanwhile."""
    gc.unfreeze()  # a reload: the old config's objects may be garbage now
    gc.collect()
    gc.freeze()


async def serve(config_path: Path) -> int:
    """Runs the daemon until SIGTERM/SIGINT; returns the exit code."""
    daemon = Daemon(config_path)
    try:
        await daemon.start()
    except BaseException as exc:
        daemon.exit_code = exc.exit_code if isinstance(exc, SpdError) else EXIT_FAILURE
        await daemon.close()
        raise
    return await daemon.wait()


def run_daemon(config_path: Path) -> int:
    """`spd run`: the daemon in the foreground."""
    quiet_library_logs()
    return asyncio.run(serve(config_path))
