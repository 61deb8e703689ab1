"""Reports of a run, whatever produced it (backtest, paper, live): metrics, round trips,
tables, plots (self-contained HTML pages)."""

from hlquant.report.files import write_report
from hlquant.report.metrics import (
    RunArtifacts,
    RunWarning,
    WarningCode,
    artifacts_from_run,
    build_report,
    run_warnings,
)
from hlquant.report.trades import ExitReason, round_trips, trade_stats

__all__ = ["ExitReason", "RunArtifacts", "RunWarning", "WarningCode", "artifacts_from_run", "build_report",
           "round_trips", "run_warnings", "trade_stats", "write_report"]
