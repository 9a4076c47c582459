"""The one validation pass: every problem of a file in one run, as data, from the schema, the
other sections, the catalog and the machine; `run`, `once` and a SIGHUP reload go through it
once and nothing after it checks again."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import spd.config.validate as validate_mod
from spd.app.daemon import Daemon
from spd.app.once import catch_up
from spd.config.validate import load_config, validate_config
from spd.core.errors import ConfigError
from support.config import write_config
from support.spd import iso, run_spd, spd_env

# Line numbers in the expected problems refer to this text: keep it stable.
MANY_PROBLEMS = """\
state: {path: not-a-folder/state.db}
accounts:
  acme:
    endpoint: na
    marketplace_ids: [ATVPDKIKX0DER]
    lwa:
      client_id: cid
      client_secret: ${SPD_UNSET_ONE}
      refresh_token: ${SPD_UNSET_TWO}
emitters:
  out: {type: stdout}
  spare: {type: file, path: "not-a-folder/{poller}.jsonl"}
  smoke: {type: smoke}
  bus: {type: kafka, bootstrap_servers: [b:1], topic: t, sasl: {username: u, password: p}}
  idle: {type: stdout}
pollers:
  orders:
    object: ordersV0.getOrders
    interval: 2 minutes
    emitters: [out]
  features:
    object: fulfillmentOutbound_2020-07-01.getFeatureInventory
    timestamp_field: updated
    params: {pageSize: 3, nextToken: x}
    emitters: [out, nope]
  vendor:
    object: vendorOrders.getPurchaseOrders
    account: other
    emitters: [out]
jobs:
  j: {api: sellers, operation: getMarketplaceParticipationz, emitters: [out]}
