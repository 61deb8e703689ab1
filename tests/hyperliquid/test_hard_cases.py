"""The Hyperliquid cases that break other frameworks, proven against the fake exchange:
edits racing fills, fills lost on the way, and a burst of 10,000 intents under the rate limit."""

from __future__ import annotations

import asyncio
import queue
import random
import threading
import time

import pytest

from hlquant.agents.blackboard import InMemoryBlackboard, InMemoryHeartbeats
from hlquant.audit.log import AuditLog, payloads
from hlquant.core.clock import WallClock
from hlquant.core.events import Fill, Intent, OrderStatus, Tif
from hlquant.hyperliquid.exchange import ExchangeClient
from hlquant.hyperliquid.info import InfoClient
from hlquant.hyperliquid.limits import WeightLimiter
from hlquant.hyperliquid.signing import Signer
from hlquant.hyperliquid.venue import HyperliquidVenue
from hlquant.hyperliquid.ws import HyperliquidFeed, user_subscriptions
from hlquant.live.engine import LiveEngine
from hlquant.portfolio.portfolio import Portfolio
from hlquant.risk.engine import RiskConfig, RiskEngine
from hlquant.router.idempotency import InMemoryIdempotencyStore
from hlquant.router.router import OrderRouter, RouterConfig

from .conftest import now_ms


class FeedThread:
    """The user-channel feed on its own loop; events handed over through a queue."""

    def __init__(self, fx, info):
        self.q: queue.Queue = queue.Queue()
        self.feed = HyperliquidFeed(fx.ws_url, user_subscriptions(fx.master), info=info)
        self.loop = asyncio.new_event_loop()
        self.stop = None
        self.th = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.stop = asyncio.Event()
            async for ev in self.feed.events(self.stop):
                self.q.put(ev)

        async def go():
            t = asyncio.create_task(main())
            await self.feed.connected.wait()
            await asyncio.sleep(0.2)
            self.ready.set()
            await t

        self.loop.run_until_complete(go())

    def __enter__(self):
        self.th.start()
        assert self.ready.wait(10)
        return self

    def drain(self, venue) -> int:
        n = 0
        while True:
            try:
                ev = self.q.get_nowait()
            except queue.Empty:
                return n
            venue.on_exchange_event(ev)
            n += 1

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set)
        self.th.join(10)


def build(fx, weight_per_min=1200.0, router_weight=1200.0, exec_style="limit"):
    limiter = WeightLimiter(per_min=weight_per_min)
    info = InfoClient(fx.url, limiter=limiter)
    ex = ExchangeClient(Signer(fx.agent_key, fx.master), info.assets(), fx.url, limiter=limiter)
    venue = HyperliquidVenue(info, ex, ["BTC", "ETH"])
    clock = WallClock()
    audit = AuditLog(None, "hard")
    pf = Portfolio(100_000.0)
    router = OrderRouter(venue, InMemoryIdempotencyStore(), clock, audit,
                         RouterConfig(exec_style=exec_style, limit_offset_bps=50, orders_per_s=1e6, burst=10**6,
                                      weight_per_min=router_weight))

    def sink(ev):
        if isinstance(ev, Fill):
            pf.on_fill(ev)

    router.sinks.append(sink)
    bb, hb = InMemoryBlackboard(), InMemoryHeartbeats()
    risk = RiskEngine(RiskConfig(max_orders_per_s=1e6, order_burst=10**6, max_price_age_ms=60_000,
                                 max_notional_per_symbol=1e6, max_gross_exposure=1e6, max_leverage=20,
                                 max_order_notional=1e6), bb, hb, pf, router, audit, clock)
    return info, venue, router, risk, bb, pf, audit


def test_edit_racing_a_fill_is_counted_once_and_never_resent(fx):
    info, venue, router, risk, bb, pf, audit = build(fx)
    with FeedThread(fx, info) as ft:
        t = now_ms()
        it = Intent(t, t, "ag:BTC:1", "ag", "BTC", side=None, size=0.0, target=None)
        req = router.order_for(it.intent_id, "ag", "BTC", 0.02, 99_000.0, px=99_000.0, tif=Tif.GTC)
        router.send(req)
        router.flush()
        cloid = req.cloid
        assert router.open[cloid].status == OrderStatus.OPEN
        old_oid = router.open[cloid].oid
        fx.server.faults.fill_before_next_modify = True  # the old oid fills while the edit is in flight
        ack = router.modify(cloid, px=99_500.0)
        assert ack.status == OrderStatus.REJECTED and "Cannot modify" in ack.error
        deadline = time.time() + 5
        while time.time() < deadline and not pf.position("BTC"):
            ft.drain(venue)
            time.sleep(0.02)
    fills = [p for p in payloads(audit.frame()) if p["kind"] == "Fill"]
    assert len(fills) == 1 and fills[0]["oid"] == old_oid and fills[0]["cloid"] == cloid
    assert pf.position("BTC") == pytest.approx(0.02)
    assert cloid not in router.open  # nothing left to double-count
    assert [o["cloid"] for o in fx.server.orders_received].count(cloid) == 1  # never re-sent


