"""Emitters: where messages go. `build_emitter` turns an emitter's config into an Emitter."""

from __future__ import annotations

from typing import Any, Callable

from spd.emitters.base import Emitter
from spd.emitters.file import FileEmitter
from spd.emitters.stdout import StdoutEmitter
from spd.errors import ConfigError

__all__ = ["Emitter", "FileEmitter", "StdoutEmitter", "build_emitter", "SUPPORTED_TYPES"]


def _stdout(name: str, cfg: Any) -> Emitter:
    return StdoutEmitter(name)


def _file(name: str, cfg: Any) -> Emitter:
    path = getattr(cfg, "path", None)
    if not isinstance(path, str):
        raise ConfigError(f"emitters.{name}.path: is required for a file emitter; give a path template")
    return FileEmitter(name, path, fsync=bool(getattr(cfg, "fsync", True)))


# Later versions add "webhook" and "kafka" here.
_BUILDERS: dict[str, Callable[[str, Any], Emitter]] = {"stdout": _stdout, "file": _file}
SUPPORTED_TYPES = tuple(_BUILDERS)
_PLANNED = ("webhook", "kafka")


def build_emitter(name: str, cfg: Any) -> Emitter:
    """The emitter for config `cfg` (read duck-typed: `type`, `path`, `fsync`)."""
    kind = getattr(cfg, "type", None)
    builder = _BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is not None:
        return builder(name, cfg)
    allowed = ", ".join(SUPPORTED_TYPES)
    if kind in _PLANNED:
        raise ConfigError(
            f"emitters.{name}.type: {kind} is not supported in this version; allowed: {allowed}"
        )
    raise ConfigError(f"emitters.{name}.type: unknown emitter type {kind!r}; allowed: {allowed}")
