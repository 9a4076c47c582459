"""`spd status` and `spd reset`: read and move poller watermarks in the state database."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from spd.app.backfill_rows import BACKFILL, BackfillRow
from spd.app.live import PollerNow, live_path, read_live
from spd.core.output import Column
from spd.core.times import format_duration, format_ts, parse_instant, parse_ts, utcnow
from spd.core.errors import SpdError, UsageError
from spd.core.redaction import redact
from spd.config.model import Config, PollerConfig
from spd.config.secrets import register_config_secrets
from spd.app.push import SUBSCRIPTION_KEY
from spd.app.state import open_state
from spd.state.backend import MetaStore, PollerState


async def collect_status(config: Config) -> list[dict[str, Any]]:
    """One row per configured poller (and per orphaned state row), JSON-able, no secrets.
    The state is only read: a missing file is not created, an old one not migrated, and a
    shared database is read without joining its cluster. `replica`: who runs the poller."""
    register_config_secrets(config)  # errors written by an older spd may still hold one
    states, holders = await read_states(config)
    counts = await read_subscription_counts(config) if config.subscriptions else {}
    path = config.state_config().path
    live = (read_live(live_path(Path(path))) if path else None) or {}  # what a running daemon does now
    rows = []
    for name, cfg in config.pollers.items():
        replica = holders.get(cfg.account)
        row = status_row(name, cfg, states.get(name), replica)
        now = live.get(name, PollerNow("idle"))
        row.update(state=now.describe(), waiting_for_quota=now.quota, next_run=now.next_run)
        series = [status_row(key, cfg, state, replica) for key, state in states.items()
                  if key.startswith(f"{name}@")]
        markets = [s for s in series if not s["poller"].startswith(f"{name}{BACKFILL}")]
        if len(markets) < len(series):  # `spd once --from --until`: its own rows, under the poller
            row["backfills"] = [s for s in series if s not in markets]
        if markets:  # a poller fanned out per marketplace: its counts live on those rows
            row["marketplaces"] = markets
            row["objects_emitted"] = sum(m["objects_emitted"] for m in markets)
            row["pages_emitted"] = sum(m["pages_emitted"] for m in markets)
            row["last_error"] = row["last_error"] or next((m["last_error"] for m in markets if m["last_error"]), None)
        rows.append(row)
    known = {r["poller"] for r in rows} | {m["poller"] for r in rows
                                           for m in r.get("marketplaces", []) + r.get("backfills", [])}
    rows += [status_row(name, None, state) for name, state in states.items() if name not in known]
    rows += [subscription_row(name, counts.get(name)) for name in config.subscriptions]
    return rows


async def read_states(config: Config) -> tuple[dict[str, PollerState], dict[str, str]]:
    """Every saved poller state by name, and the replica holding each account, read without
    writing anything (no state file yet: nothing)."""
    state = config.state_config()
    if state.path is not None and not Path(state.path).exists():
        return {}, {}
    async with open_state(config, readonly=True) as store:
        return {s.poller: s for s in await store.all()}, await store.lease_holders()


async def read_subscription_counts(config: Config) -> dict[str, str]:
    """The subscriptions' counters the daemon saved, by subscription, read without writing."""
    state = config.state_config()
    if state.path is not None and not Path(state.path).exists():
        return {}
    async with open_state(config, readonly=True) as store:
        return await store.meta_items(SUBSCRIPTION_KEY) if isinstance(store, MetaStore) else {}


def subscription_row(name: str, saved: str | None) -> dict[str, Any]:
    """The status of one subscription: its counters as the daemon last saved them."""
    try:
        values = orjson.loads(saved) if saved else {}
    except orjson.JSONDecodeError:
        values = {}
    values = values if isinstance(values, dict) else {}
    received = values.get("last_received_at")
    return {
        "subscription": name,
        **{k: values.get(k, 0) for k in ("received", "emitted", "dead_lettered", "malformed")},
        "queue_lag": values.get("queue_lag", 0.0),
        "last_received": format_ts(datetime.fromtimestamp(received, timezone.utc)) if received else None,
        "last_error": redact(values["last_error"]) if values.get("last_error") else None,
    }


def _ts(value: datetime | None) -> str | None:
    return format_ts(value) if value else None


def status_row(name: str, cfg: PollerConfig | None, state: PollerState | None,
               replica: str | None = None) -> dict[str, Any]:
    """The status of one poller as a flat dict; `replica` runs it (with state.url)."""
    row: dict[str, Any] = {
        "poller": name,
        "state": None,  # running, waiting for quota until T, stalled: reason, idle (spd.app.live)
        "replica": replica,
        "object_type": cfg.object_type.name if cfg else None,
        "in_config": cfg is not None,
        "watermark": _ts(state.watermark) if state else (_ts(cfg.start_time) if cfg else None),
        "lag_seconds": int((utcnow() - state.watermark).total_seconds()) if state else None,
        "window": [_ts(state.window_start), _ts(state.window_end)] if state and state.window_start else None,
        "page": state.page if state else 0,
        "last_run": _ts(state.last_run_at) if state else None,
        "last_success": _ts(state.last_success_at) if state else None,
        "last_error": redact(state.last_error) if state and state.last_error else None,
        "objects_emitted": state.objects_emitted if state else 0,
        "pages_emitted": state.pages_emitted if state else 0,
        "note": redact(state.note) if state and state.note else None,
    }
    backfill = BackfillRow.parse(name)
    if backfill is not None and state is not None:
        row.update(backfill_status(backfill, state))
    return row


