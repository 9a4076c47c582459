"""The one validation pass: a config file read, checked against the schema, the other sections,
the catalog and (with `environment`) the machine, and every problem returned as data.

`spd validate` prints all problems of a file; `run`, `once`, `check` and a SIGHUP reload call
`load_config`, which raises the first error (document order) as a one-line ConfigError:
`<file>: <key.path> (line N): <problem>; <allowed>`. What it returns is trusted from then on.
Relative paths (state, file emitters, `${file:...}`) are relative to the config file's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, get_origin

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from spd.catalog.model import load_catalog
from spd.config.checks import config_problems
from spd.config.model import Config, JobConfig, PollerConfig
from spd.config.subscriptions import SubscriptionConfig, check_subscriptions
from spd.core.errors import ConfigError
from spd.core.fields import ConfigModel, kind, schema_problems, show, unknown_key
from spd.core.problems import Problem, error, warning
from spd.core.yamlload import KeyPath, YamlDoc, hide_file_values, load_yaml
from spd.emitters.registry import EMITTER_TYPES

# Checked before parsing: PyYAML needs about 90 times a document's size in memory (and ~5 s per
# MiB); 10,000 pollers take about 2.5 MiB.
MAX_CONFIG_BYTES = 4 * 2**20
# The sections that are mappings of named entries: an entry with a problem is left out so the
# others can still be checked against each other and the catalog.
ENTRY_SECTIONS = frozenset(name for name, f in Config.model_fields.items() if get_origin(f.annotation) is dict)
MISSING_STATE = 'missing required key "state"; {what} there: add state: {{path: /var/lib/spd/state.db}}'


@dataclass(frozen=True)
class Validation:
    """The outcome of the pass: the config (None when there are errors) and every problem,
    in document order."""

    file: Path
    config: Config | None
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]

    def checked(self) -> Config:
        """The config; ConfigError with the first error when there is any."""
        if self.config is None or self.errors:
            first = self.errors[0] if self.errors else error(message="cannot be loaded")
            raise ConfigError(first.format(str(self.file)))
        return self.config


def load_config(path: str | Path, *, environment: bool = False) -> Config:
    """Reads, substitutes and validates a config file; ConfigError (one line) on any problem."""
    return validate_config(path, environment=environment).checked()


def validate_config(path: str | Path, *, environment: bool = False) -> Validation:
    """Every problem of a config file; ConfigError only when it cannot be read or parsed at all.
    `environment` adds what only the machine can say (writable paths, installed extras)."""
    file = Path(path)
    doc = load_yaml(file, _read(file))
    if doc.data is None:
        raise ConfigError(f"{file}: the file is empty; write a config (see config/spd.example.yaml)")
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{file}: the top level is {kind(doc.data)}; write a mapping with state, "
                          "accounts, emitters and pollers")
    early = _unresolved(doc) + _internal_keys(doc) + _emitter_types(doc)
    data = {**doc.data, **_default_state(doc.data), "path": file, "lines": doc.lines,
            "from_files": doc.from_files}
    config, schema = _schema(data, doc)
    problems = early + [p for p in schema if not _covered(p, early)]
    if config is not None:
        config = _absolute_paths(config, file.parent.absolute())
        problems += reference_problems(config, data)
        problems += config_problems(config, load_catalog(), environment=environment)
    placed = _placed(problems, doc)
    return Validation(file, None if any(p.is_error for p in placed) else config, placed)


def _schema(data: dict[str, Any], doc: YamlDoc) -> tuple[Config | None, list[Problem]]:
    """The config pydantic builds, and every problem it found; with problems, the config
    without the entries that have them (None when no such config is left)."""
    try:
        return Config.model_validate(data), []
    except ValidationError as exc:
        problems = schema_problems(exc, doc, Config)
    trimmed = dict(data)
    for problem in problems:
        section = problem.path[0] if problem.path else None
        if section in ENTRY_SECTIONS and len(problem.path) > 1 and isinstance(trimmed.get(section), dict):
            trimmed[section] = {k: v for k, v in trimmed[section].items() if k != problem.path[1]}
        elif section is not None and section != "accounts":
            trimmed.pop(str(section), None)
        else:
            return None, problems
    try:
        return Config.model_validate(trimmed, context={"partial": True, "accounts": data.get("accounts")}), problems
    except ValidationError:
        return None, problems


def reference_problems(config: Config, data: dict[str, Any]) -> list[Problem]:
    """What one section says about another: the default account, the state and emitters pollers
    and jobs need, the accounts and emitters they name. `data` is the file as read: an entry
    left out for its own problem is still a known name."""
    problems = []
    defaults = [name for name, acc in config.accounts.items() if acc.default]
    if len(defaults) > 1:
        problems.append(error("accounts", defaults[1], "default", message=(
            f"only one account may be default: true, and {defaults[0]} already is; remove one of them")))
    accounts, emitters = _names(data, "accounts"), _names(data, "emitters")
    if _names(data, "pollers") or _names(data, "jobs") or _names(data, "subscriptions"):
        if data.get("state") is None:
            what = ("pollers, jobs and subscriptions keep their state" if _names(data, "subscriptions")
                    else "pollers and jobs keep their watermarks")
            problems.append(error(message=MISSING_STATE.format(what=what)))
        if not emitters:
            problems.append(error("emitters", message=(
                "no emitters are configured; add at least one, such as out: {type: stdout}")))
    for section, name, account, names in config.references():
        if not account and len(defaults) < 2:  # several defaults: reported once, above
            problems.append(error(section, name, "account", message=(
                f"no account given and none of {', '.join(accounts)} is marked default: true; "
                "set account: to one of them")))
        elif account and account not in accounts:
            problems.append(error(section, name, "account", message=(
                f"unknown account {show(account)}; accounts: {', '.join(accounts)}")))
        problems += [error(section, name, "emitters", i, message=(
            f"unknown emitter {show(emitter)}; emitters: {', '.join(emitters)}"))
            for i, emitter in enumerate(names) if emitter not in emitters]
    state = data.get("state")
    if config.cluster is not None and not (isinstance(state, dict) and state.get("url")):
        problems.append(error("cluster", message=(
            "cluster needs state.url: replicas share their pollers through a PostgreSQL database "
            "(state: {url: postgresql://USER@HOST/DB})")))
    return problems + subscription_problems(config) + unused_emitters(data)


def subscription_problems(config: Config) -> list[Problem]:
    """What subscriptions say about pollers and each other (`reconcile_with`, shared queues)."""
    try:
        check_subscriptions(config.subscriptions, config.pollers)
    except PydanticCustomError as exc:
        context = exc.context or {}
        return [error(*context.get("loc", ()), message=str(context.get("msg", exc)))]
    return []


def unused_emitters(data: dict[str, Any]) -> list[Problem]:
    """A warning for each emitter no entry of the file (poller, job, subscription) sends to."""
    used = {name for section in ENTRY_SECTIONS for entry in _entries(data, section)
            for name in (entry.get("emitters") or []) if isinstance(name, str)}
    return [warning("emitters", name, message=(
        "nothing sends to this emitter; add it to a poller's, job's or subscription's emitters or "
        "remove it"))
        for name in _names(data, "emitters") if name not in used]


def _entries(data: dict[str, Any], section: str) -> list[dict[str, Any]]:
    value = data.get(section)
    entries = value.values() if isinstance(value, dict) else ()
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("emitters"), list)]


def _names(data: dict[str, Any], section: str) -> list[str]:
    value = data.get(section)
    return list(value) if isinstance(value, dict) else []


def _covered(problem: Problem, earlier: list[Problem]) -> bool:
    """Whether an earlier problem sits at or above this one's key (one report per cause)."""
    return any(problem.path[:len(e.path)] == e.path for e in earlier)


