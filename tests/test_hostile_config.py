"""Configs that try to break spd (issue 10, items 8 and 9): YAML bombs, oversized and deeply
nested files, `${file:}` contents in error messages, reloads parsed off the event loop, and a
metrics endpoint open to the network."""

from __future__ import annotations

import resource
import threading
from pathlib import Path

import pytest

from support.hostile import write_hostile_config
from spd.config.validate import MAX_CONFIG_BYTES, load_config
from spd.app.daemon import Daemon
from spd.core.errors import ConfigError
from support.spd import spd_cmd, spd_env

LAUGHS = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def limit_memory() -> None:  # the child may not take more than 400 MB: a bomb would need GBs
    resource.setrlimit(resource.RLIMIT_AS, (400 * 2**20, 400 * 2**20))


def test_a_billion_laughs_is_refused_before_it_expands(tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / "bomb.yaml"
    path.write_text(LAUGHS)
    assert len(LAUGHS) < 600
    done = subprocess.run(spd_cmd("validate", "-c", str(path)), capture_output=True, text=True,
                          timeout=60, env=spd_env(), preexec_fn=limit_memory)
    assert done.returncode == 78, done.stderr
    assert done.stderr.strip().startswith(f"spd: {path}: line ")
    assert "aliases expand the document to more than 100000 extra values" in done.stderr


def test_merge_key_bombs_are_refused_too(tmp_path: Path) -> None:
    lines = ["a0: &a0 {k: 1, l: 2, m: 3, n: 4, o: 5, p: 6, q: 7, r: 8}"]
    for n in range(1, 9):
        refs = ", ".join(f"*a{n - 1}" for _ in range(8))
        lines.append(f"a{n}: &a{n} {{<<: [{refs}], x{n}: 1}}")
    path = tmp_path / "merge.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="aliases expand the document"):
        load_config(path)


def test_a_config_with_shared_anchors_still_loads(tmp_path: Path) -> None:
    config = write_hostile_config(tmp_path, "http://127.0.0.1:9")
    text = config.read_text().replace("  p:\n", "  p: &p\n")
    config.write_text(text + "  q:\n    <<: *p\n    timestamp_field: created\n")
    loaded = load_config(config)
    assert loaded.pollers["q"].timestamp_field == "created"
    assert loaded.pollers["q"].emitters == loaded.pollers["p"].emitters == ["archive"]


def test_deep_nesting_and_oversized_files_are_one_line_errors(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"nested more than 100 levels deep"):
        load_config(deep)
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 10))
    with pytest.raises(ConfigError, match=r"big.yaml: is larger than 4 MiB"):
        load_config(big)


def test_a_file_substitution_never_shows_its_content_in_an_error(tmp_path: Path) -> None:
    secret = "sk-live-SUPERSECRET-0123456789"
    (tmp_path / "endpoint.txt").write_text(secret + "\n")
    (tmp_path / "level.txt").write_text(secret)
    config = write_hostile_config(tmp_path, "http://127.0.0.1:9")
    text = config.read_text()
    config.write_text(text.replace("endpoint: http://127.0.0.1:9", "endpoint: ${file:endpoint.txt}"))
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert secret not in str(info.value)
    assert "accounts.acme.endpoint (line 5): " in str(info.value)
    assert '"(content of ${file:endpoint.txt})" is not an endpoint' in str(info.value)
    config.write_text(text.replace("log: {level: info", "log: {level: '${file:level.txt}'"))
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert secret not in str(info.value) and "(content of ${file:level.txt})" in str(info.value)


def test_a_file_substitution_is_read_up_to_64_kib(tmp_path: Path) -> None:
    (tmp_path / "huge.txt").write_text("x" * (65 * 1024))
    config = write_hostile_config(tmp_path, "http://127.0.0.1:9")
    config.write_text(config.read_text().replace('client_id: "amzn1.application-oa2-client.hostile"',
                                                 "client_id: '${file:huge.txt}'"))
    with pytest.raises(ConfigError, match=r"\$\{file:huge.txt\}: .*huge.txt is larger than 64 KiB"):
        load_config(config)


async def test_a_sighup_reload_parses_the_config_off_the_event_loop(tmp_path, monkeypatch) -> None:
    import spd.app.daemon as daemon_mod

    parsed_in: list[int] = []

    def validate(path: Path, *, environment: bool):
        parsed_in.append(threading.get_ident())
        raise ConfigError(f"{path}: stop here")

    monkeypatch.setattr(daemon_mod, "validate_config", validate)
    daemon = Daemon(tmp_path / "spd.yaml", install_signals=False)
    await daemon.reload()  # a bad config is reported, the old one keeps running
    assert parsed_in and parsed_in[0] != threading.get_ident()


def test_validate_says_when_metrics_listen_beyond_loopback(tmp_path: Path) -> None:
    open_ = load_config(write_hostile_config(tmp_path, "http://127.0.0.1:9", extra="http: {listen: '0.0.0.0:9464'}"))
    assert any(line.startswith("http: 0.0.0.0:9464 (not loopback") for line in open_.describe())
    local = load_config(write_hostile_config(tmp_path, "http://127.0.0.1:9", extra="http: {listen: '[::1]:9464'}"))
    assert "http: [::1]:9464" in local.describe()
    assert local.http is not None and local.http.loopback and not open_.http.loopback

