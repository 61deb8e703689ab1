"""What a strategy reads: warm-up handled by the framework, bar history through Context, and a
run that mostly skipped its decisions says so (at the end, in metrics.json and the report)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from hlquant.agents import Agent, AgentConfig
from hlquant.backtest.engine import Backtest
from hlquant.backtest.run import run_backtest
from hlquant.config.compose import load_config
from hlquant.core.errors import AgentFailure
from hlquant.core.events import MarketKind
from hlquant.data.loaders import load_sample
from hlquant.report import WarningCode, write_report


@pytest.fixture(scope="module")
def market():
    md = load_sample()
    return md.select(symbols=["BTC", "ETH"], end=md.span()[0] + 6 * 3_600_000)


class Recorder(Agent):
    features = [
        {"name": "slow", "kind": "ema", "input": "candle.close", "params": {"span": 30}},
        {"name": "z", "kind": "zscore", "input": "candle.close", "params": {"window": 20}},
    ]
    history = 5

    def setup(self, ctx):
        self.calls = []

    def decide(self, ctx):
        bars = ctx.bars()
        self.calls.append((ctx.symbol, ctx.now, ctx.feature("slow"), ctx.feature("z"), bars))
        return None


def test_decide_waits_for_warm_features_and_bars_are_the_last_closed_candles(market):
    a = Recorder(AgentConfig("rec", ("BTC", "ETH")))
    res = Backtest(market, [a]).run()
    c = market.arrays()[MarketKind.CANDLE]
    for s, sym in enumerate(market.symbols):
        calls = [x for x in a.calls if x[0] == sym]
        ts = c["ts_exch"][c["sym"] == s]
        assert calls[0][1] == ts[29], "first decision at the 30th candle: the slow EMA's span"
        assert len(calls) == len(ts) - 29
        assert all(np.isfinite(x[2]) and np.isfinite(x[3]) for x in calls)
        for _sym, now, _f, _z, bars in calls[::50]:
            i = int(np.searchsorted(ts, now))
            assert bars.ts[-1] == now and len(bars.close) == 5, "the latest closed candle, never a later one"
            np.testing.assert_array_equal(bars.close, c["close"][c["sym"] == s][i - 4: i + 1])
    counts = res.stats["agents"]
    assert counts["warmup_skipped"] == 2 * 29
    assert counts["decisions"] == len(a.calls) + 2 * 29


class Greedy(Agent):
    history = 3

    def decide(self, ctx):
        ctx.bars(10)


def test_reading_more_bars_than_declared_is_an_error(market):
    with pytest.raises(AgentFailure, match="declares history = 3"):
        Backtest(market, [Greedy(AgentConfig("g", ("BTC",)))]).run()


def test_a_run_that_mostly_warmed_up_says_so(tmp_path, market):
    cfg = load_config(["strategy.slow=5000", "strategy.fast=10", "progress=false",
                       "strategy.symbols=[BTC,ETH]"])
    res = run_backtest(cfg, out_dir=tmp_path, market=market)
    codes = [w.code for w in res.artifacts.warnings]
    assert WarningCode.MOSTLY_SKIPPED in codes
    msg = next(w.message for w in res.artifacts.warnings if w.code is WarningCode.MOSTLY_SKIPPED)
    assert "warming up" in msg and "100%" in msg
    assert res.metrics["skipped_decisions"] == 1.0
    meta = json.loads((tmp_path / "metrics.json").read_text())
    assert "mostly_skipped" in [w["code"] for w in meta["warnings"]]
    assert "warming up" in (tmp_path / "report.html").read_text()
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["status"] == "ok" and "mostly_skipped" in [w["code"] for w in info["warnings"]]


class ReadsFunding(Agent):
    features = [{"name": "fr", "kind": "ema", "input": "funding.rate", "params": {"span": 2}}]

    def decide(self, ctx):
        return ctx.target(0.01 if ctx.feature("fr") > 0 else -0.01)


def test_a_run_that_mostly_read_stale_features_says_so_and_names_them(tmp_path, market):
    # hourly funding read on every candle with the default 500 ms staleness rule
    bt = Backtest(market, [ReadsFunding(AgentConfig("fr", ("BTC",)))], staleness={"default": 500})
    res = bt.run()
    w = next(w for w in res.artifacts.warnings if w.code is WarningCode.MOSTLY_SKIPPED)
    assert "stale" in w.message and "fr (" in w.message and "features.staleness" in w.message
    write_report(res.artifacts, tmp_path)
    assert "Read this first" in (tmp_path / "report.html").read_text()


def test_the_command_line_prints_the_warning_at_the_end(tmp_path):
    p = subprocess.run([sys.executable, "-m", "hlquant.cli", "backtest", "strategy.slow=5000",
                        "data.end=2026-01-06", "progress=false", f"hydra.run.dir={tmp_path / 'r'}"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    tail = p.stderr.strip().splitlines()[-3:]
    assert any("WARNING (mostly_skipped)" in ln for ln in tail), p.stderr[-2000:]