def _placed(problems: list[Problem], doc: YamlDoc) -> tuple[Problem, ...]:
    """The problems with their lines, no `${file:}` content in them, in document order; a
    warning about an entry that has errors of its own goes."""
    errors = [p for p in problems if p.is_error]
    placed = [Problem(p.path, hide_file_values(p.message, p.path, doc.from_files), p.severity,
                      p.line if p.line is not None else doc.line(p.path))
              for p in problems if p.is_error or not any(e.path[:len(p.path)] == p.path for e in errors)]
    return tuple(sorted(placed, key=lambda p: p.line or 0))


def _unresolved(doc: YamlDoc) -> list[Problem]:
    """The `${...}` the loader could not substitute."""
    return [Problem(path, problem, line=line) for path, line, problem in doc.unresolved]


def _internal_keys(doc: YamlDoc) -> list[Problem]:
    """Fields spd fills in itself (a poller's name, the config's path) are unknown keys in the file."""
    sections: list[tuple[str, type[ConfigModel]]] = [("pollers.*", PollerConfig), ("jobs.*", JobConfig),
                                                     ("subscriptions.*", SubscriptionConfig)]
    entries = [((), doc.data, Config)] + [(p, v, m) for pattern, m in sections
                                          for p, v in _matches(doc.data, pattern.split("."))]
    return [error(*path, key, message=unknown_key(key, model.allowed_keys()))
            for path, value, model in entries for key in (value if isinstance(value, dict) else ())
            if key in model.internal_keys]


def _emitter_types(doc: YamlDoc) -> list[Problem]:
    """Unknown or missing emitter types, answered with the types this version supports."""
    supported = ", ".join(EMITTER_TYPES)
    problems = []
    for path, emitter in _matches(doc.data, ["emitters", "*"]):
        if not isinstance(emitter, dict):
            continue
        if emitter.get("type") is None:
            problems.append(error(*path, message=f'missing required key "type"; use one of: {supported}'))
        elif emitter["type"] not in EMITTER_TYPES:
            problems.append(error(*path, "type", message=(
                f"{show(emitter['type'])} is not an emitter type; use one of: {supported}")))
    return problems


def _matches(data: Any, parts: list[str], path: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """(path, value) of every key matching a pattern such as `pollers.*.overlap`."""
    if not isinstance(data, dict):
        return
    key = parts[0]
    for name in (list(data) if key == "*" else [key] if key in data else []):
        value = data[name]
        if value is None:
            continue  # `key: null` is the same as leaving the key out
        if len(parts) > 1:
            yield from _matches(value, parts[1:], path + (name,))
        else:
            yield path + (name,), value


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


def _absolute_paths(config: Config, base: Path) -> Config:
    """Relative file paths made relative to the config's folder rather than the working directory."""
    emitters = {name: e.resolved(base) for name, e in config.emitters.items()}
    state = config.state
    if state is not None and state.path is not None:
        state = state.model_copy(update={"path": base / state.path.expanduser()})
    subscriptions = {
        name: s.model_copy(update={"dead_letter": base / s.dead_letter.expanduser()}) if s.dead_letter else s
        for name, s in config.subscriptions.items()
    }
    return config.model_copy(update={"state": state, "emitters": emitters, "subscriptions": subscriptions})


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
