"""The values a poll run passes around: its window, a fetched page, what the run did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spd.core.typing import Triple


class PollStopped(Exception):
    """Internal: the daemon is stopping and the page was abandoned before delivery."""


@dataclass(frozen=True)
class Window:
    """The time range one series of pages covers; `end` is None until the API echoes it."""

    start: datetime
    end: datetime | None
    echo: bool  # the upper bound is omitted and taken from the response


@dataclass
class RunResult:
    """What one run did, for logs, `once` and the demo's summary."""

    pages: int = 0
    objects: int = 0
    windows: int = 0
    caught_up: bool = False
    capped: bool = False
    watermark: datetime | None = None

    def add(self, other: RunResult) -> None:
        """Sums a series' result into the poller's (the oldest watermark wins)."""
        self.pages += other.pages
        self.objects += other.objects
        self.windows += other.windows
        self.caught_up = self.caught_up and other.caught_up
        self.capped = self.capped or other.capped
        if other.watermark and (self.watermark is None or other.watermark < self.watermark):
            self.watermark = other.watermark


@dataclass
class Page:
    """One fetched page: its objects and where the next one starts."""

    objects: list[Any]  # as parsed (dicts), or as Amazon sent them (orjson Fragments)
    next_token: str | None
    echo: Any  # the upper bound the API says it applied, as it came (checked before use)
    received: datetime  # when the answer arrived: an echo cannot be later than that - lag
    triples: list[Triple] = field(default_factory=list)  # (id, cursor, object) of each object
    fallbacks: dict[str, int] = field(default_factory=dict)  # objects without an id or time
