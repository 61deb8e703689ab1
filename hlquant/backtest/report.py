"""Backtest report: metrics from what a run produced, and the files people look at.

Metrics come from the equity curve sampled at bar closes plus the fill and
funding records, so the same function reports a backtest, a paper session and
a live session. PnL is decomposed so funding is never hidden inside trading
PnL: ``net = trading_pnl - fees + funding``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MS_PER_YEAR = 365.0 * 24 * 3600 * 1000

FILL_COLUMNS = ["ts", "symbol", "agent", "side", "px", "sz", "fee", "closed_pnl", "liquidity", "cloid"]
FUNDING_COLUMNS = ["ts", "symbol", "amount", "rate", "position"]


@dataclass
class RunArtifacts:
    """Everything a report needs; also what a sweep or comparison keeps per run.

    equity: account equity (USDC) indexed by UTC time; positions: signed notional
    per symbol on the same index; fills / funding: one row per fill / payment.
    """

    equity: pd.Series
    positions: pd.DataFrame
    fills: pd.DataFrame
    funding: pd.DataFrame
    initial_cash: float
    name: str = "backtest"
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: str | Path) -> RunArtifacts:
        """Read back what ``write_report`` wrote (for comparisons and notebooks)."""
        d = Path(run_dir)
        eq = pd.read_parquet(d / "equity.parquet")
        meta = json.loads((d / "metrics.json").read_text())
        return cls(
            equity=eq["equity"],
            positions=eq.drop(columns=["equity"]),
            fills=pd.read_parquet(d / "fills.parquet"),
            funding=pd.read_parquet(d / "funding.parquet"),
            initial_cash=float(meta["initial_cash"]),
            name=str(meta.get("name", d.name)),
            params=meta.get("params", {}),
        )


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Annualization factor from the median sampling step of the equity curve."""
    if len(index) < 2:
        return 0.0
    step = pd.Series(index).diff().median()  # unit-agnostic (pandas 3 keeps ms resolution)
    step_ms = step.total_seconds() * 1000.0
    return MS_PER_YEAR / step_ms if step_ms > 0 else 0.0


def drawdown(equity: pd.Series) -> pd.Series:
    """Fractional distance below the running peak (0 at a new high, negative below)."""
    peak = equity.cummax()
    return equity / peak - 1.0


def build_report(art: RunArtifacts) -> pd.Series:
    """The headline metrics of a run, as a Series (one row of a sweep table)."""
    eq = art.equity.astype(float)
    init = float(art.initial_cash)
    final = float(eq.iloc[-1]) if len(eq) else init
    rets = eq.pct_change().dropna() if len(eq) > 1 else pd.Series(dtype=float)
    ppy = periods_per_year(eq.index) if len(eq) > 1 else 0.0
    sd = float(rets.std(ddof=1)) if len(rets) > 1 else 0.0
    mean = float(rets.mean()) if len(rets) else 0.0
    sharpe = mean / sd * math.sqrt(ppy) if sd > 0 else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(rets.to_numpy(), 0.0) ** 2))) if len(rets) else 0.0
    sortino = mean / downside * math.sqrt(ppy) if downside > 0 else 0.0
    dd = drawdown(eq) if len(eq) else pd.Series(dtype=float)
    max_dd = float(dd.min()) if len(dd) else 0.0

    f = art.fills
    traded = float((f["px"] * f["sz"]).abs().sum()) if len(f) else 0.0
    fees = float(f["fee"].sum()) if len(f) else 0.0
    funding = float(art.funding["amount"].sum()) if len(art.funding) else 0.0
    closing = f[f["closed_pnl"] != 0.0] if len(f) else f
    wins = int((closing["closed_pnl"] > 0).sum()) if len(closing) else 0
    hit_rate = wins / len(closing) if len(closing) else 0.0
    mean_eq = float(eq.mean()) if len(eq) else init
    gross = art.positions.abs().sum(axis=1) if len(art.positions.columns) else pd.Series(0.0, index=eq.index)
    exposure = float((gross > 1e-9).mean()) if len(gross) else 0.0
    avg_lev = float((gross / eq.where(eq > 0)).mean()) if len(gross) else 0.0
    years = (eq.index[-1] - eq.index[0]).total_seconds() / (365.0 * 86400) if len(eq) > 1 else 0.0
    total_return = final / init - 1.0 if init else 0.0
    return pd.Series(
        {
            "total_return": total_return,
            "annual_return": (1 + total_return) ** (1 / years) - 1 if years > 0 and final > 0 else 0.0,
            "annual_volatility": sd * math.sqrt(ppy),
            "sharpe": sharpe,
            "sortino": sortino,
            "max_drawdown": max_dd,
            "calmar": (total_return / years) / abs(max_dd) if years > 0 and max_dd < 0 else 0.0,
            "net_pnl": final - init,
            "trading_pnl": final - init + fees - funding,
            "fees": fees,
            "funding": funding,
            "turnover": traded / mean_eq if mean_eq else 0.0,
            "traded_notional": traded,
            "hit_rate": hit_rate,
            "n_fills": int(len(f)),
            "n_closing_fills": int(len(closing)),
            "exposure": exposure,
            "avg_leverage": avg_lev,
            "final_equity": final,
        },
        name=art.name,
    )


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
    from hlquant.backtest.tearsheet import write_tearsheet

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
