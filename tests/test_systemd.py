"""systemd: the shipped units (verify, exposure, what they hand spd), the daemon's notifications
to a real NOTIFY_SOCKET, the $STATE_DIRECTORY default, and `spd run` inside an emulation of the
unit's sandbox (tests/sandbox.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from support import systemd_sandbox as sandbox
from spd.config.validate import load_config
from spd.core.errors import ConfigError
from spd.app.systemd import StatusBoard
from support.config import write_config
from support.spd import ROOT, read_jsonl, read_jsonl_so_far, spd_env, start_spd, stop_spd, wait_for

UNITS = [ROOT / "systemd" / "spd.service", ROOT / "systemd" / "spd@.service"]
INSTALLED_SPD = "/opt/spd/venv/bin/spd"  # where the units expect spd (README's install steps)
MAX_EXPOSURE = 2.0
DAY = timedelta(days=1)
needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def installed_unit(unit: Path, folder: Path) -> Path:
    """The unit as installed: its ExecStart*= pointing at this venv's `spd`, nothing else changed."""
    spd = Path(sys.executable).parent / "spd"
    if not spd.exists():
        pytest.skip(f"no spd console script beside {sys.executable}")
    copy = folder / unit.name
    copy.write_text(unit.read_text().replace(INSTALLED_SPD, str(spd)))
    return copy


# --- the unit files ---------------------------------------------------------------------------


@needs_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_verifies_clean(unit: Path, tmp_path: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(installed_unit(unit, tmp_path))],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_analyze
@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_exposure_is_at_most_2(unit: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", f"--threshold={MAX_EXPOSURE * 10:.0f}",
         str(unit)], capture_output=True, text=True, timeout=60)
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert score is not None, result.stdout + result.stderr
    assert float(score.group(1)) <= MAX_EXPOSURE and result.returncode == 0, result.stdout


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_hands_spd_what_the_example_config_reads(unit: Path) -> None:
    settings = sandbox.unit_settings(unit)
    example = (ROOT / "config" / "spd.example.yaml").read_text()
    wanted = set(re.findall(r"\$\{credential:([a-z_]+)\}", example))
    loaded = {value.partition(":")[0] for value in settings["LoadCredential"]}
    assert wanted and loaded == wanted
    assert "-/etc/spd/spd.env" in settings["EnvironmentFile"]
    config = settings["Environment"][0].removeprefix("SPD_CONFIG=")
    assert settings["ExecStartPre"] == [f"{INSTALLED_SPD} validate -c ${{SPD_CONFIG}}"]
    assert settings["ExecStart"] == [f"{INSTALLED_SPD} run -c ${{SPD_CONFIG}}"]
    assert settings["ExecReload"][-1] == "/bin/kill -HUP $MAINPID"
    assert config == ("/etc/spd/spd.yaml" if unit.name == "spd.service" else "/etc/spd/%i.yaml")
    assert settings["RestartPreventExitStatus"] == ["78"] and settings["Type"] == ["notify"]


# --- the status line ----------------------------------------------------------------------------


def test_status_line_counts_pollers_by_condition() -> None:
    board = StatusBoard()
    assert board.line(["a", "b"], [], set()) == "2 pollers: 2 ok"
    board.failure("a", "poller a: page 1 not delivered: emitter hook: POST failed", stalled=True)
    board.failure("job:inv", "ApiError 400\n  InvalidInput", stalled=False)
    line = board.line(["a", "b", "c"], ["inv"], {"b"})
    assert line.startswith("3 pollers, 1 job: 1 ok, 1 waiting for quota, 1 stalled, 1 failing; last error ")
    assert line.endswith(" job inv: ApiError 400 InvalidInput")  # one line, whatever the error
    board.succeeded("a")
    board.succeeded("job:inv")
    assert board.line(["a"], ["inv"], set()).startswith("1 poller, 1 job: 2 ok; last error ")
    board.error("reload", "x" * 5000)
    line = board.line(["a"], [], set())
    assert line.endswith("xx…") and len(line) < 300


