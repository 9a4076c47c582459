"""Helpers of the poller that need no poller state: response digging, expired tokens, keeping
the marketplace fan-out's rows, start_time clamping, echo checks and the next-token guard."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from typing import Any

import structlog

from spd.core.times import format_duration, format_ts, normalize_timestamp, parse_ts
from spd.client.http import SpClient
from spd.core.errors import ApiError
from spd.sources.hooks import flatten
from spd.core.paths import dig
from spd.core.typing import Triple
from spd.sources.object_type import CONTENT_HASH_PREFIX, ObjectType
from spd.state.backend import PollerState, StateBackend

log = structlog.get_logger("spd.pipeline.poller")

# A start_time older than the API reaches is moved this much inside the limit, so that the
# first request, sent a little later, is still accepted.
CLAMP_MARGIN = timedelta(minutes=10)
# A window shorter than this is not worth a request: quotas like getOrders' one per minute are
# precious, and the next run picks the time up anyway.
MIN_WINDOW = timedelta(seconds=5)
# An echoed upper bound may be this far ahead of our own clock (Amazon's clock running ahead);
# anything later is an error, never a watermark (a bound in the future skips every change).
ECHO_CLOCK_SKEW = timedelta(seconds=30)
# An echo that does not advance while the window starts this far behind now - lag is stuck (the
# series stops with an error); closer to now it is clock skew, and the series is caught up.
STALLED_ECHO = timedelta(minutes=10)
# This many empty pages in a row, each with a next token, end a series: pages that never end.
MAX_EMPTY_PAGES = 100
# A page holds at most 100 objects where Amazon lets spd ask; a reply with more than this is
# refused before its objects become messages (memory grows with the number of objects).
MAX_PAGE_OBJECTS = 10_000



def is_expired_token_error(exc: ApiError) -> bool:
    """A 400 that says the next token itself expired or is invalid (the window must restart),
    not one that refuses how it was sent ("nextToken must be the only parameter"): restarting
    would only repeat that request forever."""
    if exc.status != 400:
        return False
    pairs = [(str(e.get("message", "")).lower(), str(e.get("details", "")).lower())
             for e in exc.errors] or [(exc.message.lower(), "")]
    for message, details in pairs:
        if "token" in message + details and "expired" in message + details:
            return True
        if "token" in message and any(w in message for w in ("invalid", "not valid", "decode")):
            return True
    return False


async def sync_fanned_out(store: StateBackend, parent: PollerState, keys: list[str]) -> None:
    """`spd reset` moves only the poller's own row, which otherwise holds the oldest watermark
    of its marketplaces: when it no longer does (or its identity changed), every marketplace
    restarts from it."""
    existing = [s for s in [await store.get(k) for k in keys] if s is not None]
    if not existing:
        return
    if (all(s.identity == parent.identity for s in existing)
            and parent.watermark == min(s.watermark for s in existing)):
        return
    log.info("marketplaces_reset", poller=parent.poller, watermark=format_ts(parent.watermark))
    for s in existing:
        await store.delete(s.poller)
        await store.ensure(s.poller, parent.identity, parent.watermark)


async def fold_fanned_out(store: StateBackend, name: str, keys: list[str]) -> None:
    """The poller's own row takes the oldest marketplace watermark; its note lists them all."""
    states = [s for s in [await store.get(k) for k in keys] if s is not None]
    if not states:
        return
    await store.finish_window(name, min(s.watermark for s in states))
    parts = [f"{s.poller.split('@', 1)[1]} at {format_ts(s.watermark)}" for s in states]
    notes = sorted({s.note for s in states if s.note})  # a clamped start is the same for all
    await store.set_note(name, "; ".join(["per marketplace: " + ", ".join(parts), *notes]))


def clamp_start(ot: ObjectType, start: datetime, now: datetime) -> datetime | None:
    """The oldest time the API accepts when `start` is older (None when it is not)."""
    if ot.window.max_age is None:
        return None
    oldest = (now - ot.window.max_age + CLAMP_MARGIN).replace(microsecond=0)
    return oldest if start < oldest else None


def clamp_note(ot: ObjectType, start: datetime, oldest: datetime) -> str:
    """The `spd status` note of a clamped start."""
    return (f"watermark {format_ts(start)} is older than {ot.name} reaches back "
            f"({format_duration(ot.window.max_age or timedelta(0))}); moved to {format_ts(oldest)}")


