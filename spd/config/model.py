"""The configuration file (DESIGN §3) as frozen pydantic models, and `load_config`.

Every problem becomes one ConfigError line: `<file>: <key.path> (line N): <problem>; <allowed>`.
Relative paths (state, file emitters, `${file:...}`) are relative to the config file's folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, ClassVar, Iterator, Literal
from urllib.parse import urlsplit

from pydantic import Field, SkipValidation, ValidationError, field_validator, model_validator

from spd.catalog.model import load_catalog
from spd.client.rdt import DATA_ELEMENTS
from spd.core.fields import ConfigModel, Duration, Interval, Text, Timestamp, UniqueTexts, fail, kind, show, translate
from spd.config.subscriptions import SubscriptionConfig, check_subscriptions
from spd.config.sections import (EMITTER_TYPES, ENDPOINTS, AccountConfig, AwsConfig, ClusterConfig, EmitterConfig,
                                 FileEmitterConfig, HttpConfig, KafkaEmitterConfig, KafkaSaslConfig,
                                 KafkaSslConfig, LogConfig, LwaConfig, RateLimitConfig, StateConfig,
                                 StdoutEmitterConfig, WebhookEmitterConfig)
from spd.core.times import format_duration, format_ts
from spd.core.errors import ConfigError, SpdError, UsageError
from spd.sources.object_type import ObjectType
from spd.sources.registry import object_types, resolve_object_type
from spd.core.yamlload import KeyPath, YamlDoc, load_yaml

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Checked before parsing: PyYAML needs about 90 times a document's size in memory (and ~5 s per
# MiB); 10,000 pollers take about 2.5 MiB.
MAX_CONFIG_BYTES = 4 * 2**20
DEFAULT_INTERVAL = timedelta(minutes=2)
NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")

__all__ = [
    "AccountConfig", "AwsConfig", "ClusterConfig", "Config", "EmitterConfig", "FileEmitterConfig", "HttpConfig",
    "JobConfig", "KafkaEmitterConfig", "KafkaSaslConfig", "KafkaSslConfig", "LogConfig", "LwaConfig",
    "PollerConfig", "RateLimitConfig", "StateConfig", "StdoutEmitterConfig", "SubscriptionConfig",
    "WebhookEmitterConfig", "ENDPOINTS", "load_config",
]


EmitterNames = Annotated[UniqueTexts, Field(min_length=1)]
RestrictedElement = Literal[DATA_ELEMENTS]  # type: ignore[valid-type]  # the Tokens API's data elements


class PollerConfig(ConfigModel):
    internal_keys: ClassVar[frozenset[str]] = frozenset({"name", "object_type"})
    name: str
    account: str = ""  # filled in by Config: the only account, or the default one
    object: Text  # as written: a canonical name or an alias
    # resolved from `object` before the fields are checked: never None once validated
    object_type: Annotated[ObjectType, SkipValidation] = Field(default=None, exclude=True,  # type: ignore[assignment]
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

    @model_validator(mode="after")
    def _check_fields(self) -> PollerConfig:
        ot = self.object_type
        if ot is not None:
            bounds = ot.window.bounds(self.timestamp_field)
            if bounds is None:
                other = "updated" if self.timestamp_field == "created" else "created"
                raise fail(f"{ot.name} cannot be polled by {self.timestamp_field}; use {other}",
                            "timestamp_field")
            _check_params(ot, bounds, self.params)
        return self

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


def _check_params(ot: ObjectType, bounds: tuple[str, str | None], params: dict[str, Any]) -> None:
    try:
        op = load_catalog().operation(ot.api, ot.operation)
    except SpdError as exc:  # the registry names an operation the catalog lacks: say so, in place
        raise fail(f"{ot.name}: {exc}; choose another object type", "object") from None
    managed = {p for p in (*bounds, ot.paging.token_param) if p}
    for key in params:
        if key in managed:
            raise fail(f"{key} is set by spd from the poller's window and next token; remove it",
                        "params", key)
        if op.param(key) is None:
            known = ", ".join(p.name for p in op.params if p.location == "query" and p.name not in managed)
            raise fail(f"{key} is not a parameter of {ot.name}; parameters: {known}", "params", key)


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
    def _wire(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        accounts = data.get("accounts")
        for section in ("pollers", "jobs", "subscriptions"):
            if isinstance(data.get(section), dict):
                data[section] = {k: _named(k, v, accounts, section) for k, v in data[section].items()}
        return data

    @field_validator("accounts", "emitters", "pollers", "jobs", "subscriptions", mode="before")
    @classmethod
    def _names(cls, value: Any, info: Any) -> Any:
        if isinstance(value, dict):
            if not value and info.field_name == "accounts":
                raise fail("no accounts are configured; add at least one, such as one with endpoint and lwa")
            for key in value:
                if not NAME_RE.fullmatch(key):
                    raise fail(f"{show(key)} is not a valid name; use letters, digits, _, . and -", key)
        return value

    @model_validator(mode="after")
    def _references(self) -> Config:
        defaults = [name for name, acc in self.accounts.items() if acc.default]
        if len(defaults) > 1:
            raise fail(f"only one account may be default: true, and {defaults[0]} already is; "
                        "remove one of them", "accounts", defaults[1], "default")
        if self.pollers or self.jobs or self.subscriptions:
            if self.state is None:
                what = ("pollers and jobs keep their watermarks" if not self.subscriptions else
                        "pollers, jobs and subscriptions keep their state")
                raise fail(f'missing required key "state"; {what} there: add state: '
                           "{path: /var/lib/spd/state.db}")
            if not self.emitters:
                raise fail("no emitters are configured; add at least one, such as out: {type: stdout}",
                           "emitters")
        sections: tuple[tuple[str, dict[str, PollerConfig] | dict[str, JobConfig]
                              | dict[str, SubscriptionConfig]], ...] = (
            ("pollers", self.pollers), ("jobs", self.jobs), ("subscriptions", self.subscriptions))
        for section, entries in sections:
            for name, entry in entries.items():
                self._check_refs(section, name, entry)
        check_subscriptions(self.subscriptions, self.pollers)
        if self.cluster is not None and (self.state is None or self.state.url is None):
            raise fail("cluster needs state.url: replicas share their pollers through a PostgreSQL"
                       " database (state: {url: postgresql://USER@HOST/DB})", "cluster")
        return self

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

    def _check_refs(self, section: str, name: str,
                    entry: PollerConfig | JobConfig | SubscriptionConfig) -> None:
        if entry.account not in self.accounts:
            raise fail(f"unknown account {show(entry.account)}; accounts: {', '.join(self.accounts)}",
                        section, name, "account")
        for i, emitter in enumerate(entry.emitters):
            if emitter not in self.emitters:
                raise fail(f"unknown emitter {show(emitter)}; emitters: {', '.join(self.emitters)}",
                            section, name, "emitters", i)

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

    def error(self, key_path: str, problem: str) -> ConfigError:
        """A ConfigError at a dotted key path (`pollers.orders.params`), with the file and line."""
        path = tuple(key_path.split("."))
        return YamlDoc(str(self.path), None, self.lines, self.from_files).error(path, problem)

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
            lines.append(f"emitter {name}: {_describe_emitter(emitter)}")
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


def _describe_emitter(emitter: EmitterConfig) -> str:
    if isinstance(emitter, FileEmitterConfig):
        return f"file {emitter.path}" + (" (fsync)" if emitter.fsync else "")
    if isinstance(emitter, WebhookEmitterConfig):
        return f"webhook {_public_url(emitter.url)}"
    if isinstance(emitter, KafkaEmitterConfig):
        return f"kafka {', '.join(emitter.bootstrap_servers)} topic {emitter.topic}"
    return str(emitter.type)


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


def _named(name: str, entry: Any, accounts: Any, section: str) -> Any:
    """A poller or job entry with its name, and its account when the file leaves it out."""
    if not isinstance(entry, dict):
        return entry
    entry = {**entry, "name": name}
    if entry.get("account") is None and isinstance(accounts, dict) and accounts:
        flags = {k: _is_default(a) for k, a in accounts.items()}
        chosen = _default_account(flags)
        if chosen is None and sum(flags.values()) > 1:
            return entry  # Config reports the several defaults themselves
        if chosen is None:
            raise fail(f"no account given and none of {', '.join(accounts)} is marked default: true; "
                        "set account: to one of them", section, name, "account")
        entry["account"] = chosen
    return entry


def _is_default(account: Any) -> bool:
    """`default:` of a raw account mapping as pydantic will read it (true, yes, on, 1)."""
    if isinstance(account, dict):
        return str(account.get("default")).lower() in {"true", "yes", "on", "1", "t", "y"}
    return bool(getattr(account, "default", False))


def load_config(path: str | Path) -> Config:
    """Reads, substitutes and validates a config file; ConfigError (one line) on any problem."""
    file = Path(path)
    doc = load_yaml(file, _read(file))
    if doc.data is None:
        raise ConfigError(f"{file}: the file is empty; write a config (see config/spd.example.yaml)")
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{file}: the top level is {kind(doc.data)}; write a mapping with state, "
                          "accounts, emitters and pollers")
    _check_internal_keys(doc)
    _check_emitter_types(doc)
    try:
        config = Config.model_validate({**doc.data, **_default_state(doc.data), "path": file,
                                        "lines": doc.lines, "from_files": doc.from_files})
    except ValidationError as exc:
        raise translate(exc, doc, Config) from None
    return _absolute_paths(config, file.parent.absolute())


def state_directory() -> Path | None:
    """The unit's StateDirectory= ($STATE_DIRECTORY, the first when it lists several), else None."""
    first = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(first) if first else None


