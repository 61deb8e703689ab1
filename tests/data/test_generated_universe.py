"""The generator's N-symbol universes and their asset rules."""

from __future__ import annotations

import pytest

from hlquant.agents.base import AgentConfig
from hlquant.backtest.engine import Backtest
from hlquant.config.build import load_market
from hlquant.core.assets import DEFAULT_ASSETS, generated_asset, generated_symbols, known_assets
from hlquant.data.generate import generate
from strategies.ma_cross import MACross


def test_n_symbols_with_their_own_asset_rules():
    md = generate(n_symbols=60, days=0.05, seed=5, with_trades=False, with_l2=False)
    assert md.symbols == generated_symbols(60) and md.symbols[0] == "GEN000" and md.symbols[-1] == "GEN059"
    assets = known_assets(md.symbols)
    assert all(assets[s] == generated_asset(s) for s in md.symbols)
    assert generated_asset("GEN007").asset_id == 10_007 and generated_asset("BTC") is None
    assert generated_asset("GEN7") is None and "GEN000" not in DEFAULT_ASSETS  # exchanges never list them
    spec = assets["GEN010"]
    c = md.candles[md.candles["sym"] == 10]
    assert all(spec.is_valid_price(p) for p in c["close"][:50].tolist())
    with pytest.raises(ValueError):
        generated_symbols(5000)


def test_a_backtest_trades_a_generated_universe_and_the_data_group_builds_it():
    md = load_market({"source": "generated", "n_symbols": 55, "days": 0.1, "seed": 7})
    assert len(md.symbols) == 55
    agent = MACross(AgentConfig("ma", tuple(md.symbols), params={"fast": 3, "slow": 8, "size_usd": 500.0}))
    res = Backtest(md, [agent]).run()
    assert res.artifacts.fills["symbol"].nunique() >= 50
