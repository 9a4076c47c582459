"""Peers that cannot be reached: a loopback port nothing listens on, one whose handshakes never
complete, and a config pointing at one."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path


def closed_port() -> int:
    """A loopback port nothing listens on (bound then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_to(tmp_path: Path, endpoint: str, token_url: str) -> Path:
    """A config of one account `acme` whose SP-API endpoint and LWA token URL are given."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "spd.yaml"
    path.write_text(
        f"state: {{path: {tmp_path / 'state.db'}}}\n"
        "accounts:\n"
        "  acme:\n"
        f"    endpoint: {endpoint}\n"
        "    marketplace_ids: [ATVPDKIKX0DER]\n"
        "    lwa: {client_id: c, client_secret: s, refresh_token: r, "
        f"token_url: {token_url}}}\n"
        f"emitters:\n  archive: {{type: file, path: \"{tmp_path / 'out'}/{{poller}}.jsonl\"}}\n")
    return path


@contextmanager
def blackholed_port() -> Iterator[int]:
    """A loopback port whose TCP handshakes never complete: a listener with a backlog of 0 that
    never accepts, its accept queue filled first, so Linux drops the SYNs that follow (as a
    firewall dropping SYNs or a black-holed address would). aiohttp's connect then times out."""
    with socket.socket() as listener, ExitStack() as fillers:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        for _ in range(3):  # the queue holds backlog + 1; more SYNs are already being dropped
            filler = fillers.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        yield port
