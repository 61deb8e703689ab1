import itertools

import pytest

from hlquant.agents.blackboard import InMemoryBlackboard, InMemoryHeartbeats
from hlquant.audit.log import AuditLog, payloads
from hlquant.core.clock import SimClock
from hlquant.core.events import Intent, RiskCode, Side
from hlquant.portfolio.portfolio import Portfolio
from hlquant.risk.engine import RiskConfig, RiskEngine
from hlquant.router.idempotency import InMemoryIdempotencyStore
from hlquant.router.router import OrderRouter


def make(venue, **risk):
    clock = SimClock(1_000_000)
    audit = AuditLog(None, "t")
    bb, hb = InMemoryBlackboard(), InMemoryHeartbeats()
    pf = Portfolio(100_000.0)
    router = OrderRouter(venue, InMemoryIdempotencyStore(), clock, audit)
    eng = RiskEngine(RiskConfig(**risk), bb, hb, pf, router, audit, clock)
    return eng, bb, hb, router, clock, audit, pf


_SEQ = itertools.count(1)


def post(eng, bb, agent, sym, target, t):
    it = Intent(t, t, f"{agent}:{sym}:{t}:{next(_SEQ)}", agent, sym, target=target)
    bb.post(it)
    return eng.on_intent(it)


def test_conflicting_intents_are_netted(recording_venue):
    eng, bb, hb, router, clock, audit, _ = make(recording_venue)
    eng.on_price("BTC", 100_000.0, clock.t)
    d1 = post(eng, bb, "mom", "BTC", 0.3, clock.t)
    router.flush()
    assert d1.approved and d1.order_size == pytest.approx(0.3)
    d2 = post(eng, bb, "mr", "BTC", -0.2, clock.t)  # net target 0.1; 0.3 pending -> sell 0.2
    router.flush()
    assert d2.approved and d2.order_size == pytest.approx(-0.2)
    assert "netted 2 agent(s)" in d2.reason
    sides = [(o.side, o.size) for o in recording_venue.submitted]
    assert sides == [(Side.BUY, 0.3), (Side.SELL, 0.2)]
    # the opposing agent cancelling out exactly: no order at all
    d3 = post(eng, bb, "mr", "BTC", -0.3, clock.t)
    router.flush()
    assert d3.approved  # net 0, pending +0.1 -> sell 0.1
    d4 = post(eng, bb, "mom", "BTC", 0.3, clock.t)  # same as before: net still 0
    assert not d4.approved and d4.code is RiskCode.BELOW_MIN_NOTIONAL
    kinds = audit.frame()["kind"].tolist()
    assert kinds.count("RiskDecision") == 4


def test_limits_clip_and_reject(recording_venue):
    eng, bb, *_ = make(recording_venue, max_notional_per_symbol=20_000.0)
    clock = eng.clock
    eng.on_price("ETH", 2_000.0, clock.t)
    d = post(eng, bb, "a", "ETH", 50.0, clock.t)  # 100k > 20k: clipped at the worst fill price
    worst = 2_000.0 * 1.05  # a market order's IOC limit: reference + market_slippage_cap
    assert d.approved and d.order_size == pytest.approx(20_000.0 / worst, abs=1e-4)
    assert d.approved and d.limit == "max_notional_per_symbol"
    eng2, bb2, *_ = make(recording_venue, max_notional_per_symbol=20_000.0, clip=False)
    eng2.on_price("ETH", 2_000.0, eng2.clock.t)
    d = post(eng2, bb2, "a", "ETH", 50.0, eng2.clock.t)
    assert not d.approved and d.code is RiskCode.LIMIT and d.limit == "max_notional_per_symbol"


def test_leverage_and_gross_exposure(recording_venue):
    eng, bb, hb, router, clock, audit, pf = make(recording_venue, max_leverage=0.5,
                                                 max_notional_per_symbol=1e9, max_order_notional=1e9)
    eng.on_price("BTC", 100_000.0, clock.t)
    d = post(eng, bb, "a", "BTC", 1.0, clock.t)  # 100k notional on 100k equity > 0.5x
    worst = 105_000.0  # the IOC limit the order carries
    equity_after = 100_000.0 - 1.0 * (worst - 100_000.0 + worst * 0.0005)  # its worst slippage and fee
    assert d.approved and d.order_size == pytest.approx(0.5 * equity_after / worst, abs=1e-5)
    assert d.approved and d.limit == "max_leverage"


