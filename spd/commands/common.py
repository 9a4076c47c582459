"""What the commands that read a config share: where it is, and loading it."""

from __future__ import annotations

import argparse
from pathlib import Path

from spd.config.model import Config
from spd.config.validate import load_config


def config_path(args: argparse.Namespace) -> Path:
    """The config file: `-c`, else $SPD_CONFIG, else /etc/spd/spd.yaml (spd.cli fills it in)."""
    return Path(args.config)


def load(args: argparse.Namespace) -> Config:
    """The config `-c` (or $SPD_CONFIG, or the default) names, loaded and validated."""
    return load_config(config_path(args))
