"""Start-up stays light (issue 15, start-up): each command imports only what it uses.

`spd --help` and `spd validate` run as real subprocesses under `-X importtime`, which names every
module a process imports; the heavy dependencies of the daemon must not be among them. How long
a start takes is measured by `python -m tests.bench startup`, not here. Also: the libyaml
composer that `spd validate` uses gives the same data and lines as PyYAML's own.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from spd.core import yamlload
from support.spd import ROOT, iso, spd_env

# What only running pollers, jobs, the daemon or optional extras need.
RUNTIME_ONLY = {"aiohttp", "structlog", "rich", "aiokafka", "aioboto3", "jsonschema", "asyncpg",
                "apscheduler", "prometheus_client", "ijson", "spd.client.http", "spd.pipeline",
                "spd.app", "spd.sim"}


# What neither `--help` nor `validate` has a use for: the event loop, thread pools and TLS (the
# emitters at work, the token client), a traceback printer. (Package metadata and resources are
# imported: pydantic imports its plugin loader, which reads the PYDANTIC_DISABLE_PLUGINS that spd
# sets, only after importing importlib.metadata.)
NEVER_FOR_CHECKS = {"asyncio", "concurrent", "ssl", "traceback",
                    "spd.client.rdt", "spd.client.singleflight", "spd.emitters.file_writer",
                    "spd.emitters.stdout_writer", "spd.emitters.kafka_producer",
                    "spd.emitters.webhook_sender"}


def imported(*args: str, code: int = 0, **env: str) -> set[str]:
    """Every module `spd ARGS` imports (its exit code must be `code`), with `env` added."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "spd.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=spd_env(**env))
    assert done.returncode == code, done.stderr[-2000:]
    names = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \| *(\S+)$", done.stderr, re.MULTILINE))
    assert "spd.core.errors" in names  # the report was read (spd.cli runs as __main__)
    return names


def below(names: set[str], roots: set[str]) -> set[str]:
    """The modules of `roots` (or below them) among `names`."""
    return {n for n in names if any(n == r or n.startswith(r + ".") for r in roots)}


def heavy(names: set[str]) -> set[str]:
    """The modules of RUNTIME_ONLY (or below them) among `names`."""
    return below(names, RUNTIME_ONLY)


def write_config(tmp_path: Path, job_body: str | None = None) -> Path:
    """Pollers of two kinds (one with restricted data), an emitter of each type, and a job (with
    `job_body`, if any)."""
    start = iso(datetime.now(timezone.utc) - timedelta(days=1))
    body = f"\n    body: {job_body}" if job_body else ""
    job = ("    api: reports_2021-06-30\n    operation: createReport" + body if job_body else
           "    api: reports_2021-06-30\n    operation: getReports\n"
           "    params: {reportTypes: GET_FLAT_FILE_ALL_ORDERS_DATA_BY_LAST_UPDATE_GENERAL}")
    path = tmp_path / "spd.yaml"
    path.write_text(f"""\
state: {{path: {tmp_path / 'state.db'}}}
accounts:
  acme:
    endpoint: http://127.0.0.1:9
    region: us-east-1
    marketplace_ids: [ATVPDKIKX0DER]
    lwa: {{client_id: id, client_secret: secret, refresh_token: token, token_url: http://127.0.0.1:9/auth}}
emitters:
  out: {{type: file, path: "{tmp_path}/out.jsonl"}}
  hook: {{type: webhook, url: "http://user:pw@127.0.0.1:9/hook"}}
  console: {{type: stdout}}
  bus: {{type: kafka, bootstrap_servers: [127.0.0.1:9], topic: spd}}
pollers:
  orders: {{object: ordersV0.getOrders, timestamp_field: updated, start_time: {start}, emitters: [out, console],
            restricted: [buyerInfo]}}
  groups: {{object: financesV0.listFinancialEventGroups, timestamp_field: created, start_time: {start}, emitters: [hook, bus]}}
jobs:
  report:
{job}
    emitters: [out]
""")
    return path


def test_help_loads_neither_the_config_models_nor_the_runtime() -> None:
    names = imported("--help")
    assert heavy(names) | below(names, NEVER_FOR_CHECKS) == set()
    assert {"pydantic", "yaml", "spd.config", "spd.catalog", "spd.core.output", "orjson", "dataclasses"} & names == set()


def test_validate_loads_no_client_scheduler_event_loop_or_schema_checker(tmp_path: Path) -> None:
    """Every emitter type and restricted data elements configured: each config model is loaded
    without its runtime (asyncio, threads, ssl)."""
    names = imported("validate", "-c", str(write_config(tmp_path)))
    assert heavy(names) | below(names, NEVER_FOR_CHECKS) == set()
    assert {"spd.config.validate", "spd.emitters.webhook", "spd.emitters.kafka", "spd.emitters.stdout",
            "spd.emitters.file", "spd.client.data_elements", "yaml._yaml"} <= names  # it did the work


