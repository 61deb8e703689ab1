"""What one sweep job sends back to the process that launched the sweep.

A sweep's summary must not depend on a disk shared by the machines that run
its jobs: on a Ray cluster each job writes its files on its own node. So the
backtest task returns a ``JobResult`` (the swept overrides, every metric, the
objective, and where its files are: node and path) and the launching process
builds summary.csv / summary.html / the heatmap from those values alone.

Hydra 1.3 hands the jobs' return values to the sweeper only; callbacks
(``on_multirun_end``) never see them. A ``JobResult`` therefore records itself
in ``_arrivals`` of the process where it is constructed: the job's own process
and, because it pickles as a constructor call, every process it is sent to
(joblib and Ray return it pickled to the launching process). ``SweepSummary``
takes the sweep's results from there.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hlquant.core.errors import ConfigError

DIRECTIONS = ("maximize", "minimize")

_lock = threading.Lock()
_arrivals: dict[str, dict[int, JobResult]] = {}


@dataclass(frozen=True)
class JobResult:
    """One finished job. ``float(result)`` is the objective: Optuna's sweeper reads that."""

    sweep_key: str                  # hydra.sweep.dir as configured: the same string on every node
    num: int                        # hydra.job.num
    overrides: tuple[str, ...]      # the job's overrides (what the sweeper varied)
    objective: str                  # sweep.objective
    value: float                    # metrics[objective]
    metrics: dict[str, float]
    node: str                       # host name of the machine that ran the job
    output_dir: str                 # absolute, on ``node``
    files: dict[str, str]           # artifact name -> absolute path on ``node``
    reconcile: dict[str, tuple[float, float]]  # symbols whose size differs from the venue's
    started: float                  # unix time the job started, on ``node``'s clock
    elapsed_s: float                # wall time of the job

    def __post_init__(self) -> None:
        with _lock:
            _arrivals.setdefault(self.sweep_key, {})[self.num] = self

    def __float__(self) -> float:
        return self.value

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Unpickling calls the constructor, so the result also records itself where it arrives.
        return (JobResult, tuple(getattr(self, f.name) for f in fields(self)))


def start_sweep(sweep_key: str) -> None:
    """Forget results of an earlier sweep with the same key (tests run several per process)."""
    with _lock:
        _arrivals.pop(sweep_key, None)


def take_results(sweep_key: str) -> list[JobResult]:
    """The results that reached this process for the sweep, by job number."""
    with _lock:
        got = _arrivals.pop(sweep_key, {})
    return [got[n] for n in sorted(got)]


def check_objective(objective: str, direction: str) -> None:
    """Refuse a direction Optuna and the ranking do not know, or no objective at all."""
    if direction not in DIRECTIONS:
        raise ConfigError(f"sweep.direction={direction!r}: expected one of {', '.join(DIRECTIONS)}")
    if not objective:
        raise ConfigError("sweep.objective is empty: name a metric, e.g. sharpe")


def job_result(cfg: Any, result: Any, started: float) -> JobResult:
    """The ``JobResult`` of a finished backtest job (``result``: ``BacktestResult``) that
    started at unix time ``started``."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    objective = str(cfg.sweep.objective)
    check_objective(objective, str(cfg.sweep.direction))
    metrics = {str(k): float(v) for k, v in result.metrics.items()}
    if objective not in metrics:
        raise ConfigError(f"sweep.objective={objective!r} is not a metric of a backtest; "
                          f"one of: {', '.join(sorted(metrics))}")
    reconcile = {str(s): (float(a), float(b)) for s, (a, b) in result.stats.get("reconcile", {}).items()}
    return JobResult(
        sweep_key=str(hc.sweep.dir), num=int(hc.job.num), overrides=tuple(hc.overrides.task),
        objective=objective, value=metrics[objective], metrics=metrics, node=socket.gethostname(),
        output_dir=str(Path(hc.runtime.output_dir).resolve()),
        files={str(k): str(Path(p).resolve()) for k, p in result.files.items()}, reconcile=reconcile,
        started=started, elapsed_s=time.time() - started,
    )
