"""The checks of a loaded config that need the catalog, the object types and the emitters:
emitter options, each poller's required params, `include`, `download` and `report_options`, each
job's operation and params. `spd validate`, `run`, `once` and a SIGHUP reload all run them
before anything starts.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from spd.catalog.model import Catalog, Operation
from spd.catalog.requests import ExecRequest, prepare
from spd.config.model import Config, PollerConfig
from spd.config.sections import AccountConfig
from spd.core.errors import ConfigError, SpdError, UsageError
from spd.emitters import build_emitter
from spd.sources.object_type import ObjectType
from spd.sources.reports.registry import API, check_report_options, report_type_of

# "pollers.orders.params: problem": a check's message, to be given the file and line.
KEY_PATH_MESSAGE = re.compile(r"^((?:emitters|pollers|jobs)\.[^\s:]+): (.*)$")
GET_REPORTS = f"{API}.getReports"


def check_config(config: Config, catalog: Catalog) -> None:
    """What a config can only be checked for by the emitters, the object types and the catalog;
    ConfigError naming the file, key path and line of the first problem."""
    try:
        for name, emitter in config.emitters.items():
            build_emitter(name, emitter)  # options that only the emitter checks; opens nothing
        for name, poller in config.pollers.items():
            if poller.download:
                check_download(poller)  # settlements: report_types stand for params.reportTypes
            else:
                check_poller_params(name, poller.object_type, poller)
            check_report_poller(name, poller)
        check_jobs(config, catalog)
    except ConfigError as exc:
        located = KEY_PATH_MESSAGE.match(str(exc))
        if located is None:
            raise
        raise config.error(located.group(1), located.group(2)) from None


def check_poller_params(name: str, ot: ObjectType, cfg: PollerConfig) -> None:
    """ConfigError when the poller's params lack what the type needs, or `include` names
    something the type cannot include."""
    field_name = cfg.timestamp_field
    missing = [p for p in ot.needs(field_name) if p not in cfg.params]
    if missing:
        by = f" by {field_name}" if missing[0] not in ot.params.needs else ""
        raise ConfigError(f"pollers.{name}.params: {ot.name}{by} needs {', '.join(missing)}; "
                          f"add {', '.join(f'{p}: VALUE' for p in missing)} to params")
    extra = [i for i in cfg.include or () if i not in ot.include_names()]
    if extra:
        allowed = ", ".join(ot.include_names()) or "nothing"
        hint = " (searchOrders: use params.includedData)" if "items" in extra else ""
        raise ConfigError(f"pollers.{name}.include: {ot.name} cannot include "
                          f"{', '.join(extra)}; allowed: {allowed}{hint}")


def check_report_poller(name: str, cfg: PollerConfig) -> None:
    """ConfigError (key path pollers.NAME.report_options[.KEY]) when `report_options` does not fit
    the report type as Amazon documents it, or is given to a poller of another kind."""
    options = cfg.report_options
    ot = cfg.object_type
    if options is None:
        options = {}
    elif ot is None or ot.kind != "report":
        raise ConfigError(f"pollers.{name}.report_options: only report:TYPE objects take "
                          "report options; remove it")
    if ot is None or ot.kind != "report":
        return
    for key, problem in check_report_options(report_type_of(ot), options):
        where = f"pollers.{name}.report_options" + (f".{key}" if key else "")
        raise ConfigError(f"{where}: {problem}")


def check_download(cfg: PollerConfig) -> None:
    """`download: true` belongs to getReports only."""
    ot = cfg.object_type
    if ot.name != GET_REPORTS:
        raise ConfigError(f"pollers.{cfg.name}.download: only {GET_REPORTS} can download report "
                          f"documents, not {ot.name}; remove download or poll report:REPORT_TYPE")


def check_jobs(config: Config, catalog: Catalog) -> dict[str, tuple[ExecRequest, Operation, dict[str, Any]]]:
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
