"""`spd once`: runs each (or the named) poller until it has caught up, then exits."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any
from pathlib import Path

import structlog

from spd.config.validate import load_config
from spd.core.times import format_ts
from spd.core.errors import EXIT_FAILURE, SpdError, UsageError, describe_error
from spd.core.logging import configure_logging, quiet_library_logs
from spd.core.redaction import redact
from spd.app.backfill import Backfill, backfill_poller
from spd.core.output import is_terminal
from spd.pipeline.poller import Poller
from spd.app.runtime import Runtime
from spd.config.model import Config
from spd.app.state import StateFileWatch, open_state

log = structlog.get_logger("spd.app.once")


def select_pollers(config: Config, names: list[str]) -> list[str]:
    """The pollers to run: all, or the named ones (unknown names are a usage error)."""
    if not names:
        return list(config.pollers)
    unknown = [n for n in names if n not in config.pollers]
    if unknown:
        allowed = ", ".join(sorted(config.pollers)) or "none"
        raise UsageError(f"unknown poller {', '.join(unknown)}; the config has: {allowed}")
    return names


async def catch_up(config_path: Path, names: list[str], backfill: Backfill | None = None) -> int:
    """Runs the selected pollers concurrently until caught up (or, for a backfill, until its
    end); 1 if any failed."""
    config = load_config(config_path, environment=True)
    configure_logging(config.log.level, config.log.format)
    selected = select_pollers(config, names)
    async with open_state(config, daemon=True, alone=True) as store:
        runtime = Runtime(config, store)
        # A backfill can run for hours: a state file deleted or replaced meanwhile stops it, as
        # it stops the daemon (its checkpoints would go on into the lost file).
        watch = StateFileWatch(store, lambda _: runtime.stop_pollers())
        try:
            await runtime.start()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, runtime.stop_pollers)
            pollers = {n: runtime.pollers[n] for n in selected}
            if backfill is not None:
                pollers = {n: backfill_poller(p, backfill) for n, p in pollers.items()}
            watch.start()
            results = await run_pollers(pollers, runtime, backfill)
            watch.check()  # lost since the last look: the run's checkpoints are lost too
        finally:
            await watch.stop()
            await runtime.close()
    failed = 0
    for name, result in zip(selected, results):
        if isinstance(result, (KeyboardInterrupt, SystemExit)):
            raise result
        if isinstance(result, BaseException):  # recorded on the poller; one line here
            failed += 1
            print(f"{name}: failed: {redact(describe_error(result))}", file=sys.stderr)
            if not isinstance(result, SpdError):
                log.debug("poller_traceback", poller=name, exc_info=result)
        else:
            label = f"{name} (backfill {backfill.range})" if backfill else name
            print(f"{label}: {result.objects} objects in {result.pages} pages, watermark "
                  f"{format_ts(result.watermark) if result.watermark else '-'}", file=sys.stderr)
    if watch.lost is not None:  # after the summary: what was delivered, then why it stopped
        raise watch.lost
    return EXIT_FAILURE if failed else 0


async def run_pollers(pollers: dict[str, Poller], runtime: Runtime,
                      backfill: Backfill | None) -> list[Any]:
    """Runs the pollers concurrently; on a terminal under live progress lines, with log lines
    printed above them."""
    async def run_all() -> list[Any]:
        return await asyncio.gather(*(p.run() for p in pollers.values()), return_exceptions=True)

    if not is_terminal(sys.stderr):
        return await run_all()
    from spd.app.progress import LiveProgress, now_minus  # on a terminal only, as rich is

    client, log_config = runtime.client, runtime.config.log
    try:
        with LiveProgress(client.quota_waits if client else list) as progress:
            configure_logging(log_config.level, log_config.format)  # into the live display's stderr
            for name, poller in pollers.items():
                until = backfill.until if backfill else None
                progress.track(name, (lambda: until) if until else now_minus(poller.object_type.window.lag))
                poller.on_page = progress.poller_page
                poller.on_activity = progress.poller_activity
            return await run_all()
    finally:
        configure_logging(log_config.level, log_config.format)  # the terminal's stderr again


def run_once(config_path: Path, names: list[str], backfill: Backfill | None = None) -> int:
    """`spd once -c CONFIG [POLLER...] [--from T1 [--until T2]]`."""
    quiet_library_logs()
    return asyncio.run(catch_up(config_path, names, backfill))
