"""Delivery: hands messages to every emitter of a poller or job and returns once all of them
acknowledged (DESIGN.md §5).

It owns acknowledgement tracking: which emitters acknowledged which page. When some emitters
acknowledged a page and others refused it, the page is not checkpointed and the run fails; a
retry of the same page (same series, window start, page number and content) goes only to the
emitters that did not acknowledge it, so none sees it twice. An emitter that gives a message up
after its retries (the webhook's `dead_letter` file) acknowledges it: the dead letter is its
own record, and the page counts as delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime

from spd.core.errors import DeliveryError, SpdError
from spd.core.typing import Triple
from spd.emitters.base import Emitter, Message
from spd.pipeline.messages import build_messages

# Pages whose retry never came (window restarted, config reloaded) are forgotten past this many.
MAX_PENDING_PAGES = 64


class Delivery:
    """Sends to a fixed list of emitters and remembers partial acknowledgements per page."""

    def __init__(self, label: str, emitters: Sequence[Emitter]) -> None:
        self.label = label  # "poller NAME" or "job NAME": what an error names
        self.emitters = list(emitters)
        # page key -> indexes of the emitters that acknowledged it
        self.acked: dict[Hashable, set[int]] = {}

    async def send(self, messages: list[Message], what: str,
                   key: Callable[[], Hashable] | None = None) -> None:
        """Sends `messages` to every emitter that has not acknowledged the page `key()` names
        yet; returns once all did. Raises DeliveryError (one line naming `what`) when any
        refused. `key` is called only when some page is partly acknowledged: a page's key
        walks all its objects, and most pages are acknowledged by every emitter at once."""
        if not messages:
            return
        if len(self.acked) > MAX_PENDING_PAGES:
            self.acked.clear()
        page = key() if key is not None and self.acked else None
        done = self.acked.get(page, set()) if page is not None else set()
        pending = [i for i in range(len(self.emitters)) if i not in done]
        results = await self._send_each(pending, messages)
        failures = [r for r in results if isinstance(r, BaseException)]
        if not failures:
            if page is not None:
                self.acked.pop(page, None)
            return
        done = done | {i for i, r in zip(pending, results) if not isinstance(r, BaseException)}
        if key is not None and done:
            self.acked[page if page is not None else key()] = done
        first = failures[0]
        if isinstance(first, SpdError):
            raise DeliveryError(f"{self.label}: {what} not delivered: {first}")
        raise first


    async def _send_each(self, pending: list[int], messages: list[Message]) -> list[object]:
        """Each pending emitter's outcome: None, or what it raised. One emitter (the usual
        case) is awaited directly, without a task per page."""
        if len(pending) == 1:
            try:
                await self.emitters[pending[0]].send(messages)
            except Exception as exc:
                return [exc]
            return [None]
        return await asyncio.gather(*(self.emitters[i].send(messages) for i in pending),
                                    return_exceptions=True)


class PageDelivery(Delivery):
    """A poller's delivery: one page of `(id, cursor, data)` as messages, keyed by its place
    (series, window start, page) and content."""

    def __init__(self, poller: str, account: str, emit: str,
                 emitters: Sequence[Emitter]) -> None:
        super().__init__(f"poller {poller}", emitters)
        self.poller = poller
        self.account = account
        self.emit = emit

    async def deliver(self, series: str, window: tuple[datetime, datetime], page: int,
                      object_type: str, triples: list[Triple]) -> None:
        """Delivers one page; returns once every emitter acknowledged it."""
        messages = build_messages(poller=self.poller, account=self.account, object_type=object_type,
                                  emit=self.emit, window=window, page=page, objects=triples)
        def key() -> Hashable:  # the page's place and content
            return (series, window[0], page, hash(tuple((i, c) for i, c, _ in triples)))

        await self.send(messages, f"page {page}", key)
