"""`spd sim`: the simulator in the foreground (it parses its own options)."""

from __future__ import annotations

import argparse

from spd.sim.cli import main as sim_main


def cmd_sim(args: argparse.Namespace) -> int:
    return sim_main(args.sim_args)
