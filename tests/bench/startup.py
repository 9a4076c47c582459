"""`python -m tests.bench startup [--pollers 50] [--rounds 5]`: how long a user waits for

- `ready`: `spd run` with `--pollers` pollers (accounts x 5 object types, against the simulator in
  its own process) from exec until systemd would hear READY=1 (a NOTIFY_SOCKET of the bench's
  own); then SIGTERM;
- `help`: `spd --help`;
- `validate`: `spd validate -c` the same config;

beside two references measured in the same rounds: `python`, the interpreter alone
(`python -c pass`), and `sp_api_import`, importing python-amazon-sp-api's Orders client (the
peer's start-up before its first request). Wall seconds, medians of interleaved rounds; the
machine may be shared, so the ratios over the interpreter are the steadier figures. Prints one
JSON line.

Every command runs with its bytecode cached, as after `pip install` (which compiles it): the
environment's PYTHONDONTWRITEBYTECODE is dropped and a first round, not counted, writes the
.pyc files. Without them each start compiles spd's modules again (~0.1-0.2 s).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from tests.bench.scale import OBJECT_TYPES, write_config
from tests.bench.throughput import ENV, ROOT, SimProcess


def spd_command() -> list[str]:
    """The `spd` console script beside this interpreter (what users run), else `-m spd.cli`."""
    script = Path(sys.executable).parent / "spd"
    return [str(script)] if script.exists() else [sys.executable, "-m", "spd.cli"]




def timed(cmd: list[str]) -> float:
    """Wall seconds of a command run to its end (exit code 0 required)."""
    began = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, env=ENV, timeout=120)
    wall = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"{cmd} failed ({result.returncode}): {result.stderr.decode()[-800:]}")
    return wall


def time_to_ready(config: Path, tmp: Path) -> float:
    """Seconds from starting `spd run` until READY=1 arrives on our NOTIFY_SOCKET."""
    address = str(tmp / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(120)
        env = {**ENV, "NOTIFY_SOCKET": address}
        began = time.perf_counter()
        proc = subprocess.Popen([*spd_command(), "run", "-c", str(config)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                message = sock.recv(65536).decode()
                if "READY=1" in message.split("\n"):
                    ready = time.perf_counter() - began
                    break
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
        os.unlink(address)
    if code != 0:
        raise SystemExit(f"spd run exited {code} after READY=1")
    return ready


def run(pollers: int, rounds: int) -> dict[str, Any]:
    accounts = max(1, pollers // len(OBJECT_TYPES))
    spd = spd_command()
    walls: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp_name, SimProcess() as sim:
        tmp = Path(tmp_name)
        config, count = write_config(tmp, sim.url, accounts, 3600)
        for round_ in range(rounds + 1):  # round 0 writes the bytecode and is not counted
            (tmp / "state.db").unlink(missing_ok=True)
            cases = {
                "python": lambda: timed([sys.executable, "-c", "pass"]),
                "sp_api_import": lambda: timed([sys.executable, "-c", "from sp_api.api import Orders"]),
                "help": lambda: timed([*spd, "--help"]),
                "validate": lambda: timed([*spd, "validate", "-c", str(config)]),
                "ready": lambda: time_to_ready(config, tmp),
            }
            for name, case in cases.items():
                wall = case()
                if round_:
                    walls.setdefault(name, []).append(wall)
    med = {name: statistics.median(values) for name, values in walls.items()}
    return {"bench": "startup", "pollers": count, "rounds": rounds,
            **{f"{name}_s": round(value, 3) for name, value in med.items()},
            **{f"{name}_over_python": round(med[name] / med["python"], 2)
               for name in ("help", "validate", "ready", "sp_api_import")}}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench startup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pollers", type=int, default=50, help="pollers of `spd run` (x 5 types)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians reported")
    args = parser.parse_args(argv)
    print(orjson.dumps(run(args.pollers, args.rounds)).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
