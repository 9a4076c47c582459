"""The command line as a user meets it: real `spd` subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import re
import pty
import signal
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from support.config import write_config
from support.spd import iso, run_spd, spd_cmd, spd_env, start_spd, stop_spd, wait_for



def assert_one_line_error(result: Any, code: int, expected: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.strip() == expected
    assert "Traceback" not in result.stderr


def test_help_lists_every_command() -> None:
    result = run_spd("--help")
    assert result.returncode == 0
    for command in ("run", "once", "demo", "validate", "check", "status", "reset", "objects", "ops", "sim", "models"):
        assert f"    {command}" in result.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = run_spd("frobnicate")
    assert result.returncode == 2
    assert result.stderr.startswith("spd: argument COMMAND: invalid choice: 'frobnicate'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_ops_lists_every_api() -> None:
    result = run_spd("ops")
    assert result.returncode == 0, result.stderr
    apis = json.loads(result.stdout)
    assert len(apis) == 66
    assert sum(a["operations"] for a in apis) == 370
    orders = next(a for a in apis if a["id"] == "ordersV0")
    assert orders["version"] == "v0"


def test_ops_api_lists_operations_with_rates() -> None:
    result = run_spd("ops", "reports_2021-06-30")
    assert result.returncode == 0, result.stderr
    ops = {op["id"]: op for op in json.loads(result.stdout)}
    assert ops["createReport"]["method"] == "POST"
    assert (ops["createReport"]["rate"], ops["createReport"]["burst"]) == (0.0167, 15)


def test_ops_operation_shows_parameters_and_pagination() -> None:
    result = run_spd("ops", "vendorOrders", "getPurchaseOrders")
    assert result.returncode == 0, result.stderr
    op = json.loads(result.stdout)
    assert (op["method"], op["path"], op["rate"], op["burst"]) == ("GET", "/vendor/orders/v1/purchaseOrders", 10.0, 10)
    limit = next(p for p in op["params"] if p["name"] == "limit")
    assert limit["location"] == "query" and limit["type"] == "integer"
    assert op["pagination"]["token_param"] == "nextToken"


def test_ops_unknown_api_is_a_usage_error() -> None:
    result = run_spd("ops", "orderz")
    assert result.returncode == 2
    assert result.stderr == "spd: unknown API 'orderz'; did you mean ordersV0? (see `spd ops`)\n"
    assert len(result.stderr.strip().splitlines()) == 1


def test_objects_lists_types_with_timestamp_fields() -> None:
    result = run_spd("objects")
    assert result.returncode == 0, result.stderr
    types = {t["name"]: t for t in json.loads(result.stdout)}
    assert types["ordersV0.getOrders"]["supported"] is True
    assert set(types["ordersV0.getOrders"]["timestamp_fields"]) == {"created", "updated"}
    assert "Retail Procurement Orders v1 getPurchaseOrders" in types["vendorOrders.getPurchaseOrders"]["aliases"]


def test_validate_prints_what_would_run(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", {
        "orders": {"object": "ordersV0.getOrders", "timestamp_field": "updated", "interval": "2m",
                   "start_time": "2025-01-01T00:00:00Z"}})
    result = run_spd("validate", "-c", str(config))
    assert result.returncode == 0, result.stderr
    checked = json.loads(result.stdout)  # piped: JSON
    assert (checked["config"], checked["ok"]) == (str(config), True)
    assert {"what": "poller orders", "detail": "ordersV0.getOrders by updated, every 2m from "
            "2025-01-01T00:00:00Z → archive (account sim, emit individually)"} in checked["items"]
    assert "test-secret-value" not in result.stdout and "test-refresh-token" not in result.stdout


def test_validate_bad_config_exits_78_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", {
        "orders": {"object": "ordersV0.getOrders", "interval": "2 minutes"}})
    result = run_spd("validate", "-c", str(config))
    assert_one_line_error(result, 78, (
        f'spd: {config}: pollers.orders.interval (line 13): "2 minutes" is not a duration; '
        "use a number with ms, s, m, h or d, such as 30s or 2m"))


def test_missing_config_uses_spd_config_env(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = run_spd("validate", env=spd_env(SPD_CONFIG=str(missing)))
    assert result.returncode == 78
    assert result.stderr.startswith(f"spd: {missing}: no such file")


def test_status_and_reset(tmp_path: Path, sim_factory: Any) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=300, purchase_orders=10, start=now - timedelta(days=1), end=now, rate_limit=False)
    config = write_config(tmp_path, sim.url, {
        "orders": {"object": "ordersV0.getOrders", "timestamp_field": "updated",
                   "start_time": iso(now - timedelta(days=2))}})
    assert run_spd("once", "-c", str(config)).returncode == 0
    status = run_spd("status", "-c", str(config), "--json")
    row = json.loads(status.stdout)[0]
    assert row["poller"] == "orders" and row["objects_emitted"] >= 290 and row["last_error"] is None
    assert row["watermark"] > iso(now - timedelta(minutes=10))

    refused = run_spd("reset", "-c", str(config), "orders")  # no terminal, no --yes
    assert refused.returncode == 2 and refused.stderr.startswith(
        "spd: reset of poller orders needs confirmation: add --yes (watermark ")

    reset = run_spd("reset", "-c", str(config), "orders", "--to", "2026-01-02T03:04:05+01:00", "--yes")
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.strip() == f"poller orders: watermark {row['watermark']} → 2026-01-02T02:04:05Z"
    rows = json.loads(run_spd("status", "-c", str(config)).stdout)  # piped: JSON without --json
    assert rows[0]["watermark"] == "2026-01-02T02:04:05Z"

    # one reason, worded as `spd once --from` words it (it used to say "is not a date" and then, in
    # parentheses, the parser's own reason with the same advice again)
    bad = run_spd("reset", "-c", str(config), "orders", "--to", "2026-01-02T03:04", "--yes")
    assert_one_line_error(bad, 2, 'spd: --to: "2026-01-02T03:04" has no time zone; add Z or an offset, '
                                  "such as 2026-01-02T03:04Z; a date such as 2026-11-29 means midnight UTC")
    same = run_spd("once", "-c", str(config), "--from", "2026-01-02T03:04")
    assert_one_line_error(same, 2, bad.stderr.strip().replace("--to:", "--from:"))
    unknown = run_spd("reset", "-c", str(config), "nope", "--yes")
    assert_one_line_error(unknown, 2, "spd: unknown poller nope; the config has: orders")


def test_reset_refuses_while_a_daemon_runs(tmp_path: Path, sim_factory: Any) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=50, purchase_orders=10, start=now - timedelta(days=1), end=now, rate_limit=False)
    config = write_config(tmp_path, sim.url, {
        "orders": {"object": "ordersV0.getOrders", "start_time": iso(now - timedelta(days=1))}})
    proc = start_spd("run", "-c", str(config))
    try:
        wait_for(lambda: (tmp_path / "out" / "orders.jsonl").exists(), timeout=30)
        result = run_spd("reset", "-c", str(config), "orders", "--yes")
        assert result.returncode == 1
        assert result.stderr.startswith(f"spd: state {tmp_path / 'state.db'} is held by a running spd daemon")
    finally:
        assert stop_spd(proc, signal.SIGTERM) == 0


def test_validate_checks_what_the_object_type_needs(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", {
        "features": {"object": "fulfillmentOutbound_2020-07-01.getFeatureInventory",
                     "timestamp_field": "updated"}})
    result = run_spd("validate", "-c", str(config))
    assert_one_line_error(result, 78, (
        f"spd: {config}: pollers.features.params (line 11): fulfillmentOutbound_2020-07-01.getFeatureInventory needs "
        "featureName; add featureName: VALUE to params"))


def test_validate_checks_emitter_options(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", {"orders": {"object": "ordersV0.getOrders"}})
    config.write_text(config.read_text().replace("emitters:\n", (
        "emitters:\n  bus: {type: kafka, bootstrap_servers: [127.0.0.1:9], topic: t, "
        "sasl: {mechanism: PLAIN, username: u, password: p}}\n"), 1))
    result = run_spd("validate", "-c", str(config))
    assert_one_line_error(result, 78, (
        f"spd: {config}: emitters.bus.sasl (line 9): needs security_protocol SASL_PLAINTEXT or "
        "SASL_SSL, not PLAINTEXT"))


def test_once_shows_progress_on_a_terminal(tmp_path: Path, sim_factory: Any) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=3000, purchase_orders=10, start=now - timedelta(days=1), end=now,
                      rate_limit=False, latency_ms=5)
    config = write_config(tmp_path, sim.url, {"orders": {
        "object": "ordersV0.getOrders", "start_time": iso(now - timedelta(days=2))}})
    config.write_text(config.read_text().replace("level: info", "level: warning"))
    leader, follower = pty.openpty()
    proc = subprocess.Popen(spd_cmd("once", "-c", str(config)), stderr=follower, stdout=subprocess.DEVNULL,
                            env=spd_env())
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode())  # live lines, redrawn in place
    assert re.search(r"orders: \d+ pages, \d+ objects, window to ", text), text
    final = text.replace("\r", "\n").strip().splitlines()[-1]  # the summary, after the live lines
    assert final.startswith("orders: ") and " objects in " in final and ", watermark " in final
