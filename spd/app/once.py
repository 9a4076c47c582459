"""`spd once`: runs each (or the named) poller until it has caught up, then exits."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import datetime
from typing import Any
from pathlib import Path

import structlog

from spd.config.model import load_config
from spd.core.times import format_ts
from spd.core.errors import EXIT_FAILURE, SpdError, UsageError, describe_error
from spd.core.logging import configure_logging, quiet_library_logs
from spd.core.redaction import redact
from spd.app.backfill import Backfill, backfill_poller
from spd.app.runtime import Runtime
from spd.config.model import Config
from spd.state.store import StateStore

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
    config = load_config(config_path)
    configure_logging(config.log.level, config.log.format)
    selected = select_pollers(config, names)
    async with StateStore(config.state_path(), daemon=True) as store:
        runtime = Runtime(config, store)
        try:
            await runtime.start()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, runtime.stop_pollers)
            pollers = {n: runtime.pollers[n] for n in selected}
            if backfill is not None:
                pollers = {n: backfill_poller(p, backfill) for n, p in pollers.items()}
            if sys.stderr.isatty():
                progress = Progress(sys.stderr)
                for poller in pollers.values():
                    poller.on_page = progress.update
            results = await asyncio.gather(*(p.run() for p in pollers.values()),
                                           return_exceptions=True)
        finally:
            await runtime.close()
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")  # clear the progress line
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
            label = f"{name} (backfill {format_ts(backfill.start)}..{format_ts(backfill.until)})" if backfill else name
            print(f"{label}: {result.objects} objects in {result.pages} pages, watermark "
                  f"{format_ts(result.watermark) if result.watermark else '-'}", file=sys.stderr)
    return EXIT_FAILURE if failed else 0


class Progress:
    """One line on a terminal, rewritten at most every half second: pages and objects per
    poller and the end of the window each is in."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.seen: dict[str, str] = {}
        self.last = 0.0

    def update(self, key: str, result: Any, window_end: datetime) -> None:
        self.seen[key] = f"{key} {result.objects} objects/{result.pages} pages to {format_ts(window_end)}"
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            self.out.write("\r\033[K" + "; ".join(self.seen.values()))
            self.out.flush()


def run_once(config_path: Path, names: list[str], backfill: Backfill | None = None) -> int:
    """`spd once -c CONFIG [POLLER...] [--from T1 [--until T2]]`."""
    quiet_library_logs()
    return asyncio.run(catch_up(config_path, names, backfill))
