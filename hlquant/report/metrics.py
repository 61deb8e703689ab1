"""Run metrics: from what a run produced to the numbers people compare.

Metrics come from the equity curve sampled at bar closes plus the fill and
funding records, so the same function reports a backtest, a paper session and
a live session. PnL is decomposed so funding is never hidden inside trading
PnL: ``net = trading_pnl - fees + funding``.

Every metric has one definition, written in docs/research.md ("Metrics") and
checked against vectorbt's returns accessor (tests/report/test_metrics.py).
One annualization: ``P`` = samples per year from the median sampling step of
the equity curve (525,600 for one-minute bars) scales volatility, Sharpe and
Sortino; ``annual_return`` compounds the total return over the run's length
in years, and Calmar is that annual return over the maximum drawdown.
``basis(art)`` says which step and ``P`` a run's numbers rest on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hlquant.core.secrets import redact, redact_text
from hlquant.report.trades import round_trips, trade_stats

MS_PER_YEAR = 365.0 * 24 * 3600 * 1000
SHORT_RUN_DAYS = 365.0
"""Below a year, annual_return and calmar extrapolate: the report says so beside them."""
MOSTLY_SKIPPED = 0.5
"""A run whose agents skipped more than this share of their decisions is flagged."""

FILL_COLUMNS = ["ts", "symbol", "agent", "side", "px", "sz", "fee", "closed_pnl", "liquidity", "cloid"]
FUNDING_COLUMNS = ["ts", "symbol", "amount", "rate", "position"]


class WarningCode(StrEnum):
    """What a run's report flags (``RunWarning.code``)."""

    MOSTLY_SKIPPED = "mostly_skipped"  # most decisions were skipped: stale features or warm-up
    NO_DECISIONS = "no_decisions"      # no agent was ever called
    NO_FILLS = "no_fills"              # agents decided, nothing traded
    SHORT_RUN = "short_run"            # annualized figures extrapolate less than a year
    KILLED = "killed"                  # the risk engine's kill switch fired


@dataclass(frozen=True)
class RunWarning:
    """Something a person must know before trusting a run's numbers."""

    code: WarningCode
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": str(self.code), "message": self.message}


@dataclass
class RunArtifacts:
    """Everything a report needs; also what a sweep or comparison keeps per run.

    equity: account equity (USDC) indexed by UTC time; positions: signed notional
    per symbol on the same index; fills / funding: one row per fill / payment;
    prices: close per symbol on the equity index (price charts, buy-and-hold);
    orders: ``cloid, intent_id, agent, tpsl, reason`` of the orders sent (exit
    reasons of round trips); warnings: what the run's report must flag; decisions:
    the agent runner's counters (``decisions``, ``stale_skipped``, ``warmup_skipped``).
    """

    equity: pd.Series
    positions: pd.DataFrame
    fills: pd.DataFrame
    funding: pd.DataFrame
    initial_cash: float
    name: str = "backtest"
    params: dict[str, Any] = field(default_factory=dict)
    prices: pd.DataFrame | None = None
    orders: pd.DataFrame | None = None
    warnings: list[RunWarning] = field(default_factory=list)
    decisions: dict[str, int] = field(default_factory=dict)
    trips: pd.DataFrame | None = None  # round trips when known (else rebuilt from the fills)

    @classmethod
    def load(cls, run_dir: str | Path) -> RunArtifacts:
        """Read back what ``write_report`` wrote (for comparisons and notebooks)."""
        d = Path(run_dir)
        eq = pd.read_parquet(d / "equity.parquet")
        meta = json.loads((d / "metrics.json").read_text())
        opt = {n: pd.read_parquet(d / f"{n}.parquet") for n in ("prices", "orders")
               if (d / f"{n}.parquet").exists()}
        return cls(
            equity=eq["equity"],
            positions=eq.drop(columns=["equity"]),
            fills=pd.read_parquet(d / "fills.parquet"),
            funding=pd.read_parquet(d / "funding.parquet"),
            initial_cash=float(meta["initial_cash"]),
            name=str(meta.get("name", d.name)),
            params=meta.get("params", {}),
            prices=opt.get("prices"),
            orders=opt.get("orders"),
            warnings=[RunWarning(WarningCode(w["code"]), w["message"]) for w in meta.get("warnings", ())],
            decisions={k: int(v) for k, v in (meta.get("decisions") or {}).items()},
        )


