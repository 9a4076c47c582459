"""Reports: document parsing (TSV/CSV/JSON/XML in UTF-8, Cp1252/ISO-8859-1 and Shift_JIS/Cp932,
gzipped, fed in small chunks), the report flow through a real poller against the simulator
(FATAL, cool-down, resume inside a report), and settlements processed once by real `spd once`."""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from spd.client.http import SpClient
from spd.client.policy import RetryPolicy
from spd.config.validate import load_config
from spd.core.errors import ApiError
from spd.sources.reports.document import DocumentStream, iter_rows, parse_bytes
from spd.sources.reports.formats import ReportFormatError
from spd.pipeline.poller import Poller
from spd.pipeline.reports import ReportFailedError, ReportFetch, parse_token
from spd.sources.reports.registry import normalize_report_time, resolve_report_type
from spd.app.runtime import Runtime
from spd.sim import SimSettings, Simulator
from spd.sim.report_documents import EU_CITIES, JP_TITLES
from spd.state.store import StateStore
from support.recording import RecordingEmitter
from support.spd import iso, read_jsonl, run_spd
from support.config import write_config

NOW = datetime.now(timezone.utc).replace(microsecond=0)
ORDERS_REPORT = "report:GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL"
SETTLEMENTS = "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2"
JP = "A1VC38T7YXB528"

# -- parsing -----------------------------------------------------------------------------------

TEXTS = {  # a value each encoding must carry exactly
    "utf-8": "Café 日本語 ✓",
    "cp1252": "Crème brûlée – 12 €",
    "latin-1": "Ærøskøbing Straße",
    "shift_jis": "日本語の商品 ＡＢＣ",
    "cp932": "㈱ヤマダ電機 ①",  # characters only Windows' Cp932 has
}
CHARSETS = {"utf-8": "UTF-8", "cp1252": "Cp1252", "latin-1": "ISO-8859-1",
            "shift_jis": "Shift_JIS", "cp932": "Windows-31J"}


def document(fmt: str, value: str) -> str:
    """A small real-shaped document of each format carrying `value` in two rows."""
    if fmt == "tsv":
        return f"sku\tproduct-name\tquantity\r\nA-1\t{value}\t2\r\nB-2\t{value} 2\t\r\n"
    if fmt == "csv":
        return f'sku,product-name,quantity\nA-1,"{value}, ""quoted""\nline 2",2\nB-2,{value} 2,\n'
    if fmt == "json":
        return json.dumps({"reportSpecification": {"reportType": "X"},
                           "rows": [{"sku": "A-1", "product-name": f'{value}, "quoted"\nline 2',
                                     "quantity": 2},
                                    {"sku": "B-2", "product-name": f"{value} 2", "quantity": ""}]},
                          ensure_ascii=False)
    return (f'<?xml version="1.0"?><AmazonEnvelope><Header><DocumentVersion>1.0</DocumentVersion>'
            f'</Header><Message><MessageID>1</MessageID><Item><sku>A-1</sku><product-name>{value}, '
            f'"quoted"\nline 2</product-name><quantity>2</quantity></Item></Message><Message>'
            f'<MessageID>2</MessageID><Item><sku>B-2</sku><product-name>{value} 2</product-name>'
            f'<quantity></quantity></Item></Message></AmazonEnvelope>')


def names(fmt: str, rows: list[dict[str, Any]]) -> list[str]:
    if fmt == "xml":
        return [r["Item"]["product-name"] for r in rows]
    return [r["product-name"] for r in rows]


def feed(data: bytes, size: int, **kwargs: Any) -> list[dict[str, Any]]:
    stream = DocumentStream(**kwargs)
    rows = [row for i in range(0, len(data), size) for batch in stream.feed(data[i:i + size])
            for row in batch]
    return rows + stream.close()


