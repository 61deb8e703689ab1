"""Backtest throughput: the full hlquant pipeline beside backtesting.py and vectorbt.

    .venv/bin/python bench/backtest_throughput.py [--days 232] [--symbols BTC,ETH,SOL] [--repeat 3]

Needs the ``bench`` extra (``pip install '.[bench]'``: backtesting.py).

Generates >= 1,000,000 one-minute candles (seeded) and runs one strategy, EMA
10/50 always in market with a 0.045% taker fee, in three systems on the same
bars, each timed in this process (first call "cold", then ``--repeat`` rounds
of one warm call of each system, interleaved so that all three see the same
machine; medians reported):

- hlquant: ``Backtest.run`` through every box of the data flow (features ->
  FeatureStore -> agent -> Blackboard -> RiskEngine -> OrderRouter -> SimVenue
  -> Portfolio -> AuditLog), metrics included;
- backtesting.py: ``FractionalBacktest.run`` per symbol (it trades one asset
  per run; the times are summed), the same EMAs as indicators, market orders
  filled at the bar's close (``trade_on_close``), the same lot rounding;
- vectorbt: ``Portfolio.from_signals`` on the datetime-indexed close frame.

It prints bars/s and the ratios the performance targets are stated in (hlquant
>= 2x backtesting.py, hlquant >= vectorbt), then checks that all three agree:
the trade list (every order's bar, side and size in lots) of hlquant and
backtesting.py must be identical, and the PnL of each symbol must match within
the bound below for both.

Parity settings: zero latency, zero spread and slippage, no funding, taker
fee 0.045% on both sides. vectorbt trades fractional sizes where hlquant
rounds order sizes to Hyperliquid's lots (szDecimals): each order differs by
at most one lot (10^-szDecimals coin), so the PnL may differ by at most one
lot times the price travelled between consecutive fills plus the fee on one
lot per fill: that bound is the stated tolerance, computed per symbol from the
fills (backtesting.py, trading whole lots like hlquant, must be far inside it).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar


def backtesting_py_run(close: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray,
                       index: pd.DatetimeIndex, fast: int, slow: int, size_usd: float, fee: float,
                       sz_decimals: int):
    """One symbol through backtesting.py: the MA crossover hlquant's MACross runs.

    Orders are sized like hlquant's: the target is ``±size_usd / close`` coins and the
    order is the change from the current position, rounded down to whole lots
    (``FractionalBacktest`` trades lots as its whole units)."""
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest

    from hlquant.research.vectorized import ema

    lot = 10.0 ** -sz_decimals
    ema_fast, ema_slow = ema(close, fast), ema(close, slow)

    class MACrossBT(Strategy):
        def init(self):
            self.f = self.I(lambda: ema_fast, name="ema_fast", overlay=False)
            self.s = self.I(lambda: ema_slow, name="ema_slow", overlay=False)
            self.side = 0

        def next(self):
            i = len(self.data) - 1
            if i + 1 < slow:  # EMAs warming up, as MACross
                return
            side = 1 if self.f[-1] > self.s[-1] else -1
            if side == self.side:
                return
            self.side = side
            target = side * size_usd / close[i] * 10.0**sz_decimals  # lots
            delta = target - self.position.size
            units = math.floor(abs(delta) + 1e-9)
            if units > 0:
                (self.buy if delta > 0 else self.sell)(size=units)

    df = pd.DataFrame({"Open": open_, "High": high, "Low": low, "Close": close,
                       "Volume": np.ones(len(close))}, index=index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = FractionalBacktest(df, MACrossBT, cash=1e9, commission=fee, trade_on_close=True,
                                fractional_unit=lot)
        return bt.run()


def orders_from_trades(stats: pd.Series, lot: float) -> pd.Series:
    """backtesting.py's trades (entries and exits of closed trades, entries of the open
    ones) as orders: signed size per bar time, in coins (``FractionalBacktest`` scales
    closed trades back to coins; open ones are still in lots)."""
    closed = stats["_trades"]
    open_ = stats["_strategy"].trades
    entries = pd.Series(closed["Size"].to_numpy(), index=pd.DatetimeIndex(closed["EntryTime"]))
    exits = pd.Series(-closed["Size"].to_numpy(), index=pd.DatetimeIndex(closed["ExitTime"]))
    still = pd.Series([t.size * lot for t in open_], index=pd.DatetimeIndex([t.entry_time for t in open_]),
                      dtype=float)
    return pd.concat([entries, exits, still]).groupby(level=0).sum().pipe(lambda s: s[s.abs() > 1e-12])


def parity_configs(fee: float):
    """The SimVenue and risk settings under which hlquant trades like the other two:
    zero latency, spread and slippage, the same fee both sides, limits out of the way."""
    from hlquant.risk.engine import RiskConfig
    from hlquant.venues.sim import SimVenueConfig

    venue = SimVenueConfig(taker_fee=fee, maker_fee=fee, latency_ms=0, slippage_bps=0.0,
                           half_spread_bps=0.0, initial_cash=1e9, default_leverage=20)
    risk = RiskConfig(max_notional_per_symbol=1e12, max_gross_exposure=1e12, max_leverage=100,
                      max_order_notional=1e12, max_orders_per_s=1e6, order_burst=10**6,
                      max_drawdown=1.0)
    return venue, risk


def compare_trade_lists(fills: pd.DataFrame, bt_stats: dict, symbols) -> dict:
    """Per symbol: (identical, hlquant orders, backtesting.py orders, first difference)."""
    from hlquant.core.assets import DEFAULT_ASSETS

    out = {}
    for sym in symbols:
        f = fills[fills["symbol"] == sym]
        lots = 10.0 ** DEFAULT_ASSETS[sym].sz_decimals
        hl = pd.Series(np.rint((f["side"] * f["sz"]).to_numpy() * lots).astype(np.int64),
                       index=pd.DatetimeIndex(f["ts"]))
        bp = orders_from_trades(bt_stats[sym], 1.0 / lots)
        bp = pd.Series(np.rint(bp.to_numpy() * lots).astype(np.int64), index=bp.index)
        n = min(len(hl), len(bp))
        diff = np.flatnonzero((hl.index[:n] != bp.index[:n]) | (hl.to_numpy()[:n] != bp.to_numpy()[:n]))
        first = int(diff[0]) if len(diff) else (n if len(hl) != len(bp) else None)
        detail = None if first is None else (hl.iloc[first:first + 1].to_dict(), bp.iloc[first:first + 1].to_dict())
        out[sym] = (first is None, len(hl), len(bp), detail)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=232)
    ap.add_argument("--symbols", default="BTC,ETH,SOL")
    ap.add_argument("--fast", type=int, default=10)
    ap.add_argument("--slow", type=int, default=50)
    ap.add_argument("--size-usd", type=float, default=10_000.0)
    ap.add_argument("--repeat", type=int, default=3, help="warm runs per system (median reported)")
    args = ap.parse_args(argv)

    from hlquant.agents import AgentConfig
    from hlquant.backtest.engine import Backtest
    from hlquant.core.assets import DEFAULT_ASSETS
    from hlquant.core.events import MARKET_DTYPES, MarketKind
    from hlquant.data.generate import generate
    from hlquant.research.vectorized import closes, ma_cross_portfolio, parity
    from strategies.ma_cross import MACross

    symbols = tuple(args.symbols.split(","))
    t0 = time.perf_counter()
    market = generate(symbols=symbols, days=args.days, seed=11, with_trades=False, with_l2=False)
    market.funding = np.empty(0, dtype=MARKET_DTYPES[MarketKind.FUNDING])  # the others have no funding
    gen_s = time.perf_counter() - t0
    n_bars = len(market.candles)
    print(f"data: {len(market):,} events ({n_bars:,} candles, {len(symbols)} symbols) "
          f"generated in {gen_s:.1f}s")

    fee = 0.00045
    venue, risk = parity_configs(fee)
    params = {"fast": args.fast, "slow": args.slow, "size_usd": args.size_usd}

    def timed(fn):
        t = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t

    # --- hlquant ------------------------------------------------------------
    def run_hl():
        agent = MACross(AgentConfig("ma", symbols, params=params))
        return Backtest(market, [agent], venue=venue, risk=risk, staleness={"default": 0}).run()

    # --- backtesting.py -----------------------------------------------------
    c = market.candles
    per_sym = {}
    for sym in symbols:
        m = c["sym"] == market.symbols.index(sym)
        per_sym[sym] = (c["close"][m], c["open"][m], c["high"][m], c["low"][m],
                        pd.to_datetime(c["ts_exch"][m], unit="ms", utc=True))

    def run_btpy():
        return {s: backtesting_py_run(*per_sym[s], args.fast, args.slow, args.size_usd, fee,
                                      DEFAULT_ASSETS[s].sz_decimals) for s in symbols}

    # --- vectorbt -----------------------------------------------------------
    close_df = closes(market, symbols)

    def run_vbt():
        return ma_cross_portfolio(close_df, args.fast, args.slow, args.size_usd, fee=fee)

    # the first call of each is "cold"; then rounds of one warm call each, interleaved so
    # that all three see the same machine (other processes come and go)
    systems = {"hlquant full pipeline": run_hl, "backtesting.py": run_btpy, "vectorbt from_signals": run_vbt}
    out, cold, warm = {}, {}, {k: [] for k in systems}
    for name, fn in systems.items():
        out[name], cold[name] = timed(fn)
    for _ in range(args.repeat):
        for name, fn in systems.items():
            out[name], s = timed(fn)
            warm[name].append(s)
    res, bt_stats, pf = out["hlquant full pipeline"], out["backtesting.py"], out["vectorbt from_signals"]
    loop_eps = res.stats["events_per_second"]

    print(f"\n== throughput (same process; cold = first call, warm = median of {args.repeat} interleaved "
          f"rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores) ==")
    for name in systems:
        w = statistics.median(warm[name])
        print(f"{name:22s} cold {cold[name]:7.2f}s  warm {w:7.2f}s  ({n_bars / w:>10,.0f} bars/s warm, "
              f"{n_bars / cold[name]:>10,.0f} cold)")
    print(f"hlquant event loop alone: {loop_eps:,.0f} events/s "
          f"(features {res.stats['feature_seconds']:.2f}s, loop {res.stats['loop_seconds']:.2f}s)")
    hl = warm["hlquant full pipeline"]
    for other, target in (("backtesting.py", 2), ("vectorbt from_signals", 1)):
        per_round = statistics.median(o / h for o, h in zip(warm[other], hl, strict=True))
        print(f"ratio hlquant / {other} bars/s: warm {per_round:.2f}x (median of per-round ratios), "
              f"cold {cold[other] / cold['hlquant full pipeline']:.2f}x  (target >= {target})")

    # --- parity -------------------------------------------------------------
    fills = res.artifacts.fills
    print("\n== trade list: hlquant vs backtesting.py (every order: bar, side, size in lots) ==")
    ok = True
    for sym, (same, n_hl, n_bt, first) in compare_trade_lists(fills, bt_stats, symbols).items():
        print(f"{sym}: identical, {n_hl} orders" if same else
              f"{sym}: DIFFERENT ({n_hl} vs {n_bt} orders), first difference: {first}")
        ok &= same

    print("\n== PnL parity (per symbol, net of fees, marked at the last close) ==")
    table = parity(fills, pf, close_df, fee)
    bt_pnl, bt_ok = [], []
    for sym, tol in zip(table["symbol"], table["tolerance"], strict=True):
        eq = bt_stats[sym]["_equity_curve"]["Equity"]
        pnl = float(eq.iloc[-1]) - 1e9
        bt_pnl.append(pnl)
        bt_ok.append(abs(float(table.loc[table["symbol"] == sym, "hlquant_pnl"].iloc[0]) - pnl) <= tol)
    table.insert(3, "backtesting_py_pnl", bt_pnl)
    table["ok"] = table["ok"] & pd.Series(bt_ok)
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    ok &= bool(table["ok"].all())
    print(f"\nparity: {'OK' if ok else 'FAILED'} (tolerance: one lot per order, see docstring)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
