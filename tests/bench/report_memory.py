"""`python -m tests.bench report_memory [--mb 200]`: a generated report document (gzipped TSV in
Cp1252, like Amazon's flat files) streamed from a loopback HTTP server through
`SpClient.download_stream` → gunzip → decode → parse → pages of 100 rows. Prints one JSON line
with the peak RSS of the process (target: under 150 MB for a 200 MB document)."""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from spd.client.http import SpClient
from spd.sources.reports.document import DocumentStream, iter_pages, iter_rows

TARGET_MB = 150
HEADER = ("amazon-order-id\tmerchant-order-id\tpurchase-date\tlast-updated-date\torder-status\t"
          "fulfillment-channel\tsales-channel\tproduct-name\tsku\tasin\tquantity\tcurrency\t"
          "item-price\tship-city\tship-postal-code\tship-country\r\n")
CITIES = ("Montréal", "Köln", "São Paulo", "Málaga", "Zürich")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def blocks(total: int, rows_per_block: int = 2000) -> Iterator[bytes]:
    """Cp1252 TSV text of about `total` bytes, a block of rows at a time."""
    yield HEADER.encode("cp1252")
    sent, n = 0, 0
    while sent < total:
        lines = []
        for _ in range(rows_per_block):
            n += 1
            lines.append(f"{100 + n % 900}-{n:07d}-{n * 7 % 9999999:07d}\t\t2025-03-01T10:{n % 60:02d}:00Z\t"
                         f"2025-03-02T11:{n % 60:02d}:00Z\tShipped\tAmazon\tAmazon.com\tCrème brûlée "
                         f"torch – stainless, model {n % 97}\tSKU-{n % 5000:05d}\tB0{n % 10**8:08d}\t"
                         f"{1 + n % 3}\tUSD\t{n % 500}.99\t{CITIES[n % 5]}\t{n % 99999:05d}\tUS\r\n")
        data = "".join(lines).encode("cp1252")
        sent += len(data)
        yield data


async def serve_document(request: web.Request) -> web.StreamResponse:
    total = int(request.query["bytes"])
    response = web.StreamResponse(headers={"Content-Type": "text/plain;charset=Cp1252"})
    await response.prepare(request)
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    compressed = 0
    for block in blocks(total):
        out = z.compress(block)
        if out:
            compressed += len(out)
            await response.write(out)
    tail = z.flush()
    compressed += len(tail)
    await response.write(tail)
    request.app["compressed"] = compressed
    await response.write_eof()
    return response


async def run(total: int) -> dict[str, Any]:
    app = web.Application()
    app.router.add_get("/doc", serve_document)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    baseline = peak_rss_mb()
    rows = pages = 0
    started = time.perf_counter()
    async with SpClient({}, None) as client:
        async with client.download_stream(f"http://{host}:{port}/doc?bytes={total}") as download:
            stream = DocumentStream(compression="GZIP", content_type=download.content_type,
                                    marketplace_ids=["ATVPDKIKX0DER"])
            async for page in iter_pages(iter_rows(download.chunks(), stream),
                                         consumed=lambda: stream.bytes_out):
                rows += len(page)
                pages += 1
    seconds = time.perf_counter() - started
    await runner.cleanup()
    peak = peak_rss_mb()
    return {"bench": "report_memory", "document_mb": round(stream.bytes_out / 2**20, 1),
            "compressed_mb": round(stream.bytes_in / 2**20, 1), "encoding": stream.encoding,
            "format": stream.fmt, "rows": rows, "pages": pages, "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds), "baseline_rss_mb": round(baseline, 1),
            "peak_rss_mb": round(peak, 1), "target_mb": TARGET_MB, "ok": peak < TARGET_MB}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench report_memory")
    parser.add_argument("--mb", type=float, default=200.0, help="uncompressed document size")
    args = parser.parse_args(argv)
    result = asyncio.run(run(int(args.mb * 2**20)))
    print(orjson.dumps(result).decode())
    return 0
