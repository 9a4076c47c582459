"""Durations and zoned timestamps: parsing, formatting, and the one-line errors."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spd.core.times import format_duration, format_ts, parse_duration, parse_ts

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("200ms", timedelta(milliseconds=200)),
        ("30s", timedelta(seconds=30)),
        ("2m", timedelta(minutes=2)),
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        (" 10s ", timedelta(seconds=10)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["2 minutes", "2", "", "m", "2M", "-5s", "1h 30m", "2mins", "PT2M"])
def test_parse_duration_rejects_with_one_line_hint(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == (f'"{text}" is not a duration; use a number with ms, s, m, h or d, '
                               "such as 30s or 2m")


def test_parse_duration_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match=r"^30 is not a duration; "):
        parse_duration(30)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^nothing is not a duration; "):
        parse_duration(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(minutes=2), "2m"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(milliseconds=200), "200ms"),
        (timedelta(days=2, seconds=5), "2d5s"),
        (timedelta(0), "0s"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@given(st.integers(min_value=0, max_value=10**10))
def test_format_duration_round_trips(ms: int) -> None:
    value = timedelta(milliseconds=ms)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-01T00:00:00Z", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T02:00:00+02:00", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2024-12-31T19:00:00-05:00", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T00:00:00.250Z", datetime(2025, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)),
        ("2025-01-01 00:00:00Z", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T00:00Z", datetime(2025, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_ts_returns_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_ts(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_parse_ts_without_zone_says_how_to_add_one() -> None:
    with pytest.raises(ValueError) as info:
        parse_ts("2025-01-01T00:00:00")
    assert str(info.value) == ('"2025-01-01T00:00:00" has no time zone; add Z or an offset, '
                               "such as 2025-01-01T00:00:00Z")


@pytest.mark.parametrize("text", ["2025-01-01", "yesterday", "2025-W01-1T00:00:00Z", "1735689600", ""])
def test_parse_ts_rejects_other_forms(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_ts(text)
    assert str(info.value) == (f'"{text}" is not a timestamp; use ISO 8601 with a time zone, '
                               "such as 2025-01-01T00:00:00Z")


def test_parse_ts_rejects_impossible_dates() -> None:
    with pytest.raises(ValueError, match=r'^"2025-02-30T00:00:00Z" is not a valid timestamp; '):
        parse_ts("2025-02-30T00:00:00Z")


def test_format_ts() -> None:
    assert format_ts(datetime(2025, 3, 1, 10, 0, tzinfo=UTC)) == "2025-03-01T10:00:00Z"
    assert format_ts(datetime(2025, 3, 1, 10, 0, 0, 120000, tzinfo=UTC)) == "2025-03-01T10:00:00.120Z"
    assert format_ts(datetime(2025, 3, 1, 10, 0, 0, 144350, tzinfo=UTC)) == "2025-03-01T10:00:00.144350Z"
    assert format_ts(datetime(2025, 3, 1, 10, 0, 0, 1, tzinfo=UTC)) == "2025-03-01T10:00:00.000001Z"
    plus2 = timezone(timedelta(hours=2))
    assert format_ts(datetime(2025, 3, 1, 12, 0, tzinfo=plus2)) == "2025-03-01T10:00:00Z"


def test_format_ts_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        format_ts(datetime(2025, 3, 1))


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)))
def test_format_ts_round_trips(value: datetime) -> None:
    assert parse_ts(format_ts(value)) == value


@pytest.mark.parametrize("value,canonical", [
    ("2026-01-01T00:00:00Z", True),
    ("2026-01-01T00:00:00.000Z", False),
    ("2026-01-01T00:00:00+00:00", False),
    ("2026-01-01T00:00:00", False),
    ("2026-01-01T00:00:00Z ", False),
])
def test_canonical_timestamps_are_recognized(value: str, canonical: bool) -> None:
    from spd.core.times import is_canonical_ts

    assert is_canonical_ts(value) is canonical
