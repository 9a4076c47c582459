"""The simulator in static-sandbox mode (`spd sim --sandbox`) and the cases of Amazon's model
files it answers: the `x-amzn-api-sandbox` examples."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .sim import SimThread
from .spd import SHARED_MODELS


NO_MATCH = {"errors": [{"code": "InvalidInput", "message": "Could not match input arguments",
                        "details": ""}]}


HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def static_cases() -> Iterator[tuple[str, str, str, int, int, dict[str, Any]]]:
    """(api, METHOD, path template, status, index, case) of every static case in the models."""
    for file in sorted(SHARED_MODELS.rglob("*.json")):
        model = json.loads(file.read_text())
        for path, item in (model.get("paths") or {}).items():
            for method in HTTP_METHODS:
                op = item.get(method) if isinstance(item, dict) else None
                if not isinstance(op, dict):
                    continue
                for status, response in (op.get("responses") or {}).items():
                    sandbox = response.get("x-amzn-api-sandbox") or {}
                    for i, case in enumerate(sandbox.get("static") or ()):
                        yield file.stem, method.upper(), path, int(status), i, case


def write_sandbox_config(tmp_path: Path, url: str, extra: str = "") -> Path:
    """A config with one account pointing at a (sandbox) simulator."""
    path = tmp_path / "spd.yaml"
    path.write_text(
        f"state: {{path: {tmp_path / 'state.db'}}}\n"
        "log: {level: warning, format: json}\n"
        "accounts:\n"
        "  sandbox:\n"
        f"    endpoint: {url}\n"
        "    marketplace_ids: [ATVPDKIKX0DER]\n"
        "    lwa: {client_id: test-client, client_secret: test-secret-value, "
        f"refresh_token: test-refresh-token, token_url: {url}/auth/o2/token}}\n"
        "emitters:\n"
        f"  archive: {{type: file, path: \"{tmp_path / 'out'}/{{poller}}.jsonl\"}}\n" + extra)
    return path


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SimThread]:
    """One sandbox simulator for the whole module (it is stateless)."""
    sim = SimThread(sandbox_models=SHARED_MODELS, orders=0, purchase_orders=0).start()
    yield sim
    sim.stop()
