"""`python -m tests.bench parsers [--mb 27] [--rounds 3]`: the libraries spd parses with against
the hand-written code they replaced (tests/bench/handwritten.py), in the same run, on the same
input (issue 13 item 9). Prints one JSON line of CPU seconds (best of `--rounds`); ratios are
hand-written seconds / library seconds (above 1: the library is faster).

- json_array, json_sections: a report document of about `--mb` MB (a top-level array of
  sales-and-traffic rows; the same rows in a top-level object with sections, as
  GET_SALES_AND_TRAFFIC_REPORT sends them) as decoded text in 256 KiB pieces, as
  spd.sources.reports.document hands it over, through spd's JsonRows (ijson) and the
  hand-written tokenizer; the rows of both must be equal.
- bodies: every request body of Amazon's static sandbox examples, and one createInboundPlan
  body of 2,000 items, checked as `spd exec --body` checks them (jsonschema, the validator built
  per call) and by the hand-written validator.
"""

from __future__ import annotations

import argparse
import codecs
import time
from collections.abc import Callable
from typing import Any

import orjson

from spd.catalog.bodies import body_problems
from spd.catalog.model import load_catalog
from spd.sources.reports.document import PIECE
from spd.sources.reports.formats import JsonRows
from tests.bench.handwritten import HandJsonRows, HandSchemaChecker

TITLE = "Crème brûlée torch – stainless, with a \"quoted\" word"


def sales_rows(count: int) -> list[dict[str, Any]]:
    return [{"date": f"2025-01-{i % 28 + 1:02d}", "parentAsin": f"B0{i:08d}", "childAsin": f"B1{i:08d}",
             "salesByAsin": {"unitsOrdered": i % 7, "totalOrderItems": i % 5,
                             "orderedProductSales": {"amount": round(i * 1.25, 2), "currencyCode": "USD"}},
             "trafficByAsin": {"browserSessions": i % 100, "pageViews": i % 300, "buyBoxPercentage": 97.5,
                               "unitSessionPercentage": 12.25, "title": TITLE, "tags": ["a", "b"]}}
            for i in range(count)]


def documents(megabytes: float) -> dict[str, bytes]:
    """Both JSON shapes at about `megabytes` each."""
    per_row = len(orjson.dumps(sales_rows(100), option=orjson.OPT_INDENT_2)) / 100
    count = int(megabytes * 2**20 / per_row)
    rows = sales_rows(count)
    by_date = rows[: count // 10]
    return {
        "json_array": orjson.dumps(rows, option=orjson.OPT_INDENT_2),
        "json_sections": orjson.dumps({"reportSpecification": {"reportType": "GET_SALES_AND_TRAFFIC_REPORT",
                                                               "marketplaceIds": ["ATVPDKIKX0DER"]},
                                       "salesAndTrafficByDate": by_date,
                                       "salesAndTrafficByAsin": rows[count // 10:]},
                                      option=orjson.OPT_INDENT_2),
    }


def pieces(data: bytes) -> list[str]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    return [decoder.decode(data[i:i + PIECE]) for i in range(0, len(data), PIECE)]


def parse_all(make: Callable[[], Any], texts: list[str]) -> list[dict[str, Any]]:
    parser = make()
    rows = [row for text in texts for row in parser.feed(text)]
    return rows + parser.close()


def best_of(rounds: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """The least CPU time of `rounds` runs (CPU, not wall: the work is single-threaded and CPU
    bound, and a shared machine's other load must not count) and the last result."""
    best, result = float("inf"), None
    for _ in range(rounds):
        started = time.process_time()
        result = work()
        best = min(best, time.process_time() - started)
    return best, result


def bench_json(megabytes: float, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, data in documents(megabytes).items():
        texts = pieces(data)
        ijson_s, rows = best_of(rounds, lambda: parse_all(JsonRows, texts))
        hand_s, hand_rows = best_of(rounds, lambda: parse_all(HandJsonRows, texts))
        assert rows == hand_rows, f"{name}: the two parsers disagree"
        out[name] = {"mb": round(len(data) / 2**20, 1), "rows": len(rows), "ijson_s": round(ijson_s, 3),
                     "handwritten_s": round(hand_s, 3), "handwritten_over_ijson": round(hand_s / ijson_s, 2)}
    return out


def sandbox_bodies() -> list[tuple[Any, Any]]:
    """(operation, body) of every static sandbox example that has a body."""
    from tests.support.exec_cases import SUCCESS_CASES, case_request  # needs Amazon's models

    found = []
    for api, method, path, _, _, case in SUCCESS_CASES:
        op, _, body = case_request(api, method, path, case)
        if body is not None and op.body_schema is not None:
            found.append((op, body))
    return found


def big_body(items: int) -> tuple[Any, Any]:
    op = load_catalog().operation("fulfillmentInbound_2024-03-20", "createInboundPlan")
    address = {"addressLine1": "123 Main St", "city": "Seattle", "countryCode": "US", "name": "Ann",
               "phoneNumber": "2065550100", "postalCode": "98101", "stateOrProvinceCode": "WA"}
    body = {"destinationMarketplaces": ["ATVPDKIKX0DER"], "sourceAddress": address, "name": "plan",
            "items": [{"labelOwner": "AMAZON", "prepOwner": "SELLER", "msku": f"SKU-{i:05d}",
                       "quantity": 1 + i % 40, "expiration": "2027-01-31"} for i in range(items)]}
    return op, body


def hand_check(op: Any, body: Any) -> str | None:
    return HandSchemaChecker(op.definitions).check(body, op.body_schema, "body")


def bench_bodies(rounds: int, items: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, cases in (("sandbox_bodies", sandbox_bodies()), ("inbound_plan_body", [big_body(items)])):
        if not cases:
            continue
        lib_s, lib = best_of(rounds, lambda: [body_problems(b, op.body_schema, op.definitions) for op, b in cases])
        hand_s, hand = best_of(rounds, lambda: [hand_check(op, b) for op, b in cases])
        out[name] = {"bodies": len(cases), "jsonschema_ms": round(lib_s * 1000, 2),
                     "handwritten_ms": round(hand_s * 1000, 2),
                     "handwritten_over_jsonschema": round(hand_s / lib_s, 2),
                     "refused_by_jsonschema": sum(1 for p in lib if p),
                     "refused_by_handwritten": sum(1 for p in hand if p)}
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench parsers")
    parser.add_argument("--mb", type=float, default=27.0, help="size of each JSON document")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs")
    parser.add_argument("--items", type=int, default=2000, help="items of the large request body")
    args = parser.parse_args(argv)
    result = {"bench": "parsers", **bench_json(args.mb, args.rounds), **bench_bodies(args.rounds, args.items)}
    print(orjson.dumps(result).decode())
    return 0
