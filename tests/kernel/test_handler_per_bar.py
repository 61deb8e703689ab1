"""The per-bar path does only what a bar needs: features read from their columns on
demand (staleness checked on read), equity sampled at the configured resolution, and
the collector kept off the columns during the loop."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from hlquant.agents import Agent, AgentConfig
from hlquant.backtest.engine import Backtest
from hlquant.config.compose import load_config
from hlquant.config.spec import KernelSpec
from hlquant.core.errors import ConfigError
from hlquant.data.loaders import load_sample
from hlquant.features.pipeline import compute_columnar
from strategies.ma_cross import MACross


@pytest.fixture(scope="module")
def market1d():
    md = load_sample()
    start = int(md.span()[0])
    return md.select(start=start, end=start + 86_400_000)


class Reader(Agent):
    """Reads its features on every bar and remembers what it saw."""

    features = [
        {"name": "ema_fast", "kind": "ema", "input": "candle.close", "params": {"span": 5}},
        {"name": "fund", "kind": "ema", "input": "funding.rate", "params": {"span": 2}},
    ]

    def setup(self, ctx):
        self.seen, self.fresh, self.stale = [], [], 0

    def decide(self, ctx):
        self.seen.append((ctx.symbol, ctx.now, ctx.feature("ema_fast")))
        try:
            ctx.feature("fund")
        except Exception:
            self.stale += 1
            raise
        self.fresh.append((ctx.symbol, ctx.now))
        return None


def test_features_are_read_from_their_columns_not_copied_per_decision(market1d):
    agent = Reader(AgentConfig("r", ("BTC", "ETH")))
    # funding prints hourly: a 10-minute staleness rule makes most of its reads stale
    bt = Backtest(market1d, [agent], staleness={"default": 120_000, "fund": 600_000})
    res = bt.run()
    store = bt.kernel.store
    assert store.writes == 0, "no feature value is copied into the store per decision"
    decisions = res.stats["agents"]["decisions"]
    assert decisions > 1000 and agent.seen
    # each value read is the column's value at that symbol's candle of that time
    cols = compute_columnar(bt.feature_specs, market1d.arrays(), len(market1d.symbols))
    c = market1d.candles
    by_key = {(market1d.symbols[s], t): v for s, t, v in zip(c["sym"], c["ts_exch"], cols["ema_fast"].values,
                                                              strict=True)}
    for sym, now, v in agent.seen:
        assert v == by_key[(sym, now)]
    # staleness is checked on read: the funding feature is fresh only in the 10 minutes
    # after each print, and every refused read is counted and skips the decision
    assert agent.stale == res.stats["stale_reads"]["fund"] == res.stats["agents"]["stale_skipped"]
    assert 0 < agent.stale < decisions
    f = market1d.funding
    assert agent.fresh
    for sym, now in agent.fresh:  # decisions that went through had a fresh funding row
        s = market1d.symbols.index(sym)
        last = f["ts_exch"][(f["sym"] == s) & (f["ts_exch"] <= now)].max()
        assert now - last <= 600_000


def test_columnar_store_refuses_stale_and_missing_rows():
    from hlquant.core.errors import StaleFeatureError
    from hlquant.core.events import MARKET_DTYPES, MarketKind
    from hlquant.features.pipeline import ColumnarFeatures, FeatureColumn

    a = np.zeros(3, dtype=MARKET_DTYPES[MarketKind.CANDLE])
    a["ts_exch"] = [1000, 2000, 9000]
    a["sym"] = [0, 1, 0]
    store = ColumnarFeatures(["BTC", "ETH"], {"default": 500})
    store.bind({"x": FeatureColumn(MarketKind.CANDLE, np.array([1.5, 2.5, 3.5]))}, {MarketKind.CANDLE: a})
    cur = store.cursor(MarketKind.CANDLE)
    with pytest.raises(StaleFeatureError):  # nothing delivered yet for BTC
        store.get("BTC", "x", 1000)
    cur[0] = 0
    assert store.get("BTC", "x", 1500) == 1.5
    assert store.get_with_ts("BTC", "x") == (1.5, 1000)
    with pytest.raises(StaleFeatureError):
        store.get("BTC", "x", 1501)
    cur[0] = 2
    assert store.get("BTC", "x", 9000) == 3.5
    assert store.stale_reads["x"] == 2
    with pytest.raises(StaleFeatureError):  # an unknown name is never fresh
        store.get("BTC", "y", 9000)


def test_equity_is_sampled_at_the_configured_resolution(market1d):
    def run(every):
        spec = KernelSpec([MACross(AgentConfig("ma", ("BTC", "ETH"), params={"fast": 5, "slow": 20}))],
                          equity_every_ms=every)
        return Backtest(market1d, spec=spec).run()

    full, hourly = run(0), run(3_600_000)
    t_full = full.artifacts.equity.index.as_unit("ms").asi8
    t_hour = hourly.artifacts.equity.index.as_unit("ms").asi8
    c = market1d.candles["ts_exch"]
    assert np.array_equal(t_full, np.unique(c))  # 0: every bar close
    # one sample per hour: the first bar close on or after each hour, and the last instant
    expected = sorted({int(t_full[np.searchsorted(t_full, h)]) for h in
                       range((int(t_full[0]) // 3_600_000) * 3_600_000, int(t_full[-1]) + 1, 3_600_000)
                       if np.searchsorted(t_full, h) < len(t_full)} | {int(t_full[-1])})
    assert t_hour.tolist() == expected
    # the samples are the same numbers: only fewer of them
    eq_full = full.artifacts.equity
    assert np.array_equal(hourly.artifacts.equity.to_numpy(), eq_full.loc[hourly.artifacts.equity.index].to_numpy())
    assert hourly.artifacts.positions.equals(full.artifacts.positions.loc[hourly.artifacts.positions.index])
    assert full.metrics["n_fills"] == hourly.metrics["n_fills"]


def test_equity_resolution_is_read_from_the_config():
    spec = KernelSpec.from_config(load_config(["equity_every_ms=60000"]))
    assert spec.equity_every_ms == 60_000
    assert KernelSpec.from_config(load_config([])).equity_every_ms == 0
    with pytest.raises(ConfigError, match="equity_every_ms"):
        KernelSpec.from_config(load_config(["equity_every_ms=-5"]))


def test_the_collector_is_frozen_only_during_the_loop(market1d):
    class Boom(Agent):
        def decide(self, ctx):
            assert gc.get_freeze_count() > 0  # the columns are out of the collector's way
            raise RuntimeError("strategy bug")

    with pytest.raises(Exception, match="strategy bug"):
        Backtest(market1d, [Boom(AgentConfig("b", ("BTC",)))]).run()
    assert gc.get_freeze_count() == 0
