"""Durations (`200ms`, `30s`, `2m`, `1h`, `1d`, or sums such as `1h30m`) and timestamps.

`format_ts` is the one timestamp format spd writes (messages, logs, status, request
parameters); `parse_ts` reads what a user wrote (a zone is required), `normalize_timestamp` what
Amazon sent (lenient: naive means UTC). The state database keeps its own fixed-width form
(spd.state.store) so that stored times sort as text.

Parsers raise ValueError with a one-line message that says what is allowed; config and CLI
code turn it into a ConfigError or UsageError.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

DURATION_HINT = "use a number with ms, s, m, h or d, such as 30s or 2m"
TIMESTAMP_HINT = "use ISO 8601 with a time zone, such as 2025-01-01T00:00:00Z"

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}
_PART = r"(\d+(?:\.\d+)?)(ms|s|m|h|d)"
_DURATION = re.compile(rf"(?:{_PART})+")
_PARTS = re.compile(_PART)
# Calendar date, then time: fromisoformat alone would also accept week dates and compact forms.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?")


def parse_duration(text: str) -> timedelta:
    """`"2m"` -> timedelta(minutes=2); ValueError (one line, says what is allowed) otherwise."""
    if not isinstance(text, str) or not _DURATION.fullmatch(text.strip()):
        raise ValueError(f"{show_value(text)} is not a duration; {DURATION_HINT}")
    total = timedelta()
    for number, unit in _PARTS.findall(text.strip()):
        total += float(number) * _UNITS[unit]
    return total


def format_duration(value: timedelta) -> str:
    """The shortest spelling parse_duration reads back: `2m`, `1h30m`, `200ms`, `0s`."""
    ms = round(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def parse_ts(text: str) -> datetime:
    """An ISO 8601 timestamp with `Z` or an offset -> aware UTC datetime; ValueError otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"{show_value(text)} is not a timestamp; {TIMESTAMP_HINT}")
    value = text.strip()
    if not _TIMESTAMP.fullmatch(value):
        raise ValueError(f"{show_value(text)} is not a timestamp; {TIMESTAMP_HINT}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{show_value(text)} is not a valid timestamp; {TIMESTAMP_HINT}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"{show_value(text)} has no time zone; add Z or an offset, such as {value}Z")
    return parsed.astimezone(timezone.utc)



_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_instant(text: str) -> datetime:
    """What a person types on the command line: a timestamp with a zone, or a date alone
    (`2026-11-29` is midnight UTC); ValueError (one line) otherwise."""
    value = text.strip() if isinstance(text, str) else text
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
        except ValueError:
            raise ValueError(f"{show_value(text)} is not a valid date; use YYYY-MM-DD, such as 2026-11-29") from None
    return parse_ts(text)


def format_ts(value: datetime) -> str:
    """UTC RFC 3339 with `Z`: to the second, or to the ms or µs when the time has them.

    The one timestamp format spd writes (messages, logs, status), so that a window end in a
    message and the watermark in `spd status` read the same."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} has no time zone")
    utc = value.astimezone(timezone.utc).replace(tzinfo=None)
    if utc.microsecond == 0:
        spec = "seconds"
    elif utc.microsecond % 1000 == 0:
        spec = "milliseconds"
    else:
        spec = "microseconds"
    return utc.isoformat(timespec=spec) + "Z"


def rfc3339(value: datetime) -> str:
    """`format_ts` of a datetime where naive means UTC (spd's own naive datetimes are UTC)."""
    return format_ts(value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc))


def normalize_timestamp(value: object) -> str | None:
    """An ISO 8601 timestamp as UTC RFC 3339 with `Z` (naive means UTC); None if unparseable."""
    if not isinstance(value, str) or not value.strip():
        return None
    if is_canonical_ts(value):
        return value
    try:
        ts = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    return rfc3339(ts)


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(timezone.utc)


def now_ms() -> datetime:
    """Now in UTC to the millisecond: the `emitted_at` of messages."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def show_value(value: object) -> str:
    """A value as an error message quotes it: strings in double quotes."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        return "nothing"
    if isinstance(value, (list, tuple, dict)):  # as YAML's flow style writes it, not Python's repr
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


# UTC RFC 3339 to the second with Z: what most SP-API timestamps already are, so they can pass
# through without a parse and a format per object.
_CANONICAL_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def is_canonical_ts(value: str) -> bool:
    """True for `YYYY-MM-DDTHH:MM:SSZ`, the form spd emits, which needs no normalizing."""
    return _CANONICAL_TS.fullmatch(value) is not None
