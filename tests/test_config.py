"""Configuration loading: one-line errors with key path and line, substitution, models, identity."""

from __future__ import annotations

import os
import re
import ssl
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pydantic
import pytest
import yaml

from spd.config import model as config_module
from spd.config.model import Config, FileEmitterConfig, StdoutEmitterConfig
from spd.config.validate import load_config
from spd.core.errors import ConfigError, UsageError
from spd.config.validate import validate_config
from spd.emitters.registry import EMITTER_MODELS

ROOT = Path(__file__).resolve().parents[1]
UTC = timezone.utc

# Line numbers in the expected messages below refer to this text: keep it stable.
BASE = """\
state: {path: state.db}
accounts:
  acme:
    endpoint: na
    marketplace_ids: [ATVPDKIKX0DER]
    lwa:
      client_id: cid
      client_secret: csecret-value
      refresh_token: rtoken-value
emitters:
  out: {type: stdout}
pollers:
  orders:
    object: ordersV0.getOrders
    timestamp_field: updated
    interval: 2m
    emitters: [out]
"""

OTHER_ACCOUNT = """\
accounts:
  other:
    endpoint: eu
    lwa: {client_id: a, client_secret: b, refresh_token: c}
"""

POLLER_KEYS = ("account, object, timestamp_field, emit, start_time, interval, max_items_per_run, params, "
               "emitters, overlap, restricted, include, report_types, download, report_options")


