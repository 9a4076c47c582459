"""spd, the Selling Partner Daemon: keeps your systems in sync with Amazon's SP-API."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """`spd.__version__`, read from the installed metadata on first use: importlib.metadata
    costs ~30 ms that `spd --help` and `spd validate` do not need."""
    if name != "__version__":
        raise AttributeError(f"module 'spd' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version  # lazy: see the docstring

    try:
        found = version("spd")
    except PackageNotFoundError:  # running from a source tree without an install
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found
