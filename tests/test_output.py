"""Tables for people, JSON for scripts: every listing command, run as a real `spd` on a
pseudo-terminal (a table), piped (JSON) and with `--json` on the terminal (JSON)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from spd.core.errors import SpdError
from spd.core.output import cell_text
from support.amazon_models import description_at, model_ops
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


def section(lines: list[str], header: str) -> list[dict[str, str]]:
    """A table whose last column may wrap: each row's cells cut where the header's columns start,
    continuation lines (blank left columns) joined to their row's last cell."""
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    names = re.split(r"\s{2,}", lines[start].strip())
    offsets = [lines[start].index(name) for name in names]
    rows: list[dict[str, str]] = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        cells = [line[a:b].strip() for a, b in zip(offsets, [*offsets[1:], None])]
        if any(cells[:-1]):
            rows.append(dict(zip(names, cells)))
        else:  # the last column's words, wrapped
            rows[-1][names[-1]] += " " + cells[-1]
    return rows


def facts(lines: list[str]) -> dict[str, str]:
    """The label/value lines under the title, up to the first blank line (wrapped values joined)."""
    found: dict[str, str] = {}
    label = ""
    for line in lines[1:]:
        if not line.strip():
            break
        if line[0] != " ":
            label, value = re.split(r"\s{2,}", line, maxsplit=1)
            found[label] = value
        else:
            found[label] += " " + line.strip()
    return found


def test_one_operation_on_a_terminal_shows_the_models_parameters() -> None:
    model = model_ops()["ordersV0.getOrders"]
    result = run_spd_tty("ops", "ordersV0", "getOrders")
    assert result.returncode == 0, result.text
    assert "{" not in result.text  # no JSON on a terminal
    assert result.lines[0] == f"ordersV0.getOrders: {model.method.upper()} {model.path}"
    told = facts(result.lines)
    assert told["pagination"].startswith("next page: send NextToken = the reply's payload.NextToken")
    assert told["rate"] == "0.0167 requests/s, burst 20"  # the model's Usage Plan table
    assert "| 0.0167 | 20 |" in model.raw["description"]
    rows = {row["PARAMETER"]: row for row in section(result.lines, "PARAMETER")}
    assert list(rows) == list(model.params)  # the model's parameters, in its order
    for name, param in model.params.items():
        assert rows[name]["IN"] == param["in"]
        assert rows[name]["REQUIRED"] == ("yes" if param.get("required") else "no")
        assert rows[name]["TYPE"].startswith(param["type"])
    assert rows["CreatedAfter"] == {"PARAMETER": "CreatedAfter", "IN": "query", "REQUIRED": "no",
                                    "TYPE": "string", "FORMAT / LIMITS": "-"}
    assert model.params["MarketplaceIds"]["maxItems"] == 50
    assert rows["MarketplaceIds"]["FORMAT / LIMITS"] == "max items 50"


def test_one_operation_shows_its_body_fields_from_the_model() -> None:
    model = model_ops()["ordersV0.confirmShipment"]
    body = model.body_schema()
    result = run_spd_tty("ops", "ordersV0.confirmShipment")
    assert result.returncode == 0, result.text
    assert facts(result.lines)["body"].startswith("JSON (fields below")
    rows = {row["BODY FIELD"]: row for row in section(result.lines, "BODY FIELD")}
    assert set(rows) == set(body["properties"])
    for name in body["properties"]:
        assert rows[name]["REQUIRED"] == ("yes" if name in body.get("required", ()) else "no")
    assert rows["packageDetail"]["TYPE"] == body["properties"]["packageDetail"]["$ref"].rsplit("/", 1)[-1]