# --- notifications to a real socket from a real `spd run` -------------------------------------


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET (abstract namespace)."""

    def __init__(self) -> None:
        self.address = f"@spd-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.address[1:])
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []

    def receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, BlockingIOError):
                return
            self.messages.append(dict(line.partition("=")[::2] for line in data.decode().splitlines()))

    def wait(self, predicate: Callable[[dict[str, str]], bool], after: int = 0, timeout: float = 60) -> int:
        """Index of the first message from `after` on that satisfies `predicate`."""
        def found() -> int | None:
            self.receive()
            return next((i for i in range(after, len(self.messages)) if predicate(self.messages[i])), None)
        return wait_for(lambda: (found(),) if found() is not None else None, timeout=timeout)[0]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket() -> Any:
    listener = NotifySocket()
    yield listener
    listener.close()


def notify_env(listener: NotifySocket) -> dict[str, str]:
    env = spd_env()
    env["NOTIFY_SOCKET"] = listener.address
    return env


def test_ready_status_and_reload_notifications(tmp_path: Path, sim_factory: Any, notify_socket: NotifySocket) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=150, purchase_orders=10, start=now - DAY, end=now, rate_limit=False)
    orders = {"object": "ordersV0.getOrders", "timestamp_field": "updated", "interval": "1s",
              "start_time": iso(now - DAY)}
    config = write_config(tmp_path, sim.url, {"orders": orders})
    proc = start_spd("run", "-c", str(config), env=notify_env(notify_socket))
    try:
        ready = notify_socket.wait(lambda m: "READY" in m)
        assert notify_socket.messages[ready]["READY"] == "1"
        assert notify_socket.messages[ready]["STATUS"] == "1 poller: 1 ok"
        wait_for(lambda: len(read_jsonl_so_far(tmp_path / "out" / "orders.jsonl")) >= 140, timeout=60)

        # A good reload: RELOADING=1 (with the monotonic time systemd wants), then READY=1.
        proc.send_signal(signal.SIGHUP)
        reloading = notify_socket.wait(lambda m: m.get("RELOADING") == "1", after=ready + 1)
        assert int(notify_socket.messages[reloading]["MONOTONIC_USEC"]) > 0
        ready = notify_socket.wait(lambda m: m.get("READY") == "1", after=reloading + 1)
        assert notify_socket.messages[ready]["STATUS"] == "1 poller: 1 ok"

        # A bad one: still READY=1 (the old config runs on), and STATUS says what went wrong.
        config.write_text(config.read_text().replace("interval: 1s", "interval: soon"))
        proc.send_signal(signal.SIGHUP)
        reloading = notify_socket.wait(lambda m: m.get("RELOADING") == "1", after=ready + 1)
        ready = notify_socket.wait(lambda m: m.get("READY") == "1", after=reloading + 1)
        status = notify_socket.messages[ready]["STATUS"]
        assert status.startswith("1 poller: 1 ok; last error ") and " reload (old config kept): " in status
        assert "pollers.orders.interval (line 14)" in status
    finally:
        code = stop_spd(proc)
    assert code == 0, proc.stderr.read().decode() if proc.stderr else ""
    stopping = notify_socket.wait(lambda m: m.get("STOPPING") == "1", after=ready + 1, timeout=5)
    assert notify_socket.messages[stopping]["STATUS"].startswith("stopping")


# Loaded by a real `spd run` through PYTHONPATH: once the flag file exists, no runtime can start,
# neither the reloaded config's nor, falling back, the old one's (the way a vanished dependency or
# a broken disk would refuse both).
FAIL_START_HOOK = """
import os
import spd.app.runtime as runtime
from spd.core.errors import SpdError

_start = runtime.Runtime.start

async def start(self):
    if os.path.exists(os.environ["SPD_TEST_FAIL_START"]):
        raise SpdError("injected: this runtime cannot start")
    await _start(self)