"""

EXPECTED = [
    ("error", "state.path (line 1): cannot write the state database there: {dir}/not-a-folder is not a "
              "directory; choose a path the user spd runs as can write (under systemd: leave state out "
              "to use its StateDirectory)"),
    ("error", "accounts.acme.lwa.client_secret (line 8): environment variable SPD_UNSET_ONE is not set; "
              "set it, or give a default with ${SPD_UNSET_ONE:-default}"),
    ("error", "accounts.acme.lwa.refresh_token (line 9): environment variable SPD_UNSET_TWO is not set; "
              "set it, or give a default with ${SPD_UNSET_TWO:-default}"),
    ("error", "emitters.spare.path (line 12): cannot write there: {dir}/not-a-folder is not a directory; "
              "choose a folder the user spd runs as can write (under systemd: its StateDirectory or a "
              "ReadWritePaths= entry)"),
    ("error", 'emitters.smoke.type (line 13): "smoke" is not an emitter type; use one of: stdout, file, '
              "webhook, kafka"),
    ("error", "emitters.bus.sasl (line 14): needs security_protocol SASL_PLAINTEXT or SASL_SSL, not PLAINTEXT"),
    ("warning", "emitters.idle (line 15): nothing sends to this emitter; add it to a poller's, job's or "
                "subscription's emitters or remove it"),
    ("error", 'pollers.orders.interval (line 19): "2 minutes" is not a duration; use a number with ms, s, m, '
              "h or d, such as 30s or 2m"),
    ("error", "pollers.features.params.pageSize (line 24): pageSize is not a parameter of "
              "fulfillmentOutbound_2020-07-01.getFeatureInventory; parameters: marketplaceId"),
    ("error", "pollers.features.params.nextToken (line 24): nextToken is set by spd from the poller's "
              "window and next token; remove it"),
    ("error", "pollers.features.params (line 24): fulfillmentOutbound_2020-07-01.getFeatureInventory needs "
              "featureName; add featureName: VALUE to params"),
    ("error", 'pollers.features.emitters[1] (line 25): unknown emitter "nope"; emitters: out, spare, smoke, '
              "bus, idle"),
    ("error", 'pollers.vendor.account (line 28): unknown account "other"; accounts: acme'),
    ("error", "jobs.j (line 31): unknown operation 'getMarketplaceParticipationz' of API sellers; did you "
              "mean getMarketplaceParticipations? (see `spd ops sellers`)"),
]


def many_problems(tmp_path: Path) -> Path:
    (tmp_path / "not-a-folder").write_text("a file where a folder should be\n")
    path = tmp_path / "spd.yaml"
    path.write_text(MANY_PROBLEMS)
    return path


def test_every_problem_of_a_file_as_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPD_UNSET_ONE", raising=False)
    monkeypatch.delenv("SPD_UNSET_TWO", raising=False)
    path = many_problems(tmp_path)
    validation = validate_config(path, environment=True)
    assert validation.config is None
    found = [(p.severity, p.format("F")[len("F: "):]) for p in validation.problems]
    assert found == [(severity, text.replace("{dir}", str(tmp_path))) for severity, text in EXPECTED]
    assert [p.line for p in validation.problems] == sorted(p.line or 0 for p in validation.problems)
    first = validation.errors[0]
    assert (first.path, first.line, first.severity) == (("state", "path"), 1, "error")
    with pytest.raises(ConfigError) as info:  # what run, once and reload meet: the first error
        load_config(path, environment=True)
    assert str(info.value) == f"{path}: " + EXPECTED[0][1].replace("{dir}", str(tmp_path))


def test_spd_validate_prints_every_problem_and_exits_78(tmp_path: Path) -> None:
    path = many_problems(tmp_path)
    result = run_spd("validate", "-c", str(path), env=spd_env())
    assert result.returncode == 78
    assert result.stderr.splitlines() == [
        f"spd: {'warning: ' if severity == 'warning' else ''}{path}: {text.replace('{dir}', str(tmp_path))}"
        for severity, text in EXPECTED]
    report = json.loads(result.stdout)  # piped: the same problems as data
    assert (report["config"], report["ok"], report["items"]) == (str(path), False, [])
    assert [(p["severity"], p["key"], p["line"]) for p in report["problems"]] == [
        (severity, text.split(" (line ")[0], int(text.split(" (line ")[1].split(")")[0]))
        for severity, text in EXPECTED]
    assert report["problems"][6]["message"].startswith("nothing sends to this emitter")


def test_without_the_machine_checks_the_file_alone_is_judged(tmp_path: Path) -> None:
    path = many_problems(tmp_path)
    paths = {p.path for p in validate_config(path).problems}
    assert ("state", "path") not in paths and ("emitters", "spare", "path") not in paths
    assert ("emitters", "bus", "sasl") in paths and ("jobs", "j") in paths


def test_warnings_alone_pass_and_are_printed(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", {"orders": {"object": "ordersV0.getOrders",
                                                                       "emitters": ["archive"]}},
                          emitters={"archive": f'{{type: file, path: "{tmp_path}/out/{{poller}}.jsonl"}}',
                                    "spare": "{type: stdout}"})
    result = run_spd("validate", "-c", str(config), env=spd_env())
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and [p["key"] for p in report["problems"]] == ["emitters.spare"]
    assert result.stderr.splitlines() == [
        f"spd: warning: {config}: emitters.spare (line 10): nothing sends to this emitter; add it to a "
        "poller's, job's or subscription's emitters or remove it"]


def test_missing_extras_name_the_key_that_needs_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiokafka", None)  # `import aiokafka` now raises ImportError
    monkeypatch.setitem(sys.modules, "aioboto3", None)
    config = write_config(
        tmp_path, "http://127.0.0.1:9", {"orders": {"object": "ordersV0.getOrders"}},
        emitters={"bus": "{type: kafka, bootstrap_servers: [127.0.0.1:9], topic: spd}"},
        extra_account="    aws: {access_key_id: AKIA, secret_access_key: s, role_arn: 'arn:aws:iam::1:role/r'}")
    found = {(p.path, p.message.split(";")[0]) for p in validate_config(config, environment=True).errors}
    assert found == {
        (("emitters", "bus", "type"), "a kafka emitter needs the aiokafka package"),
        (("accounts", "sim", "aws"), "SigV4 signing needs aioboto3"),
    }
    assert validate_config(config).errors == []  # `spd exec` and `spd status` need neither


def test_an_unreadable_tls_file_is_a_problem_of_its_emitter(tmp_path: Path) -> None:
    pytest.importorskip("aiokafka")
    config = write_config(
        tmp_path, "http://127.0.0.1:9", {"orders": {"object": "ordersV0.getOrders"}},
        emitters={"bus": f"{{type: kafka, bootstrap_servers: [b:1], topic: t, security_protocol: SSL, "
                         f"ssl: {{cafile: {tmp_path}/missing.pem}}}}"})
    [problem] = validate_config(config, environment=True).errors
    assert problem.format("F").startswith("F: emitters.bus.ssl (line 9): cannot load the TLS files")


# -- one pass, then trust -----------------------------------------------------------------------


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Counts the validation passes (by their catalog checks) and whether each looked beyond the file."""
    seen: list[bool] = []
    real = validate_mod.config_problems

    def counting(config: Any, catalog: Any, *, environment: bool) -> Any:
        seen.append(environment)
        return real(config, catalog, environment=environment)

    monkeypatch.setattr(validate_mod, "config_problems", counting)
    return seen


async def test_once_validates_once(tmp_path: Path, sim_factory: Any, passes: list[bool]) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=20, start=now - timedelta(hours=2), end=now, rate_limit=False)
    config = write_config(tmp_path, sim.url, {"orders": {"object": "ordersV0.getOrders",
                                                         "start_time": iso(now - timedelta(hours=3))}})
    assert await catch_up(config, []) == 0
    assert passes == [True]


async def test_run_and_each_reload_validate_once(tmp_path: Path, sim_factory: Any, passes: list[bool]) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=20, start=now - timedelta(hours=2), end=now, rate_limit=False)
    config = write_config(tmp_path, sim.url, {"orders": {"object": "ordersV0.getOrders",
                                                         "start_time": iso(now - timedelta(hours=3))}})
    daemon = Daemon(config, install_signals=False)
    await daemon.start()
    try:
        assert passes == [True]
        await daemon.reload()
        assert passes == [True, True]
        config.write_text(config.read_text().replace("ordersV0.getOrders", "ordersV0.getOrderz"))
        await daemon.reload()  # refused by the pass: the old config keeps running
        assert passes == [True, True, True]
        assert daemon.runtime is not None and "orders" in daemon.runtime.pollers
    finally:
        await daemon.close()