def test_one_object_type_quotes_each_bounds_sentence_wrapped_to_the_terminal() -> None:
    model = model_ops()["ordersV0.getOrders"]
    result = run_spd_tty("objects", "ordersV0", "getOrders", columns=80)
    assert result.returncode == 0, result.text
    assert "{" not in result.text
    assert max(len(line) for line in result.lines) <= 80  # the sentences wrap, nothing overflows
    assert result.lines[0] == "ordersV0.getOrders: operation type, from ordersV0 getOrders"
    assert facts(result.lines)["lag"].startswith("2m ")
    bounds = section(result.lines, "CURSOR   END")
    assert [(b["CURSOR"], b["END"], b["PARAMETER"]) for b in bounds] == [
        ("created", "after", "CreatedAfter"), ("created", "before", "CreatedBefore"),
        ("updated", "after", "LastUpdatedAfter"), ("updated", "before", "LastUpdatedBefore")]
    for row in bounds:
        said = row["AMAZON SAYS"]
        assert said.startswith('"') and said.endswith('"') and len(said) > 30, row
        # the quote, rejoined from its wrapped lines, is the model's sentence about that parameter
        assert said.strip('"') in " ".join(model.params[row["PARAMETER"]]["description"].split())
        assert row["BOUND"] == ("inclusive" if "(or at)" in said else row["BOUND"] + "?")
    rules = section(result.lines, "RULE")
    assert {r["RULE"] for r in rules} >= {"lag", "requires", "page_size", "page2", "id"}
    for rule in rules:  # every other rule: the model's sentence at the place the row names
        where = None if rule["WHERE"] == "-" else rule["WHERE"]
        text = description_at(model, where, ("payload", "Orders"))
        assert rule["AMAZON SAYS"].strip('"') in " ".join(text.split()), rule


@pytest.mark.parametrize("command", [("ops", "ordersV0", "getOrders"),
                                     ("ops", "ordersV0", "confirmShipment"),
                                     ("objects", "ordersV0", "getOrders"),
                                     ("objects", "report:GET_SALES_AND_TRAFFIC_REPORT")])
def test_one_operation_or_type_is_json_piped_and_with_json(command: tuple[str, ...]) -> None:
    piped = run_spd(*command)
    flagged = run_spd(*command, "--json")
    assert piped.returncode == flagged.returncode == 0, (piped.stderr, flagged.stderr)
    assert piped.stdout == flagged.stdout  # byte for byte: one line of JSON
    assert piped.stdout.count("\n") == 1
    data = json.loads(piped.stdout)
    assert json.loads(run_spd_tty(*command, "--json").text) == data


def test_every_object_type_and_operation_view_shows_all_its_json(monkeypatch: pytest.MonkeyPatch) -> None:
    # In-process, for all of them (a subprocess each would take a minute): every value of the JSON
    # a script reads is somewhere in the view a person reads. Each text is swapped for a marker of
    # its own first, so a value also printed elsewhere (an id field in a rule) cannot stand in for it.
    from spd.catalog import ops
    from spd.catalog.model import load_catalog
    from spd.commands.catalog_views import print_object_type, print_operation
    from spd.sources import describe
    from spd.sources.reports import registry

    monkeypatch.setenv("COLUMNS", "2000")  # one line per row: values are found whole
    catalog = load_catalog()
    for listed in describe.list_object_types() + registry.list_report_types():
        try:
            described = describe.describe_object_type(listed["name"])
        except SpdError:  # a report type Amazon makes itself: `spd objects` says so, exit 2
            continue
        if described["kind"] == "report":
            report = registry.describe_report_spec(registry.report_spec(
                described["name"][len(registry.REPORT_PREFIX):]))
            # its name, kind and support are the type's, which the view shows once
            assert [report.pop(k) for k in ("name", "kind", "supported")] == [
                described[k] for k in ("name", "kind", "supported")]
            described["report"] = report
        # a `bound` sentence is the AMAZON SAYS of its bound's row, which needs no RULE column
        said = [{**r, "rule": None} if r["rule"] == "bound" else r for r in described["amazon_says"] or ()]
        marked, expected = with_markers({**described, "amazon_says": said or None})
        out = io.StringIO()
        print_object_type(marked, out)
        missing = [v for v in expected if v not in out.getvalue()]
        assert not missing, (described["name"], missing, out.getvalue())
    for operation in catalog.operations():
        marked, expected = with_markers(ops.describe_operation(catalog, operation.api, operation.id))
        out = io.StringIO()
        print_operation(marked, operation.schema("body"), out)
        missing = [v for v in expected if v not in out.getvalue()]
        assert not missing, (operation.name, missing, out.getvalue())


def with_markers(value: Any, seen: list[str] | None = None) -> tuple[Any, list[str]]:
    """`value` with each text swapped for a marker `@N@`, and what the view must then show: the
    markers and each number as a table shows it (booleans are yes/no, None is left out)."""
    seen = [] if seen is None else seen
    if isinstance(value, dict):
        return {key: with_markers(item, seen)[0] for key, item in value.items()}, seen
    if isinstance(value, list):
        return [with_markers(item, seen)[0] for item in value], seen
    if isinstance(value, str) and value:
        seen.append(f"@{len(seen)}@")
        return seen[-1], seen
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seen.append(cell_text(value))
    return value, seen
