"""`spd sim --write-config PATH`: a simulator started by hand writes a ready config for its own
port, and a real `spd once -c PATH` in another process polls it: objects come out, exit 0."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from importlib.resources import files
from pathlib import Path

import pytest

from spd.config.validate import load_config
from spd.sim.config_file import CATCH_UP, render_config
from support.sim_process import SimProcess
from support.spd import iso, run_spd

NOW = datetime.now(timezone.utc).replace(microsecond=0)
POLLERS = {"orders": "ordersV0.getOrders", "search-orders": "orders_2026-01-01.searchOrders",
           "vendor-po": "vendorOrders.getPurchaseOrders"}


def test_spd_once_polls_the_simulator_with_the_config_it_wrote(tmp_path: Path) -> None:
    config = tmp_path / "spd-sim.yaml"
    start = NOW - timedelta(hours=1)  # 600 orders an hour: many in the 15 minutes caught up
    with SimProcess("--write-config", str(config), "--orders", "600", "--start", iso(start)) as sim:
        assert sim.proc is not None and sim.proc.stdout is not None
        said = [sim.proc.stdout.readline() for _ in range(3)]
        assert f"config: {config}" in said[-1]
        assert f"endpoint: {sim.url}" in config.read_text()
        result = run_spd("once", "-c", str(config))
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        truth = sim.get(f"/_sim/objects?type=ordersV0.getOrders&field=updated&after={iso(NOW - CATCH_UP)}")
    assert {m["poller"] for m in lines} <= set(POLLERS)
    orders = {m["id"] for m in lines if m["poller"] == "orders"}
    assert orders and orders <= {o["id"] for o in truth["objects"]}
    assert (tmp_path / "spd-sim-state.db").exists()  # the state sits beside the config


def test_the_written_config_is_valid_without_spd_demos_variables(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPD_SIM_URL", "SPD_STATE_DIR", "SPD_DEMO_START"):
        monkeypatch.delenv(name, raising=False)
    template = (files("spd._config") / "demo.yaml").read_text()
    path = tmp_path / "here.yaml"
    path.write_text(render_config(template, path, "http://127.0.0.1:9", ["A1PA6795UKMFR9", "A13V1IB3VIYZZH"], NOW))
    config = load_config(path)
    account = config.accounts["demo"]
    assert str(account.endpoint).rstrip("/") == "http://127.0.0.1:9"
    assert list(account.marketplace_ids) == ["A1PA6795UKMFR9", "A13V1IB3VIYZZH"]
    assert {name: p.start_time for name, p in config.pollers.items()} == dict.fromkeys(POLLERS, NOW - CATCH_UP)
    assert Path(config.state.path) == tmp_path / "here-state.db"


def test_an_unwritable_path_is_one_line_and_exit_1(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "spd-sim.yaml"
    result = run_spd("sim", "--port", "0", "--write-config", str(target))
    assert result.returncode == 1
    assert result.stderr == f"spd sim: cannot write {target}: No such file or directory\n"


def test_write_config_is_refused_with_pager(tmp_path: Path) -> None:
    result = run_spd("sim", "--port", "0", "--pager", "--write-config", str(tmp_path / "x.yaml"))
    assert result.returncode == 2 and "--write-config is for the simulated seller" in result.stderr
    assert not (tmp_path / "x.yaml").exists()
