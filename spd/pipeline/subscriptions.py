"""Push: the consumer of one SQS queue of SP-API notifications (DESIGN §14).

It long-polls the queue (batches of 10), parses each body (`spd.sources.notifications`), routes
it by notification type to the subscription that names it, emits
`{"subscription", "account", "notification_type", "event_time", "notification_id", "data"}` to
that subscription's emitters, and deletes a message only after every emitter acknowledged it
(at-least-once: consumers deduplicate on `notification_id`). While a delivery is still retrying,
the batch's visibility timeout is extended. A malformed message is never emitted: it goes to the
`dead_letter` file with its error and is deleted, or without one is left to the queue's redrive
policy. A stop request ends a long poll at once; a batch in flight finishes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import orjson
import structlog

from spd.core.errors import DeliveryError, SpdError, describe_error
from spd.core.redaction import redact
from spd.core.retry import Backoff
from spd.core.times import rfc3339
from spd.emitters.base import Emitter, Message
from spd.emitters.file_writer import FileEmitter
from spd.pipeline.series import abandon
from spd.sources.notifications import Notification, NotificationError, parse_notification

log = structlog.get_logger(__name__)

MAX_ACKED = 10_000  # per-emitter acknowledgements remembered for messages not yet deleted
Fetch = Callable[[Notification], Awaitable[Any]]


class Queue(Protocol):
    """What the consumer needs of a queue (spd.client.sqs.SqsQueue, or a test double)."""

    async def receive(self, *, wait_seconds: int, visibility: int) -> list[Any]: ...
    async def close(self) -> None: ...
    async def delete(self, messages: list[Any]) -> list[str]: ...
    async def extend(self, messages: list[Any], seconds: int) -> None: ...


@dataclass
class SubscriptionStats:
    """Counters of one subscription, read by `/metrics` and the status line."""

    received: int = 0
    emitted: int = 0
    dead_lettered: int = 0
    malformed: int = 0  # refused messages left to the queue's redrive policy
    queue_lag: float = 0.0  # seconds: age of the oldest message in the last batch
    last_error: str | None = None
    last_received_at: float | None = None

    def add_saved(self, text: str) -> None:
        """Continues the counters of an earlier run from their stored JSON (bad JSON is ignored)."""
        saved = _stored(text)
        for key in COUNTERS:
            if isinstance(saved.get(key), int):
                setattr(self, key, getattr(self, key) + saved[key])

    def added_to(self, text: str | None, since: SubscriptionStats | None) -> str:
        """The JSON to store (`spd status` reads it) in place of `text` (what is stored now, None:
        nothing): its counters plus what this runtime counted since `since` (its counters when
        last stored or loaded), so replicas reading one queue add up instead of overwriting each
        other; the queue lag and last error are this runtime's, the last message the latest."""
        stored, merged = _stored(text), asdict(self)
        for key in COUNTERS:
            before = stored.get(key)
            merged[key] = ((before if isinstance(before, int) else 0) + getattr(self, key)
                           - (getattr(since, key) if since is not None else 0))
        theirs = stored.get("last_received_at")
        if isinstance(theirs, (int, float)) and theirs > (self.last_received_at or 0.0):
            merged["last_received_at"] = theirs
        return orjson.dumps(merged).decode()


COUNTERS = ("received", "emitted", "dead_lettered", "malformed")  # totals that add up across runs


def _stored(text: str | None) -> dict[str, Any]:
    """Stored counters as a dict (none, or not JSON spd wrote: empty)."""
    try:
        value = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class Route:
    """One subscription as the consumer of its queue sees it."""

    name: str
    account: str
    emitters: list[Emitter]
    fetch: Fetch | None = None  # ORDER_CHANGE with `fetch: true`: the full order
    stats: SubscriptionStats = field(default_factory=SubscriptionStats)


def build_notification_message(route: Route, note: Notification, fallback_id: str,
                               order: Any = None) -> Message:
    """The emitted message of one notification (`order` added when it was fetched)."""
    body: dict[str, Any] = {
        "subscription": route.name, "account": route.account,
        "notification_type": note.notification_type, "event_time": note.event_time,
        "notification_id": note.notification_id, "data": note.data,
    }
    if order is not None:
        body["order"] = order
    return Message(orjson.dumps(body), note.notification_id or fallback_id, route.name,
                   route.account, note.notification_type)


