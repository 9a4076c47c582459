"""`spd check`: a validated config tried online. Per account, an LWA token exchange and one cheap
SP-API call (sellers getMarketplaceParticipations); per emitter, its `probe` (a signed test
delivery marked `X-SPD-Test: 1` for a webhook, a metadata fetch for Kafka). Nothing is polled,
no watermark moves, and every check is bounded in time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from typing import Literal, TypeVar

from spd.catalog.model import load_catalog
from spd.client.http import SpClient
from spd.client.policy import ONE_SHOT
from spd.config.model import AccountConfig, Config
from spd.config.secrets import register_config_secrets
from spd.core.errors import SpdError, describe_error
from spd.core.redaction import redact
from spd.emitters.base import Emitter, EmitterSettings

CHECK_TIMEOUT = 30.0  # seconds for each check; a peer that hangs fails its check, not the run
CHECK_RETRY = replace(ONE_SHOT, max_attempts=2)  # one retry of anything: a check is a probe
PROBE_API, PROBE_OPERATION = "sellers", "getMarketplaceParticipations"
Outcome = Literal["ok", "failed", "skipped"]
T = TypeVar("T")


@dataclass(frozen=True)
class CheckResult:
    """One row of `spd check`."""

    target: str  # "account acme", "emitter hook"
    check: str  # what was tried
    result: Outcome
    detail: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


async def check_config(config: Config) -> list[CheckResult]:
    """Every account and emitter of the config tried online, concurrently; in config order."""
    register_config_secrets(config)
    async with SpClient(config.accounts, load_catalog(), retry=CHECK_RETRY) as client:
        rows = await asyncio.gather(
            *(check_account(client, name, account) for name, account in config.accounts.items()),
            *(check_emitter(name, emitter) for name, emitter in config.emitters.items()))
    return [row for group in rows for row in group]


async def check_account(client: SpClient, name: str, account: AccountConfig) -> list[CheckResult]:
    """The LWA token exchange, then one SP-API call with the token."""
    target = f"account {name}"
    token = await _timed(client.auth.token(name, account))
    rows = [_row(target, "LWA token exchange", token, lambda _: "access token received")]
    call = f"{PROBE_API}.{PROBE_OPERATION}"
    if isinstance(token, str):
        return rows + [CheckResult(target, call, "skipped", "no access token")]
    op = load_catalog().operation(PROBE_API, PROBE_OPERATION)
    answer = await _timed(client.call(name, op))
    return rows + [_row(target, call, answer, lambda resp: _participations(resp.body))]


async def check_emitter(name: str, settings: EmitterSettings) -> list[CheckResult]:
    """The emitter's probe, with the emitter started and closed around it."""
    target, check = f"emitter {name}", f"{settings.type} probe"
    emitter = settings.build(name)
    try:
        outcome = await _timed(_started_probe(emitter))
    finally:
        await emitter.close()
    if not isinstance(outcome, str) and outcome[0] is None:
        return [CheckResult(target, check, "skipped", "nothing to reach")]
    return [_row(target, check, outcome, str)]


async def _started_probe(emitter: Emitter) -> str | None:
    await emitter.start()
    return await emitter.probe()


async def _timed(work: Awaitable[T]) -> tuple[T, float] | str:
    """(result, milliseconds), or the error in one line (SpdError, timeout)."""
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(work, CHECK_TIMEOUT)
    except SpdError as exc:
        return describe_error(exc)
    except asyncio.TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g}s"
    return result, (time.monotonic() - started) * 1000


def _row(target: str, check: str, outcome: tuple[T, float] | str,
            describe: Callable[[T], str]) -> CheckResult:
    if isinstance(outcome, str):
        return CheckResult(target, check, "failed", redact(outcome))
    value, ms = outcome
    return CheckResult(target, check, "ok", f"{describe(value)} in {ms:.0f} ms")


def _participations(body: object) -> str:
    payload = body.get("payload") if isinstance(body, dict) else None
    count = len(payload) if isinstance(payload, list) else 0
    return f"{count} marketplace participation{'s' if count != 1 else ''}"
