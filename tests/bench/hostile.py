"""`python -m tests.bench hostile [--case NAME]... [--spd-path DIR] [--timeout S]`: what a real
`spd` process costs when a server (the hostile stub of tests/hostile.py, served from this
process) sends it the replies of issue 10 at full size. Each case runs `spd` in its own
subprocess and reports its peak RSS (from the rusage of the reaped child), wall seconds, exit
code and last stderr line; `idle` (one ordinary page) is the peer every peak is divided by.

Cases: idle, getorders_50mb (Content-Length), getorders_chunked_200mb (no length), the largest
replies spd accepts (getorders_10mb_fat: just under 10 MiB in ~9,900 orders of 1 KB) or refuses
only after parsing (getorders_10mb_small: ~60,000 small orders, more than a page may hold),
report_line_1gib (one gzipped 1 GiB line), webhook_answer_300mb (a 200 with a 300 MB body),
yaml_bomb (a 400-byte billion laughs, `spd validate`), stop_during_document (SIGINT while a report
document trickles in: seconds from the signal to the exit).

`--spd-path` runs another checkout's spd (e.g. the main branch) against the same stub, so a
change can be measured before and after; a case that does not end within `--timeout` is killed
and reported with "timeout": true.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from tests.support.hostile import HostileThread, write_hostile_config

ROOT = Path(__file__).resolve().parents[2]
MB = 2**20
LAUGHS = "\n".join(
    ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]) + "\n"
REPORT = "report:GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL"
CASES = ("idle", "getorders_50mb", "getorders_chunked_200mb", "getorders_10mb_fat",
         "getorders_10mb_small", "report_line_1gib",
         "webhook_answer_300mb", "yaml_bomb", "stop_during_document")


def run_child(args: list[str], spd_path: Path, timeout: float,
              interrupt_after: float | None = None) -> dict[str, Any]:
    """`spd ARGS` in a subprocess: peak RSS, seconds, exit code, last stderr line."""
    env = {**os.environ, "PYTHONPATH": str(spd_path)}
    env.pop("NOTIFY_SOCKET", None)
    err = tempfile.TemporaryFile()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "spd.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=err, env=env, cwd=tempfile.gettempdir())
    deadline, timed_out, signalled = started + timeout, False, None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.monotonic()
        if interrupt_after is not None and signalled is None and now - started >= interrupt_after:
            proc.send_signal(signal.SIGINT)
            signalled = now
        if now >= deadline and not timed_out:
            timed_out = True
            proc.kill()
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    err.seek(0)
    lines = [line for line in err.read().decode("utf-8", "replace").splitlines() if line.strip()]
    result = {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "seconds": round(seconds, 2),
              "exit_code": proc.returncode, "timeout": timed_out,
              "last_line": lines[-1][:300] if lines else "",
              "traceback": any(line.startswith("Traceback") for line in lines)}
    if signalled is not None:
        result["exit_seconds_after_sigint"] = round(time.monotonic() - signalled, 2) \
            if timed_out else round(started + seconds - signalled, 2)
    return result


def run_case(name: str, stub: HostileThread, work: Path, spd_path: Path, timeout: float) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    once = lambda config: ["once", "-c", str(config)]  # noqa: E731
    if name == "yaml_bomb":
        bomb = work / "bomb.yaml"
        bomb.write_text(LAUGHS)
        return run_child(["validate", "-c", str(bomb)], spd_path, timeout)
    if name == "idle":
        stub.set("ok")
        return run_child(once(write_hostile_config(work, stub.url)), spd_path, timeout)
    if name in ("getorders_50mb", "getorders_chunked_200mb"):
        stub.set("huge" if name == "getorders_50mb" else "chunked", (50 if "50" in name else 200) * MB)
        return run_child(once(write_hostile_config(work, stub.url)), spd_path, timeout)
    if name in ("getorders_10mb_fat", "getorders_10mb_small"):
        stub.set("huge", 10 * MB - 4096, fat=880 if name.endswith("fat") else 0)
        return run_child(once(write_hostile_config(work, stub.url)), spd_path, timeout)
    if name == "report_line_1gib":
        stub.set("report_line", 1024 * MB)
        config = write_hostile_config(work, stub.url, {"object": REPORT, "timestamp_field": "updated"})
        return run_child(once(config), spd_path, timeout)
    if name == "webhook_answer_300mb":
        stub.set("ok", 300 * MB)
        hook = {"hook": f"{{type: webhook, url: '{stub.url}/hook', timeout: 10m}}"}
        return run_child(once(write_hostile_config(work, stub.url, emitters=hook)), spd_path, timeout)
    if name == "stop_during_document":
        stub.set("report_trickle")
        config = write_hostile_config(work, stub.url, {"object": REPORT, "timestamp_field": "updated"})
        return run_child(once(config), spd_path, timeout, interrupt_after=4.0)
    raise SystemExit(f"unknown case {name}; cases: {', '.join(CASES)}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench hostile")
    parser.add_argument("--case", action="append", choices=CASES, help="run only these cases")
    parser.add_argument("--spd-path", default=str(ROOT), help="the checkout whose spd runs")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    args = parser.parse_args(argv)
    cases = args.case or list(CASES)
    if "idle" not in cases:
        cases.insert(0, "idle")
    stub = HostileThread().start()
    results: dict[str, Any] = {"bench": "hostile", "spd_path": args.spd_path}
    try:
        with tempfile.TemporaryDirectory(prefix="spd-hostile-") as tmp:
            for name in cases:
                results[name] = run_case(name, stub, Path(tmp) / name, Path(args.spd_path),
                                         args.timeout)
    finally:
        stub.stop()
    idle = results["idle"]["peak_rss_mb"]
    results["peak_rss_over_idle"] = {name: round(results[name]["peak_rss_mb"] / idle, 2)
                                     for name in cases if name != "idle"}
    print(orjson.dumps(results).decode())
    return 0
