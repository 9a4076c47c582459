"""What only the machine can say about a config: whether spd could write where it points and
whether an extra it needs is installed; asked before anything runs (`spd validate`)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def unwritable_file(target: Path) -> str | None:
    """Why a file at `target` could not be written (its missing folders created as spd does),
    or None when it could."""
    target = target.expanduser().absolute()
    if target.is_dir():
        return f"{target} is a directory"
    if target.exists():
        return None if os.access(target, os.W_OK) else f"{target} is not writable by this user"
    return unwritable_folder(target.parent)


def unwritable_folder(folder: Path) -> str | None:
    """Why files could not be created in `folder` (created if missing), or None when they could."""
    folder = folder.expanduser().absolute()
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent  # spd creates the missing ones: the nearest existing one decides
    if not folder.is_dir():
        return f"{folder} is not a directory"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable by this user"
    return None


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it (an extra such as aiokafka)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: sys.modules holds None for it (tests block it)
        return False
