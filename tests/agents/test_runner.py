import pytest

from hlquant.agents import Agent, AgentConfig, InMemoryBlackboard, InMemoryHeartbeats
from hlquant.agents.account import LocalAccount
from hlquant.agents.runner import AgentRunner
from hlquant.audit.log import AuditLog
from hlquant.features.store import InMemoryFeatureStore
from hlquant.portfolio.portfolio import Portfolio


class Flip(Agent):
    """Targets +1/-1 from a feature's sign; reads a feature that may be stale."""

    features = [{"name": "sig", "kind": "ema", "input": "candle.close", "params": {"span": 1}}]

    def decide(self, ctx):
        return ctx.target(1.0 if ctx.feature("sig") > 0 else -1.0)


def make(agent_cfg, store=None):
    store = store or InMemoryFeatureStore({"default": 1000})
    got = []
    bb, hb = InMemoryBlackboard(), InMemoryHeartbeats()
    agent = Flip(agent_cfg)
    runner = AgentRunner([agent], bb, hb, store, LocalAccount(Portfolio()), lambda s: 100.0, got.append, AuditLog(None, "t"))
    return runner, store, got, bb, hb


def test_unchanged_targets_are_not_republished_and_debounce_applies():
    runner, store, got, bb, hb = make(AgentConfig("f", ("BTC",), debounce_ms=5_000))
    runner.start(0)
    for t, sig in [(0, 1), (1000, 1), (2000, -1), (8000, -1), (9000, 1)]:
        store.put("BTC", "sig", sig, t)
        runner.on_trigger("candle", "BTC", t)
    # t=0 published; 1000 unchanged; 2000 flips but inside 5 s debounce; 8000 is
    # -1 (changed vs last published +1) -> published; 9000 inside debounce again
    assert [i.target for i in got] == [1.0, -1.0]
    assert runner.counts["unchanged"] == 1 and runner.counts["debounced"] == 2
    assert bb.intents("BTC")["f"].target == -1.0


def test_stale_feature_skips_the_decision_and_is_counted():
    runner, store, got, *_ = make(AgentConfig("f", ("BTC",)))
    store.put("BTC", "sig", 1.0, 0)
    runner.on_trigger("candle", "BTC", 5_000)  # 5 s old > 1 s rule
    assert got == []
    assert runner.counts["stale_skipped"] == 1 and store.stale_reads["sig"] == 1


def test_heartbeats_follow_config_and_stop_when_killed():
    runner, store, got, bb, hb = make(AgentConfig("f", ("BTC",), heartbeat_ms=1000, heartbeat_ttl_ms=3000))
    runner.start(0)
    assert hb.alive("f", 2999) and not hb.alive("f", 3001)
    runner.heartbeat(1000)
    assert hb.last_seen("f") == 1000 and runner.next_beat_due == 2000
    runner.kill("f")
    runner.heartbeat(2000)
    assert hb.last_seen("f") == 1000 and not hb.alive("f", 4001)
    store.put("BTC", "sig", 1.0, 4000)
    assert runner.on_trigger("candle", "BTC", 4000) == 0


def test_agent_config_validation():
    with pytest.raises(ValueError, match="trigger"):
        AgentConfig("x", ("BTC",), trigger="tick")
    with pytest.raises(ValueError, match="heartbeat_ttl_ms"):
        AgentConfig("x", ("BTC",), heartbeat_ms=10, heartbeat_ttl_ms=5)
    with pytest.raises(ValueError, match="symbol"):
        AgentConfig("x", ())


def test_feature_spec_placeholders_follow_params():
    class A(Agent):
        features = [{"name": "e", "kind": "ema", "input": "candle.close", "params": {"span": "{fast}"}}]
        defaults = {"fast": 3}

    assert A(AgentConfig("a", ("BTC",), params={"fast": 7})).feature_specs()[0]["params"] == {"span": 7}


def test_an_intent_whose_publish_failed_is_published_when_the_decision_is_redelivered():
    """The 10-minute soak lost 4 intents across its Redis restart: the publish failed, the
    bus redelivered the trigger, and the runner took the same target for "unchanged"
    because it had noted it as published before publishing it."""
    runner, store, got, bb, hb = make(AgentConfig("f", ("BTC",)))
    runner.start(0)
    store.put("BTC", "sig", 1.0, 0)
    down = [True]

    def publish(intent):
        if down[0]:
            raise ConnectionError("redis went away")
        got.append(intent)

    runner.on_intent = publish
    with pytest.raises(ConnectionError):
        runner.on_trigger("candle", "BTC", 0)
    down[0] = False
    assert runner.on_trigger("candle", "BTC", 0) == 1  # the redelivered trigger
    assert [i.target for i in got] == [1.0] and runner.counts["unchanged"] == 0
    assert runner.on_trigger("candle", "BTC", 0) == 0 and runner.counts["unchanged"] == 1
