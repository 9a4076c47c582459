"""Live progress on a terminal (`spd once`, `spd exec --all-pages`): pages and objects per series,
the window's position against its target with an ETA, and every wait for quota of any operation
(`waiting 58 s for ordersV0.getOrders quota, 0.0167/s`, from the client's token buckets).

rich redraws the lines in place and is imported only when a terminal shows them; while they are
shown, whatever is written to stderr (log lines) is printed above them, never through them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any

from spd.client.observe import QuotaWait
from spd.core.times import format_duration, format_ts, utcnow

REFRESH_PER_SECOND = 2


@dataclass
class Series:
    """What one series (a poller, a marketplace of it, an exec) did so far."""

    name: str
    target: Callable[[], datetime | None] = lambda: None  # where its watermark is headed
    origin: datetime | None = None  # its watermark when it started
    window_end: datetime | None = None  # the end of the window its pages come from now
    done_to: datetime | None = None  # the end of its last completed window
    pages: int = 0
    objects: int = 0
    started: float = field(default_factory=time.monotonic)

    def page(self, origin: datetime | None, window_end: datetime, pages: int, objects: int) -> None:
        """A delivered page of the window ending at `window_end`; a new end means the window
        before it is complete."""
        if self.origin is None:
            self.origin = origin
        if self.window_end is not None and window_end != self.window_end:
            self.done_to = self.window_end
        self.window_end, self.pages, self.objects = window_end, pages, objects

    def line(self) -> str:
        """`orders: 12 pages, 1200 objects, window to T, done to D of TARGET (45%), ETA 2m10s`:
        the position is where the completed windows reach (a window's pages come in no order)."""
        if not self.pages:
            return f"{self.name}: waiting for the first page"
        text = f"{self.name}: {self.pages} pages, {self.objects} objects"
        target, position = self.target(), self.done_to or self.origin
        if self.window_end is not None:
            text += f", window to {_second(self.window_end)}"
        if target is None or position is None:
            return text
        text += f", done to {_second(position)} of {_second(target)}"
        share = self.share(position, target)
        if share is not None:
            text += f" ({share:.0%})"
            if 0 < share < 1:
                left = (time.monotonic() - self.started) * (1 - share) / share
                text += f", ETA {format_duration(timedelta(seconds=round(left)))}"
        return text

    def share(self, position: datetime, target: datetime) -> float | None:
        """How far from its origin to its target the series is, 0 to 1."""
        if self.origin is None or target <= self.origin:
            return None
        done = (position - self.origin) / (target - self.origin)
        return min(max(done, 0.0), 1.0)


class LiveProgress:
    """The live lines on stderr; `with LiveProgress(waits) as progress:` shows them until the end."""

    def __init__(self, quota_waits: Callable[[], list[QuotaWait]], stream: IO[str] | None = None) -> None:
        self.quota_waits = quota_waits
        self.stream = stream or sys.stderr
        self.series: dict[str, Series] = {}
        self.activities: dict[str, str] = {}  # series -> what it waits for (a report, a download)
        self.targets: dict[str, Callable[[], datetime | None]] = {}
        self._live: Any = None

    def __enter__(self) -> LiveProgress:
        from rich.console import Console  # on a terminal only (see the module docstring)
        from rich.live import Live

        # soft_wrap: a log line printed above the live lines keeps its length (the terminal wraps it)
        console = Console(file=self.stream, markup=False, highlight=False, emoji=False, soft_wrap=True)
        self._live = Live(get_renderable=self.render, console=console, transient=True,
                          refresh_per_second=REFRESH_PER_SECOND, redirect_stdout=False,
                          redirect_stderr=True)
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.refresh()  # the last state is drawn once, however short the run
            self._live.stop()
            self._live = None

    def track(self, name: str, target: Callable[[], datetime | None]) -> None:
        """A poller whose series head for `target()` (now - lag, or a backfill's end)."""
        self.targets[name] = target
        self.series.setdefault(name, Series(name, target))

    def poller_page(self, key: str, result: Any, window_end: datetime) -> None:
        """A delivered page of series `key` (Poller.on_page): its run so far and window end."""
        self._series_for(key).page(result.watermark, window_end, result.pages, result.objects)

    def _series_for(self, key: str) -> Series:
        """The series `key`; the first of a fanned-out poller's replaces its placeholder line."""
        series = self.series.get(key)
        if series is None:
            base = key.partition("@")[0]
            placeholder = self.series.get(base)
            if placeholder is not None and placeholder.pages == 0:  # fanned out: one per marketplace
                del self.series[base]
            series = self.series[key] = Series(key, self.targets.get(base, lambda: None))
        return series

    def poller_activity(self, key: str, text: str | None) -> None:
        """What series `key` waits for now (Poller.on_activity), or None when that is over."""
        if text is None:
            self.activities.pop(key, None)
        else:
            self._series_for(key)
            self.activities[key] = text

    def exec_page(self, name: str) -> Callable[[int, int], None]:
        """The callback of `spd exec --all-pages` for operation `name`: (page, results so far)."""
        def update(page: int, results: int) -> None:
            series = self.series.setdefault(name, Series(name))
            series.pages, series.objects = page, results
        return update

    def lines(self) -> list[str]:
        """The series, then every quota wait in progress."""
        waits = [w.describe() for w in self.quota_waits() if w.seconds >= 0.5]
        lines = []
        for key, series in self.series.items():
            lines.append(series.line())
            if key in self.activities:
                lines.append(f"  {self.activities[key]}")
        return lines + waits

    def render(self) -> Any:
        from rich.text import Text  # imported by __enter__ already

        return Text("\n".join(self.lines()), no_wrap=True, overflow="ellipsis")


def _second(value: datetime) -> str:
    return format_ts(value.replace(microsecond=0))


def now_minus(lag: timedelta) -> Callable[[], datetime]:
    """The target of a poller that catches up: now - its lag, as time goes by."""
    return lambda: utcnow() - lag
