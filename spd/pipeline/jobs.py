"""Scheduled jobs: Execute operation on an interval and emit the result as one message.

A job's message is `{"job", "account", "api", "operation", "emitted_at", "result"}`; emitters see
the job name where they see a poller name (`{poller}` in file paths, `X-SPD-Poller`, Kafka key)
and `API.OPERATION` as the object type. Jobs keep no state: a failed run emits nothing and the
next run tries again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog

from spd.catalog.model import Catalog, Operation
from spd.client.http import SpClient
from spd.emitters.base import Emitter, Message
from spd.catalog.requests import ExecRequest
from spd.config.checks import prepare_job
from spd.config.model import Config
from spd.core.times import now_ms, rfc3339
from spd.pipeline.delivery import Delivery
from spd.pipeline.operations import run_operation

log = structlog.get_logger(__name__)
_DUMPS_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def build_job_message(*, job: str, account: str, api: str, operation: str, result: Any,
                      emitted_at: datetime | None = None) -> Message:
    """The one message of a job run (DESIGN §3 `jobs`)."""
    body = {"job": job, "account": account, "api": api, "operation": operation,
            "emitted_at": rfc3339(emitted_at or now_ms()), "result": result}
    return Message(orjson.dumps(body, option=_DUMPS_OPTIONS), job, job, account, f"{api}.{operation}")


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
        # no acknowledgement kept across runs: a failed run emits nothing, the next calls again
        await Delivery(f"job {self.name}", self.emitters).send([message], "result")
        return JobRun(self.request.all_pages, len(self.emitters))


def build_jobs(config: Config, catalog: Catalog, client: SpClient,
               emitters: dict[str, Emitter]) -> dict[str, Job]:
    """Every job of the (validated) config, with its client and emitters."""
    jobs = {}
    for name, cfg in config.jobs.items():
        request, op, params = prepare_job(config, catalog, cfg)
        jobs[name] = Job(name, request, op, params, cfg.account, client,
                         [emitters[e] for e in cfg.emitters])
    return jobs
