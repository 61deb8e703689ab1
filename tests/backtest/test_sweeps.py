"""Sweeps: launcher configs, the summary built from returned results, the ranked table, and
the Optuna search (objective from config, seeded, reported best = best trial).

Ray cluster runs are in test_sweeps_ray.py.
"""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from hlquant.backtest.hydra_callbacks import SweepSummary
from tests.conftest import require_server

ROOT = Path(__file__).resolve().parents[2]
LAUNCHERS = sorted(p.stem for p in (ROOT / "hlquant" / "conf" / "hydra" / "launcher").glob("*.yaml"))
SHORT = ["data.end=2026-01-06", "data.symbols=[BTC]", "strategy.symbols=[BTC]"]
WHERE = ["node", "output_dir", "started", "elapsed_s"]
BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def hlquant(*args: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hlquant.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env=None if env is None else {**os.environ, **env})


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from hlquant.config.schema import register_schemas

    register_schemas()  # the typed groups (risk, router, venue, live), as the CLI does
    with initialize_config_dir(config_dir=str(ROOT / "hlquant" / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=overrides, return_hydra_config=True)


def instantiate_launcher(cfg):
    """What a sweep does with the launcher config: instantiate the plugin with it."""
    from hydra import initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext

    from hlquant.config.schema import register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(ROOT / "hlquant" / "conf"), version_base="1.3"):
        ctx = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=Callbacks())
        return Plugins.instance().instantiate_launcher(hydra_context=ctx, task_function=lambda c: None,
                                                       config=cfg)


def _table(stdout: str) -> pd.DataFrame:
    """The ranked table a sweep prints (its header line starts with ``rank``)."""
    lines = stdout[stdout.index(" rank "):].splitlines()
    n = next((i for i, ln in enumerate(lines[1:], 1) if not re.match(r"\s+\d+\s", ln)), len(lines))
    head = lines[0].split()
    return pd.DataFrame([ln.split()[:len(head)] for ln in lines[1:n]], columns=head)


# ---- launcher configs -------------------------------------------------------------------------

def test_launcher_configs_are_found():
    assert {"local", "ray_cluster"} <= set(LAUNCHERS)


@pytest.mark.parametrize("name", LAUNCHERS)
def test_every_launcher_config_composes_and_instantiates(name, tmp_path, monkeypatch):
    if name.startswith("ray"):
        try:
            import hydra_plugins.hydra_ray_launcher  # noqa: F401
        except ImportError:
            require_server(False, "hydra-ray-launcher (pip install '.[cluster]')")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    cfg = compose([f"hydra/launcher={name}"])
    launcher = instantiate_launcher(cfg)
    known = {"local": "JoblibLauncher", "ray_cluster": "RayLauncher"}
    assert type(launcher).__name__ == known.get(name, type(launcher).__name__)
    # The sweep directory is absolute where the command runs (Ray workers write there too).
    sweep_dir = Path(OmegaConf.select(cfg, "hydra.sweep.dir"))
    assert sweep_dir.is_absolute() and sweep_dir.is_relative_to(tmp_path.resolve())
    if name == "ray_cluster":
        init = cfg.hydra.launcher.ray.init
        assert init.address == "127.0.0.1:1"
        assert "object_store_memory" in init and init.object_store_memory is None


def test_default_launcher_is_joblib_on_every_core():
    cfg = compose([])
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert cfg.hydra.launcher.n_jobs == -1
    assert joblib.effective_n_jobs(cfg.hydra.launcher.n_jobs) == joblib.cpu_count()


def test_search_config_follows_sweep_objective_and_is_seeded():
    cfg = compose(["hydra/sweeper=search"])
    OmegaConf.resolve(cfg)
    assert cfg.hydra.sweeper.direction == cfg.sweep.direction == "maximize"
    assert cfg.hydra.sweeper.sampler.seed == cfg.sweep.seed is not None
    cfg = compose(["hydra/sweeper=search", "sweep.direction=minimize", "sweep.seed=7"])
    OmegaConf.resolve(cfg)
    assert (cfg.hydra.sweeper.direction, cfg.hydra.sweeper.sampler.seed) == ("minimize", 7)


# ---- the summary from returned results (no shared disk) ---------------------------------------

def _cfg(sweep_dir: Path, task: list[str], objective: str = "sharpe", direction: str = "maximize"):
    return OmegaConf.create({
        "sweep": {"objective": objective, "direction": direction, "seed": 0},
        "hydra": {"sweep": {"dir": str(sweep_dir)}, "overrides": {"task": task},
                  "sweeper": {"_target_": BASIC, "max_batch_size": None, "params": None}},
    })


def _result(sweep_dir: Path, num: int, fast: int, sharpe: float, node: str):
    from hlquant.backtest.sweep_job import JobResult

    metrics = {"sharpe": sharpe, "total_return": sharpe / 100, "n_fills": 10.0 + num}
    return JobResult(sweep_key=str(sweep_dir), num=num, overrides=(f"strategy.fast={fast}",),
                     objective="sharpe", value=sharpe, metrics=metrics, node=node,
                     output_dir=f"/scratch/{node}/{num}", files={"report_html": f"/scratch/{node}/{num}/report.html"},
                     reconcile={}, started=1.7e9 + num, elapsed_s=2.0)


def _send(results: list, sweep_dir: Path) -> None:
    """What a launcher does with the jobs' return values: they come back pickled."""
    from hlquant.backtest.sweep_job import start_sweep

    blobs = [pickle.dumps(r) for r in results]
    start_sweep(str(sweep_dir))   # forget the copies recorded where they were built (the "workers")
    for b in blobs:
        pickle.loads(b)


