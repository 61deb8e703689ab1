"""Stateless router replicas sharing Redis: a replica dies after sending, another takes over."""

from __future__ import annotations

import time
import uuid

import pytest
import redis

from hlquant.bus.redis_state import RedisStreamBus
from hlquant.config.compose import load_config
from hlquant.core.events import OrderRequest, Side, Tif
from hlquant.core.ids import cloid_for
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.live.drill import wait_for
from hlquant.live.roles.router import RouterReplica
from tests.conftest import require_server
from tests.hyperliquid.conftest import seed_books


class Crash(Exception):
    pass


@pytest.fixture()
def ns():
    try:
        redis.Redis(host="127.0.0.1", port=6379).ping()
    except redis.ConnectionError:
        require_server(False, "Redis on 127.0.0.1:6379")
    ns = f"rep{uuid.uuid4().hex[:8]}"
    yield ns
    r = redis.Redis(host="127.0.0.1", port=6379, db=13)
    for k in r.scan_iter(f"{ns}:*"):
        r.delete(k)


def test_replica_dies_between_send_and_ack_no_order_twice(ns, monkeypatch, tmp_path):
    with running_fake_exchange() as fx:
        fx.server.faults.weight_per_min = 10**9
        seed_books(fx.server)
        monkeypatch.setenv("HLQUANT_PRIVATE_KEY", fx.agent_key)
        cfg = load_config(["strategy=drill", f"live.url={fx.url}", f"live.account_address={fx.master}",
                           f"live.namespace={ns}", "live.redis_url=redis://127.0.0.1:6379/13",
                           "live.claim_ttl_ms=2000", "live.dead_mans_switch_ms=0"])
        a = RouterReplica(cfg, "A", tmp_path / "a")
        b = RouterReplica(cfg, "B", tmp_path / "b")
        client13 = redis.Redis(host="127.0.0.1", port=6379, db=13)
        prod = RedisStreamBus(client13, ns)
        now = int(time.time() * 1000)
        reqs = [OrderRequest(now, now, cloid_for(f"i{i}"), f"i{i}", "a1", "BTC", Side.BUY, 0.001,
                             90_000.0 + i, Tif.GTC) for i in range(60)]
        prod.publish_many([("OrderRequest:{BTC}", q) for q in reqs])

        # A sends orders, but on its 20th it dies after the exchange accepted it (no mark, no ack)
        calls = {"n": 0}
        real_mark = a.idem.mark

        def mark_then_die(key, state):
            calls["n"] += 1
            if calls["n"] == 20:
                raise Crash("killed after send")
            real_mark(key, state)

        monkeypatch.setattr(a.idem, "mark", mark_then_die)
        with pytest.raises(Crash):
            a.bus.poll(block_ms=10, count=30)  # A received 30, finished 19, died on the 20th
        assert a.bus.pending() == 11  # the 20th..30th are left pending on dead A

        b.bus.poll(block_ms=10, count=100)  # B handles the 30 never given to A
        assert b.counters["sent"] == 30
        wait_for(lambda: not any(client13.exists(f"{ns}:idem:{{{q.cloid}}}") and a.idem.owner(q.cloid, 0) == "A"
                                 for q in reqs[19:30]), 10, "A's claims expire")
        b.bus.claim_stale(min_idle_ms=0)  # B takes over what A left
        assert b.bus.pending() == 0 and a.bus.pending() == 0

        cloids = [o["cloid"] for o in fx.server.orders_received]
        assert len(cloids) == 60 and len(set(cloids)) == 60, "every order exactly once"
        assert b.counters["found_on_exchange"] == 1  # the one A sent before dying
        assert b.counters["sent"] == 30 + 10


