"""`state: {url: postgresql://...}` and `cluster:` in a config, checked as `spd validate` does (a
real subprocess): one line naming the file, key and line for each mistake; no password shown;
`${SPD_REPLICA_ID}` names the replica in a file emitter's path."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from support.config import write_config
from support.spd import run_spd, spd_env

PG = "postgresql://spd:s3cret-pw@db.internal:5432/spd"


def config(tmp_path: Path, *, state_url: str | None = PG, extra: str = "cluster: {lease_ttl: 9s}") -> Path:
    return write_config(tmp_path, "http://127.0.0.1:9", {"o": {"object": "ordersV0.getOrders"}},
                        state_url=state_url, extra=extra,
                        emitters={"a": '{type: file, path: "out/${SPD_REPLICA_ID}/{poller}.jsonl"}'})


def described(done: object) -> dict[str, str]:
    """`spd validate`'s items (JSON on a pipe): what -> detail."""
    assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    return {i["what"]: i["detail"] for i in json.loads(done.stdout)["items"]}  # type: ignore[attr-defined]


def test_a_postgres_state_validates_without_showing_its_password(tmp_path: Path) -> None:
    done = run_spd("validate", "-c", str(config(tmp_path)), env=spd_env(SPD_REPLICA_ID="replica-7"))
    items = described(done)
    assert items["state"] == "postgresql://db.internal:5432/spd (replicas share the pollers; lease_ttl 9s)"
    assert items["emitter a"] == f"file {tmp_path}/out/replica-7/{{poller}}.jsonl (fsync)"
    assert "s3cret-pw" not in done.stdout + done.stderr


def test_the_replica_id_defaults_to_hostname_and_pid(tmp_path: Path) -> None:
    line = described(run_spd("validate", "-c", str(config(tmp_path))))["emitter a"]
    replica = line.split(f"{tmp_path}/out/", 1)[1].split("/", 1)[0]
    host, _, pid = replica.rpartition(":")
    assert host == socket.gethostname() and pid.isdigit()


@pytest.mark.parametrize("change, key, message", [
    (("state: {url:", "state: {path: x.db, url:"), "state (line 1)", "give state either path"),
    (("postgresql://spd:s3cret-pw@", "mysql://spd:s3cret-pw@"), "state.url (line 1)",
     '"mysql://db.internal:5432/spd" is not a PostgreSQL URL'),
    (("lease_ttl: 9s", "lease_ttl: 1s"), "cluster.lease_ttl (line 3)", "1s is too short for a lease"),
    (("lease_ttl: 9s", "lease_ttl: soon"), "cluster.lease_ttl (line 3)", ""),
])
def test_mistakes_are_one_line_naming_the_key(tmp_path: Path, change: tuple[str, str], key: str,
                                              message: str) -> None:
    path = config(tmp_path)
    path.write_text(path.read_text().replace(*change))
    done = run_spd("validate", "-c", str(path))
    assert done.returncode == 78
    assert done.stderr.startswith(f"spd: {path}: {key}: {message}"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "s3cret-pw" not in done.stderr


def test_cluster_needs_a_postgres_state(tmp_path: Path) -> None:
    done = run_spd("validate", "-c", str(config(tmp_path, state_url=None)))
    assert done.returncode == 78
    assert "cluster needs state.url" in done.stderr and "cluster" in done.stderr.split(":")[1]
