"""Which fetch strategy runs a poller config: operations, `report:TYPE`, getReports + download."""

from __future__ import annotations

from dataclasses import replace

from spd.catalog.model import Operation
from spd.client.http import SpClient
from spd.config.model import PollerConfig
from spd.config.sections import AccountConfig
from spd.emitters.base import Emitter
from spd.pipeline.enrich import enrichments
from spd.pipeline.operation_fetch import OperationFetch
from spd.pipeline.poller import Poller
from spd.pipeline.series import FetchStrategy
from spd.sources.object_type import ObjectType
from spd.state.backend import StateBackend


def fetch_strategy(cfg: PollerConfig) -> FetchStrategy:
    """The strategy for a poller config: report types and getReports + download get theirs
    (their modules, with the document parsers, xml and ijson, imported only for them)."""
    if cfg.object_type.kind == "report":
        from spd.pipeline.reports import ReportFetch  # lazy: see the docstring

        return ReportFetch()
    if cfg.download:
        from spd.pipeline.reports import ReportFetch  # lazy: see the docstring
        from spd.pipeline.settlements import SettlementFetch

        return SettlementFetch(ReportFetch())
    return OperationFetch(enrichments(cfg.object_type, cfg.include))


def build_poller(cfg: PollerConfig, *, name: str, account_name: str, account: AccountConfig,
                 object_type: ObjectType, client: SpClient, operation: Operation,
                 store: StateBackend, emitters: list[Emitter], config_path: str = "") -> Poller:
    """The poller of a config entry, with its fetch strategy."""
    if cfg.download and cfg.report_types:  # `report_types` stands for params.reportTypes
        object_type = replace(object_type, params=replace(object_type.params, needs=()))
    return Poller(name=name, config=cfg, account_name=account_name, account=account,
                  object_type=object_type, client=client, operation=operation, store=store,
                  emitters=emitters, fetching=fetch_strategy(cfg), config_path=config_path)