runtime.Runtime.start = start
"""


def test_a_reload_whose_fallback_fails_stops_with_exit_1(tmp_path: Path, notify_socket: NotifySocket) -> None:
    hook, flag = tmp_path / "hook", tmp_path / "fail-start"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAIL_START_HOOK)
    config = tmp_path / "spd.yaml"
    config.write_text(f"state: {{path: {tmp_path / 'state.db'}}}\nlog: {{level: info, format: json}}\n"
                      "accounts:\n  acme:\n    endpoint: http://127.0.0.1:9\n"
                      "    lwa: {client_id: c, client_secret: s, refresh_token: r}\n")
    env = {**notify_env(notify_socket), "PYTHONPATH": str(hook), "SPD_TEST_FAIL_START": str(flag)}
    proc = start_spd("run", "-c", str(config), env=env)
    try:
        ready = notify_socket.wait(lambda m: m.get("READY") == "1")
        flag.touch()
        proc.send_signal(signal.SIGHUP)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    assert code == 1, stderr
    assert stderr.count('"event":"reload_failed"') == 1  # the new config could not start
    assert '"event":"reload_fallback_failed"' in stderr and "injected" in stderr  # nor the old one
    stopping = notify_socket.wait(lambda m: m.get("STOPPING") == "1", after=ready + 1, timeout=5)
    assert all(m.get("READY") != "1" for m in notify_socket.messages[ready + 1:stopping])


def test_status_shows_pollers_waiting_for_quota_and_stalled(tmp_path: Path, sim_factory: Any,
                                                              notify_socket: NotifySocket) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    # getOrders at one request per 10 s: the orders poller spends most of its catch-up waiting.
    sim = sim_factory(orders=400, purchase_orders=5, start=now - DAY, end=now,
                      rate_limits={"ordersV0.getOrders": (0.1, 1)})
    with socket.socket() as probe:  # a port nobody listens on: the webhook can never deliver
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    every_second = {"timestamp_field": "updated", "interval": "1s", "start_time": iso(now - DAY)}
    pollers = {"orders": {"object": "ordersV0.getOrders", **every_second, "emitters": ["archive"]},
               "vendor": {"object": "vendorOrders.getPurchaseOrders", **every_second, "emitters": ["hook"]}}
    emitters = {"archive": f'{{type: file, path: "{tmp_path / "out"}/{{poller}}.jsonl"}}',
                "hook": f"{{type: webhook, url: 'http://127.0.0.1:{dead_port}/spd', timeout: 1s, max_retry_time: 1s}}"}
    account = "    rate_limits: {ordersV0.getOrders: {rate: 0.1, burst: 1}}"
    config = write_config(tmp_path, sim.url, pollers, emitters=emitters, extra_account=account)
    proc = start_spd("run", "-c", str(config), env=notify_env(notify_socket))
    try:
        index = notify_socket.wait(lambda m: "waiting for quota" in m.get("STATUS", "")
                                   and "stalled" in m.get("STATUS", ""), timeout=90)
    finally:
        code = stop_spd(proc)
    assert code == 0
    status = notify_socket.messages[index]["STATUS"]
    assert status.startswith("2 pollers: 0 ok, 1 waiting for quota, 1 stalled; last error "), status
    assert "poller vendor: " in status and "not delivered" in status


# --- $STATE_DIRECTORY --------------------------------------------------------------------------


CONFIG_WITHOUT_STATE = """\
accounts:
  acme: {endpoint: na, lwa: {client_id: cid, client_secret: secret, refresh_token: token}}
emitters:
  out: {type: stdout}
