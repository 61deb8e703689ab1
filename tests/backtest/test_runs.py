"""Run folders: unique even for runs started in the same second, marked failed when a run
fails; and ``hlquant runs list|show|compare`` over them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from hlquant.agents import Agent
from hlquant.backtest.run import run_backtest
from hlquant.backtest.runs import RunStatus, claim_dir, read_run, write_run_json
from hlquant.config.compose import load_config
from hlquant.core.errors import AgentFailure, ConfigError

SHORT = ["data.end=2026-01-06", "data.symbols=[BTC]", "strategy.symbols=[BTC]", "progress=false"]


def hlquant(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hlquant.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_two_runs_started_together_get_folders_of_their_own(tmp_path):
    out = tmp_path / "same"
    cmd = [sys.executable, "-m", "hlquant.cli", "backtest", *SHORT, f"hydra.run.dir={out}"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [r[1][-2000:] for r in results]
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert folders == ["same", "same-2"]
    pids = {json.loads((tmp_path / f / "run.json").read_text())["pid"] for f in folders}
    assert pids == {p.pid for p in procs}, "each folder holds one run's record"
    for f in folders:
        assert json.loads((tmp_path / f / "run.json").read_text())["status"] == "ok"
        assert (tmp_path / f / "report.html").exists()


def _claim(base: str) -> str:
    return str(claim_dir(base))


def test_concurrent_claims_never_share_a_folder(tmp_path):
    base = str(tmp_path / "runs" / "10-00-00-ma_cross")
    with ProcessPoolExecutor(4) as ex:
        got = list(ex.map(_claim, [base] * 8))
    assert len(set(got)) == 8
    assert sorted(Path(g).name for g in got)[0] == "10-00-00-ma_cross"
    old = tmp_path / "old"
    (old / ".hydra").mkdir(parents=True)   # a folder from before claims existed is not taken
    assert claim_dir(old) == tmp_path / "old-2"


def test_two_sweeps_in_the_same_folder_stay_apart(tmp_path):
    out = tmp_path / "sweep"
    for _ in range(2):
        p = hlquant("backtest", "-m", "strategy.fast=5,10", *SHORT, f"hydra.sweep.dir={out}", cwd=tmp_path)
        assert p.returncode == 0, p.stderr[-2000:]
    for d in (out, tmp_path / "sweep-2"):
        assert len(list((d).glob("*/run.json"))) == 2 and (d / "summary.csv").exists()


class Crashes(Agent):
    def decide(self, ctx):
        raise RuntimeError("boom in decide")


def test_a_failed_run_is_marked_failed(tmp_path):
    cfg = load_config(["progress=false", "data.end=2026-01-06"])
    cfg["strategy"]["agents"][0]["cls"] = f"{__file__}:Crashes"
    with pytest.raises(AgentFailure):
        run_backtest(cfg, out_dir=tmp_path / "crash")
    info = json.loads((tmp_path / "crash" / "run.json").read_text())
    assert info["status"] == "failed" and info["error"]["type"] == "AgentFailure"
    assert "boom in decide" in info["error"]["message"] and info["config"]["strategy"]["name"] == "ma_cross"
    with pytest.raises(ConfigError):
        run_backtest(load_config(["+risk.nope=1"]), out_dir=tmp_path / "bad")
    assert json.loads((tmp_path / "bad" / "run.json").read_text())["error"]["type"] == "ConfigError"
    p = hlquant("backtest", "strategy.fast=abc", *SHORT, f"hydra.run.dir={tmp_path / 'cli'}", cwd=tmp_path)
    assert p.returncode == 1
    info = json.loads((tmp_path / "cli" / "run.json").read_text())
    assert info["status"] == "failed" and "strategy.fast" in info["error"]["message"]


def test_a_run_whose_process_is_gone_shows_as_died(tmp_path):
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_run_json(tmp_path, {"status": RunStatus.RUNNING})
    info = json.loads((tmp_path / "run.json").read_text())
    info["pid"] = int(p.stdout)
    (tmp_path / "run.json").write_text(json.dumps(info))
    assert read_run(tmp_path).status is RunStatus.DIED
    info["pid"] = os.getpid()
    (tmp_path / "run.json").write_text(json.dumps(info))
    assert read_run(tmp_path).status is RunStatus.RUNNING


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    for name, extra in (("fast5", ["strategy.fast=5"]), ("fast20", ["strategy.fast=20"]),
                        ("broken", ["strategy.fast=abc"])):
        hlquant("backtest", *SHORT, *extra, f"hydra.run.dir=runs/2026-11-25/{name}", cwd=root)
    return root


def test_runs_list_sorts_by_any_metric(three_runs):
    p = hlquant("runs", "list", "--sort", "sharpe", cwd=three_runs)
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stdout.splitlines() if "runs/" in ln]
    assert len(lines) == 3 and "broken" in lines[-1] and "failed" in lines[-1]
    sharpes = {n: read_run(three_runs / "runs/2026-11-25" / n).metrics["sharpe"] for n in ("fast5", "fast20")}
    best = max(sharpes, key=sharpes.get)
    assert best in lines[0]
    p = hlquant("runs", "list", "--sort", "fees", "--asc", cwd=three_runs)
    fees = {n: read_run(three_runs / "runs/2026-11-25" / n).metrics["fees"] for n in ("fast5", "fast20")}
    assert min(fees, key=fees.get) in [ln for ln in p.stdout.splitlines() if "runs/" in ln][0]
    p = hlquant("runs", "list", "--sort", "nope", cwd=three_runs)
    assert p.returncode == 1 and "known:" in p.stderr


def test_runs_show_and_compare(three_runs):
    p = hlquant("runs", "show", "runs/2026-11-25/fast5", cwd=three_runs)
    assert p.returncode == 0 and "status: ok" in p.stdout and "sharpe" in p.stdout and "report.html" in p.stdout
    p = hlquant("runs", "show", "runs/2026-11-25/broken", cwd=three_runs)
    assert "failed" in p.stdout and "ConfigError" in p.stdout
    p = hlquant("runs", "compare", "runs/2026-11-25/fast5", "runs/2026-11-25/fast20", "--out", "cmp.html",
                cwd=three_runs)
    assert p.returncode == 0, p.stderr
    diff = p.stdout.split("config differences:")[1].split("metrics:")[0]
    assert "strategy.fast" in diff and "strategy.agents" in diff and "risk." not in diff
    assert "B - A" in p.stdout
    page = (three_runs / "cmp.html").read_text()
    assert page.count('data-fig="') == 1 and 'id="hlq-plotly"' in page
