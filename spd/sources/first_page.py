"""What a poller of an operation sends on a first page: the marketplace filter, the type's fixed
parameters, the config's `params`, the window's bounds and the page size.

One function for both readers: the fetch (spd.pipeline.operation_fetch) sends it, and `spd
validate` (spd.config.checks) judges it against the rows of Amazon's contract table before
anything runs, so that what validate passes is what is sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from spd.catalog.model import Operation
from spd.core.times import format_ts
from spd.sources.object_type import ObjectType

MARKET_PLACEHOLDER = "{marketplace}"


def first_page_params(ot: ObjectType, op: Operation, params: Mapping[str, Any], timestamp_field: str,
                      market: str | None, marketplace_ids: Sequence[str] | None,
                      start: datetime, end: datetime | None) -> dict[str, Any]:
    """The query of a first page by `timestamp_field` from `start` to `end` (None: no upper
    bound sent, where Amazon echoes the one it applied), polling `market` (one marketplace of a
    fan-out) or else the account's `marketplace_ids`."""
    paging = ot.paging
    sent = market_params(ot, op, params, market, marketplace_ids)
    sent.update(fill_fixed(ot.params.fixed, market))
    sent.update(params)
    bounds = ot.window.bounds(timestamp_field)
    assert bounds is not None, "config validation guarantees the timestamp field exists"
    after, before = bounds
    sent[after] = format_ts(start)
    if before and end is not None:
        sent[before] = format_ts(end)
    if paging.size_param and paging.size_max and paging.size_param not in params:
        sent[paging.size_param] = paging.size_max
    return sent


def market_params(ot: ObjectType, op: Operation, params: Mapping[str, Any], market: str | None,
                  marketplace_ids: Sequence[str] | None) -> dict[str, Any]:
    """The marketplace filter: the series' one id, the params' own, or the account's."""
    name = ot.partitioning.marketplace_param
    if not name:
        return {}
    if name in params:
        return {name: params[name]}
    if market is not None:
        return {name: market_value(op, name, market)}
    ids = list(marketplace_ids or ())
    return {name: ids} if ids else {}


def market_value(op: Operation, name: str, market: str) -> Any:
    """One marketplace id shaped as the parameter wants it (a string, or a list of one)."""
    param = op.param(name)
    return [market] if param is not None and param.type == "array" else market


def fill_fixed(pairs: tuple[tuple[str, Any], ...], market: str | None) -> dict[str, Any]:
    """The type's fixed parameters with "{marketplace}" replaced by the polled marketplace."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        if value == MARKET_PLACEHOLDER:
            if market is None:
                continue
            value = market
        out[name] = value
    return out


def fan_out_markets(ot: ObjectType, params: Mapping[str, Any],
                    marketplace_ids: Sequence[str] | None) -> list[str]:
    """The marketplaces to poll one by one (each with its own watermark): the account's ids
    when the type's marketplace parameter takes a single id and `params` does not set it."""
    market = ot.partitioning.marketplace_param
    if not (market and ot.partitioning.per_marketplace) or market in params:
        return []
    return list(marketplace_ids or ())
