"""Sweeps on a Ray cluster: a local Ray head on free ports, the same sweeps as with joblib.

Needs the ``cluster`` extra (hydra-ray-launcher, ray). Under CI=true a Ray head that cannot
start fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.backtest.test_sweeps import SHORT, WHERE, hlquant
from tests.conftest import require_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to `ray start --block` stops the head's processes; SIGKILL its group if not."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # whatever is left of the session it leads
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head on free loopback ports, 2 CPUs, a small object store; its address.

    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps Ray on 127.0.0.1 (otherwise it advertises the
    machine's interface address). The head runs in its own directory, so a job that wrote to a
    relative path would land there, not under the test's directory."""
    ray = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    if ray is None:
        require_server(False, "ray (pip install '.[cluster]')")
    tmp = Path(tempfile.mkdtemp(prefix="hlqray-"))   # short: Ray's socket paths must fit 107 bytes
    port, client, agent_http, agent_grpc, env_agent, metrics = _free_ports(6)
    path = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    log = (tmp / "head.log").open("w+")
    proc = subprocess.Popen(
        [ray, "start", "--head", "--block", "--num-cpus", "2", "--include-dashboard=false",
         "--port", str(port), "--ray-client-server-port", str(client),
         "--dashboard-agent-listen-port", str(agent_http), "--dashboard-agent-grpc-port", str(agent_grpc),
         "--runtime-env-agent-port", str(env_agent), "--metrics-export-port", str(metrics),
         "--object-store-memory", str(100 * 1024 * 1024), "--temp-dir", str(tmp / "ray"),
         "--disable-usage-stats"],
        cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "Ray runtime started" not in (tmp / "head.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                require_server(False, "a local Ray head (ray start --head): "
                               + (tmp / "head.log").read_text()[-2000:])
            time.sleep(0.2)
        yield {"address": f"127.0.0.1:{port}", "cwd": tmp,
               "env": {"RAY_ADDRESS": f"127.0.0.1:{port}", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}}
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _sweep(tmp_path: Path, *args: str, env: dict | None = None, name: str | None = None):
    extra = [f"hydra.sweep.dir={tmp_path / name}"] if name else []
    p = hlquant("backtest", "-m", *args, *SHORT, *extra, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    [summary] = list((tmp_path / (name or "multirun")).glob("summary.csv" if name else "*/*/summary.csv"))
    return pd.read_csv(summary), summary.parent, p


def test_ray_cluster_sweep_equals_joblib_sweep(tmp_path, ray_head):
    grid = ["strategy.fast=5,10"]
    for d in ("local", "ray"):
        (tmp_path / d).mkdir()
    local, _, _ = _sweep(tmp_path / "local", *grid)
    ray, sweep_dir, p = _sweep(tmp_path / "ray", "hydra/launcher=ray_cluster", *grid, env=ray_head["env"])
    assert "Connecting to existing Ray cluster" in p.stderr
    assert len(ray) == 2
    pd.testing.assert_frame_equal(ray.drop(columns=WHERE), local.drop(columns=WHERE))
    # The jobs wrote under the sweep directory where the command ran, not where `ray start` ran.
    assert [Path(d) for d in ray["output_dir"]] == [sweep_dir / "0", sweep_dir / "1"]
    assert all((sweep_dir / str(j) / "metrics.json").exists() for j in ray["job"])
    assert not list(ray_head["cwd"].glob("**/metrics.json"))


def test_ray_sweep_summary_needs_no_shared_directory(tmp_path, ray_head):
    # A relative sweep directory is resolved by each worker in its own working directory (here
    # the head's), as on a node without the launcher's disk: the summary comes from the
    # returned results all the same and says where each job's files are.
    p = hlquant("backtest", "-m", "hydra/launcher=ray_cluster", "strategy.fast=5,10", *SHORT,
                "hydra.sweep.dir=rel", cwd=tmp_path, env=ray_head["env"])
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    assert not list((tmp_path / "rel").glob("*/metrics.json"))
    df = pd.read_csv(tmp_path / "rel" / "summary.csv")
    assert list(df["job"]) == [0, 1] and df["sharpe"].nunique() == 2
    for j, d in zip(df["job"], df["output_dir"], strict=True):
        assert Path(d) == (ray_head["cwd"] / "rel" / str(j)).resolve()
        assert Path(d, "metrics.json").exists()


def test_optuna_search_on_ray_matches_joblib(tmp_path, ray_head):
    search = ["hydra/sweeper=search", "hydra.sweeper.n_trials=4", "strategy.fast=range(5,30)",
              "strategy.slow=range(50,200,10)"]
    local, local_dir, _ = _sweep(tmp_path, *search, name="joblib")
    ray, ray_dir, _ = _sweep(tmp_path, "hydra/launcher=ray_cluster", *search, env=ray_head["env"], name="ray")
    pd.testing.assert_frame_equal(ray.drop(columns=WHERE), local.drop(columns=WHERE))
    best = [yaml.safe_load((d / "optimization_results.yaml").read_text()) for d in (local_dir, ray_dir)]
    assert best[0] == best[1]
    assert best[1]["best_value"] == ray["sharpe"].max()
    # Trials run in parallel on the cluster: the two jobs of each batch overlap in time.
    start = pd.to_datetime(ray["started"]).astype("int64") / 1e9
    end = start + ray["elapsed_s"]
    for a, b in ((0, 1), (2, 3)):
        assert max(start[a], start[b]) < min(end[a], end[b]), ray[["job", "started", "elapsed_s"]]