@pytest.mark.parametrize("fmt", ["tsv", "csv", "json", "xml"])
@pytest.mark.parametrize("codec", list(TEXTS))
def test_every_format_in_every_encoding_declared_by_content_type(fmt: str, codec: str) -> None:
    value = TEXTS[codec]
    raw = gzip.compress(document(fmt, value).encode(codec))
    content_type = f"text/plain;charset={CHARSETS[codec]}"
    for size in (1, 3, 4096):  # multi-byte characters and gzip blocks split across chunks
        rows = feed(raw, size, compression="GZIP", content_type=content_type)
        expected = [f'{value}, "quoted"\nline 2', f"{value} 2"] if fmt != "tsv" else [value, f"{value} 2"]
        assert names(fmt, rows) == expected, (size, rows)
    if fmt in ("tsv", "csv"):
        assert rows[0]["quantity"] == "2" and rows[1]["quantity"] == "" and rows[0]["sku"] == "A-1"
    if fmt == "json":
        assert rows[0]["_section"] == "rows" and rows[0]["quantity"] == 2


@pytest.mark.parametrize("codec,markets", [("cp1252", ["ATVPDKIKX0DER"]), ("cp1252", ["A1PA6795UKMFR9"]),
                                           ("cp932", [JP]), ("shift_jis", [JP])])
def test_encoding_defaults_to_the_marketplace_when_undeclared(codec: str, markets: list[str]) -> None:
    value = TEXTS[codec]
    raw = gzip.compress(document("tsv", value).encode(codec))
    rows = parse_bytes(raw, compression="GZIP", content_type="text/plain", marketplace_ids=markets)
    assert names("tsv", rows) == [value, f"{value} 2"]


def test_declared_charset_wins_over_marketplace_and_utf8_is_sniffed() -> None:
    value = TEXTS["utf-8"]
    raw = document("tsv", value).encode("utf-8")
    assert names("tsv", parse_bytes(raw, marketplace_ids=[JP])) == [value, f"{value} 2"]
    cp = document("tsv", TEXTS["cp1252"]).encode("cp1252")
    rows = parse_bytes(cp, content_type="text/tab-separated-values; charset=windows-1252",
                       marketplace_ids=[JP])
    assert names("tsv", rows)[0] == TEXTS["cp1252"]
    bom = b"\xef\xbb\xbf" + raw
    assert list(parse_bytes(bom, content_type="text/plain;charset=UTF-8")[0]) == ["sku", "product-name", "quantity"]


def test_uncompressed_and_multi_member_gzip_and_ragged_rows() -> None:
    text = "a\tb\n1\n2\t3\t4\n"
    assert parse_bytes(text.encode()) == [{"a": "1", "b": ""}, {"a": "2", "b": "3", "_extra": ["4"]}]
    two = gzip.compress(b"a\tb\n1\t2\n") + gzip.compress(b"3\t4\n")
    assert parse_bytes(two, compression="GZIP") == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]
    # the client may already have inflated a Content-Encoding: gzip body
    assert parse_bytes(b"a\tb\n1\t2\n", compression="GZIP") == [{"a": "1", "b": "2"}]


@pytest.mark.parametrize("data,kwargs", [
    (gzip.compress(b"a\tb\n" + b"1\t2\n" * 1000, mtime=0)[:-12], {"compression": "GZIP"}),
    (b'[{"a": 1}, {"a": ', {}),
    (b"<AmazonEnvelope><Message><a>1</a></Message>", {}),
    (b'a,b\n1,"open', {"fmt": "csv"}),
], ids=["gzip", "json", "xml", "csv"])  # stable ids: pytest-xdist workers must collect the same names
def test_truncated_documents_fail_loudly(data: bytes, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ReportFormatError):
        parse_bytes(data, **kwargs)


@pytest.mark.parametrize("size", [1, 7, 65536])
def test_json_shapes_parsed_by_ijson_whatever_the_chunks(size: int) -> None:
    cases = {
        b'[1, [2, 3], {"a": 1.5, "b": 10, "c": null}]': [{"value": 1}, {"value": [2, 3]},
                                                       {"a": 1.5, "b": 10, "c": None}],
        b'{"spec": {"x": [1]}, "empty": [], "s": [{"a": 1}, 2], "t": [{"b": "\\u00e9"}], "n": 3}':
            [{"a": 1, "_section": "s"}, {"value": 2, "_section": "s"}, {"b": "\u00e9", "_section": "t"}],
        b'{"a": 1, "b": {"c": [2]}}': [{"a": 1, "b": {"c": [2]}}],  # no array member: one row
        b' \n[]': [],
    }
    def types(rows: list[dict[str, Any]]) -> list[type]:
        return [type(v) for row in rows for v in row.values()]

    for data, rows in cases.items():
        got = feed(data, size)
        assert got == rows and types(got) == types(rows), (data, size)  # 1.5 a float, not a Decimal


