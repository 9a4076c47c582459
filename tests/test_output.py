"""Tables for people, JSON for scripts: every listing command, run as a real `spd` on a
pseudo-terminal (a table), piped (JSON) and with `--json` on the terminal (JSON)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from support.config import write_config
from support.spd import run_spd, spd_env
from support.terminal import run_spd_tty


def table(lines: list[str], header: str) -> tuple[list[str], list[list[str]]]:
    """The header's column names and each row's cells, split where the header's columns start."""
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    names = re.split(r"\s{2,}", lines[start].strip())
    rows = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == len(names), line
        rows.append(cells)
    return names, rows


def test_ops_prints_an_aligned_table_on_a_terminal() -> None:
    result = run_spd_tty("ops")
    assert result.returncode == 0, result.text
    names, rows = table(result.lines, "API")
    assert names == ["API", "VERSION", "OPERATIONS", "TITLE"]
    assert len(rows) == 66
    assert ["ordersV0", "v0", "10", "Selling Partner API for Orders"] in rows
    assert sum(int(r[2]) for r in rows) == 370
    assert "{" not in result.text  # no JSON on a terminal


def test_ops_of_an_api_is_a_table_and_json_when_asked() -> None:
    result = run_spd_tty("ops", "ordersV0")
    names, rows = table(result.lines, "OPERATION")
    assert names == ["OPERATION", "METHOD", "PATH", "RATE", "BURST"]
    assert ["getOrders", "GET", "/orders/v0/orders", "0.0167", "20"] in rows
    as_json = run_spd_tty("ops", "ordersV0", "--json")
    assert as_json.returncode == 0
    ops = json.loads(as_json.text)
    assert {op["id"] for op in ops} == {r[0] for r in rows}
    piped = run_spd("ops", "ordersV0")
    assert json.loads(piped.stdout) == ops


def test_objects_table_lists_operations_and_reports() -> None:
    result = run_spd_tty("objects")
    assert result.returncode == 0, result.text
    names, rows = table(result.lines, "TYPE")
    assert names == ["TYPE", "KIND", "SUPPORTED", "TIMESTAMPS", "NOTES"]
    by_name = {r[0]: r for r in rows}
    assert by_name["ordersV0.getOrders"][1:4] == ["operation", "yes", "created, updated"]
    assert by_name["report:GET_FLAT_FILE_ALL_ORDERS_DATA_BY_ORDER_DATE_GENERAL"][1] == "windowed"
    assert len(rows) == len(json.loads(run_spd("objects").stdout))


@pytest.mark.parametrize("command", [("ops",), ("objects",)])
def test_api_operation_in_one_word_or_two(command: tuple[str, ...]) -> None:
    two = run_spd(*command, "ordersV0", "getOrders")
    one = run_spd(*command, "ordersV0.getOrders")
    assert two.returncode == one.returncode == 0, (two.stderr, one.stderr)
    assert json.loads(one.stdout) == json.loads(two.stdout)
    assert "getOrders" in json.loads(one.stdout).get("id", json.loads(one.stdout).get("name"))


def test_exec_takes_api_dot_operation() -> None:
    # The request is checked against the catalog before a config is read: the operation was found.
    result = run_spd("exec", "ordersV0.getOrders", "-p", "CreatedAftr=2025-01-01T00:00:00Z",
                     "-c", "/nonexistent.yaml")
    assert result.returncode == 2
    assert result.stderr == ("spd: ordersV0.getOrders: unknown parameter 'CreatedAftr'; "
                             "did you mean CreatedAfter, CreatedBefore?\n")
    missing = run_spd("exec", "ordersV0")
    assert missing.returncode == 2 and "API OPERATION or API.OPERATION" in missing.stderr


@pytest.mark.parametrize("args", [("ops", "ordersV0", "getOrd"), ("ops", "ordersV0.getOrd"),
                                  ("objects", "getOrder"), ("exec", "ordersV0", "Order")])
def test_did_you_mean_names_at_most_five(args: tuple[str, ...]) -> None:
    result = run_spd(*args)
    assert result.returncode == 2
    hint = re.search(r"did you mean (.*?)\?", result.stderr)
    assert hint is not None, result.stderr
    assert 1 <= len(hint.group(1).split(", ")) <= 5
    assert len(result.stderr) < 400 and len(result.stderr.splitlines()) == 1


def test_validate_is_a_table_on_a_terminal_and_json_piped(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", {
        "orders": {"object": "ordersV0.getOrders", "timestamp_field": "updated", "interval": "2m",
                   "start_time": "2025-01-01T00:00:00Z"}})
    result = run_spd_tty("validate", "-c", str(config))
    assert result.returncode == 0, result.text
    assert f"{config}: ok" in result.lines
    names, rows = table(result.lines, "WHAT")
    assert names == ["WHAT", "DETAIL"]
    assert ["poller orders", "ordersV0.getOrders by updated, every 2m from 2025-01-01T00:00:00Z → "
            "archive (account sim, emit individually)"] in rows
    piped = json.loads(run_spd("validate", "-c", str(config)).stdout)
    assert [[i["what"], i["detail"]] for i in piped["items"]] == rows
    assert json.loads(run_spd_tty("validate", "-c", str(config), "--json").text) == piped


def test_json_flag_is_the_same_everywhere() -> None:
    for command in ("ops", "objects", "status", "validate", "exec"):
        help_text = run_spd(command, "--help", env=spd_env()).stdout
        assert "--json" in help_text and "default when stdout is not a terminal" in " ".join(help_text.split())


def test_table_lines_end_at_their_last_cell(tmp_path: Path) -> None:
    # rich padded every cell to its column's width, the last column too: one long cell there (a long
    # DETAIL here, a poller's last error in `spd status`) left every shorter line with trailing blanks,
    # which a terminal narrower than the widest line shows as empty wrapped lines.
    config = write_config(tmp_path, "http://127.0.0.1:9", {
        "orders": {"object": "ordersV0.getOrders", "timestamp_field": "updated", "interval": "2m",
                   "start_time": "2025-01-01T00:00:00Z"}})
    result = run_spd_tty("validate", "-c", str(config), columns=400)
    assert result.returncode == 0, result.text
    printed = [line.rstrip("\r") for line in result.text.split("\n")]
    names, rows = table([line.rstrip() for line in printed], "WHAT")
    assert len(rows) >= 3 and len({len(cells[1]) for cells in rows}) > 1  # details of different lengths
    assert [line for line in printed if line.endswith(" ")] == []
