"""Packaging: a non-editable install runs ``hlquant backtest`` from any folder (the config tree
ships inside the package), a user's config folder layers over it, and the core install does
not pull jupyterlab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_jupyterlab_is_an_extra_not_a_core_dependency():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(d.startswith("jupyterlab") for d in meta["dependencies"])
    assert any(d.startswith("jupyterlab") for d in meta["optional-dependencies"]["notebooks"])
    assert "notebooks" in (ROOT / "scripts" / "test.sh").read_text()


def test_the_config_tree_is_package_data():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["hlquant"]
    assert "conf/**/*.yaml" in data and "templates/*.tmpl" in data
    # one config tree: conf/ (the project's layout), shipped in the package through a link
    assert (ROOT / "hlquant" / "conf").is_symlink()
    assert (ROOT / "hlquant" / "conf").resolve() == (ROOT / "conf").resolve()


@pytest.mark.slow
def test_a_non_editable_install_runs_from_any_folder(tmp_path):
    target = tmp_path / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                        str(ROOT)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (target / "hlquant" / "conf" / "strategy" / "ma_cross.yaml").exists()
    anywhere = tmp_path / "anywhere"
    (anywhere / "conf" / "strategy").mkdir(parents=True)
    bundled = (ROOT / "hlquant" / "conf" / "strategy" / "ma_cross.yaml").read_text()
    (anywhere / "conf" / "strategy" / "mine.yaml").write_text(bundled.replace("name: ma_cross", "name: mine"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HLQUANT_CONF")}
    env["PYTHONPATH"] = str(target)   # the installed copy only: no checkout on the path
    script = target / "bin" / "hlquant"
    for args in (["backtest"], ["backtest", "--config-dir", "conf", "strategy=mine"]):
        p = subprocess.run([sys.executable, str(script), *args, "data.end=2026-01-06", "progress=false"],
                           cwd=anywhere, capture_output=True, text=True, timeout=300, env=env)
        assert p.returncode == 0, p.stderr[-3000:]
    infos = [json.loads(f.read_text()) for f in sorted(anywhere.glob("runs/*/*/run.json"))]
    assert sorted(i["config"]["strategy"]["name"] for i in infos) == ["ma_cross", "mine"]
    assert all(i["status"] == "ok" for i in infos)
    p = subprocess.run([sys.executable, "-c", "import hlquant; print(hlquant.__file__)"], cwd=anywhere,
                       capture_output=True, text=True, env=env)
    assert p.stdout.strip().startswith(str(target))
