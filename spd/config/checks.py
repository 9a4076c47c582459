"""The checks of a config that need the catalog, the object types or the machine: each poller's
params, `include`, `download` and `report_options`, its first pages against the rules Amazon's
models state in sentences (spd.config.contract_checks), each job's operation and params, and (with
`environment`) writable paths and installed extras. They return
problems as data; spd.config.validate runs them in its one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from spd.catalog.model import Catalog, Operation
from spd.catalog.requests import ContractError, ExecRequest, prepare
from spd.config.contract_checks import job_contract_problem, poller_contract_problems
from spd.config.model import Config, JobConfig, PollerConfig
from spd.config.sections import AccountConfig
from spd.core.environment import installed, unwritable_file
from spd.core.errors import SpdError, UsageError
from spd.core.problems import Problem, error
from spd.sources.object_type import ObjectType
from spd.sources.reports.registry import API, check_report_options, report_type_of

GET_REPORTS = f"{API}.getReports"
PreparedJob = tuple[ExecRequest, Operation, dict[str, Any]]


def config_problems(config: Config, catalog: Catalog, *, environment: bool) -> list[Problem]:
    """Every problem of a (schema-valid) config the catalog, the object types or (with
    `environment`) the machine can tell."""
    problems: list[Problem] = []
    for name, poller in config.pollers.items():
        account = config.accounts.get(poller.account)
        problems += poller_problems(name, poller, catalog, account.marketplace_ids if account else None)
    for name in config.jobs:
        problems += job_problems(config, catalog, name)
    if environment:
        problems += environment_problems(config)
    return problems


def poller_problems(name: str, cfg: PollerConfig, catalog: Catalog,
                    marketplace_ids: Sequence[str] | None = None) -> list[Problem]:
    """What the poller's object type needs and allows: timestamp field, params, include,
    download, report options; then (when all of those are right) what Amazon's models say of
    the first pages it sends, polling the account's `marketplace_ids`."""
    ot = cfg.object_type
    bounds = ot.window.bounds(cfg.timestamp_field)
    if bounds is None:
        other = "updated" if cfg.timestamp_field == "created" else "created"
        return [error("pollers", name, "timestamp_field",
                      message=f"{ot.name} cannot be polled by {cfg.timestamp_field}; use {other}")]
    problems = param_problems(name, ot, bounds, cfg.params, catalog)
    problems += download_problems(name, cfg) if cfg.download else needs_problems(name, ot, cfg)
    problems += report_problems(name, cfg)
    if problems:
        return problems  # one report per cause: the rows are judged on params that fit the type
    return poller_contract_problems(name, cfg, catalog.operation(ot.api, ot.operation), marketplace_ids)


def param_problems(name: str, ot: ObjectType, bounds: tuple[str, str | None], params: dict[str, Any],
                   catalog: Catalog) -> list[Problem]:
    """Params spd sets itself, or that the operation does not take."""
    try:
        op = catalog.operation(ot.api, ot.operation)
    except SpdError as exc:  # the registry names an operation the catalog lacks: say so, in place
        return [error("pollers", name, "object", message=f"{ot.name}: {exc}; choose another object type")]
    managed = {p for p in (*bounds, ot.paging.token_param) if p}
    known = ", ".join(p.name for p in op.params if p.location == "query" and p.name not in managed)
    problems = []
    for key in params:
        if key in managed:
            problems.append(error("pollers", name, "params", key, message=(
                f"{key} is set by spd from the poller's window and next token; remove it")))
        elif op.param(key) is None:
            problems.append(error("pollers", name, "params", key,
                                  message=f"{key} is not a parameter of {ot.name}; parameters: {known}"))
    return problems


def needs_problems(name: str, ot: ObjectType, cfg: PollerConfig) -> list[Problem]:
    """Params the type needs that the poller lacks, and `include` naming what it cannot include."""
    problems = []
    field_name = cfg.timestamp_field
    missing = [p for p in ot.needs(field_name) if p not in cfg.params]
    if missing:
        by = f" by {field_name}" if missing[0] not in ot.params.needs else ""
        problems.append(error("pollers", name, "params", message=(
            f"{ot.name}{by} needs {', '.join(missing)}; "
            f"add {', '.join(f'{p}: VALUE' for p in missing)} to params")))
    extra = [i for i in cfg.include or () if i not in ot.include_names()]
    if extra:
        allowed = ", ".join(ot.include_names()) or "nothing"
        hint = " (searchOrders: use params.includedData)" if "items" in extra else ""
        problems.append(error("pollers", name, "include", message=(
            f"{ot.name} cannot include {', '.join(extra)}; allowed: {allowed}{hint}")))
    return problems