def test_stale_price_kill_switch_and_rate_limit(recording_venue):
    eng, bb, hb, router, clock, audit, pf = make(recording_venue, max_orders_per_s=1.0, order_burst=1)
    eng.on_price("SOL", 150.0, clock.t)
    clock.t += 501
    d = post(eng, bb, "a", "SOL", 10.0, clock.t)
    assert not d.approved and d.code is RiskCode.STALE_PRICE
    eng.on_price("SOL", 150.0, clock.t)  # dirty symbol is re-netted on the fresh price
    router.flush()
    assert len(recording_venue.submitted) == 1
    d = post(eng, bb, "a", "SOL", 20.0, clock.t)  # bucket of 1 is empty
    assert not d.approved and d.code is RiskCode.RATE_LIMIT
    clock.t += 1000
    eng.on_price("SOL", 150.0, clock.t)
    router.flush()
    assert len(recording_venue.submitted) == 2
    eng.kill("operator")
    d = post(eng, bb, "a", "SOL", 0.0, clock.t)
    assert not d.approved and d.code is RiskCode.KILL_SWITCH and "operator" in d.reason
    assert "KillSwitch" in audit.frame()["kind"].tolist()


def test_drawdown_trips_kill_switch(recording_venue):
    eng, *_ = make(recording_venue, max_drawdown=0.1)
    eng.on_equity(110_000.0)
    eng.on_equity(100_000.0)
    assert not eng.killed
    eng.on_equity(98_000.0)
    assert eng.killed and "max_drawdown" in eng.kill_reason


def test_heartbeat_loss_cancels_intents_and_orders(recording_venue):
    eng, bb, hb, router, clock, audit, pf = make(recording_venue)
    for a in ("alive", "dying"):
        eng.register_agent(a)
        hb.beat(a, clock.t, 3000)
    eng.on_price("BTC", 100_000.0, clock.t)
    post(eng, bb, "alive", "BTC", 0.1, clock.t)
    post(eng, bb, "dying", "BTC", 0.2, clock.t)
    router.flush()
    assert len(router.open) == 2
    clock.t += 2000
    hb.beat("alive", clock.t, 3000)
    assert eng.check_heartbeats(clock.t) == []
    clock.t += 2000
    lost = eng.check_heartbeats(clock.t)
    assert [ev.agent for ev in lost] == ["dying"]
    assert len(lost[0].cancelled_intents) == 1 and len(lost[0].cancelled_orders) == 1
    assert list(bb.intents("BTC")) == ["alive"]
    router.flush()
    assert [c.reason for c in recording_venue.cancelled] == ["heartbeat lost"]
    # its new intents are refused
    d = post(eng, bb, "dying", "BTC", 1.0, clock.t)
    assert not d.approved and d.code is RiskCode.AGENT_DEAD
    assert "HeartbeatLoss" in audit.frame()["kind"].tolist()


def test_config_validation():
    with pytest.raises(ValueError, match="max_leverage"):
        RiskConfig(max_leverage=0)
    with pytest.raises(ValueError, match="max_drawdown"):
        RiskConfig(max_drawdown=1.5)


def test_custom_rules_reject_with_their_reason_and_are_audited(recording_venue):
    eng, bb, hb, router, clock, audit, _ = make(recording_venue, rules=("hlquant.risk.rules:avoid_funding_minute",))
    hour = 1_767_225_600_000 + 3_600_000
    clock.advance_to(hour - 30_000)
    eng.on_price("BTC", 100_000.0, clock.t)
    d = post(eng, bb, "mom", "BTC", 0.3, clock.t)
    assert not d.approved and d.code is RiskCode.RULE and d.limit == "avoid_funding_minute"
    clock.advance_to(hour + 1_000)
    eng.on_price("BTC", 100_000.0, clock.t)
    assert post(eng, bb, "mom", "BTC", 0.3, clock.t).approved
    frame = audit.frame()
    reasons = [r["reason"] for r in payloads(frame[frame["kind"] == "RiskDecision"])]
    assert any(r.startswith("rule avoid_funding_minute") for r in reasons)
    with pytest.raises(ValueError, match="cannot import"):
        make(recording_venue, rules=("nope.module:fn",))
