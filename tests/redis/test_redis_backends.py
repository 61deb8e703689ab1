"""Redis backends behave like their in-memory twins, on one node and on a 3-node cluster."""

from __future__ import annotations

import pytest
from redis.cluster import RedisCluster

from hlquant.bus.redis_state import (
    RedisBlackboard,
    RedisFeatureStore,
    RedisHeartbeats,
    RedisIdempotencyStore,
    RedisStreamBus,
)
from hlquant.core.errors import StaleFeatureError
from hlquant.core.events import Intent, Side, Trade


def intent(agent, sym, target, t=1):
    return Intent(t, t, f"{agent}:{sym}:{t}", agent, sym, target=target, reason="r")


def test_blackboard_fields_per_agent(any_redis, ns):
    bb = RedisBlackboard(any_redis, ns)
    bb.post(intent("mom", "BTC", 0.5))
    bb.post(intent("mr", "BTC", -0.2))
    bb.post(intent("mom", "ETH", 1.0))
    bb.post(intent("mom", "BTC", 0.7, t=2))  # replaces mom's BTC intent
    got = bb.intents("BTC")
    assert {a: i.target for a, i in got.items()} == {"mom": 0.7, "mr": -0.2}
    assert got["mom"].intent_id == "mom:BTC:2"
    assert bb.symbols() == ["BTC", "ETH"]
    removed = bb.remove_agent("mom")
    assert sorted(i.symbol for i in removed) == ["BTC", "ETH"]
    assert list(bb.intents("BTC")) == ["mr"] and bb.symbols() == ["BTC"]
    assert bb.remove("BTC", "nobody") is None


def test_heartbeats_expire_in_caller_time(any_redis, ns):
    hb = RedisHeartbeats(any_redis, ns)
    hb.beat("a1", 1_000, 500)
    assert hb.alive("a1", 1_400) and not hb.alive("a1", 1_501)
    assert hb.last_seen("a1") == 1_000 and hb.agents() == ["a1"]
    assert not hb.alive("ghost", 0) and hb.last_seen("ghost") is None


def test_idempotency_claim_is_exclusive(any_redis, ns):
    a = RedisIdempotencyStore(any_redis, ns)
    b = RedisIdempotencyStore(any_redis, ns)
    cloid = "0x" + "ab" * 16
    assert a.claim(cloid, "router-a", 60_000, 0)
    assert not b.claim(cloid, "router-b", 60_000, 0)
    assert b.owner(cloid, 0) == "router-a"
    a.mark(cloid, "sent")
    assert b.state(cloid) == "sent"
    short = "0x" + "cd" * 16
    assert a.claim(short, "router-a", 1, 0)
    import time

    time.sleep(0.01)
    assert b.claim(short, "router-b", 60_000, 0)  # the first claim expired


def test_feature_store_staleness_and_pipelines(any_redis, ns):
    fs = RedisFeatureStore(any_redis, {"default": 500, "sentiment*": 300_000}, ns)
    fs.put_many("BTC", [("ema_fast", 1.5), ("ema_slow", 1.2)], 10_000)
    fs.put("BTC", "sentiment_x", 0.3, 10_000)
    assert fs.get("BTC", "ema_fast", 10_400) == 1.5
    assert fs.get_many("BTC", ["ema_fast", "ema_slow"], 10_500) == {"ema_fast": 1.5, "ema_slow": 1.2}
    with pytest.raises(StaleFeatureError, match="stale"):
        fs.get("BTC", "ema_fast", 10_501)
    assert fs.get("BTC", "sentiment_x", 200_000) == 0.3
    with pytest.raises(StaleFeatureError, match="never written"):
        fs.get("ETH", "ema_fast", 0)
    assert fs.stale_reads == {"ema_fast": 2}
    n = fs.put_batch([("SOL", f"f{i}", float(i), 20_000) for i in range(50)])
    assert n == 50 and fs.get_with_ts("SOL", "f49") == (49.0, 20_000)


def test_stream_bus_delivers_acks_and_resumes(any_redis, ns):
    if isinstance(any_redis, RedisCluster):
        topics = ["Trade:{BTC}", "Trade:{ETH}"]  # different slots, different nodes
    else:
        topics = ["Trade:{BTC}", "Trade:{ETH}"]
    prod = RedisStreamBus(any_redis, ns, maxlen=1000)
    got: list = []
    c1 = RedisStreamBus(any_redis, ns, group="g", consumer="c1")
    for t in topics:
        c1.subscribe(t, lambda topic, ev: got.append((topic, ev.tid)))
    prod.publish_many([(topics[i % 2], Trade(i, i, "BTC" if i % 2 == 0 else "ETH", Side.BUY, 1.0, 1.0, i))
                       for i in range(20)])
    while c1.poll(block_ms=50):
        pass
    assert sorted(t for _, t in got) == list(range(20))
    assert c1.pending() == 0

    # a consumer that crashes mid-batch leaves its message pending; a peer claims it
    def boom(topic, ev):
        raise RuntimeError("consumer died")

    c2 = RedisStreamBus(any_redis, ns, group="g", consumer="c2")
    c2.subscribe(topics[0], boom)
    prod.publish(topics[0], Trade(99, 99, "BTC", Side.SELL, 2.0, 1.0, 99))
    with pytest.raises(RuntimeError):
        c2.poll(block_ms=50)
    assert c2.pending() == 1
    rescued: list = []
    c3 = RedisStreamBus(any_redis, ns, group="g", consumer="c3")
    c3.subscribe(topics[0], lambda topic, ev: rescued.append(ev.tid))
    assert c3.claim_stale(min_idle_ms=0) == 1
    assert rescued == [99] and c3.pending() == 0


def test_restarted_consumer_rereads_its_own_pending(r, ns):
    prod = RedisStreamBus(r, ns)
    seen: list = []
    fail = {"on": True}

    def handler(topic, ev):
        if fail["on"]:
            raise RuntimeError("crash")
        seen.append(ev.tid)

    c = RedisStreamBus(r, ns, group="g", consumer="same-name")
    c.subscribe("Trade:{BTC}", handler)
    prod.publish("Trade:{BTC}", Trade(1, 1, "BTC", Side.BUY, 1.0, 1.0, 1))
    with pytest.raises(RuntimeError):
        c.poll(block_ms=50)
    fail["on"] = False
    restarted = RedisStreamBus(r, ns, group="g", consumer="same-name")
    restarted.subscribe("Trade:{BTC}", handler)
    restarted.poll(block_ms=50)
    assert seen == [1] and restarted.pending() == 0


def test_bounded_stream_length(r, ns):
    bus = RedisStreamBus(r, ns, maxlen=100)
    bus.publish_many([("Trade:{BTC}", Trade(i, i, "BTC", Side.BUY, 1.0, 1.0, i)) for i in range(2000)])
    assert r.xlen(f"{ns}:Trade:{{BTC}}") < 300  # approximate trimming keeps it near maxlen
