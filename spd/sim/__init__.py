"""A local SP-API simulator: Orders v0/2026, Vendor Orders, LWA and RDTs, with Amazon's rules,
token buckets, expiring next tokens, seeded live data, ground truth and fault knobs."""

from __future__ import annotations

from spd.sim.app import SimSettings, SimState, Simulator, make_app

__all__ = ["SimSettings", "SimState", "Simulator", "make_app"]
