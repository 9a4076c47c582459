"""The benchmarks still run: each at a tiny size, checked for sane figures (never for speed)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sp_api", reason="the benchmarks' peer: pip install -e '.[bench]'")
pytest.importorskip("psutil", reason="pip install -e '.[bench]'")

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str, timeout: float = 120) -> dict[str, Any]:
    """Runs `python -m tests.bench ARGS` and returns its one JSON line. The bench runs in a
    session of its own: past `timeout` its Python stacks go into the failure (faulthandler on
    SIGABRT), and the whole session is killed, the daemons and simulators it started included;
    left behind, they would load the machine for the rest of the run."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        os.killpg(proc.pid, signal.SIGKILL)  # its children hold the pipes open
        stdout, stderr = proc.communicate()
        raise AssertionError(f"the bench ran over {timeout:g}s; where it was:\n{stderr[-6000:]}") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-2000:]
    lines = stdout.strip().splitlines()
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def test_throughput_runs_every_client_over_the_same_pages() -> None:
    out = bench("throughput", "--orders", "600", "--small", "150", "--rounds", "1")
    for size, least in (("large", 500), ("small", 100)):
        counts = [out[f"{c}_{size}"]["objects"] for c in ("spd", "sp_api", "sp_api_orjson", "bare")]
        assert min(counts) > least and max(counts) == min(counts), out  # seeded data only
    assert out["spd_large"]["objects"] > out["spd_small"]["objects"] + 100, out
    # the same lines: spd's page envelope around the same orders
    sizes = [out[f"{c}_large"]["bytes_per_object"] for c in ("spd", "sp_api", "sp_api_orjson", "bare")]
    assert max(sizes) - min(sizes) <= 0.05 * max(sizes), out
    # the peer's two writers (json and orjson) write the same bytes
    assert out["sp_api_large"]["bytes_per_object"] == out["sp_api_orjson_large"]["bytes_per_object"], out
    for mode in ("stdout", "file", "webhook"):
        assert abs(out[f"spd_individual_{mode}"]["objects"] - out["spd_small"]["objects"]) <= 3, out
    assert out["cpu_spd_over_sp_api"] > 0 and out["wall_spd_over_bare"] > 0, out
    assert all(out[f"{c}_large"]["sim_cpu_s"] >= 0 for c in ("spd", "sp_api", "bare", "floor")), out


def test_startup_times_ready_help_and_validate() -> None:
    out = bench("startup", "--pollers", "10", "--rounds", "1")
    assert out["pollers"] == 10, out
    # Every figure is there; none is compared with another: one round on a shared machine can
    # time the bare interpreter (~20 ms) slower than `spd --help`.
    assert all(out[f"{case}_s"] > 0 for case in ("python", "help", "validate", "ready")), out
    assert all(out[f"{case}_over_python"] > 0 for case in ("help", "validate", "ready")), out


def test_ratelimit_counts_requests_and_429s_of_each_client() -> None:
    out = bench("ratelimit", "--seconds", "1", "--purchase-orders", "2000")
    for client in ("spd", "sp_api", "sp_api_paced"):
        assert out[client]["ok"] > 0 and out[client]["quota"] > 10, out
    assert out["spd"]["throttled_429"] == 0, out


def test_scale_reports_rss_cpu_lateness_and_cpu_between_bursts() -> None:
    out = bench("scale", "--accounts", "2", "--interval", "2", "--idle", "5",  # idle spans 2+ intervals: no poller misses the window by chance
                "--quiet", "3")
    assert out["pollers"] == 10 and out["exit_code"] == 0, out
    assert out["peak_rss_mb"] > 10 and out["lateness_idle"]["runs"] > 0 and out["cpu_ms_per_run"] > 0, out
    assert out["warnings_errors"] == {} and out["starved_pollers"] == 0, out
    assert out["fsyncs_per_min"] is None or set(out["fsyncs_per_min"]) == {"state", "output"}, out
    # the same fleet on an hourly interval: after its catch-up no run is due for an hour
    quiet = out["between_bursts"]
    assert quiet["interval_s"] == 3600 and quiet["caught_up_pollers"] == 10 and quiet["exit_code"] == 0, quiet
    assert quiet["window_s"] >= 3 and quiet["cpu_share"] >= 0 and quiet["runs_in_window"] == 0, quiet
    assert quiet["warnings_errors"] == {} and quiet["sim_throttled_429"] == 0, quiet


def test_hostile_measures_a_real_spd_against_the_stub() -> None:
    out = bench("hostile", "--case", "getorders_50mb", "--case", "yaml_bomb", "--timeout", "60")
    assert out["idle"]["exit_code"] == 0 and out["idle"]["peak_rss_mb"] > 10, out
    assert out["getorders_50mb"]["exit_code"] == 1 and not out["getorders_50mb"]["timeout"], out
    assert "larger than 10 MiB" in out["getorders_50mb"]["last_line"], out
    assert out["yaml_bomb"]["exit_code"] == 78 and not out["yaml_bomb"]["traceback"], out
    assert set(out["peak_rss_over_idle"]) == {"getorders_50mb", "yaml_bomb"}, out


def test_parsers_compare_the_libraries_with_the_hand_written_code_on_the_same_input() -> None:
    out = bench("parsers", "--mb", "0.3", "--rounds", "1", "--items", "20")
    for shape in ("json_array", "json_sections"):  # the bench checks the two parsers agree
        assert out[shape]["rows"] > 300 and out[shape]["handwritten_over_ijson"] > 0, out
    assert out["inbound_plan_body"]["refused_by_jsonschema"] == 0, out  # a valid body passes both
    if "sandbox_bodies" in out:  # with Amazon's models: both refuse the same examples
        assert out["sandbox_bodies"]["refused_by_jsonschema"] == out["sandbox_bodies"]["refused_by_handwritten"], out


def test_push_measures_pushed_notifications_beside_the_poller() -> None:
    out = bench("push", "--seconds", "15", "--interval", "5")
    assert out["exit_code"] == 0, out
    assert out["push"]["count"] > 0 and 0 < out["push"]["p50_s"] <= out["push"]["p99_s"], out
    # the poller sees a change only after Amazon's 2-minute rule: nothing yet in 15 s
    assert out["poll"]["count"] == 0, out


def test_cluster_measures_takeover_heartbeats_and_database_load() -> None:
    out = bench("cluster", "--pollers", "15", "--window", "3")
    assert out["accounts"] == 3 and out["takeover_accounts"] >= 1, out
    assert 0 < out["takeover_s"] < 4 * out["lease_ttl_s"] and out["db_transactions_per_s"] > 0, out
    assert out["heartbeat_ms_p50"] > 0 and out["heartbeat_over_select1"] > 1, out


def test_a_throughput_client_imports_nothing_of_spd() -> None:
    # Each client runs as `python -m tests.bench.throughput --client NAME`: what the module
    # imports is counted in every client's start-up (spd.sim once added ~0.3 s of CPU to each).
    code = ("import sys, tests.bench.throughput; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('spd', 'aiohttp')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout
