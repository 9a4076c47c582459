"""No pydantic plugins for spd's models, and no search for them.

spd's models use no pydantic plugins, and looking for some reads the metadata of every installed
package when the first model is built (30-60 ms): PYDANTIC_DISABLE_PLUGINS=__all__ stops that (a
user's own setting wins). Pydantic then finds no plugins, but importing its plugin loader still
imports importlib.metadata (with email, zipfile, csv, tempfile and socket: ~20 ms, a tenth of
`spd validate`) before it reads the setting; a stand-in that answers "no plugins" takes its place.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any

ENV = "PYDANTIC_DISABLE_PLUGINS"
LOADER = "pydantic.plugin._loader"  # imported by pydantic when it builds a model's validator
ALL_DISABLED = ("__all__", "1", "true")  # the values with which pydantic loads no plugin at all


class NoPlugins(types.ModuleType):
    """Stands in for pydantic's plugin loader while every plugin is disabled. A name it does not
    know (a later pydantic's) brings pydantic's own loader back and answers from it."""

    def get_plugins(self, *args: Any, **kwargs: Any) -> tuple[()]:
        return ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system asks for __path__ and the like: not a package
            raise AttributeError(name)
        if sys.modules.get(LOADER) is self:
            del sys.modules[LOADER]
        return getattr(importlib.import_module(LOADER), name)


def disable_plugins() -> None:
    """PYDANTIC_DISABLE_PLUGINS=__all__ unless the user set it; while no plugin may load, the
    stand-in loader (unless pydantic has imported its own already)."""
    os.environ.setdefault(ENV, "__all__")
    if os.environ[ENV] in ALL_DISABLED and LOADER not in sys.modules:
        sys.modules[LOADER] = NoPlugins(LOADER)