@pytest.mark.parametrize("data, message", [
    (b"42", "JSON document must be an array or an object"),
    (b"", "JSON document is truncated or empty"),
    (b'{"rows": [{"a": 1}, {"a": ', "JSON document is truncated or empty"),
    (b"[1] [2]", "JSON document: parse error: trailing garbage"),
    (b'[{"a": 1,}]', "JSON document: parse error: invalid object key"),
], ids=["scalar", "empty", "truncated", "two-values", "bad-key"])
def test_json_errors_are_one_line(data: bytes, message: str) -> None:
    with pytest.raises(ReportFormatError) as err:
        parse_bytes(data, fmt="json")
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_report_names_timestamps_and_tokens() -> None:
    ot = resolve_report_type(ORDERS_REPORT)
    assert ot.kind == "report" and ot.operation == "createReport" and ot.supported
    with pytest.raises(KeyError, match="getReports"):
        resolve_report_type(f"report:{SETTLEMENTS}")
    with pytest.raises(KeyError, match="upper case"):
        resolve_report_type("report:get_orders")
    assert normalize_report_time("2024-03-01 10:00:00 UTC") == "2024-03-01T10:00:00Z"
    assert normalize_report_time("01.03.2024 10:00:00 UTC") == "2024-03-01T10:00:00Z"
    assert normalize_report_time("2024-03-01 10:00:00 PST") == "2024-03-01T18:00:00Z"
    assert normalize_report_time("2024-03-01T10:00:00+09:00") == "2024-03-01T01:00:00Z"
    assert normalize_report_time("soon") is None
    assert parse_token("5001:200") == ("5001", 200) and parse_token(None) == (None, 0)


# -- the report flow against the simulator -------------------------------------------------------


