"""Reporting periods (reportOptions.reportPeriod): windows that run from the first day of a period
to the last, as Amazon's vendor and Brand Analytics report schemas demand ("dataStartTime must be
a Sunday for the WEEK reportPeriod", "dataEndTime must be a Saturday"). Dates are UTC days."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

PERIODS = ("DAY", "WEEK", "MONTH", "QUARTER", "YEAR")


def period_start(ts: datetime, period: str) -> datetime:
    """The first instant of the period that holds `ts` (a WEEK starts on Sunday)."""
    day = ts.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "DAY":
        return day
    if period == "WEEK":
        return day - timedelta(days=(day.weekday() + 1) % 7)  # Monday is 0, Sunday 6
    if period == "MONTH":
        return day.replace(day=1)
    if period == "QUARTER":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    if period == "YEAR":
        return day.replace(month=1, day=1)
    raise ValueError(f"unknown reportPeriod {period!r}; use one of {', '.join(PERIODS)}")


def next_period(start: datetime, period: str) -> datetime:
    """The first instant of the period after the one starting at `start`."""
    if period == "DAY":
        return start + timedelta(days=1)
    if period == "WEEK":
        return start + timedelta(days=7)
    months = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}[period]
    total = start.month - 1 + months
    return start.replace(year=start.year + total // 12, month=total % 12 + 1, day=1)


def aligned_window(watermark: datetime, period: str, newest: datetime, max_window: timedelta,
                   span: bool, oldest: datetime | None = None) -> tuple[datetime, datetime] | None:
    """Whole periods from the one holding the watermark (the next one when that starts before
    `oldest`), ending no later than `newest`: one period, or as many as fit in `max_window`
    where reports may span periods. None while the first period is not over."""
    start = period_start(watermark, period)
    if oldest is not None and start < oldest:
        start = next_period(start, period)
    end = next_period(start, period)
    if end > newest:
        return None
    while span:
        following = next_period(end, period)
        if following > newest or following - start > max_window:
            break
        end = following
    return start, end


def last_day(end: datetime) -> datetime:
    """dataEndTime of a window ending (exclusively) at `end`: the last second of its last day."""
    return end - timedelta(seconds=1)