def test_modify_and_leverage_travel_through_the_replicas(ns, monkeypatch, tmp_path):
    from hlquant.core.assets import DEFAULT_ASSETS
    from hlquant.core.clock import WallClock
    from hlquant.venues.bus import BusVenue

    with running_fake_exchange() as fx:
        seed_books(fx.server)
        monkeypatch.setenv("HLQUANT_PRIVATE_KEY", fx.agent_key)
        cfg = load_config(["strategy=drill", f"live.url={fx.url}", f"live.account_address={fx.master}",
                           f"live.namespace={ns}", "live.redis_url=redis://127.0.0.1:6379/13",
                           "live.dead_mans_switch_ms=0"])
        rep = RouterReplica(cfg, "A", tmp_path / "a")
        client = redis.Redis(host="127.0.0.1", port=6379, db=13)
        bv = BusVenue(RedisStreamBus(client, ns), {"BTC": DEFAULT_ASSETS["BTC"]}, WallClock())
        exec_acks: list = []
        exec_bus = RedisStreamBus(client, ns, group="t", consumer="t")
        exec_bus.subscribe("Exec:{BTC}", lambda _t, ev: exec_acks.append(ev))
        now = int(time.time() * 1000)
        cl = cloid_for("edit-me")
        bv.submit([OrderRequest(now, now, cl, "edit-me", "a1", "BTC", Side.BUY, 0.001, 90_000.0, Tif.GTC)])
        bv.set_leverage("BTC", 7)
        bv.modify(cl, OrderRequest(now, now, cl, "edit-me", "a1", "BTC", Side.BUY, 0.002, 91_000.0, Tif.GTC))
        for _ in range(5):
            rep.bus.poll(block_ms=20)
        exec_bus.poll(block_ms=20)
        rec = fx.server.accounts[fx.master.lower()].venue
        assert rec.leverage("BTC")[1] == 7
        oo = rec.open_order_objects()
        assert len(oo) == 1 and oo[0].req.px == 91_000.0 and oo[0].req.cloid == cl
        assert [a.status.name for a in exec_acks] == ["OPEN", "OPEN"] and exec_acks[1].oid != exec_acks[0].oid
        for a in exec_acks:
            bv.on_exec("Exec:{BTC}", a)
        assert bv.order_status(cl).oid == exec_acks[1].oid
        assert [a.cloid for a in bv.open_orders()] == [cl]


def test_outcome_recorded_by_a_dead_replica_is_reported_by_the_next(ns, monkeypatch, tmp_path):
    """A replica sends an order the exchange rejects, records the outcome and dies before
    publishing it: the replica that takes the entry over reports the recorded outcome, so
    the risk process learns the order's fate (found by the crash drill)."""
    with running_fake_exchange() as fx:
        seed_books(fx.server)
        monkeypatch.setenv("HLQUANT_PRIVATE_KEY", fx.agent_key)
        cfg = load_config(["strategy=drill", f"live.url={fx.url}", f"live.account_address={fx.master}",
                           f"live.namespace={ns}", "live.redis_url=redis://127.0.0.1:6379/13",
                           "live.claim_ttl_ms=2000", "live.dead_mans_switch_ms=0"])
        a = RouterReplica(cfg, "A", tmp_path / "a")
        b = RouterReplica(cfg, "B", tmp_path / "b")
        client = redis.Redis(host="127.0.0.1", port=6379, db=13)
        got: list = []
        watcher = RedisStreamBus(client, ns, group="watch", consumer="w")
        watcher.subscribe("Exec:{BTC}", lambda _t, ev: got.append(ev))
        now = int(time.time() * 1000)
        tiny = OrderRequest(now, now, cloid_for("tiny"), "tiny", "a1", "BTC", Side.BUY, 0.00001, 90_000.0,
                            Tif.GTC)  # $0.90: below the exchange's $10 minimum, rejected
        RedisStreamBus(client, ns).publish("OrderRequest:{BTC}", tiny)

        def die(_ev):
            raise Crash("killed before publishing the outcome")

        monkeypatch.setattr(a, "_exec", die)
        with pytest.raises(Crash):
            a.bus.poll(block_ms=10)
        assert a.bus.pending() == 1
        wait_for(lambda: a.idem.owner(tiny.cloid, 0) is None, 10, "A's claim expires")
        b.bus.claim_stale(min_idle_ms=0)
        watcher.poll(block_ms=10)
        assert [(e.cloid, e.status.name) for e in got] == [(tiny.cloid, "REJECTED")]
        assert b.counters["skipped_done"] == 1 and b.counters["sent"] == 0
        assert fx.server.orders_received == []