def test_summary_is_built_from_returned_results_not_job_dirs(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    cfg = _cfg(sweep_dir, ["strategy.fast=5,10"])
    cb = SweepSummary()
    cb.on_multirun_start(cfg)
    _send([_result(sweep_dir, 0, 5, -1.5, "worker-a"), _result(sweep_dir, 1, 10, 2.5, "worker-b")],
          sweep_dir)
    assert sweep_dir.is_dir()   # claimed for this sweep when it started
    cb.on_multirun_end(cfg)
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == []   # no job dir here
    df = pd.read_csv(sweep_dir / "summary.csv")
    assert list(df["job"]) == [0, 1] and list(df["strategy.fast"]) == [5, 10]
    assert list(df["sharpe"]) == [-1.5, 2.5] and list(df["node"]) == ["worker-a", "worker-b"]
    assert list(df["output_dir"]) == ["/scratch/worker-a/0", "/scratch/worker-b/1"]
    html = (sweep_dir / "summary.html").read_text()
    assert "worker-b:/scratch/worker-b/1" in html
    out = capsys.readouterr().out
    assert "job 1: worker-b:/scratch/worker-b/1" in out
    assert list(_table(out)["job"]) == ["1", "0"]   # best first


@pytest.mark.parametrize("arrived", [[0], []])
def test_summary_exits_non_zero_when_fewer_results_than_jobs(tmp_path, arrived):
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    cfg = _cfg(sweep_dir, ["strategy.fast=5,10", "data.end=2026-01-06"])
    cb = SweepSummary()
    cb.on_multirun_start(cfg)
    _send([_result(sweep_dir, n, 5, 1.0, "worker-a") for n in arrived], sweep_dir)
    with pytest.raises(SystemExit) as e:
        cb.on_multirun_end(cfg)
    assert e.value.code not in (0, None)
    assert f"{len(arrived)} of 2 jobs returned results" in str(e.value.code)
    assert "missing jobs: " + ", ".join(str(n) for n in range(2) if n not in arrived) in str(e.value.code)
    if arrived:   # what did come back is still summarized
        assert len(pd.read_csv(sweep_dir / "summary.csv")) == len(arrived)


def test_summary_ranks_by_the_configured_objective_and_direction(tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    cfg = _cfg(sweep_dir, ["strategy.fast=5,10,20"], objective="n_fills", direction="minimize")
    cb = SweepSummary()
    cb.on_multirun_start(cfg)
    _send([_result(sweep_dir, n, fast, float(n), "worker-a") for n, fast in enumerate((5, 10, 20))],
          sweep_dir)
    cb.on_multirun_end(cfg)
    out = capsys.readouterr().out
    assert "ranked by n_fills (minimize)" in out
    assert list(_table(out)["job"]) == ["0", "1", "2"]


# ---- end to end (real backtests through the CLI) ----------------------------------------------

def test_sweep_prints_one_ranked_table(tmp_path):
    p = hlquant("backtest", "-m", "strategy.fast=5,10", *SHORT, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "== ma_cross" not in p.stdout           # no per-job block
    assert p.stdout.count(" rank ") == 1
    [summary] = list((tmp_path / "multirun").glob("*/*/summary.csv"))
    df = pd.read_csv(summary)
    assert len(df) == 2 and df["sharpe"].nunique() == 2
    table = _table(p.stdout)
    assert list(table["job"].astype(int)) == list(df.sort_values("sharpe", ascending=False)["job"])
    assert all(Path(d) == summary.parent / str(j) for j, d in zip(df["job"], df["output_dir"], strict=True))


def _search(tmp_path: Path, name: str, *extra: str, sweeper: str = "search") -> tuple[pd.DataFrame, dict]:
    out = tmp_path / name
    p = hlquant("backtest", "-m", f"hydra/sweeper={sweeper}", "hydra.sweeper.n_trials=4",
                "strategy.fast=range(5,30)", "strategy.slow=range(50,200,10)", *SHORT, *extra,
                f"hydra.sweep.dir={out}", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    return pd.read_csv(out / "summary.csv"), yaml.safe_load((out / "optimization_results.yaml").read_text())


@pytest.fixture(scope="module")
def default_search(tmp_path_factory):
    return _search(tmp_path_factory.mktemp("search"), "a")


def test_search_reports_the_best_trial(default_search):
    df, best = default_search
    assert len(df) == 4 and df["sharpe"].nunique() == 4
    top = df.loc[df["sharpe"].idxmax()]
    assert best["best_value"] == top["sharpe"]
    assert best["best_params"] == {"strategy.fast": top["strategy.fast"], "strategy.slow": top["strategy.slow"]}


def test_search_follows_sweep_objective_and_direction(tmp_path):
    df, best = _search(tmp_path, "fees", "sweep.objective=fees", "sweep.direction=minimize")
    assert df["fees"].nunique() == len(df)
    top = df.loc[df["fees"].idxmin()]
    assert best["best_value"] == top["fees"]
    assert best["best_params"] == {"strategy.fast": top["strategy.fast"], "strategy.slow": top["strategy.slow"]}


def test_search_is_reproducible_by_default(tmp_path, default_search):
    again, best = _search(tmp_path, "b")
    first, first_best = default_search
    pd.testing.assert_frame_equal(again.drop(columns=WHERE), first.drop(columns=WHERE))
    assert best == first_best


def test_plugin_optuna_minimizing_against_sweep_direction_is_refused(tmp_path):
    # The README's old command: the plugin minimizes by default, so it would report the worst.
    p = hlquant("backtest", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2",
                "strategy.fast=range(5,30)", *SHORT, f"hydra.sweep.dir={tmp_path / 'o'}", cwd=tmp_path)
    assert p.returncode != 0
    assert "hydra.sweeper.direction=minimize but sweep.direction=maximize" in p.stderr
    assert not (tmp_path / "o" / "0").exists()
