"""spd, the Selling Partner Daemon: keeps your systems in sync with Amazon's SP-API."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spd")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"
