"""The configuration file (DESIGN §3) as frozen pydantic models: what each key may hold.

What needs more than one section, the catalog or the machine is checked by the one validation
pass (spd.config.validate), which also loads files: `load_config` lives there.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator, model_validator

from spd.client.data_elements import RestrictedElement
from spd.config.sections import (ENDPOINTS, AccountConfig, AwsConfig, ClusterConfig, HttpConfig, LogConfig,
                                 LwaConfig, RateLimitConfig, StateConfig)
from spd.config.subscriptions import SubscriptionConfig
from spd.core.errors import ConfigError, UsageError
from spd.core.fields import ConfigModel, Duration, Interval, Text, Timestamp, UniqueTexts, Unchecked, fail, show
from spd.core.times import format_duration, format_ts
from spd.core.yamlload import KeyPath
from spd.emitters.file import FileEmitterConfig
from spd.emitters.kafka import KafkaEmitterConfig, KafkaSaslConfig, KafkaSslConfig
from spd.emitters.registry import EmitterConfig
from spd.emitters.stdout import StdoutEmitterConfig
from spd.emitters.webhook import WebhookEmitterConfig
from spd.sources.object_type import ObjectType
from spd.sources.registry import object_types, resolve_object_type

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
DEFAULT_INTERVAL = timedelta(minutes=2)
NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")

__all__ = [
    "AccountConfig", "AwsConfig", "ClusterConfig", "Config", "EmitterConfig", "FileEmitterConfig", "HttpConfig",
    "JobConfig", "KafkaEmitterConfig", "KafkaSaslConfig", "KafkaSslConfig", "LogConfig", "LwaConfig",
    "PollerConfig", "RateLimitConfig", "StateConfig", "StdoutEmitterConfig", "SubscriptionConfig",
    "WebhookEmitterConfig", "ENDPOINTS",
]


EmitterNames = Annotated[UniqueTexts, Field(min_length=1)]


class PollerConfig(ConfigModel):
    internal_keys: ClassVar[frozenset[str]] = frozenset({"name", "object_type"})
    name: str
    account: str = ""  # filled in by Config: the only account, or the default one
    object: Text  # as written: a canonical name or an alias
    # resolved from `object` before the fields are checked: never None once validated
    object_type: Annotated[ObjectType, Unchecked] = Field(default=None, exclude=True,  # type: ignore[assignment]
                                                          repr=False)
    timestamp_field: Literal["created", "updated"] = "created"
    emit: Literal["individually", "page"] = "individually"
    start_time: Timestamp = EPOCH
    interval: Interval = DEFAULT_INTERVAL
    max_items_per_run: int | None = Field(default=None, ge=1)
    params: dict[str, Any] = {}
    emitters: EmitterNames
    overlap: Duration | None = None
    restricted: list[RestrictedElement] | None = None
    include: list[Text] | None = None
    report_types: list[Text] | None = None
    download: bool = False
    report_options: dict[str, Any] | None = None  # report:TYPE pollers: createReport's reportOptions

    @model_validator(mode="before")
    @classmethod
    def _resolve_object(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("object_type") is None and isinstance(data.get("object"), str):
            return {**data, "object_type": _object_type(data["object"])}
        return data

    def identity(self) -> str:
        """Stable short hash of what the watermark means: account, object type, field, params
        (and the report types and download flag of a settlements poller)."""
        name = self.object_type.name if self.object_type is not None else self.object
        parts: list[Any] = [self.account, name, self.timestamp_field, self.params]
        if self.report_types or self.download:  # only when set, so older identities stay valid
            parts += [sorted(self.report_types or []), self.download]
        if self.report_options:
            parts.append({"report_options": self.report_options})
        blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _object_type(name: str) -> Any:
    try:
        ot = resolve_object_type(name)
    except KeyError as exc:
        raise fail(exc.args[0] if exc.args else f"unknown object type {show(name)}", "object") from None
    if not ot.supported:
        supported = ", ".join(t.name for t in object_types() if t.supported)
        raise fail(f"{ot.name} is not supported in this version; supported: {supported}", "object")
    return ot


class JobConfig(ConfigModel):
    internal_keys: ClassVar[frozenset[str]] = frozenset({"name"})
    name: str
    account: str = ""  # filled in by Config, as for pollers
    api: Text
    operation: Text
    params: dict[str, Any] = {}
    body: Any = None
    all_pages: bool = False
    restricted: list[RestrictedElement] | None = None
    interval: Interval = timedelta(hours=1)
    emitters: EmitterNames


class Config(ConfigModel):
    internal_keys: ClassVar[frozenset[str]] = frozenset({"path", "lines", "from_files"})
    path: Path | None = None  # the file it was loaded from
    lines: dict[KeyPath, int] = Field(default_factory=dict, exclude=True, repr=False)  # key path -> line
    # key path -> what each ${file:} put there, and the file name: never shown in an error
    from_files: dict[KeyPath, tuple[tuple[str, str], ...]] = Field(default_factory=dict, exclude=True,
                                                                  repr=False)
    state: StateConfig | None = None  # needed by pollers and jobs; `exec` and `request` need only accounts
    cluster: ClusterConfig | None = None  # with state.url: replicas share the pollers
    log: LogConfig = LogConfig()
    http: HttpConfig | None = None
    accounts: dict[str, AccountConfig]
    emitters: dict[str, EmitterConfig] = {}
    pollers: dict[str, PollerConfig] = {}
    jobs: dict[str, JobConfig] = {}
    subscriptions: dict[str, SubscriptionConfig] = {}  # push: SP-API notifications via SQS (§14)

    @model_validator(mode="before")
    @classmethod
    def _wire(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        # the validation pass checks a config without its broken entries against the file's names
        accounts = (info.context or {}).get("accounts", data.get("accounts"))
        for section in ("pollers", "jobs", "subscriptions"):
            if isinstance(data.get(section), dict):
                data[section] = {k: _named(k, v, accounts) for k, v in data[section].items()}
        return data

    @field_validator("accounts", "emitters", "pollers", "jobs", "subscriptions", mode="before")
    @classmethod
    def _names(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, dict):
            if not value and info.field_name == "accounts" and not (info.context or {}).get("partial"):
                raise fail("no accounts are configured; add at least one, such as one with endpoint and lwa")
            for key in value:
                if not NAME_RE.fullmatch(key):
                    raise fail(f"{show(key)} is not a valid name; use letters, digits, _, . and -", key)
        return value

    def state_config(self) -> StateConfig:
        """The `state` section; ConfigError when the config has none (a config for `exec` and
        `request` only)."""
        if self.state is None:
            raise ConfigError(f"{self.path}: missing required key \"state\"; `spd run`, `once`, "
                              "`status` and `reset` keep watermarks there: add state: {path: "
                              "/var/lib/spd/state.db}")
        return self.state

    def state_path(self) -> Path:
        """The SQLite state database's path (ConfigError without one, as state_config)."""
        state = self.state_config()
        if state.path is None:
            raise ConfigError(f"{self.path}: state: this command needs state.path (an SQLite file)")
        return Path(state.path)

    def describe_state(self) -> str:
        """Where the state lives, without any password."""
        if self.state is None:
            return "none (exec and request only)"
        if self.state.url is not None:
            host = urlsplit(self.state.url)
            ttl = (self.cluster or ClusterConfig()).lease_ttl.total_seconds()
            return (f"{host._replace(netloc=host.netloc.rpartition('@')[2]).geturl()}"
                    f" (replicas share the pollers; lease_ttl {ttl:g}s)")
        return str(self.state.path)

    def account_for(self, name: str | None = None) -> tuple[str, AccountConfig]:
        """The named account, else the only one or the one marked `default: true` (UsageError otherwise)."""
        if name is not None:
            if name not in self.accounts:
                raise UsageError(f"unknown account {show(name)}; accounts: {', '.join(self.accounts)}")
            return name, self.accounts[name]
        chosen = _default_account({k: a.default for k, a in self.accounts.items()})
        if chosen is None:
            raise UsageError(f"several accounts ({', '.join(self.accounts)}) and none is marked "
                             "default: true; choose one with --account NAME")
        return chosen, self.accounts[chosen]

    def references(self) -> list[tuple[str, str, str, list[str]]]:
        """(section, name, account, emitter names) of every entry that polls an account and
        sends to emitters: what the validation pass checks the names of."""
        entries: list[tuple[str, dict[str, PollerConfig] | dict[str, JobConfig]
                            | dict[str, SubscriptionConfig]]] = [
            ("pollers", self.pollers), ("jobs", self.jobs), ("subscriptions", self.subscriptions)]
        return [(section, name, entry.account, list(entry.emitters))
                for section, group in entries for name, entry in group.items()]

    def describe(self) -> list[str]:
        """Human lines for `spd validate`: accounts, emitters and pollers, without any secret."""
        lines = [f"state: {self.describe_state()}"]
        if self.http is not None:
            lines.append(f"http: {self.http.listen}" + ("" if self.http.loopback else
                         " (not loopback: /metrics is reachable from other hosts, without auth)"))
        for name, acc in self.accounts.items():
            markets = ", ".join(acc.marketplace_ids) or "none"
            lines.append(f"account {name}: {_public_url(acc.base_url)}, region {acc.region}, marketplaces {markets}"
                         + (" (default)" if acc.default else ""))
        for name, emitter in self.emitters.items():
            lines.append(f"emitter {name}: {emitter.describe()}")
        for name, p in self.pollers.items():
            object_name = p.object_type.name if p.object_type is not None else p.object
            lines.append(f"poller {name}: {object_name} by {p.timestamp_field}, every "
                         f"{format_duration(p.interval)} from {format_ts(p.start_time)} → "
                         f"{', '.join(p.emitters)} (account {p.account}, emit {p.emit})")
        for name, job in self.jobs.items():
            lines.append(f"job {name}: {job.api}.{job.operation}, every {format_duration(job.interval)} → "
                         f"{', '.join(job.emitters)} (account {job.account})")
        for name, sub in self.subscriptions.items():
            lines.append(f"subscription {name}: {', '.join(sub.notification_types)} from "
                         f"{_public_url(sub.queue_url)} → {', '.join(sub.emitters)} (account {sub.account}"
                         + (f", reconciled by poller {sub.reconcile_with}" if sub.reconcile_with else "")
                         + ")")
        if not self.pollers and not self.jobs and not self.subscriptions:
            lines.append("no pollers, jobs or subscriptions")
        return lines


def _public_url(url: str) -> str:
    """A URL without `user:password@`, which may hold a credential."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _default_account(accounts: dict[str, bool]) -> str | None:
    """The only account, or the only one marked default; None when that is ambiguous."""
    if len(accounts) == 1:
        return next(iter(accounts))
    defaults = [name for name, is_default in accounts.items() if is_default]
    return defaults[0] if len(defaults) == 1 else None


def _named(name: str, entry: Any, accounts: Any) -> Any:
    """A poller or job entry with its name, and its account when the file leaves it out."""
    if not isinstance(entry, dict):
        return entry
    entry = {**entry, "name": name}
    if entry.get("account") is None and isinstance(accounts, dict) and accounts:
        flags = {k: _is_default(a) for k, a in accounts.items()}
        chosen = _default_account(flags)
        if chosen is not None:  # else the account stays "": the validation pass says why
            entry["account"] = chosen
    return entry


def _is_default(account: Any) -> bool:
    """`default:` of a raw account mapping as pydantic will read it (true, yes, on, 1)."""
    if isinstance(account, dict):
        return str(account.get("default")).lower() in {"true", "yes", "on", "1", "t", "y"}
    return bool(getattr(account, "default", False))
