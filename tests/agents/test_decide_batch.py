"""Batch inference: ``decide_batch(ctxs)`` once per trigger time with every symbol that fired."""

from __future__ import annotations

import numpy as np
import pytest

from hlquant.agents import Agent, AgentConfig, InMemoryBlackboard, InMemoryHeartbeats
from hlquant.agents.account import LocalAccount
from hlquant.agents.runner import AgentRunner
from hlquant.audit.log import AuditLog, payloads
from hlquant.backtest.engine import Backtest
from hlquant.config.spec import KernelSpec
from hlquant.core.errors import AgentFailure
from hlquant.data.loaders import load_sample
from hlquant.features.store import InMemoryFeatureStore
from hlquant.live.engine import replay_market
from hlquant.portfolio.portfolio import Portfolio

EMAS = [
    {"name": "ema_fast", "kind": "ema", "input": "candle.close", "params": {"span": 3}},
    {"name": "ema_slow", "kind": "ema", "input": "candle.close", "params": {"span": 8}},
    {"name": "vol", "kind": "realized_vol", "input": "candle.close", "params": {"window": 20}},
]


class PerSymbol(Agent):
    """A per-symbol model: the score of one symbol depends on its own inputs only."""

    features = EMAS
    defaults = {"size_usd": 5_000.0}

    def score(self, x: np.ndarray) -> np.ndarray:  # rows: ema_fast, ema_slow, vol
        return np.sign(x[:, 0] - x[:, 1]) * (x[:, 2] < 5e-3)

    def decide(self, ctx):
        x = np.array([[ctx.feature(n) for n in ("ema_fast", "ema_slow", "vol")]])
        if not np.isfinite(x).all():
            return None
        return ctx.target(float(self.score(x)[0]) * self.params["size_usd"] / ctx.price())


class Batched(PerSymbol):
    """The same model, every symbol that fired in one call."""

    def setup(self, ctx):
        self.calls: list[tuple[int, tuple[str, ...]]] = []

    def decide_batch(self, ctxs):
        self.calls.append((ctxs[0].now, tuple(c.symbol for c in ctxs)))
        fresh, x = self.batch_inputs(ctxs, ("ema_fast", "ema_slow", "vol"))
        ok = np.isfinite(x).all(axis=1)
        scores = dict(zip([id(c) for c in fresh], np.where(ok, self.score(np.nan_to_num(x)), np.nan), strict=True))
        out = []
        for c in ctxs:
            s = scores.get(id(c), np.nan)
            out.append(None if s != s else c.target(float(s) * self.params["size_usd"] / c.price()))
        return out


def market(hours: float = 12.0):
    md = load_sample()
    t0 = int(md.span()[0])
    return md.select(start=t0, end=t0 + int(hours * 3_600_000))


def records(audit_frame) -> dict[str, list]:
    rows = [{k: v for k, v in r.items() if k != "seq"} for r in payloads(audit_frame)]
    return {k: [r for r in rows if r["kind"] == k] for k in ("Intent", "RiskDecision", "OrderRequest", "Fill")}


def run(cls, md, **cfg):
    a = cls(AgentConfig("m", tuple(md.symbols), **cfg))
    res = Backtest(md, [a]).run()
    return a, res


def test_called_once_per_trigger_time_with_every_symbol_that_fired():
    md = market(6)
    a, res = run(Batched, md)
    closes = np.unique(md.candles["ts_exch"])
    st = res.stats["agents"]
    # the framework's warm-up holds every symbol back until its 20-bar volatility exists
    warm = st["warmup_skipped"] // 3
    assert warm == 20 and st["warmup_skipped"] == 3 * warm
    assert [t for t, _ in a.calls] == closes[warm:].tolist()  # one call per bar close, in time order
    assert all(syms == ("BTC", "ETH", "SOL") for _, syms in a.calls)
    assert st["batches"] == len(closes) - warm
    assert st["decisions"] == 3 * len(closes)


