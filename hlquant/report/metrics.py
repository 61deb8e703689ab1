"""Run metrics: from what a run produced to the numbers people compare.

Metrics come from the equity curve sampled at bar closes plus the fill and
funding records, so the same function reports a backtest, a paper session and
a live session. PnL is decomposed so funding is never hidden inside trading
PnL: ``net = trading_pnl - fees + funding``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
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


def _annualized(total_return: float, years: float) -> float:
    """Compound annual return; a short run can compound past a float (then +inf)."""
    try:
        return (1 + total_return) ** (1 / years) - 1
    except OverflowError:
        return math.inf


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
            "annual_return": _annualized(total_return, years) if years > 0 and final > 0 else 0.0,
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


def artifacts_from_run(curve: tuple[np.ndarray, np.ndarray, np.ndarray], symbols: Sequence[str],
                       fills: Sequence[Any], funding: Sequence[Any], initial_cash: float,
                       name: str = "run", params: dict[str, Any] | None = None) -> RunArtifacts:
    """RunArtifacts from a kernel's record: the equity curve ``(t_ms, equity, notional)``
    and its Fill / FundingPayment events (any mode: backtest, paper, live)."""
    eq_t, eq_v, pos_v = curve
    idx = pd.to_datetime(eq_t, unit="ms", utc=True)
    fills_df = pd.DataFrame(
        [(f.ts_exch, f.symbol, f.agent, int(f.side), f.px, f.sz, f.fee, f.closed_pnl, f.liquidity, f.cloid)
         for f in fills], columns=FILL_COLUMNS)
    fills_df["ts"] = pd.to_datetime(fills_df["ts"].astype("int64"), unit="ms", utc=True)
    funding_df = pd.DataFrame([(p.ts_exch, p.symbol, p.amount, p.rate, p.position) for p in funding],
                              columns=FUNDING_COLUMNS)
    funding_df["ts"] = pd.to_datetime(funding_df["ts"].astype("int64"), unit="ms", utc=True)
    return RunArtifacts(
        equity=pd.Series(eq_v, index=idx, name="equity"),
        positions=pd.DataFrame(pos_v, index=idx, columns=list(symbols)),
        fills=fills_df, funding=funding_df, initial_cash=float(initial_cash), name=name,
        params=dict(params or {}),
    )
