"""The daemon's HTTP endpoint: /metrics, /healthz, /readyz from a real `spd run` subprocess."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from support.config import POLLERS, write_config
from support.spd import iso, run_spd, start_spd, stop_spd, wait_for
from support.webhook_receiver import WebhookReceiver

from spd.app.health import Liveness
from spd.client.observe import LATENCY_BOUNDS, LatencyHistogram, QuotaClock


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


def metric(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a /metrics text, None when it is not there."""
    selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(selector)}\}} (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_readyz_503_while_a_poller_is_stalled_not_while_one_waits_for_quota(tmp_path: Path, sim_factory: Any) -> None:
    """A real `spd run`: `vendor` delivers to a webhook answering 500 (stalled, /readyz 503 naming
    it and its error, then 200 again once the receiver answers); `orders` waits 10 s per page for
    quota at a 1 s interval and is never called stalled. /metrics carries the process collector
    and a latency histogram per operation whose count is the requests sent."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=400, purchase_orders=5, start=now - timedelta(days=1), end=now,
                      rate_limits={"ordersV0.getOrders": (0.1, 1)})
    hook = WebhookReceiver("whsec-readyz-0123456789").start()
    hook.set(500)
    try:
        every_second = {"timestamp_field": "updated", "interval": "1s", "start_time": iso(now - timedelta(days=1))}
        pollers = {"orders": {"object": "ordersV0.getOrders", **every_second, "emitters": ["archive"]},
                   "vendor": {"object": "vendorOrders.getPurchaseOrders", **every_second, "emitters": ["hook"]}}
        emitters = {"archive": f'{{type: file, path: "{tmp_path / "out"}/{{poller}}.jsonl"}}',
                    "hook": f"{{type: webhook, url: '{hook.url}', secret: whsec-readyz-0123456789, "
                            "timeout: 1s, max_retry_time: 1s}"}
        account = "    rate_limits: {ordersV0.getOrders: {rate: 0.1, burst: 1}}"
        config = write_config(tmp_path, sim.url, pollers, emitters=emitters, extra_account=account)
        port = free_port()
        with_http(config, f"127.0.0.1:{port}")
        base = f"http://127.0.0.1:{port}"
        proc = start_spd("run", "-c", str(config))
        try:
            status, body = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(fetch(f"{base}/readyz")),
                                    timeout=30)
            answer = json.loads(body)
            assert answer["status"] == "not ready" and set(answer["stalled"]) == {"vendor"}, answer
            assert answer["stalled"]["vendor"]["seconds"] >= 3 * answer["stalled"]["vendor"]["interval_seconds"]
            assert "not delivered" in answer["stalled"]["vendor"]["last_error"]
            # orders waits ~10 s (ten of its intervals) for each page: waiting, never stalled
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                answer = json.loads(fetch(f"{base}/readyz")[1])
                assert "orders" not in answer.get("stalled", {}), answer
                time.sleep(0.5)
            metrics = fetch(f"{base}/metrics")[1]
            assert (metric(metrics, "spd_requests_total", account="sim", operation="ordersV0.getOrders")
                    or 0) >= 2  # at least one wait for quota happened in the window above
            hook.set("ok")
            assert wait_for(lambda: fetch(f"{base}/readyz")[0] == 200, timeout=30)
            metrics = fetch(f"{base}/metrics")[1]
        finally:
            assert stop_spd(proc, signal.SIGTERM) == 0
    finally:
        hook.stop()
    assert metric(metrics, "process_resident_memory_bytes") is None  # unlabelled: no braces
    assert re.search(r"^process_resident_memory_bytes \d", metrics, re.MULTILINE)
    assert re.search(r"^process_cpu_seconds_total \S+$", metrics, re.MULTILINE)
    for op in ("ordersV0.getOrders", "vendorOrders.getPurchaseOrders"):
        sent = metric(metrics, "spd_requests_total", account="sim", operation=op)
        count = metric(metrics, "spd_request_duration_seconds_count", account="sim", operation=op)
        every = metric(metrics, "spd_request_duration_seconds_bucket", account="sim", le="+Inf", operation=op)
        assert sent and count == sent == every, (op, sent, count, every)
        assert metric(metrics, "spd_request_duration_seconds_sum", account="sim", operation=op) > 0
    assert metric(metrics, "spd_throttled_total", account="sim", operation="ordersV0.getOrders") == 0


def test_quota_waits_do_not_count_towards_a_stall() -> None:
    now = [100.0]
    live = Liveness(clock=lambda: now[0])
    live.track({"orders": 10.0, "vendor": 10.0})
    clock = live.quota_clock("orders")
    assert clock is not None
    clock.begin()  # orders waits 50 s for a token
    now[0] += 29
    assert live.stalled() == {}
    now[0] += 21
    assert set(live.stalled()) == {"vendor"}  # vendor made no progress for 50 s; orders waited
    clock.end()
    now[0] += 29
    assert set(live.stalled()) == {"vendor"}
    now[0] += 2  # 31 s without progress besides the wait
    assert live.stalled()["orders"] == (31.0, 10.0)
    live.progressed("orders")
    live.track({"orders": 10.0})  # a reload dropped vendor and kept orders' clock
    assert live.stalled() == {}
    assert live.quota_clock("vendor") is None


def test_overlapping_quota_waits_count_once_and_latency_buckets_are_cumulative() -> None:
    now = [0.0]
    clock = QuotaClock(lambda: now[0])
    clock.begin()
    now[0] = 2.0
    clock.begin()  # the prefetch of the next page waits too
    now[0] = 5.0
    clock.end()
    assert clock.waiting and clock.waited() == 5.0
    now[0] = 6.0
    clock.end()
    assert not clock.waiting and clock.waited() == 6.0
    histogram = LatencyHistogram()
    for seconds in (0.01, 0.05, 0.3, 100.0):
        histogram.observe(seconds)
    buckets = dict(histogram.cumulative())
    assert buckets["0.05"] == 2 and buckets["0.5"] == 3 and buckets[repr(LATENCY_BOUNDS[-1])] == 3
    assert buckets["+Inf"] == 4 and histogram.total == 100.36
