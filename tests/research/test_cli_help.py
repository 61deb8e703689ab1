"""The README as written: every subcommand answers --help with descriptions and defaults, and
``data.path=~/my_data`` (the shell leaves ~ there) works."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hlquant.config.compose import load_config
from hlquant.data.loaders import load_sample, write_files

COMMANDS = ["run", "backtest", "paper", "live", "component", "walkforward", "replay", "runs", "new", "ingest",
            "record", "generate-data"]
WITH_DEFAULTS = ["run", "backtest", "paper", "live", "component", "walkforward", "runs", "new"]


def hlquant(*args: str, cwd, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hlquant.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=env)


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_subcommand_answers_help(cmd, tmp_path):
    p = hlquant(cmd, "--help", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-1000:]
    assert cmd.split("-")[0] in p.stdout and len(p.stdout.splitlines()) >= 2
    if cmd in WITH_DEFAULTS:
        assert "default" in p.stdout
    if cmd in ("backtest", "walkforward"):
        assert "strategy  ma_cross" in p.stdout and "sweep: {'objective': 'sharpe'" in p.stdout


def test_runs_subcommands_answer_help(tmp_path):
    for sub in ("list", "show", "compare"):
        p = hlquant("runs", sub, "--help", cwd=tmp_path)
        assert p.returncode == 0 and "usage: hlquant runs" in p.stdout


def test_a_tilde_path_is_expanded(tmp_path, monkeypatch):
    import os

    md = load_sample()
    write_files(md.select(symbols=["BTC"], end=md.span()[0] + 86_400_000), tmp_path / "my_data")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_config(["data=files", "data.path=~/my_data"])["data"]["path"] == str(tmp_path / "my_data")
    p = hlquant("backtest", "data=files", "data.path=~/my_data", "strategy.symbols=[BTC]", "progress=false",
                f"hydra.run.dir={tmp_path / 'r'}", cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "sharpe" in p.stdout
