"""What each `spd` command does, once spd.cli has parsed its arguments: load, call, print.

One module per group of commands, each importing only what its commands need, and spd.cli
imports only the module of the command it runs: `spd validate` loads the config models but not
the SP-API client, `spd ops` only the catalog, and only `spd run` loads APScheduler and Prometheus.
"""

from __future__ import annotations

import argparse
import gc
import importlib
from collections.abc import Callable

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
        module = importlib.import_module(f"{__name__}.{MODULES[command]}")
    finally:
        gc.enable()
    gc.freeze()
    function: Handler = getattr(module, f"cmd_{command}")
    return function
