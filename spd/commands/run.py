"""`spd run`: the daemon (APScheduler, Prometheus: this command alone loads them)."""

from __future__ import annotations

import argparse

from spd.app.daemon import run_daemon
from spd.commands.common import config_path


def cmd_run(args: argparse.Namespace) -> int:
    return run_daemon(config_path(args))