def report_problems(name: str, cfg: PollerConfig) -> list[Problem]:
    """`report_options` that do not fit the report type as Amazon documents it, or given to a
    poller of another kind."""
    ot = cfg.object_type
    if ot.kind != "report":
        if cfg.report_options is None:
            return []
        return [error("pollers", name, "report_options",
                      message="only report:TYPE objects take report options; remove it")]
    return [error("pollers", name, "report_options", *((key,) if key else ()), message=problem)
            for key, problem in check_report_options(report_type_of(ot), cfg.report_options or {})]


def download_problems(name: str, cfg: PollerConfig) -> list[Problem]:
    """`download: true` belongs to getReports only."""
    if cfg.object_type.name == GET_REPORTS:
        return []
    return [error("pollers", name, "download", message=(
        f"only {GET_REPORTS} can download report documents, not {cfg.object_type.name}; remove "
        "download or poll report:REPORT_TYPE"))]


def prepare_job(config: Config, catalog: Catalog, cfg: JobConfig) -> PreparedJob:
    """A job's request, operation and typed parameters (SpdError when they do not fit the catalog)."""
    request = ExecRequest(cfg.api, cfg.operation, dict(cfg.params), cfg.body, cfg.all_pages,
                          list(cfg.restricted) if cfg.restricted else None)
    account = config.accounts[cfg.account]
    check_sandbox_only(catalog.operation(cfg.api, cfg.operation), str(cfg.account), account)
    op, params = prepare(catalog, request, list(account.marketplace_ids or ()))
    return request, op, params


def job_problems(config: Config, catalog: Catalog, name: str) -> list[Problem]:
    """The job's operation and params against the catalog (only the operation when its account
    has problems of its own)."""
    job = config.jobs[name]
    try:
        if job.account in config.accounts:
            prepare_job(config, catalog, job)
        else:
            catalog.operation(job.api, job.operation)
    except ContractError as exc:
        return [job_contract_problem(name, exc.breach, exc.op, job.params)]
    except SpdError as exc:
        return [error("jobs", name, message=str(exc).replace("--all-pages", "all_pages"))]
    return []


def environment_problems(config: Config) -> list[Problem]:
    """What only this machine can say: the state database and the emitters' files writable,
    the extras installed that emitters and accounts need."""
    problems: list[Problem] = []
    if config.state is not None and config.state.path is not None:  # (a PostgreSQL url: spd check)
        reason = unwritable_file(Path(config.state.path))
        if reason is not None:
            problems.append(error("state", "path", message=(
                f"cannot write the state database there: {reason}; choose a path the user spd "
                "runs as can write (under systemd: leave state out to use its StateDirectory)")))
    for name, emitter in config.emitters.items():
        problems += emitter.environment(name)
    for name, sub in config.subscriptions.items():
        if not installed("aioboto3"):
            problems.append(error("subscriptions", name, message=(
                "reading SQS needs aioboto3; install spd with the aws extra (pip install 'spd[aws]')")))
        if sub.dead_letter is not None and (reason := unwritable_file(Path(sub.dead_letter))):
            problems.append(error("subscriptions", name, "dead_letter", message=(
                f"cannot write there: {reason}; choose a path the user spd runs as can write")))
    for name, account in config.accounts.items():
        if account.aws is not None and not installed("aioboto3"):
            problems.append(error("accounts", name, "aws", message=(
                "SigV4 signing needs aioboto3; install spd with the aws extra "
                "(pip install 'spd[aws]') or remove aws")))
    return problems


def is_production(acct: AccountConfig) -> bool:
    """Whether an account reaches Amazon's production SP-API (not its sandbox, not a simulator)."""
    if acct.endpoint in ("na", "eu", "fe"):
        return True
    host = urlsplit(acct.base_url).hostname or ""
    return host.endswith(".amazon.com") and "sandbox" not in host


def check_sandbox_only(op: Operation, name: str, acct: AccountConfig) -> None:
    """UsageError before any request for an operation Amazon serves only in its sandbox."""
    if op.sandbox_only and is_production(acct):
        raise UsageError(f"{op.name} is a sandbox-only operation (x-amzn-api-sandbox-only) and "
                         f"account {name} uses the production endpoint {acct.endpoint}; use an "
                         "account with endpoint sandbox-na, sandbox-eu or sandbox-fe")
