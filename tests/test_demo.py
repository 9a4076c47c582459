"""`spd demo` as a person sees it: a real subprocess against its built-in simulator, its stdout
and stderr read as they arrive (one pipe, so their order is the terminal's)."""

from __future__ import annotations

import re
import subprocess
import time

from support.spd import ROOT, spd_cmd, spd_env

SECONDS = 20


def read_timed(proc: subprocess.Popen) -> list[tuple[float, str]]:
    """Every line the process writes, with the monotonic time it arrived."""
    assert proc.stdout is not None
    lines = []
    for raw in proc.stdout:
        lines.append((time.monotonic(), raw.rstrip("\n")))
    return lines


def test_demo_catches_up_then_shows_new_objects_arriving() -> None:
    proc = subprocess.Popen(spd_cmd("demo", "--seconds", str(SECONDS)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=spd_env(), cwd=ROOT)
    try:
        lines = read_timed(proc)
        assert proc.wait(60) == 0, "\n".join(text for _, text in lines[-20:])
    finally:
        proc.kill()
    texts = [text for _, text in lines]
    assert "Traceback" not in "\n".join(texts)
    assert texts[0].startswith("spd demo: the daemon polling a built-in SP-API simulator at http://127.0.0.1:")
    assert any(re.match(r"  orders +ordersV0\.getOrders every 3 s", t) for t in texts[:6])
    objects = [i for i, t in enumerate(texts) if re.match(r"(orders|search-orders|vendor-po) ", t)]
    catching = next(i for i, t in enumerate(texts) if t.startswith("catching up from "))
    caught = next(i for i, t in enumerate(texts) if t.startswith("caught up in "))
    assert "waiting for changes" in texts[caught]
    assert catching < objects[0] and sum(1 for i in objects if i < caught) > 100  # the catch-up
    assert any(texts[i].startswith("vendor-po ") for i in objects if i < caught)
    # new objects after the catch-up, arriving over the run rather than all at once
    new = [lines[i][0] for i in objects if i > caught]
    arrivals = [t for k, t in enumerate(new) if k == 0 or t - new[k - 1] > 1.0]
    assert len(arrivals) >= 3, f"new objects arrived at {len(arrivals)} moments: {new}"
    assert arrivals[-1] - lines[caught][0] > SECONDS / 3
    summary = texts[-1]
    found = re.fullmatch(r"spd demo: (\d+) objects emitted \(orders: \d+, search-orders: \d+, vendor-po: \d+\) "
                         r"in \d+ s: (\d+) in the catch-up, (\d+) new while it ran", summary)
    assert found, summary
    assert int(found.group(1)) == len(objects) and int(found.group(3)) == len(new)
