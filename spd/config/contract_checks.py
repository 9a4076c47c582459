"""A poller's first pages and a job's params against the rules Amazon's models state only in
sentences (the contract table's rows, applied by spd.catalog.requests.contract_breaches, the
same function spd exec refuses with): what Amazon would refuse on every request is a config
error before anything runs, on the `params` key that causes it.

A poller's first pages are built as the fetch builds them (spd.sources.first_page): its
`params`, the type's fixed parameters, the marketplace (each one of a fan-out), the window's
bounds by its `timestamp_field` (with the upper bound, and without it where Amazon echoes it)
and the page size. Next pages carry Amazon's own token, which is Amazon's to judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from spd.catalog.contract_types import SAME_MARKETPLACE
from spd.catalog.model import Operation
from spd.catalog.requests import Breach, contract_breaches
from spd.config.model import PollerConfig
from spd.core.problems import Problem, error
from spd.core.times import utcnow
from spd.sources.first_page import fan_out_markets, first_page_params
from spd.sources.object_type import ObjectType


def poller_contract_problems(name: str, cfg: PollerConfig, op: Operation,
                             marketplace_ids: Sequence[str] | None) -> list[Problem]:
    """The first row a poller's first pages break, as one problem on the `params` key that
    causes it; [] when none does (or the poller does not send operation pages of its own)."""
    ot, field = cfg.object_type, cfg.timestamp_field
    if ot.kind != "operation" or cfg.download:
        return []  # report types and getReports + download send requests of their own making
    breach = first_breach(ot, op, cfg.params, field, marketplace_ids)
    if breach is None:
        return []
    other = next((f for f in ot.timestamp_fields() if f != field), None)
    fits = other is not None and fits_field(ot, op, cfg.params, other, marketplace_ids)
    advice = poller_advice(breach, cfg, other if fits else None)
    line = replace(breach, advice=advice, sep=": ").line(ot.name)
    return [error("pollers", name, *key_path(breach, cfg.params), message=line)]


def first_breach(ot: ObjectType, op: Operation, params: dict[str, Any], field: str,
                 marketplace_ids: Sequence[str] | None) -> Breach | None:
    """The first row broken by a first page spd sends by `field`, or None."""
    for page in first_pages(ot, op, params, field, marketplace_ids):
        breaches = contract_breaches(op, page)
        if breaches:
            return breaches[0]
    return None


def first_pages(ot: ObjectType, op: Operation, params: dict[str, Any], field: str,
                marketplace_ids: Sequence[str] | None) -> list[dict[str, Any]]:
    """Every kind of first page a poller sends by `field`: per marketplace of a fan-out, with
    the upper bound and, where Amazon echoes the one it applied, without."""
    markets: list[str | None] = [*fan_out_markets(ot, params, marketplace_ids)] or [None]
    now = utcnow()
    ends = [now] + ([None] if ot.window.echo_path(field) is not None else [])
    return [first_page_params(ot, op, params, field, market, marketplace_ids, now, end)
            for market in markets for end in ends]


def fits_field(ot: ObjectType, op: Operation, params: dict[str, Any], field: str,
               marketplace_ids: Sequence[str] | None) -> bool:
    """Whether the same `params` would do by the other timestamp field: they set none of its
    bounds, give what it needs, and its first pages break no row."""
    bounds = ot.window.bounds(field) or ()
    if any(b in params for b in bounds if b) or any(n not in params for n in ot.needs(field)):
        return False
    return first_breach(ot, op, params, field, marketplace_ids) is None


def poller_advice(breach: Breach, cfg: PollerConfig, other: str | None) -> str:
    """What a poller can do: add what is missing, or remove its own parameter where spd sends
    the other itself (or poll by `other`, where that would do)."""
    mine = [n for n in breach.sent if n in cfg.params]
    spds = [n for n in breach.sent if n not in cfg.params]
    switch = f" or set timestamp_field: {other}" if other else ""
    if breach.missing:
        needed = (" or " if breach.one_of else " and ").join(breach.missing)
        return f"add {needed} to params" + (f" or remove {' and '.join(mine)}" if mine else "") + switch
    if not spds:
        return breach.advice
    if breach.row.kind == SAME_MARKETPLACE:
        return (f"spd sends {' and '.join(spds)} itself from the account's marketplace_ids; give "
                f"{' and '.join(spds)} the same marketplace in params, or remove {' and '.join(mine)}")
    bounds = cfg.object_type.window.bounds(cfg.timestamp_field) or ()
    by = f" by timestamp_field {cfg.timestamp_field}" if all(n in bounds for n in spds) else ""
    sends = f"spd sends {' and '.join(spds)} itself{by}"
    if not mine:
        return f"{sends}{switch}"
    # the parameter that forbids the others is enough to remove; else all of the poller's own
    remove = mine[:1] if breach.sent[0] in mine else mine
    return f"{sends}; remove {' and '.join(remove)} from params{switch}"


def key_path(breach: Breach, params: dict[str, Any]) -> tuple[str, ...]:
    """Where the breach is in an entry: the first of its parameters the entry's `params` give,
    else `params` itself (or the entry, without params)."""
    mine = [n for n in breach.sent if n in params]
    return ("params", mine[0]) if mine else ("params",) if params else ()


def job_contract_problem(name: str, breach: Breach, op: Operation, params: dict[str, Any]) -> Problem:
    """A job's params breaking a row: spd exec's line, on the job's `params` key that causes it."""
    return error("jobs", name, *key_path(breach, params), message=breach.line(op.name))