class QueueConsumer:
    """Reads one queue for the subscriptions (`routes`, by notification type) that name it."""

    def __init__(self, label: str, queue: Queue, routes: dict[str, Route], *,
                 dead_letter: str | None = None, wait_seconds: int = 20,
                 visibility: int = 60) -> None:
        self.label = label
        self.queue = queue
        self.routes = routes
        self.first = next(iter(routes.values()))  # counts what no subscription names
        self.dead_letter = FileEmitter(f"{label}.dead_letter", dead_letter) if dead_letter else None
        self.wait_seconds = wait_seconds
        self.visibility = visibility
        self.stopping = asyncio.Event()
        self.acked: dict[str, set[int]] = {}  # SQS message id -> emitters (by id()) that acknowledged
        self.backoff = Backoff(first=1.0, cap=60.0, jitter="half")
        self.recovered: Callable[[], None] | None = None  # called after the queue answered again

    async def run(self) -> None:
        """Receives and handles batches until `stopping` is set; queue errors are retried."""
        failures = 0
        while not self.stopping.is_set():
            try:
                batch = await self.receive()
                if failures and self.recovered is not None:
                    self.recovered()
                failures = 0
                if batch:
                    await self.handle(batch)
            except SpdError as exc:
                failures += 1
                self.record_error(str(exc))
                log.error("subscription_failed", queue=self.label, error=str(exc),
                          retriable=exc.retriable)
                await self.pause(self.backoff.delay(failures))
            except Exception as exc:  # a bug must not end the subscription; try again later
                failures += 1
                self.record_error(describe_error(exc))
                log.error("subscription_crashed", queue=self.label, error=describe_error(exc))
                log.debug("subscription_traceback", exc_info=exc)
                await self.pause(self.backoff.delay(failures))

    async def pause(self, seconds: float) -> None:
        """Waits `seconds`, or less when a stop is requested."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def receive(self) -> list[Any]:
        """One long poll; a stop request ends it at once (its messages come back after the
        visibility timeout, undeleted)."""
        poll = asyncio.ensure_future(self.queue.receive(wait_seconds=self.wait_seconds,
                                                        visibility=self.visibility))
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({poll, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            await abandon(poll)  # a cancellation of this task itself still propagates
        return poll.result() if poll.done() and not poll.cancelled() else []

    async def handle(self, batch: list[Any]) -> None:
        """Emits the good messages, dead-letters the bad, deletes what is done."""
        now = time.time()
        accepted: dict[str, list[tuple[Any, Notification]]] = {}
        refused: list[tuple[Any, str]] = []
        for msg in batch:
            try:
                note = parse_notification(msg.body)
            except NotificationError as exc:
                refused.append((msg, str(exc)))
                continue
            route = self.routes.get(note.notification_type)
            if route is None:
                refused.append((msg, f"no subscription on this queue names {note.notification_type}; "
                                     f"they name {', '.join(sorted(self.routes))}"))
                continue
            accepted.setdefault(route.name, []).append((msg, note))
        self.count_received(batch, accepted, now)
        async with self.heartbeat(batch):
            done = await self.deliver_all(accepted)
            done += await self.refuse(refused)
        await self.delete(done)

    def count_received(self, batch: list[Any], accepted: dict[str, list[tuple[Any, Notification]]],
                       now: float) -> None:
        by_name = {r.name: r for r in self.routes.values()}
        oldest = min((m.sent_at for m in batch if m.sent_at), default=None)
        lag = max(0.0, now - oldest) if oldest else 0.0
        for route in by_name.values():
            route.stats.queue_lag = lag
        for name, items in accepted.items():
            by_name[name].stats.received += len(items)
            by_name[name].stats.last_received_at = now
        self.first.stats.received += len(batch) - sum(len(v) for v in accepted.values())

    @contextlib.asynccontextmanager
    async def heartbeat(self, batch: list[Any]) -> Any:
        """Extends the batch's visibility every half timeout while its delivery is in flight."""
        async def beat() -> None:
            while True:
                await asyncio.sleep(self.visibility / 2)
                try:
                    await self.queue.extend(batch, self.visibility)
                    log.info("subscription_visibility_extended", queue=self.label, messages=len(batch))
                except SpdError as exc:
                    log.warning("subscription_visibility_not_extended", queue=self.label, error=str(exc))

        task = asyncio.ensure_future(beat())
        try:
            yield
        finally:
            await abandon(task)

    async def deliver_all(self, accepted: dict[str, list[tuple[Any, Notification]]]) -> list[Any]:
        """Delivers each subscription's notifications; the SQS messages every emitter acknowledged."""
        by_name = {r.name: r for r in self.routes.values()}
        results = await asyncio.gather(*(self.deliver(by_name[n], items) for n, items in accepted.items()))
        return [msg for delivered in results for msg in delivered]

    async def deliver(self, route: Route, items: list[tuple[Any, Notification]]) -> list[Any]:
        """Sends one subscription's notifications to each of its emitters; returns those that all
        emitters acknowledged. An emitter that already acknowledged a redelivered message is
        skipped for it."""
        messages = await self.build(route, items)
        ready = [(msg, m) for msg, m in messages if m is not None]
        # per SQS message rather than per batch (spd.pipeline.delivery keys pages): SQS regroups
        # redelivered messages into other batches
        async def one(emitter: Emitter) -> None:
            pending = [m for msg, m in ready if id(emitter) not in self.acked.get(msg.message_id, ())]
            if pending:
                await emitter.send(pending)
            for msg, _ in ready:
                self.acked.setdefault(msg.message_id, set()).add(id(emitter))

        results = await asyncio.gather(*(one(e) for e in route.emitters), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        unexpected = next((f for f in failures if not isinstance(f, SpdError)), None)
        if unexpected is not None:
            raise unexpected
        if len(self.acked) > MAX_ACKED:
            self.acked.clear()
        if failures:
            error = f"subscription {route.name}: {len(ready)} notifications not delivered: {failures[0]}"
            route.stats.last_error = error
            log.error("subscription_delivery_failed", subscription=route.name, error=error,
                      hint="left on the queue; SQS delivers them again after the visibility timeout")
            return []
        route.stats.emitted += len(ready)
        route.stats.last_error = None
        return [msg for msg, _ in ready]

    async def build(self, route: Route, items: list[tuple[Any, Notification]]) -> list[tuple[Any, Message | None]]:
        """The message of each notification; with `fetch`, the full order first (a failed fetch
        leaves that message on the queue)."""
        async def one(msg: Any, note: Notification) -> tuple[Any, Message | None]:
            order = None
            if route.fetch is not None and note.notification_type == "ORDER_CHANGE":
                try:
                    order = await route.fetch(note)
                except SpdError as exc:
                    route.stats.last_error = f"subscription {route.name}: fetch failed: {exc}"
                    log.error("subscription_fetch_failed", subscription=route.name,
                              order_id=note.order_id(), error=str(exc))
                    return msg, None
            return msg, build_notification_message(route, note, msg.message_id, order)

        return list(await asyncio.gather(*(one(msg, note) for msg, note in items)))

    async def refuse(self, refused: list[tuple[Any, str]]) -> list[Any]:
        """Malformed messages: to the dead-letter file (then deletable), else left on the queue."""
        if not refused:
            return []
        for msg, error in refused:
            log.warning("subscription_message_refused", queue=self.label, message_id=msg.message_id,
                        error=redact(error), dead_letter=self.dead_letter is not None)
        if self.dead_letter is None:
            self.first.stats.malformed += len(refused)
            return []
        lines = [Message(dead_letter_line(msg, error), msg.message_id, self.first.name,
                         self.first.account, "dead_letter") for msg, error in refused]
        try:
            await self.dead_letter.send(lines)
        except DeliveryError as exc:
            log.error("subscription_dead_letter_failed", queue=self.label, error=str(exc))
            return []
        self.first.stats.dead_lettered += len(refused)
        return [msg for msg, _ in refused]

    async def delete(self, done: list[Any]) -> None:
        """Deletes handled messages; one SQS refuses comes back and is handled again."""
        if not done:
            return
        failed = await self.queue.delete(done)
        for msg in done:
            if msg.message_id not in failed:
                self.acked.pop(msg.message_id, None)
        if failed:
            log.warning("subscription_delete_failed", queue=self.label, messages=len(failed),
                        hint="SQS delivers them again; consumers deduplicate on notification_id")

    def record_error(self, error: str) -> None:
        for route in self.routes.values():
            route.stats.last_error = error

    async def close(self) -> None:
        """Closes the queue's client and the dead-letter file; safe to call twice."""
        try:
            await self.queue.close()
        finally:
            if self.dead_letter is not None:
                await self.dead_letter.close()


def dead_letter_line(msg: Any, error: str, failed_at: datetime | None = None) -> bytes:
    """`{"failed_at", "error", "message_id", "receive_count", "body"}`: the body as received."""
    return orjson.dumps({
        "failed_at": rfc3339(failed_at or datetime.now(timezone.utc)), "error": redact(error),
        "message_id": msg.message_id, "receive_count": msg.receive_count, "body": msg.body,
    })