def validate_orders_poller(tmp_path: Path, keys: str, after: str = "") -> tuple[Path, Any]:
    """`spd validate` of a small config whose poller `orders` (line 6) has `keys` from line 8 on,
    then `after`; the path and the completed process."""
    path = tmp_path / "spd.yaml"
    path.write_text(f"state: {{path: {tmp_path / 'state.db'}}}\n"
                    "accounts:\n  a: {endpoint: na, marketplace_ids: [X], lwa: {client_id: i, "
                    "client_secret: s, refresh_token: r}}\n"
                    "emitters: {out: {type: stdout}}\n"
                    f"pollers:\n  orders:\n    object: ordersV0.getOrders\n{keys}    emitters: [out]\n{after}")
    return path, run_spd("validate", "-c", str(path), env=spd_env())


def test_a_misspelt_key_is_answered_with_the_key_meant(tmp_path: Path) -> None:
    # A typo among fifteen allowed keys is hard to spot in the list alone; a key unlike any keeps the list.
    path, result = validate_orders_poller(tmp_path, "    timestamp_feild: updated\n    colour: blue\n", "jbos: {}\n")
    assert result.returncode == 78
    poller_keys = ("account, object, timestamp_field, emit, start_time, interval, max_items_per_run, params, "
                   "emitters, overlap, restricted, include, report_types, download, report_options")
    assert result.stderr.splitlines() == [
        f'spd: {path}: pollers.orders.timestamp_feild (line 8): unknown key "timestamp_feild"; '
        f'did you mean "timestamp_field"? allowed keys: {poller_keys}',
        f'spd: {path}: pollers.orders.colour (line 9): unknown key "colour"; allowed keys: {poller_keys}',
        f'spd: {path}: jbos (line 11): unknown key "jbos"; did you mean "jobs"? allowed keys: state, cluster, '
        'log, http, accounts, emitters, pollers, jobs, subscriptions'], result.stderr


def test_a_list_or_mapping_where_a_value_belongs_is_quoted_as_yaml_writes_it(tmp_path: Path) -> None:
    # The messages quoted such values with Python's repr (['2m'], {'m': 2}): not what the user wrote.
    path, result = validate_orders_poller(tmp_path,
                                          "    interval: [2m]\n    emit: [page]\n    overlap: {m: 2}\n")
    assert result.returncode == 78
    hint = "use a number with ms, s, m, h or d, such as 30s or 2m"
    assert result.stderr.splitlines() == [
        f'spd: {path}: pollers.orders.interval (line 8): ["2m"] is not a duration; {hint}',
        f'spd: {path}: pollers.orders.emit (line 9): ["page"] is not allowed; use one of: individually, page',
        f'spd: {path}: pollers.orders.overlap (line 10): {{"m": 2}} is not a duration; {hint}'], result.stderr


@pytest.mark.parametrize(("endpoint", "expected"), [
    ("    endpoint: {host: x}\n", "accounts.a.endpoint (line 4): expected text, got a mapping; write a string"),
    ("", 'accounts.a (line 3): missing required key "endpoint"; required keys: endpoint, lwa'),
])
def test_a_bad_endpoint_is_one_problem_not_also_a_missing_region(tmp_path: Path, endpoint: str,
                                                                 expected: str) -> None:
    # The region is derived from the endpoint when left out; a bad or missing endpoint also drew
    # 'missing required key "region"', a key the user never has to write.
    path = tmp_path / "spd.yaml"
    path.write_text(f"state: {{path: {tmp_path / 'state.db'}}}\naccounts:\n  a:\n{endpoint}"
                    "    lwa: {client_id: i, client_secret: s, refresh_token: r}\n"
                    "emitters: {out: {type: stdout}}\n")
    result = run_spd("validate", "-c", str(path), env=spd_env())
    assert result.returncode == 78
    errors = [line for line in result.stderr.splitlines() if not line.startswith("spd: warning:")]
    assert errors == [f"spd: {path}: {expected}"], result.stderr


def test_a_yaml_error_also_names_the_line_where_the_broken_construct_began(tmp_path: Path) -> None:
    # PyYAML gives up on the line after an unclosed `[`; the line it opened on is where to look.
    path = tmp_path / "spd.yaml"
    path.write_text("accounts:\n  a:\n    endpoint: na\n    marketplace_ids: [ATVPDKIKX0DER\n"
                    "    lwa: {client_id: i, client_secret: s, refresh_token: r}\n")
    result = run_spd("validate", "-c", str(path), env=spd_env())
    assert result.returncode == 78
    assert result.stderr == (f"spd: {path}: line 5: invalid YAML: expected ',' or ']', but got ':' "
                             "(while parsing a flow sequence started on line 4); fix the YAML syntax\n")