def write(tmp_path: Path, text: str, name: str = "spd.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    """The message of the ConfigError loading `path` raises; asserts exit 78 and one line."""
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.exit_code == 78
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture(autouse=True)
def _no_spd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SPD_"):
            monkeypatch.delenv(name)


def replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new, 1)
    return edit


def append(extra: str) -> Callable[[str], str]:
    return lambda text: text + extra


BAD_CONFIGS: list[tuple[str, Callable[[str], str], str]] = [
    ("unknown top-level key", append("colour: red\n"),
     "colour (line 18): unknown key \"colour\"; allowed keys: state, cluster, log, http, accounts, emitters, "
     "pollers, jobs, subscriptions"),
    ("unknown poller key", replace("    interval: 2m", "    intervall: 2m"),
     f'pollers.orders.intervall (line 16): unknown key "intervall"; did you mean "interval"? allowed keys: {POLLER_KEYS}'),
    ("internal field written in the file", replace("    interval: 2m", "    name: x"),
     f'pollers.orders.name (line 16): unknown key "name"; allowed keys: {POLLER_KEYS}'),
    ("bad duration", replace("interval: 2m", 'interval: "2 minutes"'),
     'pollers.orders.interval (line 16): "2 minutes" is not a duration; use a number with ms, s, m, h '
     "or d, such as 30s or 2m"),
    ("duration without unit", replace("interval: 2m", "interval: 30"),
     "pollers.orders.interval (line 16): 30 is not a duration; use a number with ms, s, m, h or d, "
     "such as 30s or 2m"),
    ("zero interval", replace("interval: 2m", "interval: 0s"),
     "pollers.orders.interval (line 16): 0s is not positive; use a duration above zero, such as 30s"),
    ("timestamp without zone", replace("interval: 2m", "start_time: 2025-01-01T00:00:00"),
     'pollers.orders.start_time (line 16): "2025-01-01T00:00:00" has no time zone; add Z or an offset, '
     "such as 2025-01-01T00:00:00Z"),
    ("date without time", replace("interval: 2m", "start_time: 2025-01-01"),
     'pollers.orders.start_time (line 16): "2025-01-01" is not a timestamp; use ISO 8601 with a time '
     "zone, such as 2025-01-01T00:00:00Z"),
    ("unknown emitter reference", replace("emitters: [out]", "emitters: [out, nope]"),
     'pollers.orders.emitters[1] (line 17): unknown emitter "nope"; emitters: out'),
    ("empty emitter list", replace("emitters: [out]", "emitters: []"),
     "pollers.orders.emitters (line 17): is empty; give at least one"),
    ("emitter listed twice", replace("emitters: [out]", "emitters: [out, out]"),
     'pollers.orders.emitters[1] (line 17): "out" is listed twice; list each one once'),
    ("unknown account reference", replace("    timestamp_field", "    account: other\n    timestamp_field"),
     'pollers.orders.account (line 15): unknown account "other"; accounts: acme'),
    ("several accounts, none default", replace("accounts:\n", OTHER_ACCOUNT),
     "pollers.orders.account (line 16): no account given and none of other, acme is marked "
     "default: true; set account: to one of them"),
    ("two default accounts",
     lambda t: t.replace("accounts:\n", OTHER_ACCOUNT + "    default: true\n")
                .replace("    marketplace_ids", "    default: true\n    marketplace_ids"),
     "accounts.acme.default (line 9): only one account may be default: true, and other already is; "
     "remove one of them"),
    ("text for an integer", replace("interval: 2m", "max_items_per_run: lots"),
     'pollers.orders.max_items_per_run (line 16): "lots" is not a whole number; use a whole number '
     "such as 100"),
    ("integer out of range", replace("interval: 2m", "max_items_per_run: 0"),
     "pollers.orders.max_items_per_run (line 16): 0 is too small; use 1 or more"),
    ("list for a secret", replace("csecret-value", "[a, b]"),
     "accounts.acme.lwa.client_secret (line 8): expected text, got a list; write a string"),
    ("number for a mapping",
     replace("    lwa:\n      client_id: cid\n      client_secret: csecret-value\n      refresh_token: rtoken-value\n",
             "    lwa: 5\n"),
     "accounts.acme.lwa (line 6): expected a mapping, got a number; write key: value pairs"),
    ("unknown account key", replace("    lwa:", "    colour: red\n    lwa:"),
     'accounts.acme.colour (line 6): unknown key "colour"; allowed keys: endpoint, marketplace_ids, lwa, '
     "region, aws, rate_limits, default"),
    ("bad endpoint", replace("endpoint: na", "endpoint: us"),
     'accounts.acme.endpoint (line 4): "us" is not an endpoint; use na, eu, fe, sandbox-na, sandbox-eu, '
     "sandbox-fe or an https:// or http:// URL"),
    ("bad region", replace("endpoint: na", "endpoint: na\n    region: mars"),
     'accounts.acme.region (line 5): "mars" is not an AWS region; use one such as us-east-1'),
    ("bad emit value", replace("interval: 2m", "emit: each"),
     'pollers.orders.emit (line 16): "each" is not allowed; use one of: individually, page'),
    ("bad timestamp_field", replace("timestamp_field: updated", "timestamp_field: modified"),
     'pollers.orders.timestamp_field (line 15): "modified" is not allowed; use one of: created, updated'),
    ("bad log level", append("log: {level: loud}\n"),
     'log.level (line 18): "loud" is not allowed; use one of: debug, info, warning, error'),
    ("not a boolean", replace("out: {type: stdout}", "out: {type: file, path: x, fsync: maybe}"),
     'emitters.out.fsync (line 11): "maybe" is not true or false; use true or false'),
    ("unknown restricted data element", replace("interval: 2m", "restricted: [buyerInfo, creditCard]"),
     'pollers.orders.restricted[1] (line 16): "creditCard" is not allowed; use one of: buyerInfo, '
     "shippingAddress, buyerTaxInformation"),
    ("aws without a role", replace("    lwa:", "    aws: {access_key_id: x, secret_access_key: y}\n    lwa:"),
     'accounts.acme.aws (line 6): missing required key "role_arn"; required keys: access_key_id, '
     "secret_access_key, role_arn"),
    ("job without an operation", append("jobs:\n  inventory: {api: fbaInventory}\n"),
     'jobs.inventory (line 19): missing required key "operation"; required keys: api, operation, emitters'),
    ("rate limit on an unknown operation",
     replace("    lwa:", "    rate_limits:\n      ordersV0.getOrderz: {rate: 1}\n    lwa:"),
     "accounts.acme.rate_limits.ordersV0.getOrderz (line 7): unknown operation 'getOrderz' of API "
     "ordersV0; did you mean getOrder, getOrders, getOrderItems, getOrderAddress, getOrderBuyerInfo? "
     "(see `spd ops ordersV0`)"),
    ("rate limit on an unknown API",
     replace("    lwa:", "    rate_limits:\n      orderz.getOrders: {rate: 1}\n    lwa:"),
     "accounts.acme.rate_limits.orderz.getOrders (line 7): unknown API 'orderz'; did you mean ordersV0? "
     "(see `spd ops`)"),
    ("rate limit key without API", replace("    lwa:", "    rate_limits:\n      getOrders: {rate: 1}\n    lwa:"),
     'accounts.acme.rate_limits.getOrders (line 7): "getOrders" is not API.OPERATION; write it like '
     "ordersV0.getOrders"),
    ("zero rate", replace("    lwa:", "    rate_limits:\n      ordersV0.getOrders: {rate: 0}\n    lwa:"),
     "accounts.acme.rate_limits.ordersV0.getOrders.rate (line 7): 0 is too small; use a number above 0"),
    ("duplicate key", replace("    interval: 2m\n", "    interval: 2m\n    interval: 3m\n"),
     'pollers.orders.interval (line 17): duplicate key "interval"; each key may appear once'),
    ("missing required key", replace("    object: ordersV0.getOrders\n", ""),
     'pollers.orders (line 13): missing required key "object"; required keys: object, emitters'),
    ("missing top-level section", replace("state: {path: state.db}\n", ""),
     'missing required key "state"; pollers and jobs keep their watermarks there: add state: '
     '{path: /var/lib/spd/state.db}'),
    ("no emitters", replace("emitters:\n  out: {type: stdout}\n", "emitters: {}\n"),
     "emitters (line 10): no emitters are configured; add at least one, such as out: {type: stdout}"),
    ("emitter without type", replace("out: {type: stdout}", "out: {path: x}"),
     'emitters.out (line 11): missing required key "type"; use one of: stdout, file, webhook, kafka'),
    ("unknown emitter type", replace("out: {type: stdout}", "out: {type: smoke}"),
     'emitters.out.type (line 11): "smoke" is not an emitter type; use one of: stdout, file, webhook, kafka'),
    ("file emitter key misspelt", replace("out: {type: stdout}", "out: {type: file, path: x, fsink: true}"),
     'emitters.out.fsink (line 11): unknown key "fsink"; allowed keys: type, path, fsync'),
    ("bad path template", replace("out: {type: stdout}", "out: {type: file, path: 'x/{pollr}.jsonl'}"),
     'emitters.out.path (line 11): "x/{pollr}.jsonl" has a placeholder other than {poller}, '
     "{object_type}, {account}, {date}; use only those (write {{ and }} for literal braces)"),
    ("bad poller name", replace("  orders:", "  'my orders':"),
     'pollers.my orders (line 13): "my orders" is not a valid name; use letters, digits, _, . and -'),
    ("list where a mapping belongs", replace("  orders:\n", "  - orders:\n"),
     "pollers (line 12): expected a mapping, got a list; write key: value pairs"),
    ("param of another operation", replace("    interval: 2m", "    params: {pageSize: 10}"),
     "pollers.orders.params.pageSize (line 16): pageSize is not a parameter of ordersV0.getOrders; "
     "parameters: CreatedAfter, CreatedBefore, OrderStatuses, MarketplaceIds, FulfillmentChannels, "
     "PaymentMethods, BuyerEmail, SellerOrderId, MaxResultsPerPage, EasyShipShipmentStatuses, "
     "ElectronicInvoiceStatuses, AmazonOrderIds, ActualFulfillmentSupplySourceId, IsISPU, "
     "StoreChainStoreId, EarliestDeliveryDateBefore, EarliestDeliveryDateAfter, LatestDeliveryDateBefore, "
     "LatestDeliveryDateAfter"),
    ("param spd sets itself", replace("    interval: 2m", "    params: {LastUpdatedAfter: x}"),
     "pollers.orders.params.LastUpdatedAfter (line 16): LastUpdatedAfter is set by spd from the poller's "
     "window and next token; remove it"),
    ("missing environment variable", replace("csecret-value", "${SPD_TEST_SECRET}"),
     "accounts.acme.lwa.client_secret (line 8): environment variable SPD_TEST_SECRET is not set; set it, "
     "or give a default with ${SPD_TEST_SECRET:-default}"),
    ("missing credential file", replace("rtoken-value", "${file:/nonexistent/refresh_token}"),
     "accounts.acme.lwa.refresh_token (line 9): ${file:/nonexistent/refresh_token}: cannot read "
     "/nonexistent/refresh_token: No such file or directory; point it at a readable UTF-8 file"),
    ("empty secret", replace("csecret-value", "${SPD_TEST_SECRET:-}"),
     "accounts.acme.lwa.client_secret (line 8): is empty; set the secret (check that its ${ENV} or "
     "${file:PATH} is not empty)"),
    ("bad substitution", replace("csecret-value", "${not a name}"),
     "accounts.acme.lwa.client_secret (line 8): ${not a name} is not a valid substitution; use ${NAME}, "
     "${NAME:-default}, ${file:PATH} or ${credential:NAME}"),
    ("broken YAML", replace("out: {type: stdout}", "out: {type: stdout"),
     "line 12: invalid YAML: expected ',' or '}', but got ':' (while parsing a flow mapping started on "
     "line 11); fix the YAML syntax"),
    ("tab indentation", replace("  out:", "\tout:"),
     "line 11: invalid YAML: found character '\\t' that cannot start any token; fix the YAML syntax"),
    ("unknown YAML tag", replace("endpoint: na", "endpoint: !Ref na"),
     "line 4: invalid YAML: could not determine a constructor for the tag '!Ref'; fix the YAML syntax"),
]


@pytest.mark.parametrize(("edit", "expected"), [(e, m) for _, e, m in BAD_CONFIGS],
                         ids=[name for name, _, _ in BAD_CONFIGS])
def test_bad_config_is_one_line_config_error(tmp_path: Path, edit: Callable[[str], str], expected: str) -> None:
    path = write(tmp_path, edit(BASE))
    assert error_of(path) == f"{path}: {expected}"


def test_the_base_config_of_the_bad_ones_is_valid(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    assert list(config.pollers) == ["orders"]


def test_unknown_object_type_names_close_matches(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("ordersV0.getOrders", "ordersV0.getOrder"))
    message = error_of(path)
    assert message.startswith(f"{path}: pollers.orders.object (line 14): unknown object type 'ordersV0.getOrder'; ")
    assert "did you mean ordersV0.getOrders" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert error_of(path) == f"{path}: no such file; give an existing config with -c or $SPD_CONFIG"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert error_of(tmp_path) == f"{tmp_path}: is a directory; give a config file with -c or $SPD_CONFIG"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    path.chmod(0)
    assert error_of(path) == (f"{path}: cannot read it: Permission denied; make it readable by the user "
                              "spd runs as")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}: the file is empty; write a config (see config/spd.example.yaml)"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "spd.yaml"
    path.write_bytes(b"state: {path: \xff}\n")
    assert error_of(path) == f"{path}: is not UTF-8 text (byte 14); save it as UTF-8"


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- a\n- b\n")
    assert error_of(path) == (f"{path}: the top level is a list; write a mapping with state, accounts, "
                              "emitters and pollers")


def test_two_documents(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "---\nstate: {path: x}\n")
    assert error_of(path) == (f"{path}: line 18: invalid YAML: but found another document; "
                              "fix the YAML syntax")


# --- substitution -------------------------------------------------------------------------------


def test_env_and_file_substitution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPD_TEST_ID", "amzn1.application-oa2-client.x")
    monkeypatch.setenv("SPD_TEST_EMPTY", "")
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "refresh_token").write_text("Atzr|secret-token\n")
    text = (BASE.replace("client_id: cid", "client_id: ${SPD_TEST_ID}")
                .replace("csecret-value", "${SPD_TEST_UNSET:-fallback}-${SPD_TEST_EMPTY:-was-empty}")
                .replace("rtoken-value", "${file:creds/refresh_token}")
                .replace("state.db", "'$${HOME}/${SPD_TEST_UNSET:-spd}.db'"))
    config = load_config(write(tmp_path, text))
    lwa = config.accounts["acme"].lwa
    assert lwa.client_id == "amzn1.application-oa2-client.x"
    assert lwa.client_secret.get_secret_value() == "fallback-was-empty"
    assert lwa.refresh_token.get_secret_value() == "Atzr|secret-token"  # trailing newline stripped
    assert config.state.path == tmp_path / "${HOME}" / "spd.db"  # $${ is a literal ${


def test_credential_substitution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = BASE.replace("rtoken-value", "${credential:refresh_token}")
    path = write(tmp_path, text)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert error_of(path) == (
        f"{path}: accounts.acme.lwa.refresh_token (line 9): ${{credential:refresh_token}}: "
        "CREDENTIALS_DIRECTORY is not set; systemd sets it from LoadCredential=, elsewhere set it to "
        "the folder of the credential files (such as /etc/spd/credentials)")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "credentials"))
    assert error_of(path) == (
        f"{path}: accounts.acme.lwa.refresh_token (line 9): ${{credential:refresh_token}}: cannot read "
        f"{tmp_path / 'credentials' / 'refresh_token'}: No such file or directory; point it at a "
        "readable UTF-8 file")
    (tmp_path / "credentials").mkdir()
    (tmp_path / "credentials" / "refresh_token").write_text("Atzr|from-systemd\n")
    assert load_config(path).accounts["acme"].lwa.refresh_token.get_secret_value() == "Atzr|from-systemd"
    bad = write(tmp_path, BASE.replace("rtoken-value", "${credential:../etc/passwd}"))
    assert "is not a credential name" in error_of(bad)


def test_substitution_applies_to_values_not_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPD_TEST_EMITTER", "out")
    text = BASE.replace("emitters: [out]", "emitters: ['${SPD_TEST_EMITTER}']")
    assert load_config(write(tmp_path, text)).pollers["orders"].emitters == ["out"]


def test_substituted_numbers_are_validated_as_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPD_TEST_MAX", "500")
    text = BASE.replace("interval: 2m", "max_items_per_run: ${SPD_TEST_MAX}")
    assert load_config(write(tmp_path, text)).pollers["orders"].max_items_per_run == 500


# --- values ---------------------------------------------------------------------------------------


def test_timestamps_stay_strings_and_start_time_is_utc(tmp_path: Path) -> None:
    text = BASE.replace("    interval: 2m", "    start_time: 2025-01-01T02:00:00+02:00\n"
                        "    params: {EarliestDeliveryDateBefore: 2025-03-01T00:00:00Z, BuyerEmail: 2025-03-01}")
    poller = load_config(write(tmp_path, text)).pollers["orders"]
    assert poller.start_time == datetime(2025, 1, 1, tzinfo=UTC)
    assert poller.start_time.utcoffset() == timedelta(0)
    assert poller.params == {"EarliestDeliveryDateBefore": "2025-03-01T00:00:00Z", "BuyerEmail": "2025-03-01"}


def test_only_true_and_false_are_booleans(tmp_path: Path) -> None:
    text = BASE.replace("[ATVPDKIKX0DER]", "[NO, yes, off]")
    assert load_config(write(tmp_path, text)).accounts["acme"].marketplace_ids == ["NO", "yes", "off"]


def test_defaults(tmp_path: Path) -> None:
    text = BASE.replace("    timestamp_field: updated\n    interval: 2m\n", "")
    text = text.replace("out: {type: stdout}", "out: {type: stdout}\n  archive: {type: file, path: 'out/{poller}.jsonl'}")
    config = load_config(write(tmp_path, text))
    poller = config.pollers["orders"]
    assert (poller.account, poller.timestamp_field, poller.emit) == ("acme", "created", "individually")
    assert poller.start_time == datetime(1970, 1, 1, tzinfo=UTC)
    assert poller.interval == timedelta(minutes=2)
    assert poller.max_items_per_run is None and poller.params == {} and poller.overlap is None
    assert poller.object_type.name == "ordersV0.getOrders"
    account = config.accounts["acme"]
    assert account.lwa.token_url == "https://api.amazon.com/auth/o2/token"
    assert (account.region, account.default, account.rate_limits) == ("us-east-1", False, {})
    assert config.log.level == "info" and config.log.format is None
    assert config.http is None and config.jobs == {}
    assert isinstance(config.emitters["out"], StdoutEmitterConfig)
    assert config.emitters["archive"] == FileEmitterConfig(path=str(tmp_path / "out/{poller}.jsonl"))
    assert config.emitters["archive"].fsync is True
    assert config.state.path == tmp_path / "state.db"  # relative to the config file's folder
    assert config.path == tmp_path / "spd.yaml"


@pytest.mark.parametrize(
    ("endpoint", "base_url", "region"),
    [
        ("na", "https://sellingpartnerapi-na.amazon.com", "us-east-1"),
        ("eu", "https://sellingpartnerapi-eu.amazon.com", "eu-west-1"),
        ("fe", "https://sellingpartnerapi-fe.amazon.com", "us-west-2"),
        ("sandbox-na", "https://sandbox.sellingpartnerapi-na.amazon.com", "us-east-1"),
        ("sandbox-eu", "https://sandbox.sellingpartnerapi-eu.amazon.com", "eu-west-1"),
        ("sandbox-fe", "https://sandbox.sellingpartnerapi-fe.amazon.com", "us-west-2"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080", "us-east-1"),
        ("https://sellingpartnerapi-eu.amazon.com", "https://sellingpartnerapi-eu.amazon.com", "eu-west-1"),
    ],
)
def test_endpoints(tmp_path: Path, endpoint: str, base_url: str, region: str) -> None:
    account = load_config(write(tmp_path, BASE.replace("endpoint: na", f"endpoint: '{endpoint}'"))).accounts["acme"]
    assert (account.base_url, account.region) == (base_url, region)


def test_explicit_region_wins(tmp_path: Path) -> None:
    text = BASE.replace("endpoint: na", "endpoint: na\n    region: eu-west-1")
    assert load_config(write(tmp_path, text)).accounts["acme"].region == "eu-west-1"


def test_rate_limit_override(tmp_path: Path) -> None:
    text = BASE.replace("    lwa:", "    rate_limits:\n      ordersV0.getOrders: {rate: 0.0167, burst: 20}\n    lwa:")
    limit = load_config(write(tmp_path, text)).accounts["acme"].rate_limits["ordersV0.getOrders"]
    assert (limit.rate, limit.burst) == (0.0167, 20)


def test_yaml_merge_keys_and_own_keys_win(tmp_path: Path) -> None:
    text = BASE.replace("pollers:\n", "pollers:\n  base: &base {object: ordersV0.getOrders, emitters: [out],"
                                      " interval: 5m}\n  merged:\n    <<: *base\n    interval: 1m\n")
    config = load_config(write(tmp_path, text))
    assert config.pollers["base"].interval == timedelta(minutes=5)
    assert config.pollers["merged"].interval == timedelta(minutes=1)


def test_alias_object_name_resolves_to_canonical(tmp_path: Path) -> None:
    text = BASE.replace("ordersV0.getOrders", "Retail Procurement Orders v1 getPurchaseOrders")
    poller = load_config(write(tmp_path, text)).pollers["orders"]
    assert poller.object == "Retail Procurement Orders v1 getPurchaseOrders"
    assert poller.object_type.name == "vendorOrders.getPurchaseOrders"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    with pytest.raises(pydantic.ValidationError):
        config.pollers["orders"].interval = timedelta(seconds=1)  # type: ignore[misc]


def test_overlap_is_a_duration(tmp_path: Path) -> None:
    text = BASE.replace("interval: 2m", "overlap: 10m")
    assert load_config(write(tmp_path, text)).pollers["orders"].overlap == timedelta(minutes=10)


def test_empty_values_mean_the_default(tmp_path: Path) -> None:
    text = BASE.replace("interval: 2m", "interval:\n    params:\n    emit: null") + "log:\njobs:\n"
    config = load_config(write(tmp_path, text))
    poller = config.pollers["orders"]
    assert (poller.interval, poller.params, poller.emit) == (timedelta(minutes=2), {}, "individually")
    assert config.log.level == "info" and config.jobs == {}


def test_empty_required_value_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("client_id: cid", "client_id:"))
    assert error_of(path) == f"{path}: accounts.acme.lwa.client_id (line 7): expected text, got nothing; write a string"


def test_null_unsupported_key_counts_as_absent(tmp_path: Path) -> None:
    text = BASE.replace("interval: 2m", "overlap: null") + "http: null\njobs: {}\n"
    config = load_config(write(tmp_path, text))
    assert config.pollers["orders"].overlap is None and config.http is None


# --- identity --------------------------------------------------------------------------------------


def identity(tmp_path: Path, text: str) -> str:
    return load_config(write(tmp_path, text)).pollers["orders"].identity()


def test_identity_is_stable(tmp_path: Path) -> None:
    first = identity(tmp_path, BASE)
    assert first == identity(tmp_path, BASE)
    assert first == "2cf4ebe95a8f99e2"  # stored in state databases: must never change silently


@pytest.mark.parametrize(
    "edit",
    [
        replace("interval: 2m", "interval: 10m"),
        replace("interval: 2m", "emit: page"),
        replace("interval: 2m", "start_time: 2020-01-01T00:00:00Z"),
        replace("interval: 2m", "max_items_per_run: 10"),
        replace("    object: ordersV0.getOrders", "    account: acme\n    object: Orders v0 getOrders"),
        lambda t: t.replace("out: {type: stdout}", "out: {type: stdout}\n  more: {type: stdout}")
                   .replace("emitters: [out]", "emitters: [out, more]"),
    ],
    ids=["interval", "emit", "start_time", "max_items", "alias+explicit account", "emitters"],
)
def test_identity_ignores_scheduling_and_spelling(tmp_path: Path, edit: Callable[[str], str]) -> None:
    assert identity(tmp_path, edit(BASE)) == identity(tmp_path, BASE)


def test_identity_ignores_param_order(tmp_path: Path) -> None:
    one = BASE.replace("interval: 2m", "params: {OrderStatuses: [Shipped], BuyerEmail: a}")
    two = BASE.replace("interval: 2m", "params: {BuyerEmail: a, OrderStatuses: [Shipped]}")
    assert identity(tmp_path, one) == identity(tmp_path, two)


@pytest.mark.parametrize(
    "edit",
    [
        replace("timestamp_field: updated", "timestamp_field: created"),
        replace("ordersV0.getOrders", "orders_2026-01-01.searchOrders"),
        replace("interval: 2m", "params: {OrderStatuses: [Shipped]}"),
        lambda t: t.replace("  acme:", "  acme2:"),
    ],
    ids=["timestamp_field", "object", "params", "account"],
)
def test_identity_changes_with_what_the_watermark_means(tmp_path: Path, edit: Callable[[str], str]) -> None:
    assert identity(tmp_path, edit(BASE)) != identity(tmp_path, BASE)


# --- accounts -------------------------------------------------------------------------------------


def test_account_for_the_only_account(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    name, account = config.account_for(None)
    assert name == "acme" and account is config.accounts["acme"]
    assert config.account_for("acme")[0] == "acme"


def test_account_for_the_default_account(tmp_path: Path) -> None:
    text = BASE.replace("accounts:\n", OTHER_ACCOUNT).replace("    marketplace_ids", "    default: true\n    marketplace_ids")
    config = load_config(write(tmp_path, text))
    assert config.account_for(None)[0] == "acme"
    assert config.account_for("other")[0] == "other"
    assert config.pollers["orders"].account == "acme"


def test_account_for_without_default_is_a_usage_error(tmp_path: Path) -> None:
    text = BASE.replace("accounts:\n", OTHER_ACCOUNT).replace("    timestamp_field", "    account: acme\n    timestamp_field")
    config = load_config(write(tmp_path, text))
    with pytest.raises(UsageError) as info:
        config.account_for(None)
    assert info.value.exit_code == 2
    assert str(info.value) == ("several accounts (other, acme) and none is marked default: true; "
                               "choose one with --account NAME")
    with pytest.raises(UsageError, match=r'^unknown account "nope"; accounts: other, acme$'):
        config.account_for("nope")


# --- secrets and describe ---------------------------------------------------------------------------


def test_secrets_never_in_repr_str_dump_or_describe(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    shown = [repr(config), str(config), config.model_dump_json(), "\n".join(config.describe()),
             repr(config.accounts["acme"].lwa)]
    for text in shown:
        assert "csecret-value" not in text and "rtoken-value" not in text
    assert config.accounts["acme"].lwa.client_secret.get_secret_value() == "csecret-value"


def test_describe_hides_credentials_in_urls(tmp_path: Path) -> None:
    text = BASE.replace("endpoint: na", "endpoint: 'https://user:pa55@proxy.example:8443/'")
    lines = load_config(write(tmp_path, text)).describe()
    assert lines[1] == "account acme: https://proxy.example:8443, region us-east-1, marketplaces ATVPDKIKX0DER"


def test_describe(tmp_path: Path) -> None:
    text = BASE.replace("out: {type: stdout}", "out: {type: stdout}\n  archive: {type: file, path: '/x/{poller}.jsonl'}")
    text = text.replace("emitters: [out]", "emitters: [out, archive]\n    start_time: 2025-01-01T00:00:00Z")
    assert load_config(write(tmp_path, text)).describe() == [
        f"state: {tmp_path / 'state.db'}",
        "account acme: https://sellingpartnerapi-na.amazon.com, region us-east-1, marketplaces ATVPDKIKX0DER",
        "emitter out: stdout",
        "emitter archive: file /x/{poller}.jsonl (fsync)",
        "poller orders: ordersV0.getOrders by updated, every 2m from 2025-01-01T00:00:00Z → out, archive "
        "(account acme, emit individually)",
    ]


# --- shipped configs --------------------------------------------------------------------------------


EXAMPLE = ROOT / "config" / "spd.example.yaml"
COMMENTED_KEY = re.compile(r"^([ \t]*)# (([ \t]*)[A-Za-z_][\w.-]*:([ \t].*)?)$", re.M)  # `# key: value`


def example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"SPD_LWA_CLIENT_ID": "amzn1.application-oa2-client.example",
                        "SPD_WEBHOOK_SECRET": "example-webhook-secret", "SPD_WEBHOOK_TOKEN": "example-webhook-token",
                        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-aws-secret",
                        "SPD_KAFKA_PASSWORD": "example-kafka-password"}.items():
        monkeypatch.setenv(name, value)


def example_copy(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example with its systemd credentials in tmp_path and a real CA file for Kafka."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "lwa_client_secret").write_text("example-lwa-secret\n")
    (credentials / "refresh_token").write_text("Atzr|example\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert "/etc/spd/kafka-ca.pem" in text
    return write(tmp_path, text.replace("/etc/spd/kafka-ca.pem", a_ca_file()))


def errors_beyond_the_file(path: Path) -> list[str]:
    """The errors `spd validate` finds with its checks of the machine (extras, TLS files)."""
    validation = validate_config(path, environment=True)
    return [p.format(str(path)) for p in validation.errors]


def a_ca_file() -> str:
    """A real CA bundle for the Kafka emitter's `ssl.cafile`, which validation loads."""
    paths = ssl.get_default_verify_paths()
    found = [p for p in (paths.cafile, paths.openssl_cafile) if p and Path(p).is_file()]
    return found[0] if found else pytest.importorskip("certifi").where()


def uncomment_optional_keys(text: str) -> str:
    """The example with every `# key: value` line (an optional key left out) written in."""
    return COMMENTED_KEY.sub(lambda m: m.group(1) + m.group(2), text)


def test_example_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example_env(monkeypatch)
    path = example_copy(tmp_path, EXAMPLE.read_text(), monkeypatch)
    config = load_config(path)
    assert set(config.pollers) == {"orders", "vendor-po"}
    lwa = config.accounts["acme-us"].lwa
    assert (lwa.client_secret.get_secret_value(), lwa.refresh_token.get_secret_value()) == (
        "example-lwa-secret", "Atzr|example")
    assert config.pollers["vendor-po"].account == "acme-us"
    assert config.pollers["vendor-po"].object_type.name == "vendorOrders.getPurchaseOrders"
    assert config.emitters["hook"].type == "webhook"
    assert errors_beyond_the_file(path) == []  # what `spd validate` adds


def test_example_config_without_the_extras_names_the_keys_that_need_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README's install (`pip install .`) has neither aiokafka nor aioboto3: the example as
    shipped validates there (what needs an extra is commented out), and once uncommented, what
    needs an extra (the subscription reads SQS, the Kafka emitters) says so at its key."""
    example_env(monkeypatch)
    monkeypatch.setitem(sys.modules, "aiokafka", None)  # `import aiokafka` now raises ImportError
    monkeypatch.setitem(sys.modules, "aioboto3", None)
    path = example_copy(tmp_path, EXAMPLE.read_text(), monkeypatch)
    assert list(validate_config(path, environment=True).problems) == []
    (tmp_path / "full").mkdir()
    full = example_copy(tmp_path / "full", uncomment_optional_keys(EXAMPLE.read_text()), monkeypatch)
    errors = [(p.path[:2], p.message) for p in validate_config(full, environment=True).errors]
    assert any(path == ("subscriptions", "order-changes") and "aioboto3" in message
               for path, message in errors), errors
    assert any(path == ("emitters", "bus") and "aiokafka" in message for path, message in errors), errors


def test_example_config_with_every_optional_key_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example_env(monkeypatch)
    text = EXAMPLE.read_text()
    assert "not supported" not in text
    full = uncomment_optional_keys(text)
    assert COMMENTED_KEY.search(full) is None and len(COMMENTED_KEY.findall(text)) >= 40
    path = example_copy(tmp_path, full, monkeypatch)
    config = load_config(path)
    assert errors_beyond_the_file(path) == []
    account = config.accounts["acme-us"]
    assert account.aws is not None and account.aws.role_session_name == "spd"
    assert {name: e.type for name, e in config.emitters.items()} == {
        "out": "stdout", "archive": "file", "hook": "webhook", "bus": "kafka", "secure-bus": "kafka"}
    secure = config.emitters["secure-bus"]
    assert (secure.sasl.mechanism, secure.ssl.check_hostname) == ("SCRAM-SHA-512", True)
    orders = config.pollers["orders"]
    assert (orders.overlap, orders.restricted, orders.include) == (
        timedelta(minutes=10), ["buyerInfo", "shippingAddress"], ["items"])
    settlements = config.pollers["settlements"]
    assert (settlements.report_types, settlements.download) == (["GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE"], True)
    assert config.pollers["order-report"].object_type.name.startswith("report:")
    subscription = config.subscriptions["order-changes"]
    assert (subscription.notification_types, subscription.reconcile_with) == (["ORDER_CHANGE"], "orders")


def test_example_config_documents_every_key_the_readme_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`([a-z_]+):", readme)) | set(re.findall(r"^\s*([a-z_]+):", readme, re.M))
    example_env(monkeypatch)
    keys: set[str] = set()

    def collect(value: object) -> None:
        if isinstance(value, dict):
            keys.update(value)
            for item in value.values():
                collect(item)

    text = uncomment_optional_keys(EXAMPLE.read_text())
    collect(yaml.safe_load(text))
    assert {"overlap", "include", "restricted", "report_types", "download", "aws"} <= named
    assert sorted(named - keys) == []


def test_example_config_mentions_every_key() -> None:
    text = EXAMPLE.read_text()
    models = [config_module.Config, config_module.PollerConfig, config_module.AccountConfig,
              config_module.LwaConfig, config_module.AwsConfig, config_module.JobConfig,
              config_module.LogConfig, config_module.HttpConfig, config_module.RateLimitConfig,
              config_module.StateConfig, config_module.KafkaSaslConfig, config_module.KafkaSslConfig,
              config_module.ClusterConfig,
              *EMITTER_MODELS]  # every registered emitter type documents its keys
    missing = [f"{m.__name__}.{k}" for m in models for k in m.allowed_keys() if f"{k}:" not in text]
    assert missing == []


def test_demo_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPD_SIM_URL", "http://127.0.0.1:18080")
    monkeypatch.setenv("SPD_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SPD_DEMO_START", "2026-01-01T00:00:00Z")
    config = load_config(ROOT / "config" / "demo.yaml")
    account = config.accounts["demo"]
    assert account.base_url == "http://127.0.0.1:18080"
    assert account.lwa.token_url == "http://127.0.0.1:18080/auth/o2/token"
    assert config.state.path == tmp_path / "state.db"
    orders, vendor = config.pollers["orders"], config.pollers["vendor-po"]
    assert (orders.object_type.name, orders.timestamp_field, orders.emit) == ("ordersV0.getOrders", "updated", "individually")
    assert (vendor.object_type.name, vendor.timestamp_field, vendor.emit) == ("vendorOrders.getPurchaseOrders", "created", "page")
    assert orders.start_time == datetime(2026, 1, 1, tzinfo=UTC)


def test_demo_config_needs_the_simulator_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPD_STATE_DIR", str(tmp_path))
    path = ROOT / "config" / "demo.yaml"
    assert error_of(path) == (f"{path}: accounts.demo.endpoint (line 14): environment variable SPD_SIM_URL "
                              "is not set; set it, or give a default with ${SPD_SIM_URL:-default}")


def test_programmatic_construction_resolves_the_object_type() -> None:
    config = Config.model_validate({
        "state": {"path": "/tmp/x.db"},
        "accounts": {"a": {"endpoint": "eu", "lwa": {"client_id": "i", "client_secret": "s", "refresh_token": "r"}}},
        "emitters": {"out": {"type": "stdout"}},
        "pollers": {"p": {"object": "orders_2026-01-01.searchOrders", "emitters": ["out"]}},
    })
    poller = config.pollers["p"]
    assert (poller.name, poller.account, poller.object_type.name) == ("p", "a", "orders_2026-01-01.searchOrders")
