"""`spd demo`: the daemon against the built-in simulator."""

from __future__ import annotations

import argparse

from spd.demo import run_demo


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(seconds=args.seconds, push=args.push)
