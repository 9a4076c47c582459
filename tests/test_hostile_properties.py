"""Property-based tests (hypothesis) of the parsers a server or a config file feeds (issue 10):
whatever the bytes, spd raises only its own one-line errors, never moves a watermark past what
the request time allows (nor on an error), and never writes a secret into what it records."""

from __future__ import annotations

import asyncio
import atexit
import gzip
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.hostile import write_hostile_config
from spd.catalog.model import load_catalog
from spd.client import encode as rsp
from spd.client.http import Response
from spd.config.validate import load_config
from spd.core.errors import ConfigError, SpdError
from spd.core.redaction import redact_secrets
from spd.pipeline.factory import build_poller
from spd.pipeline.operation_fetch import OperationFetch
from spd.pipeline.poller import Poller
from spd.pipeline.poller_support import ECHO_CLOCK_SKEW
from spd.sources.reports.document import DocumentStream
from spd.state.store import StateStore
from support.recording import RecordingEmitter

SECRET = "Hostile-Secret-Value-7d1e0c"  # registered like a configured secret
TOKEN = "Atza|property-token-abcdef"  # token-shaped: redacted even unregistered
UTC = timezone.utc
WORKDIR = Path(tempfile.mkdtemp(prefix="spd-props-"))
atexit.register(shutil.rmtree, WORKDIR, ignore_errors=True)
CONFIG = load_config(write_hostile_config(WORKDIR, "http://127.0.0.1:9"))
redact_secrets.register([SECRET])
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- SP-API replies -------------------------------------------------------------------------

def stamps() -> st.SearchStrategy[str]:
    """Timestamps near now, far away, malformed, or not timestamps at all."""
    near = st.integers(-86400 * 3, 86400).map(
        lambda s: (datetime.now(UTC) + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    far = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                       timezones=st.just(UTC)).map(lambda d: d.isoformat())
    return st.one_of(near, far, st.text(max_size=30), st.sampled_from([SECRET, TOKEN, ""]))


def scalars() -> st.SearchStrategy[Any]:
    # what orjson can hand over: 64-bit integers (larger ones arrive as floats), finite floats
    return st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
                     st.floats(allow_nan=False, allow_infinity=False),
                     st.text(max_size=20), st.sampled_from([SECRET, TOKEN]), stamps())


def json_values() -> st.SearchStrategy[Any]:
    keys = st.sampled_from(["AmazonOrderId", "LastUpdateDate", "PurchaseDate", "NextToken",
                            "Orders", "payload", "LastUpdatedBefore", "errors", "message", "x"])
    return st.recursive(scalars(), lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)), max_leaves=12)


def replies() -> st.SearchStrategy[Any]:
    """getOrders-shaped bodies with hostile parts, arbitrary JSON, and arbitrary bytes."""
    order = st.fixed_dictionaries({}, optional={
        "AmazonOrderId": scalars(), "LastUpdateDate": stamps(), "PurchaseDate": stamps(),
        "Extra": json_values()})
    payload = st.fixed_dictionaries({}, optional={
        "Orders": st.one_of(st.lists(order, max_size=3), json_values()),
        "LastUpdatedBefore": st.one_of(stamps(), json_values()),
        "NextToken": st.one_of(st.text(max_size=8), st.sampled_from([SECRET, TOKEN]), json_values())})
    shaped = st.fixed_dictionaries({"payload": payload})
    raw = st.binary(max_size=200).map(_parsed)
    return st.one_of(shaped, json_values(), raw)


def _parsed(raw: bytes) -> Any:
    try:
        return rsp.parse_body(raw, "application/json", strict=True)
    except ValueError:
        return rsp.parse_body(raw, "text/plain", strict=False)


class ConstantClient:
    """Answers every call with the same body, as a stuck or hostile server would."""

    def __init__(self, body: Any) -> None:
        self.body = body
        self.calls = 0

    async def call(self, account: str, op: Any, params: Any = None, body: Any = None, **kw: Any) -> Any:
        self.calls += 1
        if self.calls > 50:
            raise AssertionError("the poller kept requesting: it would loop forever")
        return Response(200, {}, self.body)


def make_poller(store: StateStore, body: Any) -> Poller:
    cfg = CONFIG.pollers["p"]
    ot = cfg.object_type
    return build_poller(cfg, name="p", account_name="acme", account=CONFIG.accounts["acme"],
                        object_type=ot, client=ConstantClient(body),  # type: ignore[arg-type]
                        operation=load_catalog().operation(ot.api, ot.operation), store=store,
                        emitters=[RecordingEmitter("archive")])