def backfill_status(backfill: BackfillRow, state: PollerState) -> dict[str, Any]:
    """A backfill row's state (`complete`, `incomplete, 40% done`, `open-ended`: which ones
    `spd reset --forget-backfills` may remove) and its range; a complete one lags nothing."""
    complete = backfill.complete(state)
    return {"state": backfill.describe(state), **({"lag_seconds": None} if complete else {}),
            "backfill": {"from": format_ts(backfill.start), "until": _ts(backfill.until),
                         "complete": complete}}


def status_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows a person reads: one per poller, then one per marketplace series under it."""
    table = []
    for row in rows:
        if "subscription" in row:
            continue  # SUBSCRIPTION_COLUMNS: a table of their own
        table.append(row)
        table += [{**m, "poller": f"  {m['poller']}"}
                  for m in row.get("marketplaces", []) + row.get("backfills", [])]
    return table


def _second(value: str | None) -> str | None:
    """A timestamp as the table shows every one: to the second, `Z`."""
    return format_ts(parse_ts(value).replace(microsecond=0)) if value else None


def _lag(row: dict[str, Any]) -> str | None:
    """How far the watermark is behind now, to the second."""
    if row.get("lag_seconds") is None:
        return None
    return format_duration(timedelta(seconds=max(row["lag_seconds"], 0)))


def _error(row: dict[str, Any]) -> str | None:
    notes = [row["last_error"]] if row.get("last_error") else []
    if row.get("note"):
        notes.append(f"note: {row['note']}")
    if not row.get("in_config", True):
        notes.append("no longer in the config")
    return "; ".join(notes) or None


STATUS_COLUMNS = (
    Column("POLLER", "poller"), Column("STATE", "state"),
    Column("WATERMARK", lambda r: _second(r.get("watermark"))), Column("LAG", _lag, "right"),
    Column("NEXT RUN", lambda r: _second(r.get("next_run"))),
    Column("LAST RUN", lambda r: _second(r.get("last_run"))),
    Column("OBJECTS", "objects_emitted", "right"), Column("LAST ERROR", _error),
)


SUBSCRIPTION_COLUMNS = (
    Column("SUBSCRIPTION", "subscription"), Column("RECEIVED", "received", "right"),
    Column("EMITTED", "emitted", "right"), Column("DEAD-LETTERED", "dead_lettered", "right"),
    Column("REFUSED", "malformed", "right"), Column("QUEUE LAG", lambda r: f"{r['queue_lag']:.1f}s", "right"),
    Column("LAST MESSAGE", lambda r: _second(r.get("last_received"))), Column("LAST ERROR", "last_error"),
)


def status_columns(rows: list[dict[str, Any]]) -> tuple[Column, ...]:
    """STATUS_COLUMNS, with the replica running each poller when replicas share the state."""
    if not any(r.get("replica") for r in rows):
        return STATUS_COLUMNS
    return (STATUS_COLUMNS[0], Column("REPLICA", "replica"), *STATUS_COLUMNS[1:])


@dataclass(frozen=True)
class ResetPlan:
    """A reset to be confirmed: the poller, its watermark now (None before its first run), the target."""

    poller: str
    current: datetime | None
    target: datetime

    def describe(self) -> str:
        """`watermark 2026-11-30T12:00:00Z → 2026-11-29T00:00:00Z`."""
        current = format_ts(self.current) if self.current else "none yet"
        return f"watermark {current} → {format_ts(self.target)}"


def plan_reset(config: Config, name: str, to: str | None) -> ResetPlan:
    """What a reset of `name` would do: `to` (a timestamp, or a date at midnight UTC), else
    the poller's start_time; the current watermark is read without writing anything."""
    cfg = config.pollers.get(name)
    if cfg is None:
        allowed = ", ".join(sorted(config.pollers)) or "none"
        raise UsageError(f"unknown poller {name}; the config has: {allowed}")
    try:
        target = parse_instant(to) if to else cfg.start_time
    except (SpdError, ValueError) as exc:
        # worded as `spd once --from` words it: parse_instant's message already says what is allowed
        raise UsageError(f"--to: {exc}; a date such as 2026-11-29 means midnight UTC") from None
    state = asyncio.run(read_states(config))[0].get(name)
    return ResetPlan(name, state.watermark if state else None, target)


def reset_poller(config: Config, plan: ResetPlan) -> str:
    """Moves the watermark as planned; refused while a daemon runs."""
    cfg = config.pollers[plan.poller]
    asyncio.run(move_watermark(config, plan.poller, plan.target, cfg.identity()))
    return f"poller {plan.poller}: {plan.describe()}"


async def move_watermark(config: Config, name: str, target: datetime, identity: str) -> None:
    """Resets one poller's state row (refused while a daemon or a replica runs)."""
    async with open_state(config) as store:
        await store.reset(name, target, identity=identity)
