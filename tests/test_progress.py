"""Progress you can trust (issue 13 item 3): real `spd` subprocesses on a pseudo-terminal against
the simulator, whose token buckets are enforced (a request past the quota gets a 429)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from support.config import write_config
from support.delivery import webhook
from support.spd import iso, read_jsonl, run_spd, start_spd, stop_spd, wait_for
from support.terminal import run_spd_tty

NOW = datetime.now(timezone.utc).replace(microsecond=0)
# the simulator's buckets: one request every 2 s
SLOW = {"ordersV0.getOrders": (0.5, 1), "vendorOrders.getPurchaseOrders": (0.5, 1)}
SLOW_ACCOUNT = ("    rate_limits: {ordersV0.getOrders: {rate: 0.5, burst: 1}, "
                "vendorOrders.getPurchaseOrders: {rate: 0.5, burst: 1}}")


def test_once_shows_pages_position_eta_and_quota_waits(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory(orders=60, purchase_orders=20, start=NOW - timedelta(days=20), end=NOW,
                      rate_limits=SLOW)
    config = write_config(tmp_path, sim.url, {
        "orders": {"object": "ordersV0.getOrders", "timestamp_field": "updated",
                   "start_time": iso(NOW - timedelta(days=21)), "params": {"MaxResultsPerPage": 20}},
        # windows of at most 7 days: the position moves window by window, with an ETA
        "vendor": {"object": "vendorOrders.getPurchaseOrders", "timestamp_field": "updated",
                   "start_time": iso(NOW - timedelta(days=21))}},
        extra_account=SLOW_ACCOUNT, log="{level: info, format: json}")
    result = run_spd_tty("once", "-c", str(config), timeout=120)
    assert result.returncode == 0, result.text
    text = result.text
    # the live lines: pages, objects, position against the target with a share and an ETA
    positions = re.findall(r"vendor: \d+ pages, \d+ objects, window to \S+Z, done to \S+Z of \S+Z \((\d+)%\)"
                           r"(, ETA \d+[sm])?", text)
    assert positions, text
    assert any(eta for share, eta in positions if 0 < int(share) < 100), positions
    assert re.search(r"orders: \d+ pages, \d+ objects, window to \S+Z, done to \S+Z of \S+Z", text), text
    # the waits of every operation's token bucket, named as a person reads them
    assert re.search(r"waiting \d+ s for ordersV0\.getOrders quota, 0\.5/s", text), text
    assert re.search(r"waiting \d+ s for vendorOrders\.getPurchaseOrders quota, 0\.5/s", text), text
    # log lines are whole lines: none is torn by the progress redraws
    logs = [line for line in result.lines if '"event"' in line]
    assert logs and all(line.startswith("{") and line.endswith("}") for line in logs), logs
    for line in logs:
        json.loads(line)
    # the summary stays after the live lines are gone
    assert any(re.fullmatch(r"orders: 6\d objects in \d+ pages, watermark \S+", line) for line in result.lines)
    assert any(re.fullmatch(r"vendor: \d+ objects in [3-9] pages, watermark \S+", line) for line in result.lines)
    assert len(read_jsonl(tmp_path / "out" / "orders.jsonl")) >= 60


def test_once_without_a_terminal_prints_no_progress(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory(orders=30, purchase_orders=5, start=NOW - timedelta(days=1), end=NOW, rate_limit=False)
    config = write_config(tmp_path, sim.url, {
        "orders": {"object": "ordersV0.getOrders", "start_time": iso(NOW - timedelta(days=2))}})
    result = run_spd("once", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "ETA" not in result.stderr and "\x1b[" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("orders: 30 objects in ")


def test_exec_all_pages_shows_progress_then_a_summary_table(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory(orders=5, purchase_orders=12, start=NOW - timedelta(days=3), end=NOW, rate_limits=SLOW)
    config = write_config(tmp_path, sim.url, extra_account=SLOW_ACCOUNT)
    args = ("exec", "vendorOrders.getPurchaseOrders", "-p", "limit=4", "-p",
            f"createdAfter={iso(NOW - timedelta(days=4))}", "-p", f"createdBefore={iso(NOW)}",
            "--all-pages", "-c", str(config))
    result = run_spd_tty(*args)
    assert result.returncode == 0, result.text
    assert re.search(r"vendorOrders\.getPurchaseOrders: [2-9] pages, \d+ objects", result.text), result.text
    assert re.search(r"waiting \d+ s for vendorOrders\.getPurchaseOrders quota, 0\.5/s", result.text)
    header = next(i for i, line in enumerate(result.lines) if line.startswith("OPERATION"))
    assert re.split(r"\s{2,}", result.lines[header]) == ["OPERATION", "PAGES", "RESULTS", "SECONDS"]
    row = re.split(r"\s{2,}", result.lines[header + 1].strip())
    piped = run_spd(*args)  # a script reads the merged answer alone
    assert piped.returncode == 0, piped.stderr
    results = len(json.loads(piped.stdout)["payload"]["orders"])
    assert results >= 12 and row[:3] == ["vendorOrders.getPurchaseOrders", str(-(-results // 4)), str(results)]
    assert "OPERATION" not in piped.stderr and "waiting" not in piped.stderr


def test_status_shows_what_a_running_daemon_does(tmp_path: Path, sim_factory: Any) -> None:
    """Per poller: waiting for quota until T (with the operation and its rate), stalled: reason,
    the lag behind now and the next run; idle once no daemon runs them."""
    sim = sim_factory(orders=60, purchase_orders=5, start=NOW - timedelta(days=1), end=NOW,
                      rate_limits={"ordersV0.getOrders": (0.05, 1)})  # a token every 20 s
    hook = json.dumps(webhook("http://127.0.0.1:9/closed", max_retry_time="500ms"))
    config = write_config(tmp_path, sim.url, {
        "orders": {"object": "ordersV0.getOrders", "timestamp_field": "updated", "interval": "1m",
                   "start_time": iso(NOW - timedelta(days=2)), "params": {"MaxResultsPerPage": 10},
                   "emitters": ["archive"]},
        "vendor": {"object": "vendorOrders.getPurchaseOrders", "timestamp_field": "updated",
                   "interval": "1m", "start_time": iso(NOW - timedelta(days=2)), "emitters": ["hook"]}},
        emitters={"archive": f'{{type: file, path: "{tmp_path}/out/{{poller}}.jsonl"}}', "hook": hook},
        extra_account="    rate_limits: {ordersV0.getOrders: {rate: 0.05, burst: 1}}")
    proc = start_spd("run", "-c", str(config))
    try:
        def rows() -> dict[str, Any]:
            return {r["poller"]: r for r in json.loads(run_spd("status", "-c", str(config)).stdout)}

        waiting = wait_for(lambda: (r := rows())["orders"]["state"].startswith("waiting for quota until")
                           and r["vendor"]["state"].startswith("stalled: ") and r, timeout=60)
        orders, vendor = waiting["orders"], waiting["vendor"]
        assert re.fullmatch(r"waiting for quota until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", orders["state"])
        assert re.fullmatch(r"waiting \d+ s for ordersV0\.getOrders quota, 0\.05/s", orders["waiting_for_quota"])
        assert orders["next_run"] and orders["lag_seconds"] is not None
        assert "127.0.0.1:9" in vendor["state"] and vendor["last_error"]
        def table_while_waiting() -> list[str] | None:  # a token comes every 20 s: catch a wait
            lines = run_spd_tty("status", "-c", str(config)).lines
            return lines if any(line.startswith("orders ") and "waiting for quota until " in line
                                for line in lines) else None

        table = wait_for(table_while_waiting, timeout=60, interval=0.5)
        names = re.split(r"\s{2,}", next(line for line in table if line.startswith("POLLER")))
        assert names == ["POLLER", "STATE", "WATERMARK", "LAG", "NEXT RUN", "LAST RUN", "OBJECTS", "LAST ERROR"]
        # one precision: every time in the table is to the second
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in
                   re.findall(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "\n".join(table)))
    finally:
        assert stop_spd(proc) == 0
    assert {r["state"] for r in json.loads(run_spd("status", "-c", str(config)).stdout)} == {"idle"}


def test_once_shows_report_waits_and_downloads(tmp_path: Path, sim_factory: Any) -> None:
    sim = sim_factory(orders=300, purchase_orders=5, start=NOW - timedelta(days=2), end=NOW, rate_limit=False)
    sim.post("/_sim/reports", {"processing_seconds": 4.0})  # IN_QUEUE, then IN_PROGRESS, then DONE
    config = write_config(tmp_path, sim.url, {"orders-report": {
        "object": "report:GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL",
        "timestamp_field": "updated", "start_time": iso(NOW - timedelta(days=1))}})
    result = run_spd_tty("once", "-c", str(config), timeout=120)
    assert result.returncode == 0, result.text
    assert re.search(r"  report \S+ (IN_QUEUE|IN_PROGRESS), checking again in \d+ s", result.text), result.text
    assert re.search(r"  report \S+: \d+ kB downloaded", result.text), result.text
    assert re.search(r"orders-report: \d+ objects in \d+ pages", result.text)
