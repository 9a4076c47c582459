"""`python -m tests.bench scale [--accounts 2000] [--interval 60] [--idle 70] [--long-interval 3600]
[--quiet 60]`: one `spd run` process with accounts x 5 object types pollers (10,000 by default)
against the simulator (its own process, Amazon's usage plans enforced, one bucket per account):
peak RSS, CPU share over a round and between bursts, the p99 lateness of scheduled runs, starved
pollers, 429s and fsyncs per minute.

- Catch-up: from start until every poller has completed its first run (`poll_completed` in the
  daemon's JSON logs); each starts one hour back, so that is one or two pages per poller.
  When not every poller got there within `--catch-up-timeout`, the bench reports how many did,
  the peak RSS and the log's warnings, and measures nothing else.
- Idle: the next `--idle` seconds (default interval + 10 s: one full round of scheduled runs);
  pollers keep running on their interval, finding little new. `idle_cpu_share` = CPU seconds of
  the daemon / wall seconds over the whole window; `cpu_ms_per_run` = the daemon's CPU over the
  window / the runs that began in it. With more than interval x 100 pollers (the daemon's
  FIRST_RUNS_PER_SECOND) their runs are spread over the whole interval: no second of the round
  is without a run in flight.
- Between bursts (`between_bursts`): then the same fleet again, in a fresh daemon, simulator and
  state, on `--long-interval` (3600 s; 0 skips it), as pollers of hourly data run. Their first
  runs are one burst (spread at 100 per second, at most over the interval), and the next are due
  an interval later (APScheduler's jitter only adds to it), so for the `--quiet` seconds after
  the catch-up nothing is scheduled: `cpu_share` = the daemon's CPU / wall seconds there, what it
  costs to hold the fleet between bursts (timers, the live file for `spd status`, state and
  emitter upkeep). `runs_in_window` counts the runs that began or were in flight in the window:
  0, or the figure is not between bursts.
- Lateness: the daemon runs in a process that is exactly `spd run` except that APScheduler's
  coroutine-job runner is wrapped to log `poll_started` with the scheduled (jittered) run time and
  the moment the run actually began; lateness = began - scheduled, for the runs scheduled inside
  the idle window. The first runs (all due at start) are reported apart as `catch_up`.
- Starved: pollers none of whose scheduled runs began inside the idle window (which holds at
  least one interval, so each poller is due at least once).
- fsyncs: the daemon runs under `strace -f --seccomp-bpf -e trace=fsync,fdatasync` (only those
  calls stop the process), counted inside the idle window, per minute, apart for the state
  database and the emitter's files; `--no-strace` skips it.
- sim_cpu_share: the simulator's CPU share in the idle window; it shares the machine, and near
  one core it is the simulator, not spd, that sets the pace.
- 429s: the simulator's count of throttled requests over the whole run.
- Peak RSS: VmHWM of the daemon process at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import psutil

from tests.bench.throughput import ROOT, SimProcess, account_yaml, iso
from tests.support.sim_process import cpu_seconds

# (object type, timestamp field): two Orders APIs, vendor orders and two generic types.
OBJECT_TYPES = (
    ("ordersV0.getOrders", "updated"),
    ("orders_2026-01-01.searchOrders", "updated"),
    ("vendorOrders.getPurchaseOrders", "created"),
    ("financesV0.listFinancialEventGroups", "created"),
    ("fulfillmentInboundV0.getShipments", "updated"),
)


def fleet_yaml(url: str, accounts: int, out_path: str, interval: int) -> list[str]:
    """The accounts, one file emitter (`out_path`) and accounts x OBJECT_TYPES pollers starting
    an hour back, as config lines (the scale and cluster benches' fleet)."""
    start = iso(datetime.now(timezone.utc) - timedelta(hours=1))
    lines = ["accounts:"]
    for a in range(accounts):
        lines += account_yaml(f"acct{a:03d}", url, refresh_token=f"bench-refresh-{a:03d}")
    lines += ["emitters:", f'  file: {{type: file, path: "{out_path}"}}', "pollers:"]
    for a in range(accounts):
        for n, (object_type, field) in enumerate(OBJECT_TYPES):
            lines += [f"  acct{a:03d}-t{n}:", f"    account: acct{a:03d}", f"    object: {object_type}",
                      f"    timestamp_field: {field}", "    emit: page", f"    start_time: {start}",
                      f"    interval: {interval}s", "    emitters: [file]"]
    return lines


def write_config(tmp: Path, url: str, accounts: int, interval: int) -> tuple[Path, int]:
    """accounts x OBJECT_TYPES pollers, each account with its own refresh token (own buckets)."""
    lines = [f"state: {{path: {tmp / 'state.db'}}}", "log: {level: info, format: json}",
             *fleet_yaml(url, accounts, f"{tmp / 'out'}/{{account}}.jsonl", interval)]
    path = tmp / "spd.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path, accounts * len(OBJECT_TYPES)


def instrumented_run(config: str) -> int:
    """`spd run -c CONFIG`, with `poll_started` (scheduled vs began) and `poll_skipped` logged."""
    import structlog
    from apscheduler.executors import asyncio as executor
    from apscheduler.executors.base import MaxInstancesReachedError

    from spd.cli import main as spd_main

    log = structlog.get_logger("bench.scale")
    run_job = executor.run_coroutine_job

    async def timed(job: Any, alias: str, run_times: list[datetime], logger_name: str) -> Any:
        log.info("poll_started", poller=job.id, scheduled=run_times[-1].timestamp(), began=time.time())
        return await run_job(job, alias, run_times, logger_name)

    submit = executor.AsyncIOExecutor.submit_job

    def counted(self: Any, job: Any, run_times: list[datetime]) -> None:
        try:
            submit(self, job, run_times)
        except MaxInstancesReachedError:
            log.info("poll_skipped", poller=job.id, scheduled=run_times[-1].timestamp())
            raise

    executor.run_coroutine_job = timed
    executor.AsyncIOExecutor.submit_job = counted
    return spd_main(["run", "-c", config])


class LogReader:
    """Reads the daemon's JSON log lines as they are appended."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.events: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        new = []
        for line in data[:end].splitlines():
            try:
                new.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                new.append({"event": "not_json", "line": line.decode(errors="replace")[:200]})
        self.events += new
        return new


def wait_catch_up(proc: psutil.Process, logs: LogReader, pollers: int, timeout: float) -> tuple[float, int]:
    """Seconds until every poller completed (or failed) a first run, and how many did (fewer
    when `timeout` ran out or the daemon died)."""
    began = time.monotonic()
    done: set[str] = set()
    while len(done) < pollers:
        if not proc.is_running() or time.monotonic() - began > timeout:
            break
        time.sleep(0.5)
        done |= {e["poller"] for e in logs.read() if e.get("event") in ("poll_completed", "poll_failed")}
    return time.monotonic() - began, len(done)


def run_spans(events: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(began, ended) epoch times of every run the logs show (ended: its poll_completed or
    poll_failed line)."""
    open_runs: dict[str, float] = {}
    spans = []
    for e in events:
        if e.get("event") == "poll_started":
            open_runs[e["poller"]] = e["began"]
        elif e.get("event") in ("poll_completed", "poll_failed") and e.get("poller") in open_runs:
            ended = datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
            spans.append((open_runs.pop(e["poller"]), ended))
    return spans + [(began, float("inf")) for began in open_runs.values()]


def durations(spans: list[tuple[float, float]], since: float, until: float) -> dict[str, Any]:
    """p50/p99 seconds of the runs that began inside [since, until) (unfinished: infinite)."""
    taken = [e - b for b, e in spans if since <= b < until]
    p50, p99 = percentile(taken, 50), percentile(taken, 99)
    return {"p50_s": None if p50 is None else round(p50, 2),
            "p99_s": None if p99 is None else round(p99, 2)}


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def lateness(events: list[dict[str, Any]], since: float, until: float) -> dict[str, Any]:
    late = [e["began"] - e["scheduled"] for e in events
            if e.get("event") == "poll_started" and since <= e["scheduled"] < until]
    skipped = sum(1 for e in events
                  if e.get("event") == "poll_skipped" and since <= e["scheduled"] < until)
    ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
    return {"runs": len(late), "skipped_still_running": skipped, "p50_ms": ms(percentile(late, 50)),
            "p99_ms": ms(percentile(late, 99)), "max_ms": ms(max(late, default=None))}


def starved(events: list[dict[str, Any]], pollers: int, since: float, until: float) -> int:
    """Pollers none of whose scheduled runs began inside [since, until)."""
    ran = {e["poller"] for e in events if e.get("event") == "poll_started" and since <= e["began"] < until}
    return pollers - len(ran)


def fsyncs(trace: Path, since: float, until: float) -> dict[str, int]:
    """fsync/fdatasync calls in the strace output (`-ttt` epoch stamps, `-y` paths) inside
    [since, until): of the state database (its -wal included) and of the emitter's files."""
    count = {"state": 0, "output": 0}
    with trace.open() as f:
        for line in f:
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[2].startswith(("fsync(", "fdatasync(")):
                if since <= float(parts[1]) < until:
                    count["state" if "state.db" in parts[2] else "output"] += 1
    return count


def daemon_process(popen: subprocess.Popen[bytes], daemon_cmd: list[str], traced: bool) -> psutil.Process:
    """The daemon: the child itself, or the process strace runs `daemon_cmd` in. Not just any
    child naming `--daemon`: strace first forks a short-lived child of its own to try seccomp,
    whose command line is strace's; taken for the daemon, it is gone a moment later."""
    proc = psutil.Process(popen.pid)
    for _ in range(200):
        if not traced:
            return proc
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.cmdline() == daemon_cmd:
                    return child
        time.sleep(0.05)
    raise SystemExit("the daemon did not start under strace")


def counts(events: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        if e.get("level") in ("error", "warning") or e.get("event") == "not_json":
            out[e.get("event", "?")] = out.get(e.get("event", "?"), 0) + 1
    return out


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Daemon:
    """One instrumented `spd run`: its process, its log, and where strace counts its fsyncs."""

    proc: psutil.Process
    logs: LogReader
    trace: Path | None
    exit_code: int | None = None


@contextlib.contextmanager
def spd_run(config: Path, tmp: Path, trace: bool) -> Iterator[Daemon]:
    """The daemon of `config` (under strace with `trace`), stopped with SIGTERM on leaving."""
    log_path, trace_path = tmp / "spd.log", tmp / "strace.out"
    daemon_cmd = [sys.executable, "-m", "tests.bench.scale", "--daemon", str(config)]
    cmd = daemon_cmd
    if trace:
        cmd = ["strace", "-f", "-qq", "-y", "--seccomp-bpf", "-ttt", "-e", "trace=fsync,fdatasync",
               "-o", str(trace_path), *daemon_cmd]
    popen = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log_path.open("wb"))
    daemon = Daemon(daemon_process(popen, daemon_cmd, trace), LogReader(log_path),
                    trace_path if trace else None)
    try:
        yield daemon
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            daemon.proc.send_signal(signal.SIGTERM)  # the daemon itself (strace would detach from it)
        try:
            daemon.exit_code = popen.wait(120)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(psutil.NoSuchProcess):
                daemon.proc.kill()
            popen.kill()  # strace, should it still wait for some other child
            daemon.exit_code = popen.wait(30)


@dataclass
class Window:
    """The measured window (epoch times) and the CPU seconds the daemon and the simulator spent in it."""

    since: float
    until: float
    cpu: float
    sim_cpu: float

    @property
    def wall(self) -> float:
        return self.until - self.since


def measure(proc: psutil.Process, sim: psutil.Process, seconds: float) -> Window:
    """The next `seconds`: CPU of the daemon and of the simulator."""
    since, cpu, sim_cpu = time.time(), cpu_seconds(proc), cpu_seconds(sim)
    time.sleep(seconds)
    return Window(since, time.time(), cpu_seconds(proc) - cpu, cpu_seconds(sim) - sim_cpu)


@dataclass
class Phase:
    """One daemon against its own simulator: its catch-up, then a measured window (None when not
    every poller caught up), and what its logs, strace and the simulator saw."""

    pollers: int
    started: float
    catch_up_s: float
    caught_up: int
    window: Window | None
    rss_mb: float
    events: list[dict[str, Any]]
    trace: Path | None
    exit_code: int | None
    sim_requests: int
    sim_throttled: int

    def head(self) -> dict[str, Any]:
        return {"catch_up_s": round(self.catch_up_s, 1), "caught_up_pollers": self.caught_up,
                "peak_rss_mb": round(self.rss_mb, 1)}

    def tail(self) -> dict[str, Any]:
        return {"warnings_errors": counts(self.events), "exit_code": self.exit_code,
                "sim_requests": self.sim_requests, "sim_throttled_429": self.sim_throttled}

    def fsyncs_per_min(self) -> dict[str, int] | None:
        if self.trace is None or self.window is None:
            return None
        found = fsyncs(self.trace, self.window.since, self.window.until)
        return {k: round(v * 60 / self.window.wall) for k, v in found.items()}


def run_phase(accounts: int, interval: int, seconds: float, tmp: Path, trace: bool,
              catch_up_timeout: float, keep_log: Path | None) -> Phase:
    """The fleet on `interval` in a fresh simulator and state: catch-up, then `seconds` measured."""
    tmp.mkdir(parents=True, exist_ok=True)
    with SimProcess() as sim:
        assert sim.proc is not None
        sim_proc = psutil.Process(sim.proc.pid)
        config, pollers = write_config(tmp, sim.url, accounts, interval)
        with spd_run(config, tmp, trace) as daemon:
            started = time.time()
            catch_up, caught_up = wait_catch_up(daemon.proc, daemon.logs, pollers, catch_up_timeout)
            window = measure(daemon.proc, sim_proc, seconds) if caught_up == pollers else None
            rss = peak_rss_mb(daemon.proc.pid) if daemon.proc.is_running() else 0.0
            daemon.logs.read()  # up to the window's end: not the stop's own lines
        stats = sim.get("/_sim/stats")["operations"]
    if keep_log is not None:
        shutil.copyfile(daemon.logs.path, keep_log)
    return Phase(pollers, started, catch_up, caught_up, window, rss, daemon.logs.events, daemon.trace,
                 daemon.exit_code, sum(s.get("requests", 0) for s in stats.values()),
                 sum(s.get("throttled", 0) for s in stats.values()))


def round_figures(phase: Phase) -> dict[str, Any]:
    """The idle window of the fleet on its usual interval: one full round of scheduled runs."""
    window, events = phase.window, phase.events
    if window is None:
        return {}
    late = lateness(events, window.since, window.until)
    return {
        "idle_window_s": round(window.wall, 1), "idle_cpu_share": round(window.cpu / window.wall, 3),
        # what the round costs per run: with the runs spread over the whole interval (more
        # than interval x FIRST_RUNS_PER_SECOND pollers) there is no quiet second to measure
        "cpu_ms_per_run": round(window.cpu * 1000 / late["runs"], 2) if late["runs"] else None,
        "lateness_idle": late,
        "lateness_catch_up": lateness(events, phase.started - 5, window.since),
        "starved_pollers": starved(events, phase.pollers, window.since, window.until),
        "run_duration": durations(run_spans(events), window.since, window.until),
        "fsyncs_per_min": phase.fsyncs_per_min(),
        # The simulator shares the machine: near 1.0 it, not spd, sets the pace.
        "sim_cpu_share": round(window.sim_cpu / window.wall, 3),
    }


def burst_figures(phase: Phase, interval: int) -> dict[str, Any]:
    """The quiet window after the catch-up burst of the fleet on a long interval."""
    figures: dict[str, Any] = {"interval_s": interval, **phase.head()}
    window = phase.window
    if window is not None:
        spans = run_spans(phase.events)
        figures.update({
            "window_s": round(window.wall, 1), "cpu_share": round(window.cpu / window.wall, 4),
            # 0, or the window is not between bursts
            "runs_in_window": sum(1 for b, e in spans if b < window.until and e > window.since),
            "fsyncs_per_min": phase.fsyncs_per_min(),
        })
    return {**figures, **phase.tail()}


def run(args: argparse.Namespace, tmp: Path, trace: bool) -> dict[str, Any]:
    """The round on `--interval`, then (unless `--long-interval 0`) the quiet after a burst."""
    idle = args.interval + 10.0 if args.idle is None else args.idle
    fleet = run_phase(args.accounts, args.interval, idle, tmp / "round", trace, args.catch_up_timeout,
                      args.keep_log)
    pollers = args.accounts * len(OBJECT_TYPES)
    result = {"bench": "scale", "accounts": args.accounts, "pollers": pollers,
              "interval_s": args.interval, **fleet.head(), **round_figures(fleet), **fleet.tail()}
    if args.long_interval > 0:
        keep = args.keep_log.with_name(args.keep_log.name + ".between-bursts") if args.keep_log else None
        quiet = run_phase(args.accounts, args.long_interval, args.quiet, tmp / "between-bursts", trace,
                          args.catch_up_timeout, keep)
        result["between_bursts"] = burst_figures(quiet, args.long_interval)
    return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["--daemon"]:
        return instrumented_run(argv[1])
    parser = argparse.ArgumentParser(prog="python -m tests.bench scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=2000, help="accounts (x 5 object types)")
    parser.add_argument("--interval", type=int, default=60, help="poll interval, seconds")
    parser.add_argument("--idle", type=float, default=None,
                        help="idle window, seconds (default: interval + 10, so it holds one full "
                             "round of scheduled runs; a shorter one can hold none at all)")
    parser.add_argument("--long-interval", type=int, default=3600,
                        help="then the same fleet on this interval, to measure the CPU between "
                             "bursts (0: skip that phase)")
    parser.add_argument("--quiet", type=float, default=60,
                        help="seconds measured after that phase's catch-up burst (no run is due "
                             "in them)")
    parser.add_argument("--no-strace", action="store_true", help="do not count fsyncs (no strace)")
    parser.add_argument("--keep-log", type=Path,
                        help="copy the daemon's JSON log here (the second phase's to PATH.between-bursts)")
    parser.add_argument("--catch-up-timeout", type=float, default=900,
                        help="give up (and report how many pollers caught up) after this long")
    args = parser.parse_args(argv)
    trace = not args.no_strace and shutil.which("strace") is not None
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args, Path(tmp), trace)
    print(orjson.dumps(result).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
