"""The ``hlquant`` command as a user runs it (subprocess, real Hydra)."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest


def hlquant(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hlquant.cli", *args], cwd=cwd, capture_output=True, text=True,
        timeout=300,
    )


def test_backtest_with_overrides(tmp_path):
    out = tmp_path / "run"
    p = hlquant("backtest", "strategy=ma_cross", "risk.max_leverage=2", "data.symbols=[BTC]", "strategy.symbols=[BTC]",
                "data.end=2026-01-06", "progress=false", f"hydra.run.dir={out}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "sharpe" in p.stdout
    info = json.loads((out / "run.json").read_text())
    assert info["config"]["risk"]["max_leverage"] == 2
    assert info["data"]["symbols"] == ["BTC"]
    assert (out / "report.png").exists() and (out / "audit").is_dir()
    r = hlquant("replay", str(out), cwd=tmp_path)
    assert r.returncode == 0 and "identical" in r.stdout, r.stdout + r.stderr[-2000:]


def test_sweep_runs_in_parallel_and_writes_summary(tmp_path):
    out = tmp_path / "sweep"
    p = hlquant("backtest", "-m", "strategy.fast=5,10", "strategy.slow=50,100", "data.end=2026-01-06",
                f"hydra.sweep.dir={out}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    df = pd.read_csv(out / "summary.csv")
    assert len(df) == 4
    assert set(zip(df["strategy.fast"], df["strategy.slow"], strict=True)) == {
        (5, 50), (5, 100), (10, 50), (10, 100)}
    assert df["sharpe"].notna().all() and df["sharpe"].nunique() == 4
    assert (out / "heatmap.png").exists() and (out / "summary.html").exists()
    for job in range(4):
        m = json.loads((out / str(job) / "metrics.json").read_text())
        assert m["params"]["fast"] == df.loc[job, "strategy.fast"]


def test_unknown_command_and_bad_override_fail_clearly(tmp_path):
    p = hlquant("frobnicate", cwd=tmp_path)
    assert p.returncode != 0 and "unknown command" in p.stderr
    p = hlquant("backtest", "strategy=nope", cwd=tmp_path)
    assert p.returncode != 0 and "nope" in p.stderr


def test_optuna_search_maximizes_sharpe(tmp_path):
    out = tmp_path / "optuna"
    p = hlquant("backtest", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3",
                "hydra.sweeper.n_jobs=1", "hydra.sweeper.direction=maximize",
                "strategy.fast=range(5,20)", "strategy.slow=range(50,200,10)", "data.end=2026-01-06",
                f"hydra.sweep.dir={out}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    df = pd.read_csv(out / "summary.csv")
    assert len(df) == 3
    assert "Best value" in p.stderr + p.stdout
    best = float((p.stderr + p.stdout).split("Best value:")[1].split()[0])
    assert best == pytest.approx(df["sharpe"].max())


def test_live_refuses_without_credentials_after_preflight(tmp_path):
    import os

    env_key = os.environ.pop("HLQUANT_PRIVATE_KEY", None)
    try:
        p = hlquant("live", "strategy=ma_cross", "data.end=2026-01-06", f"hydra.run.dir={tmp_path / 'l'}",
                    cwd=tmp_path)
    finally:
        if env_key is not None:
            os.environ["HLQUANT_PRIVATE_KEY"] = env_key
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert "pre-flight refused" in out and "no signer key" in out
    assert "[FAIL] credentials" in out
