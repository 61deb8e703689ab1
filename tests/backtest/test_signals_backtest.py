"""External series in backtests: merged with the market by receive time, never seen early,
judged by the staleness rules from the config."""

from __future__ import annotations

import numpy as np
import pytest

from hlquant.agents.base import Agent, AgentConfig
from hlquant.backtest.engine import Backtest
from hlquant.backtest.run import run_backtest
from hlquant.config.compose import load_config
from hlquant.config.spec import DEFAULT_STALENESS
from hlquant.core.errors import AgentFailure, ConfigError
from hlquant.core.events import GLOBAL_SERIES, MarketKind
from hlquant.data.loaders import load_sample
from hlquant.data.series import SignalSeries, write_signal_file

MIN = 60_000


def market(hours: float = 6.0):
    md = load_sample()
    t0 = int(md.span()[0])
    return md.select(symbols=["BTC", "ETH"], start=t0, end=t0 + int(hours * 3_600_000))


class Recorder(Agent):
    """Reads the series at every candle and remembers what it saw and when."""

    signals = ("sentiment",)

    def setup(self, ctx):
        self.seen: list[tuple[int, str, float, int]] = []

    def decide(self, ctx):
        v = ctx.signal("sentiment")
        rec = ctx._features.get_with_ts(ctx.symbol, "sentiment") or ctx._features.get_with_ts(GLOBAL_SERIES, "sentiment")
        self.seen.append((ctx.now, ctx.symbol, v, rec[1]))
        return None


def lagged_series(md, lag_ms: int, symbols=("BTC", "ETH")) -> SignalSeries:
    """One observation per symbol and minute whose value is the *next* hour's close: pure
    look-ahead if it were visible at its exchange time; received ``lag_ms`` later."""
    c = md.arrays()[MarketKind.CANDLE]
    rows = []
    for s in symbols:
        rc = c[c["sym"] == md.sym_id(s)]
        for i in range(len(rc)):
            ahead = min(i + 60, len(rc) - 1)
            rows.append((int(rc["ts_exch"][i]), int(rc["ts_exch"][i]) + lag_ms, s, float(rc["close"][ahead])))
    ts, recv, sym, val = (np.array(x) for x in zip(*rows, strict=True))
    return SignalSeries(ts, recv, sym.astype(object), np.full(len(ts), "sentiment", object), val)


def test_a_series_is_visible_from_its_receive_time_never_earlier():
    md = market()
    lag = 150_000  # received 2.5 minutes after its exchange time
    sig = lagged_series(md, lag)
    a = Recorder(AgentConfig("rec", ("BTC", "ETH")))
    res = Backtest(md, [a], signals=sig, staleness={"default": 500, "sentiment*": 600_000}).run()
    f = sig.to_frame()
    assert len(a.seen) > 500 and res.stats["signals"] == len(sig.select(end=int(md.span()[1]) + 1))
    caught = 0
    for now, sym, v, ts in a.seen:
        g = f[f["symbol"] == sym]
        by_recv = g[g["ts_recv"] <= now].iloc[-1]
        by_exch = g[g["ts_exch"] <= now].iloc[-1]
        assert (v, ts) == (by_recv["value"], by_recv["ts_exch"]), (now, sym)  # what had arrived by then
        assert by_recv["ts_recv"] <= now
        caught += v != by_exch["value"]  # a look-ahead (exchange-time) join would have seen this
    assert caught > 0.8 * len(a.seen)


def test_staleness_is_measured_from_the_source_time_with_the_default_sentiment_rule():
    assert DEFAULT_STALENESS["sentiment*"] == 300_000
    assert load_config([])["features"]["staleness"]["sentiment*"] == 300_000
    md = market(3)
    fresh = Recorder(AgentConfig("rec", ("BTC",)))
    r1 = Backtest(md, [fresh], signals=lagged_series(md, 240_000)).run()  # 4 min < 5 min
    late = Recorder(AgentConfig("rec", ("BTC",)))
    r2 = Backtest(md, [late], signals=lagged_series(md, 360_000)).run()  # 6 min: always stale
    assert len(fresh.seen) > 100 and r1.stats["stale_reads"].get("sentiment", 0) <= 4  # before the first arrives
    assert late.seen == [] and r2.stats["agents"]["stale_skipped"] == r2.stats["agents"]["decisions"]
    assert r2.stats["stale_reads"]["sentiment"] == r2.stats["agents"]["decisions"]


