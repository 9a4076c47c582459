"""What the commands that read a config share: where it is, and loading it."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from spd.config.model import Config
from spd.config.validate import load_config
from spd.core.errors import UsageError
from spd.core.times import parse_instant, utcnow


def config_path(args: argparse.Namespace) -> Path:
    """The config file: `-c`, else $SPD_CONFIG, else /etc/spd/spd.yaml (spd.cli fills it in)."""
    return Path(args.config)


def load(args: argparse.Namespace) -> Config:
    """The config `-c` (or $SPD_CONFIG, or the default) names, loaded and validated."""
    return load_config(config_path(args))


def parse_when(option: str, value: str) -> datetime:
    """A command-line time: a date (midnight UTC), a timestamp with a zone, or `now`."""
    if value == "now":
        return utcnow()
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}; a date such as 2026-11-29 means midnight UTC") from None