def _annualized(total_return: float, years: float) -> float:
    """Compound annual return; a short run can compound past a float (then +inf)."""
    try:
        return (1 + total_return) ** (1 / years) - 1
    except OverflowError:
        return math.inf


def sample_step_ms(index: pd.DatetimeIndex) -> float:
    """The median step between equity samples, in ms (0 with fewer than two samples)."""
    if len(index) < 2:
        return 0.0
    step = pd.Series(index).diff().median()  # unit-agnostic (pandas 3 keeps ms resolution)
    return step.total_seconds() * 1000.0


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Annualization factor P: samples per year at the median sampling step."""
    step_ms = sample_step_ms(index)
    return MS_PER_YEAR / step_ms if step_ms > 0 else 0.0


def run_days(index: pd.DatetimeIndex) -> float:
    """Length of the equity curve (first to last sample) in days."""
    return (index[-1] - index[0]).total_seconds() / 86400.0 if len(index) > 1 else 0.0


def basis(art: RunArtifacts) -> dict[str, Any]:
    """What the annualized numbers of a run rest on: the sampling step, P and the length."""
    idx = art.equity.index
    step = sample_step_ms(idx)
    days = run_days(idx)
    return {
        "sample_step": _step_label(step), "periods_per_year": periods_per_year(idx),
        "samples": int(len(idx)), "days": days,
        "annualized": (f"volatility, sharpe and sortino annualized from {_step_label(step)} samples "
                       f"(x sqrt({periods_per_year(idx):,.0f})); annual_return compounds {days:.1f} days"
                       + (" to a year: an extrapolation" if days < SHORT_RUN_DAYS else "")),
    }


def _step_label(ms: float) -> str:
    if ms <= 0:
        return "n/a"
    for unit, n in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms % n == 0:
            return f"{int(ms // n)}{unit}"
    return f"{ms:g}ms"


def buy_and_hold(art: RunArtifacts) -> pd.Series:
    """Equity of holding every symbol of the run in equal weight from the first sample,
    unlevered, without fees or funding (the benchmark line of the report)."""
    eq = art.equity
    if art.prices is None or not len(art.prices.columns) or not len(eq):
        return pd.Series(dtype=float)
    px = art.prices.reindex(eq.index).ffill().bfill()
    rel = px / px.iloc[0]
    return rel.mean(axis=1) * float(art.initial_cash)


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
    trips = trades(art)
    ts = trade_stats(trips)
    bench = buy_and_hold(art)
    mean_eq = float(eq.mean()) if len(eq) else init
    gross = art.positions.abs().sum(axis=1) if len(art.positions.columns) else pd.Series(0.0, index=eq.index)
    exposure = float((gross > 1e-9).mean()) if len(gross) else 0.0
    avg_lev = float((gross / eq.where(eq > 0)).mean()) if len(gross) else 0.0
    years = (eq.index[-1] - eq.index[0]).total_seconds() / (365.0 * 86400) if len(eq) > 1 else 0.0
    total_return = final / init - 1.0 if init else 0.0
    annual = _annualized(total_return, years) if years > 0 and final > 0 else 0.0
    return pd.Series(
        {
            "total_return": total_return,
            "annual_return": annual,
            "annual_volatility": sd * math.sqrt(ppy),
            "sharpe": sharpe,
            "sortino": sortino,
            "max_drawdown": max_dd,
            "calmar": annual / abs(max_dd) if max_dd < 0 else 0.0,
            "net_pnl": final - init,
            "trading_pnl": final - init + fees - funding,
            "fees": fees,
            "funding": funding,
            "turnover": traded / mean_eq if mean_eq else 0.0,
            "traded_notional": traded,
            "hit_rate": ts["win_rate"],
            "n_fills": int(len(f)),
            "n_closing_fills": int(len(closing)),
            "exposure": exposure,
            "avg_leverage": avg_lev,
            "final_equity": final,
            "n_trades": ts["n_trades"],
            "profit_factor": ts["profit_factor"],
            "expectancy": ts["expectancy"],
            "avg_win": ts["avg_win"],
            "avg_loss": ts["avg_loss"],
            "max_consecutive_losses": ts["max_consecutive_losses"],
            "avg_trade_minutes": ts["avg_trade_minutes"],
            "benchmark_return": float(bench.iloc[-1]) / init - 1.0 if len(bench) and init else 0.0,
            **({"skipped_decisions": skipped_share(art.decisions)} if art.decisions else {}),
        },
        name=art.name,
    )


def skipped_share(counts: dict[str, int]) -> float:
    """Share of the agents' decisions skipped on stale features or during warm-up."""
    n = int(counts.get("decisions", 0))
    return (int(counts.get("stale_skipped", 0)) + int(counts.get("warmup_skipped", 0))) / n if n else 0.0


