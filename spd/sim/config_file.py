"""`spd sim --write-config PATH`: the demo's config made ready for a simulator started by hand.

config/demo.yaml takes the simulator's URL, a state folder and a start time from three variables
only `spd demo` sets. `spd sim` knows all three once it listens, so it writes them in: then
`spd run -c PATH` or `spd once -c PATH` in another terminal polls it, with no variables to set.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path

from spd.core.errors import SpdError
from spd.core.times import format_ts

CATCH_UP = timedelta(minutes=15)  # as `spd demo`: the pollers start this long before the simulator
DEMO_MARKETPLACES = "marketplace_ids: [ATVPDKIKX0DER]"


class WriteConfigError(SpdError):
    """The config file could not be written (the message names it and why)."""


def state_file(path: Path) -> str:
    """The state database beside the config (relative: the config's folder is its base)."""
    return f"{path.stem}-state.db"


def render_config(template: str, path: Path, url: str, marketplaces: Sequence[str], now: datetime) -> str:
    """demo.yaml with the simulator's values in place of `spd demo`'s variables."""
    body = "\n".join(line for line in template.splitlines() if not line.startswith("#")).lstrip()
    values = {"${SPD_SIM_URL}": url, "${SPD_STATE_DIR}/state.db": state_file(path),
              "${SPD_DEMO_START}": format_ts((now - CATCH_UP).replace(microsecond=0)),
              DEMO_MARKETPLACES: f"marketplace_ids: [{', '.join(marketplaces)}]"}
    for old, new in values.items():
        if old not in body:  # demo.yaml changed shape: fail here, not in the user's `spd run`
            raise RuntimeError(f"config/demo.yaml no longer has {old}")
        body = body.replace(old, new)
    started = format_ts(now.replace(microsecond=0))
    header = (f"# Written by `spd sim --write-config` for the simulator at {url} (started {started}).\n"
              f"# Run `spd run -c {path}` or `spd once -c {path}`; the state is "
              f"{state_file(path)} beside this file.\n\n")
    return header + body + "\n"


def write_config(path: Path, url: str, marketplaces: Sequence[str], now: datetime) -> None:
    """Writes the ready config to `path`; WriteConfigError when it cannot."""
    template = (files("spd._config") / "demo.yaml").read_text(encoding="utf-8")
    text = render_config(template, path, url, marketplaces, now)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise WriteConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
