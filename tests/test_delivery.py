"""PageDelivery: a page refused by one emitter is retried only to the emitters that did not
acknowledge it, and a page every emitter acknowledges costs no per-object retry key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spd.core.errors import DeliveryError
from spd.pipeline.delivery import PageDelivery
from support.recording import RecordingEmitter

WINDOW = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
TRIPLES = [(f"id-{i}", "2026-11-01T10:00:00Z", {"n": i}) for i in range(3)]


async def deliver(d: PageDelivery, page: int = 1, triples=TRIPLES) -> None:
    await d.deliver("orders", WINDOW, page, "ordersV0.getOrders", triples)


async def test_a_retry_goes_only_to_the_emitters_that_refused() -> None:
    a, b = RecordingEmitter("a"), RecordingEmitter("b")
    b.fail_on = {1}
    d = PageDelivery("orders", "acme", "page", [a, b])
    with pytest.raises(DeliveryError, match="page 1 not delivered"):
        await deliver(d)
    await deliver(d)  # the same page again: only b had not acknowledged it
    assert (a.sends, b.sends) == (1, 2)
    assert len(a.messages) == len(b.messages) == 1
    assert d.acked == {}
    await deliver(d, page=2)
    assert (a.sends, b.sends) == (2, 3)


async def test_other_content_at_the_same_place_goes_to_every_emitter() -> None:
    # The window restarted (an expired token): page 1 now holds other objects.
    a, b = RecordingEmitter("a"), RecordingEmitter("b")
    b.fail_on = {1}
    d = PageDelivery("orders", "acme", "page", [a, b])
    with pytest.raises(DeliveryError):
        await deliver(d)
    await deliver(d, triples=TRIPLES[:2])
    assert (a.sends, b.sends) == (2, 2)


async def test_no_retry_key_while_every_emitter_acknowledges(monkeypatch) -> None:
    # The key hashes every (id, cursor) of the page: not worth it unless a page is half sent.
    calls: list[int] = []
    a, b = RecordingEmitter("a"), RecordingEmitter("b")
    d = PageDelivery("orders", "acme", "page", [a, b])
    send = d.send

    async def counting(messages, what, key):
        def counted():
            calls.append(1)
            return key()
        await send(messages, what, counted)

    monkeypatch.setattr(d, "send", counting)
    for page in range(1, 6):
        await deliver(d, page)
    assert calls == []
    b.fail_on = {6}
    with pytest.raises(DeliveryError):
        await deliver(d, 6)
    await deliver(d, 6)
    assert len(calls) == 2  # remembered once, looked up once


async def test_one_emitter_that_refuses_fails_the_page() -> None:
    a = RecordingEmitter("a")
    a.fail_on = {1}
    d = PageDelivery("orders", "acme", "page", [a])
    with pytest.raises(DeliveryError, match="poller orders: page 1 not delivered: send 1 refused"):
        await deliver(d)
    assert d.acked == {}  # nothing half sent: the retry goes to it again
    await deliver(d)
    assert a.sends == 2 and len(a.messages) == 1
