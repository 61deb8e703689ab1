"""Reports of a run, whatever produced it (backtest, paper, live): metrics, tables, plots."""

from hlquant.report.files import write_report
from hlquant.report.metrics import RunArtifacts, artifacts_from_run, build_report

__all__ = ["RunArtifacts", "artifacts_from_run", "build_report", "write_report"]
