"""Vectorized research path: whole-array feature kernels -> signals -> vectorbt.

The same numba kernels the event-driven engine updates one event at a time
run here over whole arrays, so a strategy researched in a notebook with
vectorbt and the strategy run by ``hlquant backtest`` share their features.
``parity`` puts the two side by side, per symbol, and explains any gap:
Hyperliquid lot rounding (bounded below), fees, funding and latency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hlquant.core.assets import DEFAULT_ASSETS, AssetSpec
from hlquant.data.market import MarketData
from hlquant.features.nb import ema_run


def ema(x: np.ndarray, span: int) -> np.ndarray:
    """Whole-array EMA (the kernel the live feature pipeline steps)."""
    out = np.empty(len(x), dtype=np.float64)
    ema_run(np.zeros(2), np.ascontiguousarray(x, dtype=np.float64), out, 2.0 / (span + 1))
    return out


def ma_cross_side(close: np.ndarray, fast: int, slow: int) -> np.ndarray:
    """+1 while the fast EMA is above the slow one, -1 below, 0 during the warm-up."""
    side = np.where(ema(close, fast) > ema(close, slow), 1, -1)
    side[: slow - 1] = 0  # strategies.ma_cross waits `slow` bars
    return side


def closes(market: MarketData, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """Candle closes as a time x symbol frame (the vectorbt input)."""
    c = market.candles
    symbols = list(symbols or market.symbols)
    cols = {}
    idx = None
    for sym in symbols:
        s = market.symbols.index(sym)
        m = c["sym"] == s
        cols[sym] = c["close"][m]
        if idx is None:
            idx = pd.to_datetime(c["ts_exch"][m], unit="ms", utc=True)
    return pd.DataFrame(cols, index=idx)


def signals_from_side(side: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Entries where the side turns long / short (vectorbt's long and short entries)."""
    prev = side.shift(1).fillna(0)
    return (side == 1) & (prev != 1), (side == -1) & (prev != -1)


def ma_cross_portfolio(close: pd.DataFrame, fast: int, slow: int, size_usd: float,
                       fee: float = 0.00045, init_cash: float = 1e9):
    """vectorbt Portfolio of the MA crossover: reverse on each cross, fixed USD size."""
    import vectorbt as vbt

    side = pd.DataFrame({c: ma_cross_side(close[c].to_numpy(), fast, slow) for c in close},
                        index=close.index)
    longs, shorts = signals_from_side(side)
    return vbt.Portfolio.from_signals(
        close=close, entries=longs, short_entries=shorts, size=size_usd, size_type="value",
        fees=fee, init_cash=init_cash, upon_opposite_entry="reverse", freq="1min",
    )


def lot_tolerance(px: np.ndarray, lot: float, fee: float) -> float:
    """Bound on PnL drift from rounding each order to one lot (10^-szDecimals coin).

    One lot of size difference carried between consecutive fills changes PnL by
    at most lot x |price travelled|, plus the fee on one lot per fill.
    """
    if len(px) == 0:
        return 0.01
    return lot * (float(np.abs(np.diff(px)).sum()) + fee * float(np.abs(px).sum())) * 2 + 0.01


@dataclass
class ParityRow:
    symbol: str
    hlquant_pnl: float
    vectorbt_pnl: float
    diff: float
    tolerance: float
    hlquant_orders: int
    vectorbt_orders: int

    @property
    def ok(self) -> bool:
        return abs(self.diff) <= self.tolerance and self.hlquant_orders == self.vectorbt_orders


def parity(fills: pd.DataFrame, pf, close: pd.DataFrame, fee: float,
           assets: dict[str, AssetSpec] | None = None) -> pd.DataFrame:
    """Per-symbol PnL (net of fees, marked at the last close) of both engines."""
    assets = assets or DEFAULT_ASSETS
    vbt_pnl = pf.total_profit()
    vbt_orders = pf.orders.count()
    rows = []
    for sym in close.columns:
        f = fills[fills["symbol"] == sym]
        signed = (f["side"] * f["sz"]).to_numpy()
        last = float(close[sym].iloc[-1])
        hl = float(-(signed * f["px"].to_numpy()).sum() - f["fee"].sum() + signed.sum() * last)
        lot = 10.0 ** -assets[sym].sz_decimals
        tol = lot_tolerance(np.append(f["px"].to_numpy(), last), lot, fee)
        v = float(vbt_pnl[sym])
        rows.append(ParityRow(sym, hl, v, hl - v, tol, len(f), int(vbt_orders[sym])))
    df = pd.DataFrame([r.__dict__ for r in rows])
    df["ok"] = [r.ok for r in rows]
    return df
