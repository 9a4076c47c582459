"""The daemon's HTTP endpoint: /metrics, /healthz, /readyz from a real `spd run` subprocess."""

from __future__ import annotations

import re
import signal
import socket
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from support.config import POLLERS, write_config
from support.spd import iso, run_spd, start_spd, stop_spd, wait_for



def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def objects_emitted(metrics: str) -> float:
    """The orders poller's spd_objects_emitted_total, or 0 before it is there."""
    found = re.search(r'^spd_objects_emitted_total\{object_type="ordersV0.getOrders",poller="orders"\} (\S+)$',
                      metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def with_http(config: Path, listen: str) -> None:
    config.write_text(config.read_text() + f"http: {{listen: \"{listen}\"}}\n")


def test_metrics_health_and_readiness(tmp_path: Path, sim_factory: Any) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=400, purchase_orders=10, start=now - timedelta(days=1), end=now, rate_limit=False)
    config = write_config(tmp_path, sim.url, {"orders": {**POLLERS["orders"], "start_time": iso(now - timedelta(days=1))}})
    port = free_port()
    with_http(config, f"127.0.0.1:{port}")
    proc = start_spd("run", "-c", str(config))
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_for(lambda: fetch(f"{base}/readyz")[0] == 200, timeout=30)
        assert fetch(f"{base}/healthz") == (200, '{"status": "ok"}')
        body = wait_for(lambda: (lambda t: t if objects_emitted(t) >= 350 else None)(fetch(f"{base}/metrics")[1]),
                        timeout=30)
        assert 'spd_requests_total{account="sim",operation="ordersV0.getOrders"}' in body
        assert 'spd_rate_limit{account="sim",operation="ordersV0.getOrders"} 1000.0' in body
        assert 'spd_poller_failing{object_type="ordersV0.getOrders",poller="orders"} 0.0' in body
    finally:
        assert stop_spd(proc, signal.SIGTERM) == 0
    assert fetch(f"{base}/healthz")[0] == 0  # closed with the daemon


def test_port_in_use_is_one_line_error(tmp_path: Path, sim_factory: Any) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=10, purchase_orders=10, start=now - timedelta(days=1), end=now, rate_limit=False)
    config = write_config(tmp_path, sim.url, {"orders": {**POLLERS["orders"], "start_time": iso(now - timedelta(days=1))}})
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with_http(config, f"127.0.0.1:{port}")
        result = run_spd("run", "-c", str(config), timeout=60)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"spd: {config}: http.listen: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in result.stderr
