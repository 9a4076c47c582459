"""Everything built from one config: the SP-API client, the emitters and the pollers.

The daemon, `spd once` and the demo build a `Runtime`, run its pollers and close it; a SIGHUP
reload closes one and builds the next over the same state store.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit
from dataclasses import dataclass, field
from typing import Any, Callable

import structlog
from pydantic import BaseModel, SecretStr

from spd.catalog.model import load_catalog
from spd.client import SpClient
from spd.emitters import build_emitter
from spd.emitters.base import Emitter
from spd.core.errors import ConfigError
from spd.core.redaction import redact_secrets
from spd.poller import Poller
from spd.reports.poller import check_report_poller, poller_class
from spd.state.store import StateStore

log = structlog.get_logger("spd.runtime")

EmitterFactory = Callable[[str, Any], Emitter]

# "pollers.orders.params: problem": a check's message, to be given the file and line.
KEY_PATH_MESSAGE = re.compile(r"^((?:emitters|pollers|jobs)\.[^\s:]+): (.*)$")
CLOSE_TIMEOUT = 8.0  # flushing an emitter whose peer is down must not hold up the stop


@dataclass
class Runtime:
    """The client, emitters and pollers of one config; `start()` opens them, `close()` flushes and closes."""

    config: Any  # spd.config.model.Config
    store: StateStore
    emitter_factory: EmitterFactory = build_emitter
    client: SpClient | None = None
    emitters: dict[str, Emitter] = field(default_factory=dict)
    pollers: dict[str, Poller] = field(default_factory=dict)
    jobs: dict[str, Any] = field(default_factory=dict)  # name -> spd.jobs.Job

    async def start(self) -> None:
        """Checks every poller's identity, then opens the client and the emitters."""
        register_config_secrets(self.config)
        catalog = load_catalog()
        check_config(self.config, catalog)
        self.check_identities()
        self.client = SpClient(self.config.accounts, catalog)
        await self.client.start()
        for name, cfg in self.config.emitters.items():
            emitter = self.emitter_factory(name, cfg)
            await emitter.start()
            self.emitters[name] = emitter
        for name, cfg in self.config.pollers.items():
            ot = cfg.object_type
            self.pollers[name] = poller_class(cfg)(
                name=name, config=cfg, account_name=cfg.account,
                account=self.config.accounts[cfg.account], object_type=ot, client=self.client,
                operation=catalog.operation(ot.api, ot.operation), store=self.store,
                emitters=[self.emitters[e] for e in cfg.emitters], config_path=str(self.config.path),
            )
        from spd.jobs import build_jobs

        self.jobs = build_jobs(self.config, catalog, self.client, self.emitters)

    def check_identities(self) -> None:
        """Raises IdentityChangedError before anything runs when a poller changed under its watermark."""
        for name, cfg in self.config.pollers.items():
            self.store.ensure(name, cfg.identity(), cfg.start_time, config_path=str(self.config.path))

    def stop_pollers(self) -> None:
        """Asks every poller to stop after the page in flight."""
        for poller in self.pollers.values():
            poller.stopping.set()

    async def close(self) -> None:
        """Flushes and closes the emitters, then the client; safe to call twice."""
        async def close_one(name: str, emitter: Emitter) -> None:
            try:
                await asyncio.wait_for(emitter.close(), CLOSE_TIMEOUT)
            except Exception as exc:  # one emitter failing to close must not keep the others open
                log.error("emitter_close_failed", emitter=name, error=str(exc) or type(exc).__name__)

        await asyncio.gather(*(close_one(n, e) for n, e in self.emitters.items()))
        self.emitters.clear()
        if self.client is not None:
            await self.client.close()
            self.client = None


def check_config(config: Any, catalog: Any) -> None:
    """What a config can only be checked for by the emitters, the object types and the catalog:
    emitter options, each poller's required params, `include` and `download`, each job's
    operation and params.
    `spd validate` runs it too, so these errors show before the daemon starts."""
    from spd.jobs import check_jobs
    from spd.poller_support import check_poller_params
    from spd.reports.settlements import check_download

    try:
        for name, cfg in config.emitters.items():
            build_emitter(name, cfg)  # options that only the emitter checks; opens nothing
        for name, cfg in config.pollers.items():
            if getattr(cfg, "download", False):
                check_download(cfg)  # settlements: report_types stand for params.reportTypes
            else:
                check_poller_params(name, cfg.object_type, cfg)
            check_report_poller(name, cfg)
        check_jobs(config, catalog)
    except ConfigError as exc:
        located = KEY_PATH_MESSAGE.match(str(exc))
        if located is None or not hasattr(config, "error"):
            raise
        raise config.error(located.group(1), located.group(2)) from None


def register_config_secrets(config: BaseModel) -> None:
    """Registers every SecretStr in the config with the log redactor."""
    redact_secrets.register(collect_secrets(config))


def collect_secrets(value: Any) -> list[str]:
    """All secret strings inside a (nested) pydantic model, and passwords inside URLs."""
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, str) and "://" in value and "@" in value:
        return [p for p in (urlsplit(value).password,) if p]
    if isinstance(value, BaseModel):
        return [s for name in type(value).model_fields for s in collect_secrets(getattr(value, name))]
    if isinstance(value, dict):
        return [s for v in value.values() for s in collect_secrets(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in collect_secrets(v)]
    return []
