"""The files a run leaves for people: metrics (JSON/CSV), tables (Parquet), plots (PNG, HTML).

Full-resolution data goes to Parquet (equity and positions, prices, fills,
funding, round trips, orders); the PNG and the HTML tearsheet show it
downsampled, so they stay small at any run length.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hlquant.report.html import downsample, time_ms, to_json_safe
from hlquant.report.metrics import RunArtifacts, basis, build_report, buy_and_hold, drawdown, trades
from hlquant.report.tearsheet import write_tearsheet


def metrics_payload(art: RunArtifacts, metrics: pd.Series) -> dict[str, Any]:
    """What metrics.json holds: the metrics, the basis of their annualization, the warnings."""
    return to_json_safe({
        "name": art.name,
        "params": art.params,
        "initial_cash": art.initial_cash,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "basis": basis(art),
        "warnings": [w.to_dict() for w in art.warnings],
        "decisions": art.decisions,
    })


def write_report(art: RunArtifacts, out_dir: str | Path) -> dict[str, Path]:
    """Write metrics (JSON/CSV), the run's tables (Parquet) and the plots (PNG, HTML)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = build_report(art)
    trips = trades(art)
    files: dict[str, Path] = {}
    files["metrics"] = out / "metrics.json"
    files["metrics"].write_text(json.dumps(metrics_payload(art, metrics), indent=2))
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
    files["trades"] = out / "trades.parquet"
    trips.to_parquet(files["trades"])
    for name in ("prices", "orders"):
        frame = getattr(art, name)
        if frame is not None:
            files[name] = out / f"{name}.parquet"
            frame.to_parquet(files[name])
    files["plot_png"] = plot_png(art, out / "report.png", metrics)
    files["report_html"] = write_tearsheet(art, out / "report.html", metrics=metrics, trips=trips)
    return files


def plot_png(art: RunArtifacts, path: str | Path, metrics: pd.Series | None = None) -> Path:
    """Equity beside buy-and-hold, drawdown and net exposure on one time axis (matplotlib,
    no display; lines downsampled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.3, 1.7]})
    eq = art.equity
    x = time_ms(eq.index)

    def line(ax, y, **kw):
        y = np.asarray(y, dtype=float)
        i = downsample(x, y, 3000)
        ax.plot(pd.to_datetime(x[i], unit="ms"), y[i], **kw)

    line(axes[0], eq.to_numpy(), color="#1f77b4", lw=1.2, label="strategy")
    bench = buy_and_hold(art)
    if len(bench):
        line(axes[0], bench.to_numpy(), color="#9a9a9a", lw=0.9, ls=":", label="buy & hold")
        axes[0].legend(loc="upper left", fontsize=8)
    axes[0].axhline(art.initial_cash, color="grey", lw=0.6, ls="--")
    axes[0].set_ylabel("equity (USDC)")
    m = metrics if metrics is not None else build_report(art)
    axes[0].set_title(
        f"{art.name}  return {m['total_return']:+.2%}  Sharpe {m['sharpe']:.2f}  "
        f"maxDD {m['max_drawdown']:.2%}  fees {m['fees']:,.0f}  funding {m['funding']:+,.0f}"
    )
    line(axes[1], drawdown(eq).to_numpy() * 100, color="#d62728", lw=0.8)
    axes[1].set_ylabel("drawdown %")
    if len(art.positions.columns) and len(eq):
        frac = art.positions.div(eq.where(eq > 0), axis=0).fillna(0.0)
        line(axes[2], frac.sum(axis=1).to_numpy(), color="#1f77b4", lw=0.9, label="net")
        line(axes[2], frac.abs().sum(axis=1).to_numpy(), color="#555555", lw=0.7, label="gross")
        axes[2].legend(loc="upper left", fontsize=8, ncol=2)
    axes[2].axhline(0, color="grey", lw=0.5)
    axes[2].set_ylabel("exposure (x equity)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
