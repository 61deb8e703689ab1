"""The event-driven engine and the vectorized vectorbt path agree on the MA crossover."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hlquant.agents import AgentConfig
from hlquant.backtest.engine import Backtest
from hlquant.core.events import MARKET_DTYPES, MarketKind
from hlquant.data.generate import generate
from hlquant.research.vectorized import closes, ema, ma_cross_portfolio, ma_cross_side, parity
from hlquant.risk.engine import RiskConfig
from hlquant.venues.sim import SimVenueConfig
from strategies.ma_cross import MACross

FEE = 0.00045
SYMS = ("BTC", "ETH", "SOL")
PARAMS = {"fast": 10, "slow": 50, "size_usd": 10_000.0}
UNLIMITED = RiskConfig(max_notional_per_symbol=1e12, max_gross_exposure=1e12, max_leverage=100,
                       max_order_notional=1e12, max_orders_per_s=1e6, order_burst=10**6,
                       max_drawdown=1.0)


@pytest.fixture(scope="module")
def market():
    md = generate(symbols=SYMS, days=3, seed=5, with_trades=False, with_l2=False)
    md.funding = np.empty(0, dtype=MARKET_DTYPES[MarketKind.FUNDING])
    return md


def run_event_driven(market, **venue_kw):
    venue = SimVenueConfig(**{"taker_fee": FEE, "maker_fee": FEE, "latency_ms": 0, "slippage_bps": 0.0,
                              "half_spread_bps": 0.0, "initial_cash": 1e9, "default_leverage": 20,
                              **venue_kw})
    agent = MACross(AgentConfig("ma", SYMS, params=PARAMS))
    return Backtest(market, [agent], venue=venue, risk=UNLIMITED, staleness={"default": 0}).run()


def test_whole_array_side_matches_pandas_ewm():
    x = np.cumsum(np.random.default_rng(0).normal(size=500)) + 100
    ref = pd.Series(x).ewm(span=10, adjust=False).mean().to_numpy()
    np.testing.assert_allclose(ema(x, 10), ref, rtol=1e-12)
    side = ma_cross_side(x, 10, 50)
    assert (side[:49] == 0).all() and set(np.unique(side[49:])) <= {-1, 1}


def test_same_trades_and_pnl_within_lot_tolerance(market):
    res = run_event_driven(market)
    close = closes(market)
    pf = ma_cross_portfolio(close, PARAMS["fast"], PARAMS["slow"], PARAMS["size_usd"], fee=FEE)
    table = parity(res.artifacts.fills, pf, close, FEE)
    assert (table["hlquant_orders"] > 50).all()
    assert (table["hlquant_orders"] == table["vectorbt_orders"]).all(), table
    assert table["ok"].all(), table.to_string()
    # the tolerance is tight: a few dollars on thousands of dollars of PnL
    assert (table["tolerance"] < 0.01 * table["vectorbt_pnl"].abs() + 5).all()


def test_spread_cost_explains_the_gap_when_present(market):
    """With a 2 bp half spread the gap is the spread paid on every fill's notional."""
    res = run_event_driven(market, half_spread_bps=2.0)
    close = closes(market)
    pf = ma_cross_portfolio(close, PARAMS["fast"], PARAMS["slow"], PARAMS["size_usd"], fee=FEE)
    table = parity(res.artifacts.fills, pf, close, FEE)
    f = res.artifacts.fills
    for row in table.itertuples():
        notional = float((f[f.symbol == row.symbol]["px"] * f[f.symbol == row.symbol]["sz"]).sum())
        expected_gap = -2e-4 * notional / (1 + 2e-4)
        assert row.diff < 0
        assert row.diff == pytest.approx(expected_gap, rel=0.1), (row.symbol, row.diff, expected_gap)
