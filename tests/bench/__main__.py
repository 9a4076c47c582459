"""`python -m tests.bench NAME [ARGS]`: runs the benchmark module tests/bench/NAME.py."""

from __future__ import annotations

import importlib
import sys

BENCHES = {"emitters": "tests.bench.emitters", "report_memory": "tests.bench.report_memory"}
BENCHES["throughput"] = "tests.bench.throughput"
BENCHES["ratelimit"] = "tests.bench.ratelimit"
BENCHES["scale"] = "tests.bench.scale"
BENCHES["hostile"] = "tests.bench.hostile"
BENCHES["parsers"] = "tests.bench.parsers"
BENCHES["startup"] = "tests.bench.startup"
BENCHES["push"] = "tests.bench.push"
BENCHES["cluster"] = "tests.bench.cluster"


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHES:
        print(f"usage: python -m tests.bench {{{','.join(sorted(BENCHES))}}} [ARGS]", file=sys.stderr)
        return 2
    return importlib.import_module(BENCHES[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
