"""Hydra callback: after a sweep, gather every job's metrics into one table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    """Prints and writes the sweep table when a multirun ends (summary.csv/html, heatmap)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from hlquant.backtest.sweep_report import collect_sweep, param_columns, write_sweep_report

        sweep_dir = Path(config.hydra.sweep.dir)
        df = collect_sweep(sweep_dir)
        if df.empty:
            log.warning("sweep in %s produced no metrics", sweep_dir)
            return
        files = write_sweep_report(df, sweep_dir)
        cols = [c for c in ("total_return", "sharpe", "max_drawdown", "fees", "funding", "n_fills")
                if c in df.columns]
        print(df[["job", *param_columns(df), *cols]].to_string(index=False))
        for name, path in files.items():
            print(f"  {name}: {path}")