def page_contents(ot: ObjectType, body: Any) -> tuple[list[Any], str | None]:
    """The objects of one reply (flattened where the type says) and its next token; ApiError
    when the reply is malformed or holds more than MAX_PAGE_OBJECTS objects."""
    ext = ot.extraction
    results = ".".join(ext.results_path)
    objects = dig(body, ext.results_path)
    if ext.flatten is not None and objects is not None:
        objects = flatten(ext.flatten, objects)
    if objects is None:
        parent = ext.results_path[:-1]  # a missing list inside a present parent is an empty page
        if not isinstance(body, dict) or not parent or dig(body, parent) is None:
            raise ApiError(f"{ot.name}: malformed response, no {results}", retriable=True)
        objects = []
    if not isinstance(objects, list):
        raise ApiError(f"{ot.name}: malformed response, {results} is not a list", retriable=True)
    if len(objects) > MAX_PAGE_OBJECTS:
        raise ApiError(f"{ot.name}: a page of {len(objects)} objects; spd accepts at most "
                       f"{MAX_PAGE_OBJECTS} (Amazon's pages hold up to 100)", retriable=True)
    token = dig(body, ot.paging.token_path) or None
    if token is not None and not isinstance(token, str):
        raise ApiError(f"{ot.name}: malformed response, {'.'.join(ot.paging.token_path)} is not a "
                       "string", retriable=True)
    return objects, token


def count_fallbacks(ot: ObjectType, triples: list[Triple],
                    timestamp_field: str) -> dict[str, int]:
    """How many of a page's (id, cursor, object) lack their id ("id: content hash (no F)"),
    every timestamp ("cursor: null (no F)"), or take their cursor from a declared fallback
    ("cursor: G (no F)"). Cheap for pages without any (the usual case)."""
    counts: dict[str, int] = {}
    id_field = ot.extraction.id_field
    paths = ot.extraction.timestamp_paths(timestamp_field)
    for obj_id, cursor, obj in triples:
        keys = []
        if id_field and obj_id.startswith(CONTENT_HASH_PREFIX):
            keys.append(f"id: content hash (no {id_field})")
        if cursor is None and paths:
            keys.append(f"cursor: null (no {'/'.join(paths)})")
        elif cursor is not None and len(paths) > 1:
            used = next((i for i, p in enumerate(paths)
                         if normalize_timestamp(dig(obj, p)) is not None), 0)
            if used:
                keys.append(f"cursor: {paths[used]} (no {paths[0]})")
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
    return counts


def check_echo(label: str, name: str, value: Any, start: datetime, watermark: datetime,
               received: datetime, lag: timedelta) -> tuple[datetime, bool]:
    """The window end an echoed upper bound gives (never before `watermark`), and whether the
    echo stalled: it did not move past the watermark (the series is caught up). ApiError
    unless start - skew <= echo <= received - lag + skew, and when the echo stalls while the
    watermark is far behind now (the window cannot advance). `start` is the window's start,
    which an `overlap` puts before the watermark."""
    if not isinstance(value, str):
        raise ApiError(f"{label}: malformed response, {name} {value!r} is not a timestamp",
                       retriable=True)
    try:
        echo = parse_ts(value)
    except ValueError:
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise ApiError(f'{label}: malformed response, {name} "{shown}" is not a timestamp',
                       retriable=True) from None
    newest = received - lag
    if echo > newest + ECHO_CLOCK_SKEW:
        raise ApiError(f"{label}: the echoed {name} {format_ts(echo)} is later than the request "
                       f"time - {format_duration(lag)} ({format_ts(newest)}); it is never taken "
                       "as a watermark (is this host's clock right?)", retriable=True)
    if echo < start - ECHO_CLOCK_SKEW:
        raise ApiError(f"{label}: the echoed {name} {format_ts(echo)} is before the window start "
                       f"{format_ts(start)}; it is never taken as a watermark", retriable=True)
    stalled = echo - watermark < MIN_WINDOW
    if stalled and newest - watermark > STALLED_ECHO:
        raise ApiError(f"{label}: the window from {format_ts(start)} cannot advance: the echoed "
                       f"{name} is {format_ts(echo)}, {format_duration(newest - echo)} behind "
                       "now; stopped this series", retriable=True)
    return max(echo, watermark), stalled


class TokenGuard:
    """Stops a series of pages that would never end: a next token that repeats (a cycle), or
    page after empty page with a next token. Tokens are kept as short digests."""

    def __init__(self, label: str, first: str | None = None) -> None:
        self.label = label
        self.seen: set[bytes] = set()
        self.empty = 0
        if first:
            self.sent(first)

    @staticmethod
    def _digest(token: str) -> bytes:
        return hashlib.blake2b(token.encode("utf-8", "replace"), digest_size=16).digest()

    def sent(self, token: str) -> None:
        """Remembers a token a request was sent with."""
        self.seen.add(self._digest(token))

    def check(self, token: str | None, page: int, objects: int) -> None:
        """ApiError when `token` (the next page's) was sent before, or pages stay empty."""
        if not token:
            return
        if self._digest(token) in self.seen:
            raise ApiError(f"{self.label}: NextToken repeats after page {page}; stopped this "
                           "series (its pages would loop forever)", retriable=True)
        self.empty = self.empty + 1 if objects == 0 else 0
        if self.empty >= MAX_EMPTY_PAGES:
            raise ApiError(f"{self.label}: {self.empty} empty pages in a row, each with a "
                           "NextToken; stopped this series", retriable=True)
