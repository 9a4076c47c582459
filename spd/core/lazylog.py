"""A module's structlog logger that imports structlog on the module's first event.

For modules that the config models need (emitter configs, the client's data elements): they log
only at run time, and structlog's import (~100 ms, with rich and attrs) is then paid by `spd run`
and `spd once` alone, not by `spd validate`. Modules of the data path use structlog directly.
"""

from __future__ import annotations

from typing import Any


class LazyLogger:
    """Stands for `structlog.get_logger(name)`; each method call goes to the real logger."""

    __slots__ = ("_name", "_logger")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, method: str) -> Any:
        if self._logger is None:
            import structlog  # lazy: see the module docstring

            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, method)


def get_logger(name: str) -> Any:
    """The logger of module `name` (structlog's, once the module logs)."""
    return LazyLogger(name)