def test_identical_results_to_one_symbol_at_a_time():
    md = market(12)
    _, one = run(PerSymbol, md)
    _, batch = run(Batched, md)
    # the batch path ran: one call per bar close after the warm-up
    assert batch.stats["agents"]["batches"] == len(np.unique(md.candles["ts_exch"])) - 20
    assert batch.stats["agents"]["warmup_skipped"] == one.stats["agents"]["warmup_skipped"]
    a, b = records(one.audit.frame()), records(batch.audit.frame())
    assert len(a["Fill"]) > 10, {k: len(v) for k, v in a.items()}
    for kind in a:
        assert a[kind] == b[kind], kind  # ids, sizes, prices, times
    assert one.metrics.equals(batch.metrics)
    assert one.stats["agents"]["published"] == batch.stats["agents"]["published"]


def test_debounce_applies_per_symbol_as_today():
    md = market(12)
    _, one = run(PerSymbol, md, debounce_ms=1_800_000)
    _, batch = run(Batched, md, debounce_ms=1_800_000)
    assert one.stats["agents"]["debounced"] > 0 and batch.stats["agents"]["batches"] > 0
    assert batch.stats["agents"]["debounced"] == one.stats["agents"]["debounced"]
    assert records(one.audit.frame())["Intent"] == records(batch.audit.frame())["Intent"]


def test_event_time_replay_through_the_live_engine_batches_the_same_way():
    md = market(6)
    spec = KernelSpec(agents=[Batched(AgentConfig("m", tuple(md.symbols)))], mode="paper")
    live = replay_market(spec, md)
    _, bt = run(Batched, md)
    assert records(live.audit.frame())["Intent"] == records(bt.audit.frame())["Intent"]
    assert live.runner.counts["batches"] == bt.stats["agents"]["batches"]


class Stale(Agent):
    features = [{"name": "f", "kind": "ema", "input": "candle.close", "params": {"span": 1}}]

    def decide_batch(self, ctxs):
        fresh, x = self.batch_inputs(ctxs, ("f",))
        self.fresh = [c.symbol for c in fresh]
        return [c.target(1.0) if c in fresh else None for c in ctxs]


def make_runner(agent, store):
    got = []
    r = AgentRunner([agent], InMemoryBlackboard(), InMemoryHeartbeats(), store, LocalAccount(Portfolio()),
                    lambda s: 100.0, got.append, AuditLog(None, "t"))
    r.start(0)
    return r, got


def test_a_stale_symbol_is_left_out_of_the_batch_and_counted():
    store = InMemoryFeatureStore({"default": 1000})
    a = Stale(AgentConfig("s", ("BTC", "ETH", "SOL")))
    r, got = make_runner(a, store)
    store.put("BTC", "f", 1.0, 9_500)
    store.put("ETH", "f", 1.0, 1_000)  # 9 s old at t=10 s: stale
    store.put("SOL", "f", 1.0, 10_000)
    for s in ("BTC", "ETH", "SOL"):
        assert r.on_trigger("candle", s, 10_000) == 0  # waits for the batch
    assert r.flush_batches(10_000) == 2
    assert a.fresh == ["BTC", "SOL"] and [i.symbol for i in got] == ["BTC", "SOL"]
    assert r.counts["stale_skipped"] == 1 and r.counts["decisions"] == 3 and r.counts["batches"] == 1
    assert [i.intent_id for i in got] == ["s:BTC:10000:1", "s:SOL:10000:2"]  # the agent's own id sequence


class Broken(Agent):
    def decide_batch(self, ctxs):
        return [None]  # one entry for several contexts


def test_a_batch_of_the_wrong_length_is_a_strategy_error():
    a = Broken(AgentConfig("b", ("BTC", "ETH")))
    r, _ = make_runner(a, InMemoryFeatureStore())
    r.on_trigger("candle", "BTC", 1)
    r.on_trigger("candle", "ETH", 1)
    with pytest.raises(AgentFailure, match="returned 1 entries for 2 contexts"):
        r.flush_batches(1)
    assert r.audit.counts["AgentError"] == 1
