"""Which poller runs a poller config: reports and getReports with `download` have their own."""

from __future__ import annotations

from spd.config.checks import check_download
from spd.config.model import PollerConfig
from spd.pipeline.poller import Poller
from spd.pipeline.reports import ReportPoller
from spd.pipeline.settlements import SettlementPoller


def poller_class(cfg: PollerConfig) -> type[Poller]:
    """The poller class for a poller config: report types and getReports + download get theirs."""
    if cfg.object_type.kind == "report":
        return ReportPoller
    if cfg.download:
        check_download(cfg)
        return SettlementPoller
    return Poller
