"""Scheduled jobs: Execute operation on an interval and emit the result as one message.

A job's message is `{"job", "account", "api", "operation", "emitted_at", "result"}`; emitters see
the job name where they see a poller name (`{poller}` in file paths, `X-SPD-Poller`, Kafka key)
and `API.OPERATION` as the object type. Jobs keep no state: a failed run emits nothing and the
next run tries again.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson
import structlog

from spd.catalog.model import Catalog, Operation
from spd.client import SpClient
from spd.emitters.base import Emitter
from spd.core.errors import ConfigError, DeliveryError, SpdError
from spd.execute import ExecRequest, check_sandbox_only, prepare, run_operation
from spd.messages import Message, rfc3339

log = structlog.get_logger(__name__)
_DUMPS_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def build_job_message(*, job: str, account: str, api: str, operation: str, result: Any,
                      emitted_at: datetime | None = None) -> Message:
    """The one message of a job run (DESIGN §3 `jobs`)."""
    body = {"job": job, "account": account, "api": api, "operation": operation,
            "emitted_at": rfc3339(emitted_at or _now_ms()), "result": result}
    return Message(orjson.dumps(body, option=_DUMPS_OPTIONS), job, job, account, f"{api}.{operation}")


def _now_ms() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)  # like poller messages


@dataclass
class JobRun:
    """What one run did, for the log."""

    pages_merged: bool
    emitted: int


class Job:
    """One configured job: its checked request, its account, client and emitters."""

    def __init__(self, name: str, request: ExecRequest, operation: Operation,
                 params: dict[str, Any], account: str, client: SpClient,
                 emitters: list[Emitter]) -> None:
        self.name = name
        self.request = request
        self.operation = operation
        self.params = params
        self.account = account
        self.client = client
        self.emitters = emitters

    async def run(self) -> JobRun:
        """Calls the operation (every page with all_pages) and emits the result to every emitter."""
        result = await run_operation(self.client, self.account, self.operation, dict(self.params),
                                     self.request)
        message = build_job_message(job=self.name, account=self.account, api=self.operation.api,
                                    operation=self.operation.id, result=result)
        outcomes = await asyncio.gather(*(e.send([message]) for e in self.emitters),
                                        return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            first = failures[0]
            if isinstance(first, SpdError):
                raise DeliveryError(f"job {self.name}: result not delivered: {first}")
            raise first
        return JobRun(self.request.all_pages, len(self.emitters))


def supports_restricted(client: SpClient) -> bool:
    """Whether this client's `call` takes `restricted=` (restricted data tokens)."""
    return "restricted" in inspect.signature(client.call).parameters


def check_jobs(config: Any, catalog: Catalog) -> dict[str, tuple[ExecRequest, Operation, dict[str, Any]]]:
    """Every job's request, operation and typed parameters; ConfigError naming `jobs.NAME` when
    they do not fit the catalog (also run before a SIGHUP reload swaps configs)."""
    checked = {}
    for name, cfg in config.jobs.items():
        request = ExecRequest(cfg.api, cfg.operation, dict(cfg.params), cfg.body, cfg.all_pages,
                              list(cfg.restricted) if cfg.restricted else None)
        try:
            account = config.accounts[cfg.account]
            check_sandbox_only(catalog.operation(cfg.api, cfg.operation), str(cfg.account), account)
            op, params = prepare(catalog, request, list(account.marketplace_ids or ()))
        except SpdError as exc:
            message = str(exc).replace("--all-pages", "all_pages")
            raise ConfigError(f"{config.path}: jobs.{name}: {message}") from None
        checked[name] = (request, op, params)
    return checked


def build_jobs(config: Any, catalog: Catalog, client: SpClient,
               emitters: dict[str, Emitter]) -> dict[str, Job]:
    """Every job of the config, checked against the catalog, with its client and emitters."""
    jobs = {}
    for name, (request, op, params) in check_jobs(config, catalog).items():
        if request.restricted and not supports_restricted(client):
            raise ConfigError(f"{config.path}: jobs.{name}.restricted: restricted data tokens are "
                              "not supported in this version; remove it")
        cfg = config.jobs[name]
        jobs[name] = Job(name, request, op, params, cfg.account, client,
                         [emitters[e] for e in cfg.emitters])
    return jobs