@FAST
@given(body=replies())
def test_any_reply_ends_the_run_with_a_result_or_one_spd_error(body: Any) -> None:
    async def scenario() -> tuple[datetime, Any, Poller, SpdError | None]:
        async with StateStore(WORKDIR / "props.db", daemon=True) as store:
            await store.delete("p")
            start = (await store.ensure("p", CONFIG.pollers["p"].identity(),
                                        CONFIG.pollers["p"].start_time)).watermark
            poller = make_poller(store, body)
            try:
                await poller.run()
                failed = None
            except SpdError as exc:  # anything else is a crash, and fails the test
                failed = exc
            return start, await store.require("p"), poller, failed

    start, state, poller, failed = asyncio.run(scenario())
    lag = CONFIG.pollers["p"].object_type.window.lag
    assert state.watermark >= start
    assert state.watermark <= datetime.now(UTC) - lag + ECHO_CLOCK_SKEW  # never in the future
    if failed is not None:
        if poller.client.calls == 1:  # the first reply was refused: nothing moved
            assert state.watermark == start and state.window_start is None
        assert "\n" not in (state.last_error or "")
        assert SECRET not in state.last_error and TOKEN not in state.last_error
    assert SECRET not in (state.note or "")


@FAST
@given(body=replies())
def test_a_window_ends_inside_its_bounds_or_not_at_all(body: Any) -> None:
    async def scenario() -> tuple[Any, Poller, datetime | None]:
        async with StateStore(WORKDIR / "props2.db", daemon=True) as store:
            await store.delete("p")
            await store.ensure("p", CONFIG.pollers["p"].identity(), CONFIG.pollers["p"].start_time)
            poller = make_poller(store, body)
            fetching, series = poller.fetching, poller.series()[0]
            assert isinstance(fetching, OperationFetch)
            state = await store.require("p")
            window = fetching.plan(series, state)
            assert window is not None
            try:
                page = await fetching.fetch_page(series, window, None)
                end, _ = fetching.window_end(series, window, page, state.watermark)
            except SpdError:
                return state, poller, None
            return state, poller, end

    state, poller, end = asyncio.run(scenario())
    if end is None:
        return
    assert state.watermark <= end <= datetime.now(UTC) - poller.object_type.window.lag + ECHO_CLOCK_SKEW


# -- report documents -------------------------------------------------------------------------

DOC_KWARGS = st.fixed_dictionaries({
    "compression": st.sampled_from([None, "GZIP"]),
    "content_type": st.sampled_from([None, "text/plain", "text/csv;charset=Cp1252",
                                     "application/json", "text/xml;charset=shift_jis",
                                     "text/plain;charset=nonsense"]),
    "fmt": st.sampled_from([None, "tsv", "csv", "json", "xml"]),
})


def documents() -> st.SearchStrategy[bytes]:
    text = st.text(alphabet=st.sampled_from(list('\t,\n\r"{}[]<>/=ab1 \\\'é:') + ["\ufeff"]),
                   max_size=300).map(lambda s: s.encode("utf-8"))
    both = st.one_of(st.binary(max_size=300), text)
    return st.one_of(both, both.map(gzip.compress), both.map(lambda b: gzip.compress(b)[:-5]))


@FAST
@given(data=documents(), kwargs=DOC_KWARGS, chunk=st.integers(1, 64))
def test_any_document_gives_rows_or_a_report_format_error(data: bytes, kwargs: dict, chunk: int) -> None:
    stream = DocumentStream(**kwargs)
    try:
        rows = [r for i in range(0, len(data), chunk) for batch in stream.feed(data[i:i + chunk])
                for r in batch]
        rows += stream.close()
    except SpdError as exc:
        assert "\n" not in str(exc)
        return
    assert all(isinstance(row, dict) for row in rows)


# -- configs ----------------------------------------------------------------------------------

YAML_PIECES = st.sampled_from([
    "state:", " {path: s.db}", "\n", "  ", "- ", "&a ", "*a", "<<: *a", "accounts:", "acme:",
    "endpoint: ", "${file:secret.txt}", "${NOPE}", "$${x}", "[", "]", "{", "}", ",", ":", "'",
    '"', "#", "!!python/object:os.system", "pollers:", "emitters:", "type: file", "1e999",
    "2025-01-01", "yes", "~", "\t", "|", ">", "?", "---", "...", "%YAML 1.1", "lwa:", "x",
])


@FAST
@given(pieces=st.lists(YAML_PIECES, max_size=40))
def test_any_config_text_loads_or_gives_one_config_error_without_file_contents(pieces: list[str]) -> None:
    directory = Path(tempfile.mkdtemp(dir=WORKDIR))
    (directory / "secret.txt").write_text(SECRET)
    path = directory / "spd.yaml"
    path.write_text("".join(pieces))
    try:
        load_config(path)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message
        assert SECRET not in message
    except SpdError:
        raise AssertionError("a config problem must be a ConfigError")


@FAST
@given(raw=st.binary(max_size=400))
def test_any_config_bytes_load_or_give_one_config_error(raw: bytes) -> None:
    directory = Path(tempfile.mkdtemp(dir=WORKDIR))
    path = directory / "spd.yaml"
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)


def test_the_reply_strategy_reaches_the_interesting_cases() -> None:
    """The strategies above are worth their time only if they produce hostile echoes."""
    seen = {"future": False, "token": False}

    @settings(max_examples=300, deadline=None)
    @given(body=replies())
    def look(body: Any) -> None:
        blob = repr(body)
        seen["future"] |= "LastUpdatedBefore" in blob
        seen["token"] |= "NextToken" in blob

    look()
    assert all(seen.values())
