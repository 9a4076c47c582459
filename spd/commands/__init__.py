"""What each `spd` command does, once spd.cli has parsed its arguments: load, call, print.

One module per group of commands, each importing only what its commands need, and spd.cli
imports only the module of the command it runs: `spd validate` loads the config models but not
the SP-API client, `spd ops` only the catalog, and only `spd run` loads APScheduler and Prometheus.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Handler = Callable[[argparse.Namespace], int]

# command (spd.cli's `handler` default) -> the module of spd.commands holding its `cmd_<command>`
MODULES = {
    "run": "run", "once": "once", "demo": "demo", "sim": "sim",
    "validate": "validate", "check": "check",
    "status": "state", "reset": "state",
    "objects": "catalog", "ops": "catalog", "models_build": "catalog",
    "exec": "api", "request": "api", "subscribe": "api",
}


def handler(command: str) -> Handler:
    """The function of `command`, with only its own module imported."""
    # The imports allocate ~55,000 objects that live as long as the process: collecting while
    # they are made is wasted, and frozen, no later collection walks them again.
    gc.disable()
    try:
        with _structlog_without_rich():
            module = importlib.import_module(f"{__name__}.{MODULES[command]}")
    finally:
        gc.enable()
    gc.freeze()
    function: Handler = getattr(module, f"cmd_{command}")
    return function


@contextmanager
def _structlog_without_rich() -> Iterator[None]:
    """Imports inside see rich as not installed, when neither it nor structlog is imported yet.

    structlog's package imports structlog.dev, which imports rich (its console, tracebacks,
    pretty-printer, pygments: ~60 ms) only to offer rich tracebacks in the ConsoleRenderer. spd
    never uses them: its pipeline renders exceptions to text (format_exc_info) before they are
    redacted, and its ConsoleRenderer is given the plain formatter (spd.core.logging), so the
    output is the same with rich or without. Nothing spd imports at module level needs rich
    (its tables and live lines import it where they draw, after this); the mark is removed
    after the import, so they find it.
    """
    if "rich" in sys.modules or "structlog" in sys.modules:
        yield
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # `import rich` raises ImportError
    try:
        yield
    finally:
        if sys.modules.get("rich", ...) is None:
            del sys.modules["rich"]