def test_lost_fills_are_recovered_and_positions_reconciled(fx):
    info = InfoClient(fx.url)
    venue = HyperliquidVenue(info, ExchangeClient(Signer(fx.agent_key, fx.master), info.assets(), fx.url),
                             ["BTC", "ETH"])
    engine = LiveEngine.for_agents([], venue, mode="live",
                                   risk=RiskConfig(max_orders_per_s=1e6, order_burst=10**6, max_price_age_ms=60_000))
    risk, bb, pf = engine.risk, engine.blackboard, engine.portfolio
    t = now_ms()
    for i, target in enumerate((0.05, 0.12, -0.03)):
        risk.on_price("BTC", 100_000.0, now_ms())
        intent = Intent(t + i, t + i, f"lost:BTC:{i}", "lost", "BTC", target=target)
        bb.post(intent)
        risk.on_intent(intent)
        engine.router.flush()
    # no user channel at all: every fill was "lost"; the exchange holds the truth
    assert pf.position("BTC") == 0.0
    diff = engine.reconcile()
    # filled-but-unconfirmed orders stayed pending, so risk netted correctly without fills:
    assert diff == {"BTC": (0.0, pytest.approx(-0.03))}
    assert pf.position("BTC") == pytest.approx(-0.03)
    assert venue.counters["recovered_fills"] == 3
    kinds = engine.audit.frame()["kind"].tolist()
    assert "PositionMismatch" in kinds and "PositionCorrected" not in kinds  # recovered, not overwritten
    assert engine.reconcile() == {}
    assert engine.router.pending("BTC") == 0.0


def test_burst_of_10000_intents_stays_under_the_weight_budget(fx):
    fx.server.faults.weight_per_min = 120
    info, venue, router, risk, bb, pf, audit = build(fx, weight_per_min=120, router_weight=60)
    rng = random.Random(7)
    with FeedThread(fx, info) as ft:
        last = 0.0
        t0 = time.perf_counter()
        for i in range(10_000):
            ft.drain(venue)
            sym = "BTC"
            risk.on_price(sym, 100_000.0, now_ms())
            last = rng.choice((-0.02, -0.01, 0.0, 0.01, 0.02, 0.03))
            it = Intent(now_ms(), now_ms(), f"burst:{sym}:{i}", "burst", sym, target=last)
            bb.post(it)
            risk.on_intent(it)
            router.flush()
        burst_s = time.perf_counter() - t0
        # the backlog drains within the budget: at most one merged order per agent and symbol
        deadline = time.time() + 30
        while time.time() < deadline and (router.has_work or router.pending("BTC") or
                                          abs(pf.position("BTC") - last) > 1e-9):
            ft.drain(venue)
            risk.on_price("BTC", 100_000.0, now_ms())
            if abs(pf.position("BTC") + router.pending("BTC") - last) > 1e-9 and not router.has_work:
                it = Intent(now_ms(), now_ms(), f"burst:BTC:final:{time.time()}", "burst", "BTC", target=last)
                bb.post(it)
                risk.on_intent(it)
            router.flush()
            time.sleep(0.05)
    assert fx.server.counters["rate_limited"] == 0, "the exchange never had to say 429"
    s = router.stats
    decisions = [p for p in payloads(audit.frame()) if p["kind"] == "RiskDecision"]
    no_ops = sum(1 for d in decisions if d["reason"].startswith("no-op"))
    assert len(decisions) >= 10_000 and s.superseded > 5_000, (s, no_ops)
    # every intent is accounted for: sent, superseded by a newer one, netted out, or a no-op
    assert s.superseded + s.netted_out + s.sent + no_ops >= 10_000
    assert s.sent < 200 and len(fx.server.orders_received) == s.sent - s.rejected
    dropped = [p for p in payloads(audit.frame()) if p["kind"] == "Superseded"]
    assert sum(len(p["dropped"]) for p in dropped) == s.superseded  # every drop is reported
    assert pf.position("BTC") == pytest.approx(last, abs=1e-9), (pf.position("BTC"), last)
    assert burst_s < 60


