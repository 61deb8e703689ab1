"""A 16-job sweep of the default backtest with 1 and with 2 joblib workers: the speedup.

    .venv/bin/python bench/sweep_speedup.py [--repeat 3] [--workers 2]

Runs ``hlquant backtest -m strategy.fast=5,8,10,12 strategy.slow=40,50,60,80``
(16 configurations of the default strategy on the bundled data, each writing its
full report) as a fresh command with ``hydra.launcher.n_jobs=1`` and with
``n_jobs=--workers``, alternately, ``--repeat`` times, and prints the median
wall times and their ratio (target >= 1.8 with 2 workers on 2 cores). It also
prints the jobs' own time (``elapsed_s`` of each job, from summary.csv) so the
launcher's overhead is visible: (sum of job times) / workers is the best a
launcher can do.

The machine's load average is printed before and after, and the CPU time each
sweep used over its wall time ("cores obtained"): other processes on a 2-core
machine take cores from the workers, and a speedup measured while the sweep
obtained fewer cores than it has workers says more about the machine than
about the launcher.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ["strategy.fast=5,8,10,12", "strategy.slow=40,50,60,80"]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for descendants: the workers too
    return r.ru_utime + r.ru_stime


def sweep(n_jobs: int, out: Path) -> tuple[float, float, pd.DataFrame]:
    cmd = [sys.executable, "-m", "hlquant.cli", "backtest", "-m", *SWEEP, "progress=false",
           f"hydra.launcher.n_jobs={n_jobs}", f"hydra.sweep.dir={out}"]
    t, c = time.perf_counter(), _cpu()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t, _cpu() - c
    if p.returncode != 0:
        raise SystemExit(f"sweep failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    summary = pd.read_csv(out / "summary.csv")
    if len(summary) != 16:
        raise SystemExit(f"expected 16 jobs, summary has {len(summary)}")
    return wall, cpu, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()}")
    one, many, jobs1, jobs2, cpu1, cpu2 = [], [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="hlq-sweep-bench-") as tmp:
        for i in range(args.repeat):
            for n, acc, jobs, cpus in ((1, one, jobs1, cpu1), (args.workers, many, jobs2, cpu2)):
                wall, cpu, summary = sweep(n, Path(tmp) / f"s{i}-{n}")
                acc.append(wall)
                cpus.append(cpu)
                jobs.append(float(summary["elapsed_s"].sum()))
                print(f"  run {i + 1}, {n} worker(s): {wall:6.1f}s wall, {cpu:6.1f}s CPU "
                      f"({cpu / wall:.2f} cores obtained), jobs' own time {jobs[-1]:6.1f}s")
    w1, w2 = statistics.median(one), statistics.median(many)
    j1, j2 = statistics.median(jobs1), statistics.median(jobs2)
    print(f"\n== 16-job sweep of the default backtest (median of {args.repeat}) ==")
    print(f"1 worker  {w1:6.1f}s   (jobs {j1:6.1f}s, launcher and start-up {w1 - j1:5.1f}s)")
    print(f"{args.workers} workers {w2:6.1f}s   (jobs {j2:6.1f}s over {args.workers} workers: best possible "
          f"{j2 / args.workers + (w1 - j1):5.1f}s)")
    c1, c2 = statistics.median(cpu1), statistics.median(cpu2)
    print(f"CPU: {c1:.1f}s with 1 worker, {c2:.1f}s with {args.workers} (the extra is per-worker start-up "
          f"and task transfer); cores obtained {c1 / w1:.2f} and {c2 / w2:.2f}")
    print(f"speedup {w1 / w2:.2f}x with {args.workers} workers (target >= 1.8); "
          f"a job takes {j2 / j1:.2f}x as long when {args.workers} run at once")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
