"""The one config writer of the tests: a YAML file naming a simulator (or stub) account, emitters
and pollers, written as a user would write it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

LWA = {"client_id": "test-client", "client_secret": "test-secret-value",
       "refresh_token": "test-refresh-token"}

POLLERS = {
    "orders": {"object": "ordersV0.getOrders", "timestamp_field": "updated", "interval": "1s"},
    "search": {"object": "orders_2026-01-01.searchOrders", "timestamp_field": "created", "interval": "1s",
               "emit": "page"},
    "vendor": {"object": "vendorOrders.getPurchaseOrders", "timestamp_field": "updated", "interval": "1s"},
}


def write_config(tmp_path: Path, url: str, pollers: dict[str, dict[str, Any]] | None = None, *,
                 markets: Sequence[str] = ("ATVPDKIKX0DER",), account: str = "sim",
                 lwa: dict[str, str] | None = None, token_url: str | None = None,
                 emitters: dict[str, str] | None = None, log: str = "{level: info, format: json}",
                 state: Path | None = None, extra: str = "", extra_account: str = "",
                 state_url: str | None = None, more_accounts: Sequence[str] = ()) -> Path:
    """tmp_path/spd.yaml: state and log, one account at `url` (token URL: its /auth/o2/token),
    `emitters` (name -> YAML; default `archive`, a file per poller under tmp_path/out) and
    `pollers`, each sending to its `emitters` (default: every emitter). `extra` adds top-level lines, `extra_account`
    lines after the account. `state_url` puts the state in PostgreSQL instead of tmp_path/state.db;
    `more_accounts` are more accounts like the first, at the same `url`."""
    out = tmp_path / "out"
    emitters = emitters or {"archive": f'{{type: file, path: "{out}/{{poller}}.jsonl"}}'}
    credentials = ", ".join(f'{k}: "{v}"' for k, v in (lwa or LWA).items())
    where = f"url: {state_url}" if state_url else f"path: {state or tmp_path / 'state.db'}"
    lines = [f"state: {{{where}}}", f"log: {log}", extra, "accounts:"]
    for name in (account, *more_accounts):
        lines += [f"  {name}:", f"    endpoint: {url}", f"    marketplace_ids: [{', '.join(markets)}]",
                  f"    lwa: {{{credentials}, token_url: {token_url or url + '/auth/o2/token'}}}",
                  extra_account]
    lines += ["emitters:", *(f"  {name}: {spec}" for name, spec in emitters.items())]
    if pollers:
        lines.append("pollers:")
    for name, poller in (pollers or {}).items():
        lines.append(f"  {name}:")
        lines += [f"    {k}: {orjson.dumps(v).decode() if isinstance(v, (dict, list)) else v}"
                  for k, v in poller.items() if k != "emitters"]
        lines.append(f"    emitters: [{', '.join(poller.get('emitters') or emitters)}]")
    path = tmp_path / "spd.yaml"
    path.write_text("\n".join(line for line in lines if line) + "\n")
    return path
