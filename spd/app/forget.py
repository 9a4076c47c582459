"""`spd reset -c CONFIG POLLER --forget-backfills [--backfill RANGE]...`: removing the state rows
of a poller's backfills (spd.app.backfill_rows), which `spd once --from` leaves behind forever.

Without `--backfill`, the backfills that reached their end (`complete` in `spd status`); with it,
the ranges named, complete or not (an abandoned one, an open-ended one). A range is all its rows
(one per marketplace where the type fans out). The poller's own row is never touched.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from spd.app.backfill_rows import BackfillRow
from spd.app.state import open_state
from spd.app.status import read_states
from spd.config.model import Config
from spd.core.errors import UsageError
from spd.state.backend import PollerState


@dataclass(frozen=True)
class BackfillRange:
    """One backfill of a poller: its range and its rows with their saved state."""

    range: str
    rows: tuple[tuple[BackfillRow, PollerState], ...]

    @property
    def complete(self) -> bool:
        return all(row.complete(state) for row, state in self.rows)

    def describe(self) -> str:
        """`RANGE (complete, 1200 objects)`; a fanned-out one is as far as its least advanced row."""
        row, state = min(self.rows, key=lambda r: (r[0].complete(r[1]), r[0].progress(r[1])))
        objects = sum(s.objects_emitted for _, s in self.rows)
        return f"{self.range} ({row.describe(state)}, {objects} objects)"


@dataclass(frozen=True)
class ForgetPlan:
    """The backfills to forget (`chosen`) and those of the poller that stay (`kept`)."""

    poller: str
    chosen: tuple[BackfillRange, ...]
    kept: tuple[BackfillRange, ...]

    def describe(self) -> str:
        """What the confirmation shows: `backfill R1 (complete, 5 objects), backfill R2 (...)`."""
        return ", ".join(f"backfill {b.describe()}" for b in self.chosen)

    @property
    def keys(self) -> list[str]:
        return [row.key for b in self.chosen for row, _ in b.rows]

    def nothing_to_do(self) -> str:
        """The line printed when no backfill is complete (only possible without --backfill)."""
        line = f"poller {self.poller}: no complete backfill to forget"
        if self.kept:
            others = ", ".join(b.describe() for b in self.kept)
            line += f" (not complete: {others}; name one with --backfill RANGE to forget it)"
        return line


def plan_forget(config: Config, name: str, ranges: list[str] | None) -> ForgetPlan:
    """The backfills of `name` to forget: `ranges` (each `T1..T2` or `T1..now` as `spd status`
    shows it), else every complete one; the state is only read."""
    backfills = poller_backfills(asyncio.run(read_states(config))[0], name)
    if name not in config.pollers and not backfills:
        allowed = ", ".join(sorted(config.pollers)) or "none"
        raise UsageError(f"unknown poller {name}; the config has: {allowed}")
    if ranges is None:
        chosen = [b for b in backfills.values() if b.complete]
    else:
        missing = [r for r in ranges if r not in backfills]
        if missing:
            have = ", ".join(backfills) or "none"
            raise UsageError(f"poller {name} has no backfill {missing[0]}; its backfills: {have}")
        chosen = [backfills[r] for r in dict.fromkeys(ranges)]
    kept = [b for b in backfills.values() if b not in chosen]
    return ForgetPlan(name, tuple(chosen), tuple(kept))


def poller_backfills(states: dict[str, PollerState], name: str) -> dict[str, BackfillRange]:
    """The poller's backfills by range, in the order of their keys."""
    rows: dict[str, list[tuple[BackfillRow, PollerState]]] = {}
    for key, state in sorted(states.items()):
        row = BackfillRow.parse(key)
        if row is not None and row.poller == name:
            rows.setdefault(row.range, []).append((row, state))
    return {span: BackfillRange(span, tuple(r)) for span, r in rows.items()}


def forget_backfills(config: Config, plan: ForgetPlan) -> list[str]:
    """Deletes the planned rows in one transaction (refused while a daemon or a replica runs,
    or while `spd once` holds the state); one line per backfill forgotten."""
    asyncio.run(delete_rows(config, plan.keys))
    return [f"poller {plan.poller}: forgot backfill {b.describe()}" for b in plan.chosen]


async def delete_rows(config: Config, keys: list[str]) -> int:
    async with open_state(config) as store:
        return await store.forget(keys)