async def sim_post(sim: Simulator, path: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as session:
        async with session.post(sim.url + path, json=body) as resp:
            return await resp.json()


async def sim_get(sim: Simulator, path: str, **query: str) -> Any:
    async with aiohttp.ClientSession() as session:
        async with session.get(sim.url + path, params=query) as resp:
            return await resp.json()


async def calls(sim: Simulator, op: str) -> int:
    return (await sim_get(sim, "/_sim/stats"))["operations"][f"reports_2021-06-30.{op}"].get("ok", 0)


class Harness:
    """A runtime over one state file whose pollers record to one emitter (a restart = a new one)."""

    def __init__(self, tmp_path: Path, sim: Simulator, poller: dict[str, Any], market: str = "ATVPDKIKX0DER"):
        self.config = load_config(write_config(tmp_path, sim.url, {"p": poller}, markets=(market,)))
        self.recorder = RecordingEmitter("archive")
        self.runtime: Runtime | None = None

    async def start(self, *, cooldown: float = 900.0) -> Poller:
        store = StateStore(Path(self.config.state.path))
        await store.open()
        self.runtime = Runtime(self.config, store, emitter_factory=lambda name, cfg: self.recorder)
        await self.runtime.start()
        poller = self.runtime.pollers["p"]
        assert isinstance(poller.fetching, ReportFetch)
        poller.fetching.status_delay, poller.fetching.cooldown = 0.05, timedelta(seconds=cooldown)
        return poller

    async def stop(self) -> None:
        assert self.runtime is not None
        await self.runtime.close()
        await self.runtime.store.close()

    async def state(self) -> Any:
        async with StateStore(Path(self.config.state.path)) as store:
            return await store.get("p")


@pytest.fixture
async def sim() -> Any:
    settings = SimSettings(orders=600, start=NOW - timedelta(days=40), end=NOW, live=False,
                           rate_limit=False, marketplaces=("ATVPDKIKX0DER", JP))
    async with Simulator(settings) as simulator:
        await sim_post(simulator, "/_sim/reports", {"processing_seconds": 0.3})
        yield simulator


def orders_poller(days: int = 45) -> dict[str, Any]:
    return {"object": ORDERS_REPORT, "timestamp_field": "updated", "start_time": iso(NOW - timedelta(days=days))}


async def truth_ids(sim: Simulator, start: datetime, market: str) -> set[str]:
    """The orders of `market` updated from `start` to the end of the newest orders report's
    window (now - 2 minutes when it was made): what the reports had to hold. The seeded orders
    keep changing meanwhile, so neither the end (now) nor the versions current now will do: an
    order updated after that end is in no report, and one the report holds may be superseded."""
    reports = (await sim_get(sim, "/_sim/reports"))["reports"]
    end = max(r["dataEndTime"] for r in reports
              if r["reportType"] == ORDERS_REPORT.split(":")[1] and r["marketplaceIds"] == [market])
    body = await sim_get(sim, "/_sim/objects", type="ordersV0.getOrders", field="updated",
                         after=iso(start), before=end, marketplace=market)
    return {o["id"] for o in body["objects"]}


async def test_report_flow_emits_every_row_of_every_window(tmp_path: Path, sim: Simulator) -> None:
    h = Harness(tmp_path, sim, orders_poller())
    poller = await h.start()
    result = await poller.run()
    await h.stop()
    messages = h.recorder.messages
    assert result.caught_up and result.windows == 2  # 45 days in 30-day windows
    assert await calls(sim, "createReport") == 2
    ids = {m["data"]["amazon-order-id"] for m in messages}
    assert ids == await truth_ids(sim, NOW - timedelta(days=45), "ATVPDKIKX0DER") and ids
    assert len(messages) == result.objects  # one message per order line
    for m in messages:
        assert m["object_type"] == ORDERS_REPORT
        assert m["cursor"] == m["data"]["last-updated-date"]
        assert m["data"]["ship-city"] in EU_CITIES  # Cp1252 decoded exactly
    state = (await h.state())
    assert state.objects_emitted == len(messages) and state.next_token is None
    assert datetime.now(timezone.utc) - state.watermark < timedelta(minutes=3)


async def test_each_marketplace_gets_its_own_report_and_the_japanese_one_is_shift_jis(
        tmp_path: Path, sim: Simulator) -> None:
    h = Harness(tmp_path, sim, orders_poller(20), market=f"ATVPDKIKX0DER, {JP}")
    poller = await h.start()
    result = await poller.run()
    await h.stop()
    assert result.caught_up
    rows = [m["data"] for m in h.recorder.messages]
    jp = [r for r in rows if r["sales-channel"] == "Amazon.co.jp"]
    us = [r for r in rows if r["sales-channel"] == "Amazon.com"]
    assert len(jp) + len(us) == len(rows)
    assert {r["amazon-order-id"] for r in jp} == await truth_ids(sim, NOW - timedelta(days=20), JP)
    assert {r["amazon-order-id"] for r in us} == await truth_ids(sim, NOW - timedelta(days=20), "ATVPDKIKX0DER")
    assert jp and all(r["product-name"] in JP_TITLES and r["ship-city"] == "東京都渋谷区" for r in jp)
    assert us and all(r["ship-city"] in EU_CITIES for r in us)
    reports = [r for r in (await sim_get(sim, "/_sim/reports"))["reports"]
               if r["reportType"] == ORDERS_REPORT.split(":")[1]]
    assert sorted(r["marketplaceIds"][0] for r in reports) == sorted(["ATVPDKIKX0DER", JP])
    async with StateStore(Path(h.config.state.path)) as store:
        keys = {s.poller for s in await store.all()}
    assert {f"p@{JP}", "p@ATVPDKIKX0DER"} <= keys


async def test_fatal_report_is_recorded_and_retried_after_cool_down(tmp_path: Path, sim: Simulator) -> None:
    await sim_post(sim, "/_sim/reports", {"fatal": 1})
    h = Harness(tmp_path, sim, orders_poller(10))
    poller = await h.start(cooldown=1.5)
    start = (await h.state()).watermark
    with pytest.raises(ReportFailedError, match="FATAL"):
        await poller.run()
    state = (await h.state())
    assert "FATAL" in state.last_error and "retried after" in state.note
    assert "internal error" in state.note  # Amazon's explanation from the FATAL document
    assert state.watermark == start and h.recorder.messages == []
    with pytest.raises(ReportFailedError, match="retrying after"):  # cooling down: no new request
        await poller.run()
    assert await calls(sim, "createReport") == 1
    await asyncio.sleep(1.6)
    result = await poller.run()
    await h.stop()
    assert result.caught_up and await calls(sim, "createReport") == 2
    state = (await h.state())
    assert state.last_error is None and state.note is None and state.watermark > start
    ids = {m["data"]["amazon-order-id"] for m in h.recorder.messages}
    assert ids == await truth_ids(sim, start, "ATVPDKIKX0DER")  # the window was not skipped


async def test_window_cancelled_twice_completes_empty_with_a_note(tmp_path: Path, sim: Simulator) -> None:
    await sim_post(sim, "/_sim/reports", {"cancelled": 2})
    h = Harness(tmp_path, sim, orders_poller(10))
    poller = await h.start(cooldown=0.0)
    with pytest.raises(ReportFailedError, match="CANCELLED"):
        await poller.run()
    assert (await h.state()).watermark == NOW - timedelta(days=10)
    result = await poller.run()
    await h.stop()
    assert result.caught_up and "CANCELLED 2 times" in (await h.state()).note


async def test_crash_mid_report_resumes_inside_the_same_report(tmp_path: Path, sim: Simulator) -> None:
    h = Harness(tmp_path, sim, orders_poller(25))
    poller = await h.start()
    h.recorder.fail_on = {3}  # the third page is refused: the run fails after two pages
    with pytest.raises(Exception):
        await poller.run()
    await h.stop()
    report_id, done = parse_token((await h.state()).next_token)
    assert done == 200 and len(h.recorder.messages) == 200
    first = list(h.recorder.messages)

    h2 = Harness(tmp_path, sim, orders_poller(25))  # a restart over the same state
    poller = await h2.start()
    result = await poller.run()
    await h2.stop()
    assert result.caught_up and await calls(sim, "createReport") == 1  # no new report
    assert await calls(sim, "getReportDocument") == 2  # the same report, downloaded again
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    clean = Harness(clean_dir, sim, orders_poller(25))  # the same window without a crash
    await (await clean.start()).run()
    await clean.stop()
    rows = [json.dumps(m["data"], sort_keys=True) for m in first + h2.recorder.messages]
    assert rows == [json.dumps(m["data"], sort_keys=True) for m in clean.recorder.messages]
    assert report_id  # nothing repeated, nothing lost, in the same order


async def test_resumed_report_that_is_gone_is_requested_again(tmp_path: Path, sim: Simulator) -> None:
    h = Harness(tmp_path, sim, orders_poller(25))
    poller = await h.start()
    h.recorder.fail_on = {2}
    with pytest.raises(Exception):
        await poller.run()
    await h.stop()
    report_id, done = parse_token((await h.state()).next_token)
    assert done == 100
    await sim_post(sim, "/_sim/reports", {"forget": [report_id]})
    h2 = Harness(tmp_path, sim, orders_poller(25))
    poller = await h2.start()
    result = await poller.run()
    await h2.stop()
    assert result.caught_up and await calls(sim, "createReport") == 2
    emitted = {m["data"]["amazon-order-id"] for m in h2.recorder.messages}
    assert emitted == await truth_ids(sim, NOW - timedelta(days=25), "ATVPDKIKX0DER")


async def test_stop_while_processing_then_restart_waits_for_the_same_report(tmp_path: Path, sim: Simulator) -> None:
    await sim_post(sim, "/_sim/reports", {"processing_seconds": 2.0})
    h = Harness(tmp_path, sim, orders_poller(5))
    poller = await h.start()
    task = asyncio.ensure_future(poller.run())
    while await calls(sim, "createReport") < 1:
        await asyncio.sleep(0.05)
    poller.stopping.set()
    result = await asyncio.wait_for(task, 5)
    await h.stop()
    assert not result.caught_up and h.recorder.messages == []
    h2 = Harness(tmp_path, sim, orders_poller(5))
    poller = await h2.start()
    result = await poller.run()
    await h2.stop()
    assert result.caught_up and await calls(sim, "createReport") == 1 and h2.recorder.messages


# -- settlements: real `spd once` twice ---------------------------------------------------------

def test_settlements_are_processed_exactly_once_across_runs(tmp_path: Path, sim_factory: Any) -> None:
    """Four real `spd once` runs: the newest US settlement is still IN_PROGRESS at first and holds
    the watermark, so the German one created after it is listed again by later runs; each report
    is downloaded and emitted exactly once."""
    sim = sim_factory(orders=400, start=NOW - timedelta(days=4), end=NOW, live=False,
                      marketplaces=("ATVPDKIKX0DER", "A1PA6795UKMFR9"))
    sim.post("/_sim/reports", {"processing_seconds": 0.1})
    listed = [r for r in sim.get("/_sim/reports")["reports"] if r["reportType"] == SETTLEMENTS]
    assert len(listed) >= 6  # 3+ daily settlement periods x 2 marketplaces
    newest_us = max((r for r in listed if r["marketplaceIds"] == ["ATVPDKIKX0DER"]),
                    key=lambda r: r["createdTime"])
    sim.post("/_sim/reports", {"hold": [newest_us["reportId"]]})
    config = write_config(tmp_path, sim.url, {"p": {
        "object": "reports_2021-06-30.getReports", "download": "true",
        "report_types": f"[{SETTLEMENTS}]", "emit": "page",
        "start_time": iso(NOW - timedelta(days=10))}})
    out = tmp_path / "out" / "p.jsonl"

    def once() -> set[str]:
        result = run_spd("once", "-c", str(config))
        assert result.returncode == 0, result.stderr
        pages = read_jsonl(out)
        assert {p["object_type"] for p in pages} == {f"report:{SETTLEMENTS}"}
        ids = [row["settlement-id"] for page in pages for row in page["results"]
               if row.get("settlement-start-date")]  # one summary row per settlement
        assert len(ids) == len(set(ids)), "a settlement was emitted twice"
        return set(ids)

    everything = {r["reportId"] for r in listed}
    assert once() == everything - {newest_us["reportId"]}
    downloads = sim.get("/_sim/reports")["downloads"]
    assert downloads == len(listed) - 1
    assert once() == everything - {newest_us["reportId"]}  # held: the DE one is listed, not redone
    assert sim.get("/_sim/reports")["downloads"] == downloads
    sim.post("/_sim/reports", {"release": [newest_us["reportId"]]})
    assert once() == everything
    lines = out.read_text().count("\n")
    assert once() == everything and out.read_text().count("\n") == lines  # nothing new
    assert sim.get("/_sim/reports")["downloads"] == len(listed)
    rows = [row for page in read_jsonl(out) for row in page["results"]]
    assert any(r["posted-date-time"].endswith("UTC") and "." in r["posted-date-time"][:5]
               for r in rows)  # the German report's dates, as Amazon writes them


# -- SpClient.download_stream ----------------------------------------------------------------------

async def test_download_stream_retries_opening_and_streams_in_chunks() -> None:
    hits: list[str] = []
    body = gzip.compress(("sku\tname\n" + "".join(f"S{i}\tCafé {i}\n" for i in range(5000))).encode("cp1252"))

    async def doc(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        if len(hits) == 1:
            return web.Response(status=503)
        if request.path == "/cut":  # the connection drops in the middle of the body
            response = web.StreamResponse(headers={"Content-Length": str(len(body))})
            await response.prepare(request)
            await response.write(body[:1000])
            request.transport.close()
            return response
        response = web.StreamResponse(headers={"Content-Type": "text/plain;charset=Cp1252"})
        await response.prepare(request)
        for i in range(0, len(body), 4096):
            await response.write(body[i:i + 4096])
        return response

    app = web.Application()
    app.router.add_get("/{name}", doc)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with SpClient({}, None, retry=RetryPolicy(backoff_base=0.01)) as client:
            async with client.download_stream(f"http://{host}:{port}/doc") as download:
                stream = DocumentStream(compression="GZIP", content_type=download.content_type)
                rows = [r async for batch in iter_rows(download.chunks(), stream) for r in batch]
            assert len(rows) == 5000 and rows[-1] == {"sku": "S4999", "name": "Café 4999"}
            assert hits == ["/doc", "/doc"]  # a 503 on opening is retried
            with pytest.raises(ApiError) as failure:
                async with client.download_stream(f"http://{host}:{port}/cut") as download:
                    async for _chunk in download.chunks():
                        pass
            assert failure.value.retriable
    finally:
        await runner.cleanup()

