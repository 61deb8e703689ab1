"""hlquant's full pipeline and backtesting.py (the ``bench`` extra) on the same bars and
strategy: the same orders, bar by bar, and the same PnL (bench/backtest_throughput.py
times them; this pins that they compute the same thing)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

backtesting = pytest.importorskip("backtesting", reason="pip install '.[bench]'")

os.environ.setdefault("TQDM_DISABLE", "1")


def test_trade_list_and_pnl_match_backtesting_py():
    from bench.backtest_throughput import backtesting_py_run, compare_trade_lists, parity_configs
    from hlquant.agents import AgentConfig
    from hlquant.backtest.engine import Backtest
    from hlquant.core.assets import DEFAULT_ASSETS
    from hlquant.core.events import MARKET_DTYPES, MarketKind
    from hlquant.data.generate import generate
    from strategies.ma_cross import MACross

    symbols = ("BTC", "ETH", "SOL")
    market = generate(symbols=symbols, days=3, seed=11, with_trades=False, with_l2=False)
    market.funding = np.empty(0, dtype=MARKET_DTYPES[MarketKind.FUNDING])
    fee = 0.00045
    venue, risk = parity_configs(fee)
    params = {"fast": 10, "slow": 50, "size_usd": 10_000.0}
    res = Backtest(market, [MACross(AgentConfig("ma", symbols, params=params))], venue=venue, risk=risk,
                   staleness={"default": 0}).run()
    c = market.candles
    stats = {}
    for sym in symbols:
        m = c["sym"] == market.symbols.index(sym)
        stats[sym] = backtesting_py_run(c["close"][m], c["open"][m], c["high"][m], c["low"][m],
                                        pd.to_datetime(c["ts_exch"][m], unit="ms", utc=True),
                                        10, 50, 10_000.0, fee, DEFAULT_ASSETS[sym].sz_decimals)
    fills = res.artifacts.fills
    for sym, (same, n_hl, n_bt, first) in compare_trade_lists(fills, stats, symbols).items():
        assert same, f"{sym}: {n_hl} vs {n_bt} orders, first difference {first}"
        assert n_hl > 20
        f = fills[fills["symbol"] == sym]
        signed = (f["side"] * f["sz"]).to_numpy()
        last = float(c["close"][c["sym"] == market.symbols.index(sym)][-1])
        pnl = float(-(signed * f["px"].to_numpy()).sum() - f["fee"].sum() + signed.sum() * last)
        bt_pnl = float(stats[sym]["_equity_curve"]["Equity"].iloc[-1]) - 1e9
        assert pnl == pytest.approx(bt_pnl, abs=1e-4), sym
