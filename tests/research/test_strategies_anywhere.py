"""Strategies from anywhere: ``hlquant new strategy`` from a template, a strategy file in any
folder (``cls: path/file.py:Class`` or ``strategy_path``), ``--config-dir`` wherever it stands,
and a user's config folder layered over the bundled tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hlquant.config.build import import_object
from hlquant.config.compose import load_config
from hlquant.config.spec import KernelSpec
from hlquant.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["data.end=2026-01-06", "progress=false"]


def hlquant(*args: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    # hlquant itself from this checkout; nothing of the user's folder on the Python path
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    e.pop("HLQUANT_CONF", None) if not (env or {}).get("HLQUANT_CONF") else None
    return subprocess.run([sys.executable, "-m", "hlquant.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=e)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    p = hlquant("new", "strategy", "my_rsi", cwd=root)
    assert p.returncode == 0, p.stderr
    return root


def test_new_strategy_writes_a_file_and_its_config(project):
    assert (project / "strategies" / "my_rsi.py").exists()
    text = (project / "conf" / "strategy" / "my_rsi.yaml").read_text()
    assert "cls: strategies/my_rsi.py:MyRsi" in text and "name: my_rsi" in text
    p = hlquant("new", "strategy", "my_rsi", cwd=project)
    assert p.returncode == 1 and "already exist" in p.stderr
    p = hlquant("new", "strategy", "Bad-Name", cwd=project)
    assert p.returncode == 1 and "snake_case" in p.stderr


@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_the_new_strategy_runs_with_the_config_dir_anywhere(project, where):
    run = f"hydra.run.dir=runs/{where}"
    if where == "before":
        p = hlquant("--config-dir", "conf", "backtest", "strategy=my_rsi", *SHORT, run, cwd=project)
    elif where == "after":
        p = hlquant("backtest", "strategy=my_rsi", *SHORT, "--config-dir=conf", run, cwd=project)
    else:
        p = hlquant("backtest", "strategy=my_rsi", *SHORT, run, cwd=project,
                    env={"HLQUANT_CONF": str(project / "conf")})
    assert p.returncode == 0, p.stderr[-2000:]
    info = json.loads((project / "runs" / where / "run.json").read_text())
    assert info["status"] == "ok" and info["config"]["strategy"]["name"] == "my_rsi"
    assert info["metrics"]["n_fills"] > 0


def test_a_sweep_of_the_new_strategy(project):
    p = hlquant("backtest", "--config-dir", "conf", "-m", "strategy=my_rsi", "strategy.period=7,21", *SHORT,
                "hydra.sweep.dir=sweeps/rsi", cwd=project)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (project / "sweeps" / "rsi" / "summary.csv").exists()


def test_a_strategy_file_by_path_and_by_search_path(project, tmp_path):
    f = project / "strategies" / "my_rsi.py"
    s = KernelSpec.from_config(load_config([f"strategy.agents.0.cls={f}:MyRsi", "strategy.fast=3"]))
    assert type(s.agents[0]).__name__ == "MyRsi"
    s = KernelSpec.from_config(load_config([f"strategy_path=[{project / 'strategies'}]",
                                            "strategy.agents.0.cls=my_rsi:MyRsi"]))
    assert type(s.agents[0]).__name__ == "MyRsi"
    with pytest.raises(ConfigError, match="not found"):
        import_object(str(tmp_path / "nope.py") + ":X")
    with pytest.raises(ConfigError, match=r"has no 'Nope'; it defines \[.*'MyRsi'"):
        import_object(f"{f}:Nope")
    with pytest.raises(ConfigError, match="no module 'no_such_strategy' on the Python path or in strategy_path"):
        import_object("no_such_strategy:X", [str(tmp_path)])


def test_a_user_folder_replaces_a_bundled_option_and_adds_its_own(tmp_path):
    (tmp_path / "strategy").mkdir()
    bundled = (ROOT / "hlquant" / "conf" / "strategy" / "ma_cross.yaml").read_text()
    (tmp_path / "strategy" / "ma_cross.yaml").write_text(bundled.replace("fast: 10", "fast: 4"))
    assert load_config([], config_dir=tmp_path)["strategy"]["fast"] == 4
    assert load_config([])["strategy"]["fast"] == 10
    with pytest.raises(ConfigError, match="not found"):
        load_config([], config_dir=tmp_path / "missing")
