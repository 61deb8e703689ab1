"""The whole ``hlquant backtest`` command on 1,000,000 bars: wall time and peak memory.

    .venv/bin/python bench/cli_backtest.py [--days 232] [--repeat 3]

Writes >= 1,000,000 generated one-minute candles (seeded, three symbols, with
funding) as a data directory, then runs, each in a fresh process under
``/usr/bin/time -v`` (the median of ``--repeat`` runs is printed):

- ``hlquant backtest data=files data.path=DIR`` (the default strategy, report
  included), with the engine's own time (``Backtest.run``) and the report's
  (``write_report``) from the run's ``run.json``;
- the same backtest without the report (``run_backtest(report=False)``), to
  tell the report's share of time and memory;
- vectorbt on the same data: the same files read with pandas, the same EMA
  crossover through ``Portfolio.from_signals`` and its ``stats()``.

It prints the command's wall time over the engine time (target <= 1.3), the
report's share of the command, and the peak resident memory of both
(target: hlquant <= vectorbt).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VECTORBT = """
import sys, pandas as pd
from hlquant.research.vectorized import ma_cross_portfolio
c = pd.read_parquet(sys.argv[1] + "/candles.parquet", columns=["ts_exch", "sym", "close"])
close = c.pivot(index="ts_exch", columns="sym", values="close")
close.index = pd.to_datetime(close.index, unit="ms", utc=True)
pf = ma_cross_portfolio(close, 10, 50, 10_000.0)
print(pf.stats(agg_func=None).shape)
"""


ENGINE_ONLY = """
import sys
from hlquant.backtest.run import run_backtest
from hlquant.config.compose import load_config
cfg = load_config(["data=files", "data.path=" + sys.argv[1], "progress=false"])
r = run_backtest(cfg, out_dir=sys.argv[2], report=False)
print(r.stats["run_seconds"])
"""


def timed_run(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of ``cmd`` under /usr/bin/time -v."""
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", p.stderr)
    h, m, s = wall.groups()
    seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    return seconds, rss_kb / 1024, p.stdout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=232)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    from hlquant.data.generate import generate

    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="hlq-cli-bench-") as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        md = generate(symbols=("BTC", "ETH", "SOL"), days=args.days, seed=11, with_trades=False,
                      with_l2=False)
        md.save(data)
        print(f"data: {len(md.candles):,} candles, {len(md.funding):,} funding prints, "
              f"3 symbols -> {data}")

        runs = []
        for i in range(args.repeat):
            out = tmp / f"run{i}"
            wall, rss, _ = timed_run([py, "-m", "hlquant.cli", "backtest", "data=files",
                                      f"data.path={data}", "progress=false", f"hydra.run.dir={out}"], ROOT)
            stats = json.loads((out / "run.json").read_text())["stats"]
            html = (out / "report.html").stat().st_size / 1e6
            runs.append((wall, rss, stats["run_seconds"], stats["report_seconds"], html))
            print(f"  hlquant run {i + 1}: {wall:6.1f}s wall, {rss:7.0f} MB peak, engine "
                  f"{stats['run_seconds']:.1f}s, report {stats['report_seconds']:.1f}s ({html:.1f} MB html)")
        eng = []
        for i in range(args.repeat):
            wall, rss, out = timed_run([py, "-c", ENGINE_ONLY, str(data), str(tmp / f"api{i}")], ROOT)
            eng.append((wall, rss))
            print(f"  same run without the report (run_backtest(report=False)) {i + 1}: {wall:6.1f}s wall, "
                  f"{rss:7.0f} MB peak")
        vbt = []
        for i in range(args.repeat):
            wall, rss, _ = timed_run([py, "-c", VECTORBT, str(data)], ROOT)
            vbt.append((wall, rss))
            print(f"  vectorbt run {i + 1}: {wall:6.1f}s wall, {rss:7.0f} MB peak")

    wall, rss, engine, report, html = (statistics.median(x) for x in zip(*runs, strict=True))
    v_wall, v_rss = (statistics.median(x) for x in zip(*vbt, strict=True))
    e_wall, e_rss = (statistics.median(x) for x in zip(*eng, strict=True))
    print(f"\n== hlquant backtest on {len(md.candles):,} bars (median of {args.repeat}, fresh processes) ==")
    print(f"whole command {wall:.1f}s, engine (Backtest.run) {engine:.1f}s: "
          f"ratio {wall / engine:.2f}x (target <= 1.3)")
    print(f"report (write_report) {report:.1f}s = {report / wall:.0%} of the command; report.html {html:.1f} MB")
    print(f"rest (interpreter, imports, data load, audit/run.json): {wall - engine - report:.1f}s")
    print(f"peak memory: hlquant {rss:,.0f} MB, vectorbt {v_rss:,.0f} MB ({v_wall:.1f}s whole script): "
          f"ratio {rss / v_rss:.2f}x (target <= 1)")
    print(f"without the report: {e_wall:.1f}s wall, {e_rss:,.0f} MB peak: ratio to vectorbt "
          f"{e_rss / v_rss:.2f}x; the report adds {rss - e_rss:,.0f} MB and {wall - e_wall:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
