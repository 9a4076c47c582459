"""The non-editable install ships every subpackage, the catalog and the configs (pyproject lists them).

The list is explicit rather than found by setuptools: the catalog (models/) and the configs
(config/) live outside spd/ and are mapped in as spd._models and spd._config, which package
discovery cannot see."""

from __future__ import annotations

import tomllib
from support.spd import ROOT



def test_every_subpackage_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "spd").rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert {"spd._models", "spd._config"} <= listed


def test_catalog_and_configs_are_package_data() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert data == {"spd._models": ["*.json"], "spd._config": ["*.yaml"]}
    assert (ROOT / "models" / "ordersV0.catalog.json").is_file() and (ROOT / "config" / "demo.yaml").is_file()
