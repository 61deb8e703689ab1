"""Paper/live engine (event at a time) == backtest engine (columnar) on the same events."""

from __future__ import annotations

import pytest

from hlquant.agents import AgentConfig
from hlquant.backtest.engine import Backtest
from hlquant.config.spec import KernelSpec
from hlquant.data.loaders import load_sample
from hlquant.live.engine import replay_market
from hlquant.risk.engine import RiskConfig
from hlquant.venues.sim import SimVenueConfig
from strategies.ma_cross import MACross
from strategies.momentum_meanrev import MeanReversion, Momentum


@pytest.fixture(scope="module")
def market():
    md = load_sample()
    t0 = int(md.span()[0])
    return md.select(symbols=["BTC", "ETH"], start=t0, end=t0 + 86_400_000)


def agents_ma():
    return [MACross(AgentConfig("ma", ("BTC", "ETH"), params={"fast": 10, "slow": 50, "size_usd": 10_000}))]


def agents_two():
    return [
        Momentum(AgentConfig("momentum", ("BTC",), debounce_ms=300_000, params={"lookback": 60})),
        MeanReversion(AgentConfig("meanrev", ("BTC",), debounce_ms=300_000, params={"window": 30})),
    ]


def fills_of(events):
    return [(f.ts_exch, f.symbol, int(f.side), round(f.px, 8), round(f.sz, 8), f.agent) for f in events]


@pytest.mark.parametrize("make_agents", [agents_ma, agents_two], ids=["ma_cross", "two_agents"])
def test_live_engine_reproduces_backtest(market, make_agents):
    venue_cfg = SimVenueConfig()
    risk = RiskConfig()
    staleness = {"default": 500, "funding*": 7_200_000}
    bt = Backtest(market, make_agents(), venue=venue_cfg, risk=risk, staleness=staleness).run()
    bt_fills = bt.artifacts.fills
    ts_ms = bt_fills["ts"].astype("datetime64[ms, UTC]").astype("int64")
    expected = [(int(t), r.symbol, int(r.side), round(r.px, 8), round(r.sz, 8), r.agent)
                for t, r in zip(ts_ms, bt_fills.itertuples(), strict=True)]

    spec = KernelSpec(agents=make_agents(), mode="paper", venue=venue_cfg, risk=risk, staleness=staleness)
    live = replay_market(spec, market)
    assert live.events == len(market)
    got = fills_of(live.fills)
    assert len(expected) > 10
    assert got == expected
    assert live.portfolio.equity() == pytest.approx(float(bt.artifacts.equity.iloc[-1]), abs=1.0)
