"""Planning windows from an object type's `Windowing` part (DESIGN.md §4).

A window runs from the watermark to min(now - lag, watermark + max_window). Bounds are sent as
they are; what each includes is Amazon's (`spd objects TYPE` shows it): where both ends include
their instant an object on a boundary may come twice, where neither is said to, windows overlap
by one second so that none is lost; consumers deduplicate on (account, object_type, id, cursor).
Where the API echoes the upper bound it applied, the newest window sends none and takes the echo
as the next watermark. Where the filter has no upper bound at all, the window ends at the request
time - lag (and max_window does not apply: without an upper bound there is nothing to split).
`overlap` starts every window that much before the watermark (never before start_time).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from spd.core.times import utcnow
from spd.pipeline.poller_support import MIN_WINDOW
from spd.pipeline.series import Series
from spd.pipeline.types import Window
from spd.state.backend import PollerState

# Where Amazon does not say whether a bound includes its own instant, windows overlap this much.
BOUNDARY_OVERLAP = timedelta(seconds=1)


def plan_window(series: Series, state: PollerState) -> Window | None:
    """The window in progress, or the next one; None when caught up with now - lag."""
    if state.window_start is not None:
        return Window(state.window_start, state.window_end, echo=state.window_end is None)
    win, field_name = series.object_type.window, series.config.timestamp_field
    newest = utcnow() - win.lag
    if newest - state.watermark < MIN_WINDOW:
        return None
    start = window_start(series, state.watermark)
    bounded = win.has_upper_bound(field_name)
    if win.max_window is not None and bounded and start + win.max_window < newest:
        return Window(start, start + win.max_window, echo=False)
    echo = win.echo_path(field_name) is not None
    return Window(start, None if echo else newest, echo=echo)


def window_start(series: Series, watermark: datetime) -> datetime:
    """The watermark, or `overlap` before it (never before start_time); the overlap is at most
    half the maximum window so that every window still moves the watermark."""
    win, cfg = series.object_type.window, series.config
    overlap = cfg.overlap or timedelta(0)
    if win.boundary_overlap(cfg.timestamp_field):
        overlap = max(overlap, BOUNDARY_OVERLAP)
    if not overlap:
        return watermark
    if win.max_window is not None:
        overlap = min(overlap, win.max_window / 2)
    return max(watermark - overlap, min(cfg.start_time, watermark))