def test_address_budget_from_user_rate_limit_holds_orders(fx):
    info, venue, router, risk, bb, pf, audit = build(fx, exec_style="market")
    acct = fx.server.accounts[fx.master.lower()]
    acct.n_requests = 10_000  # the exchange says: budget used up (cap = 10,000 + volume)
    venue.refresh_budget()
    assert venue.exchange.budget.remaining <= 0
    venue.exchange.budget.paced_ms = now_ms()  # its one request of these 10 s is used
    risk.on_price("BTC", 100_000.0, now_ms())
    it = Intent(now_ms(), now_ms(), "budget:BTC:1", "b", "BTC", target=0.01)
    bb.post(it)
    assert risk.on_intent(it).approved
    router.flush()
    assert router.stats.throttled == 1 and router.has_work and fx.server.orders_received == []
    acct.n_requests = 0
    venue.refresh_budget()
    router.weight.tokens = router.weight.capacity
    router.flush()
    assert not router.has_work and len(fx.server.orders_received) == 1


def test_a_client_that_traded_is_not_stopped_by_its_own_count_of_10000(fx):
    """Issue 16.5: bench/live_latency.py stopped at tick 10,000. The client counted its
    requests against the initial 10,000 and never re-read the cap, which grows by one
    per USDC traded: it refused its own 10,001st order although the exchange had room."""
    info, venue, router, risk, bb, pf, audit = build(fx, exec_style="market")
    acct = fx.server.accounts[fx.master.lower()]
    acct.n_requests, acct.volume = 10_000, 2_000_000.0  # 10,000 orders that traded $2M
    venue.exchange.budget.spend(10_000)  # what the client counted for them
    risk.on_price("BTC", 100_000.0, now_ms())
    it = Intent(now_ms(), now_ms(), "budget:BTC:grown", "b", "BTC", target=0.01)
    bb.post(it)
    assert risk.on_intent(it).approved
    router.flush()
    assert router.stats.throttled == 0 and len(fx.server.orders_received) == 1
    assert venue.exchange.budget.cap == 2_010_000  # read from the exchange, once
    assert fx.server.counters["info:userRateLimit"] == 1


def test_the_exchange_throttles_a_spent_address_and_the_router_holds_the_orders(fx):
    """Past 10,000 + volume requests Hyperliquid lets one request through per 10 s and
    refuses the rest (cancels get a larger allowance): the refusal is a rate limit
    (nothing placed, the router keeps the order), never a final rejection."""
    info, venue, router, risk, bb, pf, audit = build(fx, exec_style="market")
    acct = fx.server.accounts[fx.master.lower()]
    acct.n_requests = 10_000
    acct.over_budget_ms = int(time.time() * 1000)  # the one request of this 10 s went through
    # a client whose own count is stale (another process spent the budget)
    risk.on_price("BTC", 100_000.0, now_ms())
    it = Intent(now_ms(), now_ms(), "budget:BTC:spent", "b", "BTC", target=0.01)
    bb.post(it)
    assert risk.on_intent(it).approved
    router.flush()
    assert fx.server.counters["over_address_budget"] == 1 and fx.server.orders_received == []
    assert router.stats.throttled == 1 and router.has_work, "held, not rejected"
    assert not [p for p in payloads(audit.frame()) if p["kind"] == "OrderAck"]
    # cancels still go through: their cap is min(cap + 100,000, 2 x cap)
    venue.exchange.post_action({"type": "cancel", "cancels": [{"a": 0, "o": 1}]}, 1)  # raises if refused
    assert fx.server.counters["over_address_budget"] == 1
    router.weight.tokens = router.weight.capacity
    router.flush()  # within the same 10 s: the client holds the order itself
    assert router.stats.throttled == 2 and fx.server.counters["over_address_budget"] == 1
    # 10 s later the spent address's one request goes through: the held order is placed
    acct.over_budget_ms -= 10_000
    venue.exchange.budget.paced_ms -= 10_000
    router.weight.tokens = router.weight.capacity
    router.flush()
    assert not router.has_work and len(fx.server.orders_received) == 1