def test_a_market_wide_series_is_read_by_every_symbol():
    md = market(2)
    t = np.arange(int(md.span()[0]), int(md.span()[1]), MIN, dtype=np.int64)
    sig = SignalSeries(t, t + 1000, np.full(len(t), None, object), np.full(len(t), "sentiment", object),
                       np.arange(len(t), dtype=float))
    a = Recorder(AgentConfig("rec", ("BTC", "ETH")))
    Backtest(md, [a], signals=sig).run()
    assert {s for _, s, _, _ in a.seen} == {"BTC", "ETH"}
    assert all(v == (now - 1000 - t[0]) // MIN for now, _, v, _ in a.seen)


class Undeclared(Agent):
    def decide(self, ctx):
        return ctx.target(ctx.signal("sentiment"))


def test_reading_an_undeclared_series_is_an_error():
    md = market(1)
    with pytest.raises(AgentFailure, match="does not declare"):
        Backtest(md, [Undeclared(AgentConfig("u", ("BTC",)))], signals=lagged_series(md, 0)).run()


def test_config_driven_backtest_with_a_file_connector(tmp_path):
    md = market(4)
    sig = lagged_series(md, 60_000).to_frame()
    f = sig.rename(columns={"ts_exch": "ts", "value": "sentiment"})[["ts", "ts_recv", "symbol", "sentiment"]]
    f["sentiment"] = np.sign(f["sentiment"].diff().fillna(0.0))  # a score in [-1, 1]
    path = write_signal_file(f, tmp_path / "sentiment.parquet")
    cfg = load_config(["strategy=sentiment_trend", "strategy.symbols=[BTC,ETH]", "strategy.fast=3",
                       "strategy.slow=8", "strategy.threshold=0.5", "~connectors.sentiment",
                       "+connectors=sentiment_file", f"connectors.sentiment_file.path={path}", "progress=false"])
    res = run_backtest(cfg, market=md)
    assert res.stats["signals"] > 0 and res.stats["agents"]["published"] > 2
    cfg_bad = load_config(["strategy=sentiment_trend", "strategy.symbols=[BTC,ETH]", "~connectors.sentiment",
                           "+connectors=sentiment_file",
                           f"connectors.sentiment_file.path={path}", "connectors.sentiment_file.columns=[mood]"])
    with pytest.raises(Exception, match="mood"):
        run_backtest(cfg_bad, market=md)


def test_example_strategy_runs_offline_and_its_edge_follows_the_configured_correlation():
    """The sentiment example: the synthetic series' correlation with future returns is
    what the strategy can earn from; with none, it only pays fees."""
    out = {}
    for corr in (0.0, 0.6):
        res = run_backtest(load_config(["strategy=sentiment_trend", f"connectors.sentiment.corr={corr}",
                                        "progress=false"]))
        assert res.stats["signals"] > 5_000
        out[corr] = res.metrics["total_return"]
    assert out[0.6] > out[0.0]


def test_a_signal_no_connector_provides_stops_the_run_at_start():
    cfg = load_config(["strategy=sentiment_trend", "strategy.symbols=[BTC,ETH]", "~connectors.sentiment",
                       "progress=false"])
    with pytest.raises(ConfigError, match="sentiment_trend reads signal"):
        run_backtest(cfg, market=market(1))


def test_the_event_at_a_time_engine_sees_the_series_as_the_backtest_does():
    """Pre-flight and parity replay recorded events through the live engine: the series
    reaches it merged by receive time, and the decisions are the backtest's."""
    from hlquant.config.spec import KernelSpec
    from hlquant.live.engine import replay_market

    md = market(12)
    cfg = load_config(["strategy=sentiment_trend", "strategy.symbols=[BTC,ETH]", "strategy.fast=3",
                       "strategy.slow=8", "connectors.sentiment.every_min=1", "connectors.sentiment.lag_ms=90000"])
    bt = Backtest(md, spec=KernelSpec.from_config(cfg, mode="sim")).run()
    live = replay_market(KernelSpec.from_config(cfg, mode="paper"), md)

    def intents(frame):
        from hlquant.audit.log import payloads

        return [(r["intent_id"], r["target"]) for r in payloads(frame) if r["kind"] == "Intent"]

    assert len(intents(bt.audit.frame())) > 10
    assert intents(live.audit.frame()) == intents(bt.audit.frame())
    assert live.handler.signals == bt.stats["signals"]
