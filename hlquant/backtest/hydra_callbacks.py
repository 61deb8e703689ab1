"""Hydra callback: after a sweep, gather every job's metrics into one table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from hlquant.backtest.sweep_report import collect_sweep, write_sweep_report

        sweep_dir = Path(config.hydra.sweep.dir)
        df = collect_sweep(sweep_dir)
        if df.empty:
            log.warning("sweep in %s produced no metrics", sweep_dir)
            return
        files = write_sweep_report(df, sweep_dir)
        cols = [c for c in df.columns if c in ("sharpe", "total_return", "max_drawdown", "fees")]
        params = [c for c in df.columns if c not in cols and not c.startswith("_")][:4]
        print(df[params + cols].to_string(index=False) if params else df.to_string())
        print(f"sweep summary: {files}")
