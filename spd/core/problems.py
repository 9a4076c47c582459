"""A problem found in a config, as data: where (key path, line), what, and how bad.

The validation pass (spd.config.validate) collects every problem of a file as these;
`spd validate` prints them all, the other commands raise the first error as a ConfigError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from spd.core.yamlload import KeyPath, format_error, format_path

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One problem at a key path (`("pollers", "orders", "params")`); `line` is filled in by
    the validation pass from the document."""

    path: KeyPath
    message: str
    severity: Severity = "error"
    line: int | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def as_dict(self) -> dict[str, str | int | None]:
        """For JSON: the key path as the one-line form writes it, line, severity, message."""
        return {"key": format_path(self.path), "line": self.line, "severity": self.severity,
                "message": self.message}

    def format(self, file: str) -> str:
        """The one-line form: `<file>: <key.path> (line N): <problem>; <allowed>`."""
        return format_error(file, self.path, self.line, self.message)


def error(*path: str | int, message: str) -> Problem:
    """An error at `path`."""
    return Problem(tuple(path), message)


def warning(*path: str | int, message: str) -> Problem:
    """A warning at `path`: reported by `spd validate` and logged, never blocking."""
    return Problem(tuple(path), message, "warning")
