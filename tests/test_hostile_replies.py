"""SP-API replies that try to break spd (issue 10, items 1-4 and 9), against the hostile stub in
tests/hostile.py over loopback: echoed bounds, redirects, endless pages, oversized bodies."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from support.hostile import ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN, STOLEN_TOKEN, Harness, Hostile
from spd.catalog.model import load_catalog
from spd.client.http import SpClient
from spd.client.policy import RetryPolicy
from spd.core.errors import ApiError, AuthError, SpdError
from support.recording import RecordingEmitter

@pytest.fixture
async def hostile() -> AsyncIterator[Hostile]:
    async with Hostile() as h:
        yield h


def harness(tmp_path: Path, hostile: Hostile, poller: dict[str, Any] | None = None) -> Harness:
    return Harness(tmp_path, hostile.url, RecordingEmitter("archive"), poller)


# -- 1. an echoed upper bound is checked, never trusted ---------------------------------------


async def test_an_echo_in_the_future_is_an_error_and_never_a_watermark(tmp_path, hostile) -> None:
    hostile.mode = "echo_future"
    async with harness(tmp_path, hostile) as h:
        start = (await h.state()).watermark if (await h.state()) else None
        with pytest.raises(ApiError) as info:
            await h.run()
        state = (await h.state())
    assert "LastUpdatedBefore 2099-01-01T00:00:00Z" in str(info.value)
    assert "later than" in str(info.value) and "ordersV0.getOrders" in str(info.value)
    assert state.watermark == start and state.window_start is None
    assert state.last_error == str(info.value)  # recorded: `spd status` and /metrics show it
    assert h.recorder.messages == []  # nothing of that page was emitted


async def test_a_valid_echo_becomes_the_watermark(tmp_path, hostile) -> None:
    async with harness(tmp_path, hostile) as h:
        before = datetime.now(timezone.utc)
        result = await h.run()
        state = (await h.state())
    assert result.caught_up and state.last_error is None
    lag = timedelta(minutes=2)
    assert before - lag - timedelta(seconds=10) <= state.watermark <= datetime.now(timezone.utc) - lag


async def test_a_malformed_echo_is_a_recorded_one_line_error(tmp_path, hostile) -> None:
    hostile.mode = "echo_malformed"
    async with harness(tmp_path, hostile) as h:
        with pytest.raises(ApiError, match=r'LastUpdatedBefore "yesterday at noon" is not a timestamp'):
            await h.run()
        assert "not a timestamp" in (await h.state()).last_error


# -- 3. endless pagination and catch-up ------------------------------------------------------


@pytest.mark.parametrize("mode", ["repeat_token", "token_cycle"])
async def test_a_repeating_next_token_stops_the_series(tmp_path, hostile, mode) -> None:
    hostile.mode = mode
    async with harness(tmp_path, hostile) as h:
        start = (await h.state())
        with pytest.raises(ApiError, match=r"ordersV0.getOrders: NextToken repeats after page \d"):
            await h.run()
        state = (await h.state())
    assert state.watermark == start.watermark  # the window never completed
    assert "NextToken repeats" in state.last_error
    assert len(hostile.calls) <= 4 and len(h.recorder.messages) <= 3


async def test_an_echo_equal_to_the_window_start_cannot_advance(tmp_path, hostile) -> None:
    hostile.mode = "echo_start"
    async with harness(tmp_path, hostile) as h:
        start = (await h.state()).watermark
        with pytest.raises(ApiError, match=r"ordersV0.getOrders: the window from .* cannot advance"):
            await h.run()
        assert (await h.state()).watermark == start and "cannot advance" in (await h.state()).last_error
    assert len(hostile.calls) == 1 and h.recorder.messages == []


@pytest.mark.parametrize("overlap", [None, "10m"])
async def test_an_echo_a_minute_behind_our_clock_counts_as_caught_up(tmp_path, hostile, overlap) -> None:
    hostile.mode = "echo_skew"  # with an overlap, each window starts 10 minutes before the echo
    async with harness(tmp_path, hostile, {"overlap": overlap} if overlap else None) as h:
        result = await h.run()
        state = (await h.state())
    assert result.caught_up and state.last_error is None
    assert len(hostile.calls) <= 3, hostile.calls  # one catch-up window, at most one more
    assert state.watermark < datetime.now(timezone.utc) - timedelta(minutes=2, seconds=50)


# -- 2. no credential follows a redirect ------------------------------------------------------


def account(url: str, token_url: str | None = None) -> Any:
    from types import SimpleNamespace

    from pydantic import SecretStr

    return SimpleNamespace(
        base_url=url, marketplace_ids=["ATVPDKIKX0DER"], region="us-east-1", rate_limits={},
        lwa=SimpleNamespace(client_id="amzn1.application-oa2-client.hostile",
                            client_secret=SecretStr(CLIENT_SECRET),
                            refresh_token=SecretStr(REFRESH_TOKEN),
                            token_url=token_url or f"{url}/auth/o2/token"))


GET_ORDERS = load_catalog().operation("ordersV0", "getOrders")


async def test_the_lwa_token_request_never_follows_a_redirect(hostile) -> None:
    hostile.mode = "lwa_redirect"
    async with SpClient({"acme": account(hostile.url)}, load_catalog(), retry=RetryPolicy(backoff_base=0.01)) as client:
        with pytest.raises(AuthError) as info:
            await client.call("acme", GET_ORDERS, {"MarketplaceIds": ["ATVPDKIKX0DER"]})
    message = str(info.value)
    assert "redirect" in message and "HTTP 307" in message and "127.0.0.2" in message
    assert hostile.thief.forms == [] and hostile.thief.headers == []  # the secret never left
    assert CLIENT_SECRET not in message and STOLEN_TOKEN not in message
    assert hostile.calls == []  # no SP-API request went out with someone else's token


async def test_a_redirect_from_sp_api_is_reported_as_a_redirect_and_not_followed(hostile) -> None:
    hostile.mode = "redirect"
    async with SpClient({"acme": account(hostile.url)}, load_catalog(), retry=RetryPolicy(backoff_base=0.01)) as client:
        with pytest.raises(ApiError) as info:
            await client.call("acme", GET_ORDERS, {"MarketplaceIds": ["ATVPDKIKX0DER"]})
    assert str(info.value).startswith("ordersV0.getOrders: HTTP 302 redirect to http://127.0.0.2:")
    assert "not followed" in str(info.value)
    assert hostile.thief.headers == []  # the access token never reached the other host
    assert ACCESS_TOKEN not in str(info.value)


# -- 4. bounded bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["huge", "chunked"])
async def test_an_oversized_reply_is_refused_after_reading_at_most_the_cap(
        hostile, monkeypatch, mode) -> None:
    import spd.client.transport as transport

    monkeypatch.setattr(transport, "MAX_RESPONSE_BYTES", 2**20)
    hostile.mode, hostile.size = mode, 8 * 2**20
    async with SpClient({"acme": account(hostile.url)}, load_catalog(), retry=RetryPolicy(backoff_base=0.01)) as client:
        with pytest.raises(ApiError) as info:
            await client.call("acme", GET_ORDERS, {"MarketplaceIds": ["ATVPDKIKX0DER"]})
    assert "ordersV0.getOrders: response body is larger than 1 MiB" in str(info.value)
    assert len(hostile.calls) == 1  # refused at once, not retried 8 times
    assert not info.value.retriable or isinstance(info.value, SpdError)


async def test_sts_assume_role_never_follows_a_redirect(hostile) -> None:
    from types import SimpleNamespace

    from pydantic import SecretStr

    acct = account(hostile.url)
    acct.aws = SimpleNamespace(access_key_id="AKIDEXAMPLEHOSTILE", role_session_name="spd",
                               secret_access_key=SecretStr("hostile/aws/secret/key"),
                               role_arn="arn:aws:iam::123456789012:role/R", region="us-east-1",
                               sts_endpoint=f"{hostile.url}/sts")
    async with SpClient({"acme": acct}, load_catalog(), retry=RetryPolicy(backoff_base=0.01)) as client:
        with pytest.raises(AuthError) as info:
            await client.call("acme", GET_ORDERS, {"MarketplaceIds": ["ATVPDKIKX0DER"]})
    assert "STS endpoint answered HTTP 307 redirect to http://127.0.0.2:" in str(info.value)
    assert not info.value.retriable
    assert hostile.thief.headers == [] and hostile.calls == []


async def test_the_tokens_api_request_never_follows_a_redirect(hostile) -> None:
    hostile.mode = "redirect"
    async with SpClient({"acme": account(hostile.url)}, load_catalog(), retry=RetryPolicy(backoff_base=0.01)) as client:
        with pytest.raises(ApiError) as info:
            await client.call("acme", GET_ORDERS, {"MarketplaceIds": ["ATVPDKIKX0DER"]},
                              restricted=["buyerInfo"])
    assert "tokens_2021-03-01.createRestrictedDataToken: HTTP 302 redirect to http://127.0.0.2:" in str(info.value)
    assert hostile.thief.headers == [] and hostile.calls == []


async def test_a_webhook_acknowledgement_is_read_only_up_to_its_cap() -> None:
    from aiohttp import web

    from spd.emitters.webhook_sender import WebhookEmitter
    from spd.pipeline.messages import build_messages

    total, sent = 256 * 2**20, [0]

    async def flood(request: web.Request) -> web.StreamResponse:  # 200, then 256 MiB of body
        await request.read()
        response = web.StreamResponse(status=200)
        response.enable_chunked_encoding()
        await response.prepare(request)
        block = b"z" * 2**20
        try:
            while sent[0] < total:
                await response.write(block)
                sent[0] += len(block)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    app = web.Application()
    app.router.add_post("/hook", flood)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook = WebhookEmitter("hook", f"http://127.0.0.1:{runner.addresses[0][1]}/hook")
    try:
        await hook.start()
        messages = build_messages(poller="p", account="a", object_type="t", emit="individually",
                                  window=(datetime.now(timezone.utc), None), page=1,
                                  objects=[("1", None, {})])
        await asyncio.wait_for(hook.send(messages), 30)  # acknowledged by the 200
        await asyncio.sleep(0.2)
    finally:
        await hook.close()
        await runner.cleanup()
    assert sent[0] < total // 4  # the client stopped reading after 64 KiB and hung up


async def test_a_page_with_too_many_objects_is_refused_before_it_is_emitted(
        tmp_path, hostile, monkeypatch) -> None:
    import spd.pipeline.poller_support as support

    monkeypatch.setattr(support, "MAX_PAGE_OBJECTS", 100)
    hostile.mode, hostile.size = "huge", 64 * 2**10  # about 380 small orders in one page
    async with harness(tmp_path, hostile) as h:
        with pytest.raises(ApiError, match=r"ordersV0.getOrders: a page of \d+ objects; spd "
                                           r"accepts at most 100"):
            await h.run()
    assert h.recorder.messages == []