def trades(art: RunArtifacts) -> pd.DataFrame:
    """The run's round trips (``hlquant.report.trades.round_trips``)."""
    if art.trips is not None:
        return art.trips
    end = art.equity.index[-1] if len(art.equity) else None
    return round_trips(art.fills, art.funding, art.orders, art.prices, end)


def run_warnings(art: RunArtifacts, metrics: pd.Series, stale: dict[str, int] | None = None,
                 killed: str = "") -> list[RunWarning]:
    """What a person must be told before reading ``metrics`` (printed at the end of a run,
    a banner in report.html, ``warnings`` in metrics.json and run.json).

    Uses ``art.decisions`` (the agent runner's counters); ``stale``: stale reads per
    feature; ``killed``: the kill reason."""
    out: list[RunWarning] = []
    c = art.decisions
    n = int(c.get("decisions", 0))
    stale_n, warm_n = int(c.get("stale_skipped", 0)), int(c.get("warmup_skipped", 0))
    if c and n == 0:
        out.append(RunWarning(WarningCode.NO_DECISIONS, "no agent was ever called: check the "
                              "strategy's symbols and trigger against the data"))
    elif n and skipped_share(c) > MOSTLY_SKIPPED:
        why = []
        if stale_n:
            worst = ", ".join(f"{k} ({v:,})" for k, v in sorted((stale or {}).items(), key=lambda kv: -kv[1])[:3])
            why.append(f"{stale_n:,} on stale features" + (f": {worst}" if worst else "")
                       + " (features.staleness)")
        if warm_n:
            why.append(f"{warm_n:,} warming up (features not warm yet: a span or window longer "
                       "than the data?)")
        out.append(RunWarning(WarningCode.MOSTLY_SKIPPED,
                              f"{stale_n + warm_n:,} of {n:,} decisions ({(stale_n + warm_n) / n:.0%}) "
                              f"were skipped: {'; '.join(why)}. These metrics describe a strategy "
                              "that mostly did not run."))
    if n and not int(metrics.get("n_fills", 0)):
        out.append(RunWarning(WarningCode.NO_FILLS, f"{n:,} decisions and no fill: nothing was traded"))
    days = run_days(art.equity.index)
    if 0 < days < SHORT_RUN_DAYS:
        out.append(RunWarning(WarningCode.SHORT_RUN, f"the run covers {days:.1f} days: annual_return and "
                              "calmar extrapolate it to a year"))
    if killed:
        out.append(RunWarning(WarningCode.KILLED, f"the kill switch fired ({killed}): trading stopped"))
    return out


def artifacts_from_run(curve: tuple[np.ndarray, np.ndarray, np.ndarray], symbols: Sequence[str],
                       fills: Sequence[Any], funding: Sequence[Any], initial_cash: float,
                       name: str = "run", params: dict[str, Any] | None = None,
                       prices: pd.DataFrame | None = None, orders: pd.DataFrame | None = None
                       ) -> RunArtifacts:
    """RunArtifacts from a kernel's record: the equity curve ``(t_ms, equity, notional)``
    and its Fill / FundingPayment events (any mode: backtest, paper, live); ``prices``
    (close per symbol, any index: aligned to the curve) and ``orders`` when known."""
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
        # the name and parameters reach metrics.json and the report: never a secret
        fills=fills_df, funding=funding_df, initial_cash=float(initial_cash), name=redact_text(name),
        params=redact(dict(params or {})),
        prices=None if prices is None else prices.reindex(idx, method="ffill"),
        orders=orders,
    )


def closes(market: Any) -> pd.DataFrame:
    """Close per symbol indexed by bar close time (UTC), from a MarketData's candles."""
    c = market.candles
    if c is None or not len(c):
        return pd.DataFrame(columns=list(market.symbols), dtype=float)
    t, inv = np.unique(c["ts_exch"], return_inverse=True)
    wide = np.full((len(t), len(market.symbols)), np.nan)
    wide[inv, c["sym"]] = c["close"]
    return pd.DataFrame(wide, index=pd.to_datetime(t, unit="ms", utc=True), columns=list(market.symbols))