def test_validate_loads_jsonschema_for_a_job_body_and_checks_it(tmp_path: Path) -> None:
    good = imported("validate", "-c", str(write_config(tmp_path, "{reportType: GET_X, marketplaceIds: [A]}")))
    assert heavy(good) == {"jsonschema"} | {n for n in good if n.startswith("jsonschema.")}
    bad = subprocess.run([sys.executable, "-m", "spd.cli", "validate", "-c",
                          str(write_config(tmp_path, "{reportType: GET_X}"))],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=spd_env())
    assert bad.returncode == 78 and "marketplaceIds" in bad.stderr, bad.stderr


# What only some configs use: report pollers (the document parsers), jobs, subscriptions; and
# what no config does: rich's tracebacks, which structlog would import (spd.commands).
BY_CONFIG = {"spd.pipeline.reports", "spd.pipeline.settlements", "spd.sources.reports.document", "ijson",
             "xml", "spd.pipeline.jobs", "spd.pipeline.subscriptions", "spd.sources.notifications",
             "spd.app.progress", "rich", "pygments"}


@pytest.mark.parametrize("command, unneeded", [
    ("once", {"apscheduler", "prometheus_client", "asyncpg", "aiohttp.web", "spd.sim", "spd.app.daemon"} | BY_CONFIG),
    ("run", {"prometheus_client", "asyncpg", "aiohttp.web", "spd.sim"} | BY_CONFIG),
])
def test_once_and_run_import_only_what_every_config_needs(command: str, unneeded: set[str]) -> None:
    """/metrics (http.listen), a PostgreSQL state (state.url), report pollers, jobs and
    subscriptions load theirs when configured. Imported as spd.cli does, by spd.commands."""
    code = (f"import sys; from spd import commands; commands.handler({command!r}); "
            "print(' '.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=spd_env())
    assert done.returncode == 0, done.stderr
    names = set(done.stdout.split())
    assert "aiohttp" in names  # it loaded its client
    assert {n for n in names if any(n == u or n.startswith(u + ".") for u in unneeded)} == set()


DOCS = [
    "a: &a {x: 1, y: [1, 2, {z: 'q'}]}\nb:\n  <<: *a\n  y: 3\nc: [*a, *a]\n",
    "s: |\n  two\n  lines\n\nt: >-\n  folded\n  text\nu: 'it''s'\nv: \"\\u00e9\"\nw: 2026-11-30\nx: yes\ny: True\n",
    "- 1\n-\n  - nested: {deep: [1, [2, [3]]]}\n- ~\n",
]


@pytest.mark.skipif(not yamlload._LIBYAML, reason="PyYAML without libyaml")
@pytest.mark.parametrize("text", DOCS + [p.read_text() for p in sorted((ROOT / "config").glob("*.yaml"))])
def test_libyaml_gives_the_same_data_and_lines_as_pyyaml(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"SPD_LWA_CLIENT_ID": "x", "SPD_WEBHOOK_SECRET": "x", "SPD_WEBHOOK_TOKEN": "x"}
    fast = yamlload.load_yaml(Path("c.yaml"), text, env=env)
    monkeypatch.setattr(yamlload, "_LIBYAML", False)
    slow = yamlload.load_yaml(Path("c.yaml"), text, env=env)
    assert (fast.data, fast.lines, fast.unresolved) == (slow.data, slow.lines, slow.unresolved)
    assert fast.lines  # lines were recorded


LOG_AN_EXCEPTION = """
import io, sys
{prelude}
import structlog
from spd.core.logging import build_processors
out = io.StringIO()
log = structlog.wrap_logger(structlog.PrintLogger(out), processors=build_processors({fmt!r}))
try:
    raise ValueError("boom")
except ValueError:
    log.exception("poller_failed", poller="orders")
print("rich" in sys.modules)
if {fmt!r} == "console":  # the line without its time stamp
    print(out.getvalue().split(" ", 1)[1])
else:
    import json
    print({{k: v for k, v in json.loads(out.getvalue()).items() if k != "timestamp"}})
"""


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_log_lines_are_the_same_without_rich(fmt: str) -> None:
    """spd.commands imports structlog without rich; an exception logged in either format reads
    as it does with structlog's rich tracebacks available (after the time stamp)."""
    def logged(prelude: str) -> list[str]:
        done = subprocess.run([sys.executable, "-c", LOG_AN_EXCEPTION.format(prelude=prelude, fmt=fmt)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120, env=spd_env())
        assert done.returncode == 0, done.stderr
        return done.stdout.split("\n", 1)

    light, full = logged("from spd import commands; commands.handler('once')"), logged("import rich")
    assert (light[0], full[0]) == ("False", "True")
    assert "ValueError: boom" in light[1] and "Traceback (most recent call last)" in light[1]
    assert light[1] == full[1]
