"""The files a run leaves for people: metrics (JSON/CSV), tables (Parquet), plots (PNG, HTML)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hlquant.report.metrics import RunArtifacts, build_report, drawdown
from hlquant.report.tearsheet import write_tearsheet


def write_report(art: RunArtifacts, out_dir: str | Path) -> dict[str, Path]:
    """Write metrics (JSON/CSV), the run's tables (Parquet) and the plots (PNG, HTML)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = build_report(art)
    files: dict[str, Path] = {}
    payload = {
        "name": art.name,
        "params": _jsonable(art.params),
        "initial_cash": art.initial_cash,
        "metrics": {k: float(v) for k, v in metrics.items()},
    }
    files["metrics"] = out / "metrics.json"
    files["metrics"].write_text(json.dumps(payload, indent=2))
    files["metrics_csv"] = out / "metrics.csv"
    metrics.to_frame("value").to_csv(files["metrics_csv"], index_label="metric")
    eq = art.positions.copy()
    eq.insert(0, "equity", art.equity)
    files["equity"] = out / "equity.parquet"
    eq.to_parquet(files["equity"])
    files["fills"] = out / "fills.parquet"
    art.fills.to_parquet(files["fills"])
    files["funding"] = out / "funding.parquet"
    art.funding.to_parquet(files["funding"])
    files["plot_png"] = plot_png(art, out / "report.png")
    files["report_html"] = write_tearsheet(art, out / "report.html", metrics=metrics)
    return files


def plot_png(art: RunArtifacts, path: str | Path) -> Path:
    """Equity, drawdown and positions, stacked on one time axis (matplotlib, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.3, 1.7]})
    eq = art.equity
    idx = eq.index.tz_convert(None) if eq.index.tz is not None else eq.index
    axes[0].plot(idx, eq.to_numpy(), color="#1f77b4", lw=1.2)
    axes[0].axhline(art.initial_cash, color="grey", lw=0.6, ls="--")
    axes[0].set_ylabel("equity (USDC)")
    m = build_report(art)
    axes[0].set_title(
        f"{art.name}  return {m['total_return']:+.2%}  Sharpe {m['sharpe']:.2f}  "
        f"maxDD {m['max_drawdown']:.2%}  fees {m['fees']:,.0f}  funding {m['funding']:+,.0f}"
    )
    dd = drawdown(eq) * 100
    axes[1].fill_between(idx, dd.to_numpy(), 0, color="#d62728", alpha=0.4, lw=0)
    axes[1].set_ylabel("drawdown %")
    for col in art.positions.columns:
        axes[2].plot(idx, art.positions[col].to_numpy(), lw=0.9, label=str(col))
    axes[2].axhline(0, color="grey", lw=0.5)
    axes[2].set_ylabel("position (USDC)")
    if len(art.positions.columns):
        axes[2].legend(loc="upper left", fontsize=8, ncol=len(art.positions.columns))
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _jsonable(o: Any) -> Any:
    return json.loads(json.dumps(o, default=str))