"""


def test_state_defaults_to_the_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "spd.yaml"
    path.write_text(CONFIG_WITHOUT_STATE)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    config = load_config(path)  # enough for `spd exec` and `spd request`, not for the daemon
    with pytest.raises(ConfigError, match='missing required key "state"'):
        config.state_path()
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'spd'}:{tmp_path / 'other'}")
    assert load_config(path).state.path == tmp_path / "spd" / "state.db"
    path.write_text(CONFIG_WITHOUT_STATE + "state: {path: mine.db}\n")  # a state: key still wins
    assert load_config(path).state.path == tmp_path / "mine.db"


# --- inside the unit's sandbox -------------------------------------------------------------------


@pytest.mark.skipif(sandbox.available() is not None, reason=str(sandbox.available()))
def test_spd_validates_and_polls_inside_the_units_sandbox(sim_factory: Any, notify_socket: NotifySocket) -> None:
    """ExecStartPre (validate) and ExecStart (run) under the unit's syscall filter, W^X memory,
    address families, namespaces, /proc subset, read-only root and an unprivileged UID."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    sim = sim_factory(orders=120, purchase_orders=30, start=now - DAY, end=now, rate_limit=False)
    url = sim.url.replace("127.0.0.1", "localhost")  # name resolution runs inside the sandbox too
    base = Path(tempfile.mkdtemp(prefix="spd-sandbox-"))  # not pytest's tmp_path: 0700, root's
    try:
        base.chmod(0o755)
        state = base / "state"  # StateDirectory=, owned by the service's UID, mode 0700
        state.mkdir(mode=0o700)
        os.chown(state, sandbox.SANDBOX_UID, sandbox.SANDBOX_UID)
        credentials = base / "credentials"  # LoadCredential=
        credentials.mkdir(mode=0o500)
        for name, value in (("lwa_client_secret", "test-secret-value"), ("refresh_token", "test-refresh-token")):
            (credentials / name).write_text(value + "\n")
            os.chown(credentials / name, sandbox.SANDBOX_UID, sandbox.SANDBOX_UID)
        os.chown(credentials, sandbox.SANDBOX_UID, sandbox.SANDBOX_UID)
        config = base / "spd.yaml"  # no state: the $STATE_DIRECTORY default
        config.write_text(
            f"accounts:\n  sim:\n    endpoint: {url}\n    marketplace_ids: [ATVPDKIKX0DER]\n"
            f"    lwa:\n      client_id: ${{SPD_LWA_CLIENT_ID}}\n      token_url: {url}/auth/o2/token\n"
            "      client_secret: ${credential:lwa_client_secret}\n"
            "      refresh_token: ${credential:refresh_token}\n"
            f"emitters:\n  archive: {{type: file, path: \"{state}/out/{{poller}}.jsonl\"}}\n"
            "pollers:\n"
            f"  orders: {{object: ordersV0.getOrders, timestamp_field: updated, start_time: {iso(now - DAY)}, "
            "interval: 1s, emitters: [archive]}\n"
            f"  vendor: {{object: vendorOrders.getPurchaseOrders, start_time: {iso(now - DAY)}, "
            "interval: 1s, emitters: [archive]}\n")
        env = notify_env(notify_socket)
        env.update(STATE_DIRECTORY=str(state), CREDENTIALS_DIRECTORY=str(credentials),
                   SPD_LWA_CLIENT_ID="test-client")

        def in_sandbox(*args: str) -> list[str]:
            return sandbox.sandbox_command(UNITS[0], state, [sys.executable, "-m", "spd.cli", *args])

        check = subprocess.run(in_sandbox("validate", "-c", str(config)), capture_output=True, text=True,
                               env=env, cwd=base, timeout=120)
        assert check.returncode == 0, check.stderr
        assert {"what": "state", "detail": str(state / "state.db")} in json.loads(check.stdout)["items"]
        proc = subprocess.Popen(in_sandbox("run", "-c", str(config)), stderr=subprocess.PIPE, env=env, cwd=base)
        try:
            notify_socket.wait(lambda m: m.get("READY") == "1", timeout=60)
            wait_for(lambda: len(read_jsonl_so_far(state / "out" / "orders.jsonl")) >= 120
                     and len(read_jsonl(state / "out" / "vendor.jsonl")) >= 30, timeout=90)
        finally:
            code = stop_in_sandbox(proc)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert code == 0, stderr
        assert '"level":"error"' not in stderr, stderr
        assert (state / "state.db").stat().st_uid == sandbox.SANDBOX_UID
    finally:
        shutil.rmtree(base, ignore_errors=True)


def stop_in_sandbox(proc: subprocess.Popen) -> int:
    """SIGTERM to spd (PID 1 of the sandbox's PID namespace, a child of `unshare`), then its code."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    if proc.poll() is None and children.exists():
        for pid in children.read_text().split():
            os.kill(int(pid), signal.SIGTERM)
    try:
        return proc.wait(35)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