def _default_state(data: dict[str, Any]) -> dict[str, Any]:
    """Under systemd, an omitted `state:` means $STATE_DIRECTORY/state.db (StateDirectory=)."""
    directory = state_directory()
    if data.get("state") is not None or directory is None:
        return {}
    return {"state": {"path": str(directory / "state.db")}}


def _read(file: Path) -> str:
    try:
        with open(file, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{file}: is larger than {MAX_CONFIG_BYTES // 2**20} MiB; a config "
                              "of 10,000 pollers is about 2.5 MiB (is it the right file?)") from None
        return raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file; give an existing config with -c or $SPD_CONFIG") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory; give a config file with -c or $SPD_CONFIG") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read it: {exc.strerror or exc}; make it readable by the "
                          "user spd runs as") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def _matches(data: Any, parts: list[str], path: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """(path, value) of every key matching a pattern such as `pollers.*.overlap` or `x.type=kafka`."""
    if not isinstance(data, dict):
        return
    key, eq, wanted = parts[0].partition("=")
    for name in (list(data) if key == "*" else [key] if key in data else []):
        value = data[name]
        if value is None or (eq and value != wanted):
            continue  # `key: null` is the same as leaving the key out
        if len(parts) > 1:
            yield from _matches(value, parts[1:], path + (name,))
        else:
            yield path + (name,), value


def _check_internal_keys(doc: YamlDoc) -> None:
    """Fields spd fills in itself (a poller's name, the config's path) are unknown keys in the file."""
    sections: list[tuple[str, type[ConfigModel]]] = [("pollers.*", PollerConfig), ("jobs.*", JobConfig),
                                                     ("subscriptions.*", SubscriptionConfig)]
    entries = [((), doc.data, Config)] + [(p, v, m) for pattern, m in sections
                                          for p, v in _matches(doc.data, pattern.split("."))]
    for path, value, model in entries:
        for key in value if isinstance(value, dict) else ():
            if key in model.internal_keys:
                raise doc.error(path + (key,), f"unknown key {show(key)}; allowed keys: "
                                               + ", ".join(model.allowed_keys()))


def _check_emitter_types(doc: YamlDoc) -> None:
    """Unknown or missing emitter types, answered with the types this version supports."""
    supported = EMITTER_TYPES
    for path, emitter in _matches(doc.data, ["emitters", "*"]):
        if not isinstance(emitter, dict):
            continue
        if emitter.get("type") is None:
            raise doc.error(path, f'missing required key "type"; use one of: {", ".join(supported)}')
        if emitter["type"] not in supported:
            raise doc.error(path + ("type",), f"{show(emitter['type'])} is not an emitter type; "
                                              f"use one of: {', '.join(supported)}")


def _absolute_paths(config: Config, base: Path) -> Config:
    """Relative file paths made relative to the config's folder rather than the working directory."""

    def absolute(value: Any) -> Any:
        return str(base / Path(value).expanduser()) if isinstance(value, str) else value  # absolute stays

    emitters = {
        name: e.model_copy(update={k: absolute(getattr(e, k)) for k in ("path", "dead_letter") if hasattr(e, k)})
        for name, e in config.emitters.items()
    }
    state = config.state
    if state is not None and state.path is not None:
        state = state.model_copy(update={"path": base / state.path.expanduser()})
    subscriptions = {
        name: s.model_copy(update={"dead_letter": base / s.dead_letter.expanduser()}) if s.dead_letter else s
        for name, s in config.subscriptions.items()
    }
    return config.model_copy(update={"state": state, "emitters": emitters, "subscriptions": subscriptions})
