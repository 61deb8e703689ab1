import pytest

from hlquant.audit.log import AuditLog
from hlquant.core.clock import SimClock
from hlquant.core.events import ErrorCode, OrderAck, OrderStatus, Tif
from hlquant.core.ids import cloid_for, is_cloid
from hlquant.router.idempotency import InMemoryIdempotencyStore
from hlquant.router.router import OrderRouter, RouterConfig
from tests.conftest import RecordingVenue


def test_cloid_is_deterministic_and_wire_shaped():
    a, b = cloid_for("agent:BTC:1:1"), cloid_for("agent:BTC:1:1")
    assert a == b and is_cloid(a)
    assert cloid_for("agent:BTC:1:2") != a
    assert cloid_for("agent:BTC:1:1", leg=1) != a


def test_duplicate_intent_sends_one_order_even_across_replicas(recording_venue):
    clock, idem = SimClock(1), InMemoryIdempotencyStore()
    audit = AuditLog(None, "t")
    r1 = OrderRouter(recording_venue, idem, clock, audit, RouterConfig(name="r1"))
    r2 = OrderRouter(recording_venue, idem, clock, audit, RouterConfig(name="r2"))
    req = r1.order_for("i-1", "a", "BTC", 0.123456, 100_000.0)
    assert req.size == 0.12345  # rounded down to szDecimals=5
    assert r1.send(req)
    assert not r1.send(req)  # retry by the same replica
    req2 = r2.order_for("i-1", "a", "BTC", 0.123456, 100_000.0)
    assert req2.cloid == req.cloid and not r2.send(req2)  # another replica
    r1.flush()
    r2.flush()
    assert len(recording_venue.submitted) == 1
    assert r1.stats.duplicates == 1 and r2.stats.duplicates == 1
    df = audit.frame()
    assert (df["kind"] == "DuplicateOrder").sum() == 2
    assert idem.state(req.cloid) == "OPEN"


def test_batching_and_rate_limit(recording_venue):
    clock = SimClock(0)
    cfg = RouterConfig(max_batch=40, orders_per_s=10.0, burst=100)
    r = OrderRouter(recording_venue, InMemoryIdempotencyStore(), clock, AuditLog(None, "t"), cfg)
    for i in range(130):
        r.send(r.order_for(f"i{i}", "a", "ETH", 1.0, 3000.0))
    r.flush()
    assert r.stats.batches == 3  # 100 tokens -> 40 + 40 + 20
    assert len(recording_venue.submitted) == 100 and r.stats.deferred == 1  # one flush left 30 queued
    assert len(r._queue) == 30
    clock.t = 3000  # 30 tokens refilled
    r.flush()
    assert len(recording_venue.submitted) == 130


def test_weight_budget_degrades_by_batching(recording_venue):
    """With little IP weight left the router sends fewer, fuller batches (1 + n//40 each)."""
    clock = SimClock(0)
    cfg = RouterConfig(max_batch=80, orders_per_s=1e6, burst=10**6, weight_per_min=6)
    r = OrderRouter(recording_venue, InMemoryIdempotencyStore(), clock, AuditLog(None, "t"), cfg)
    for i in range(200):
        r.send(r.order_for(f"w{i}", "a", "ETH", 1.0, 3000.0))
    r.flush()
    # 6 weight: two batches of 80 cost 3 each; the remaining 40 wait for weight
    assert r.stats.batches == 2 and len(recording_venue.submitted) == 160 and len(r._queue) == 40
    clock.t = 60_000
    r.flush()
    assert len(recording_venue.submitted) == 200


def test_exec_styles_price_orders_on_the_tick(recording_venue):
    clock = SimClock(0)
    r = OrderRouter(recording_venue, InMemoryIdempotencyStore(), clock, AuditLog(None, "t"),
                    RouterConfig(exec_style="limit", limit_offset_bps=10))
    o = r.order_for("x", "a", "SOL", -3.0, 151.2345)
    assert o.tif == Tif.IOC and o.px == 151.08  # 151.2345 * (1 - 0.001) on SOL's tick
    p = OrderRouter(recording_venue, InMemoryIdempotencyStore(), clock, AuditLog(None, "t"),
                    RouterConfig(exec_style="passive")).order_for("y", "a", "SOL", 3.0, 151.2345)
    assert p.tif == Tif.ALO and p.px == 151.23
    m = OrderRouter(recording_venue, InMemoryIdempotencyStore(), clock, AuditLog(None, "t")).order_for(
        "z", "a", "SOL", 3.0, 151.2)
    assert m.px == 158.76 and m.tif == Tif.IOC  # an IOC limit at 151.2 * (1 + market_slippage_cap)
    stop = r.order_for("s", "a", "SOL", 3.0, 151.2, trigger_px=160.0, tpsl="sl")  # a stop that opens
    assert stop.px == 168.0 and stop.trigger_px == 160.0  # a stop-limit at trigger + cap
    exit_stop = r.order_for("e", "a", "SOL", -3.0, 151.2, reduce_only=True, trigger_px=140.0, tpsl="sl")
    assert exit_stop.px is None  # a reduce-only stop stays a market stop: it must get out
    assert r.order_for("tiny", "a", "BTC", 0.000001, 1e5) is None


def test_cancel_agent_batches_cancels(recording_venue):
    clock = SimClock(0)
    r = OrderRouter(recording_venue, InMemoryIdempotencyStore(), clock, AuditLog(None, "t"))
    for i, agent in enumerate(["a", "b", "a"]):
        r.send(r.order_for(f"i{i}", agent, "BTC", 0.01, 1e5, px=90_000.0, tif=Tif.GTC))
    r.flush()
    cl = r.cancel_agent("a", "heartbeat lost")
    assert len(cl) == 2
    r.flush()
    assert len(recording_venue.cancelled) == 2
    assert {o.req.agent for o in r.open.values()} == {"b"}


class AmbiguousVenue(RecordingVenue):
    """The first submit of each order gets an ambiguous (UNKNOWN) or never-sent
    (UNAVAILABLE) answer; the order's real state is served by order_status."""

    def __init__(self, first: ErrorCode) -> None:
        super().__init__()
        self.first = first
        self.known: dict[str, OrderAck] = {}
        self.seen: set[str] = set()

    def submit(self, orders):
        out = []
        for o in orders:
            if o.cloid in self.seen:
                out.extend(super().submit([o]))
                continue
            self.seen.add(o.cloid)
            if self.first == ErrorCode.UNKNOWN_OUTCOME:  # it did reach the exchange and rests
                self.known[o.cloid] = super().submit([o])[0]
                out.append(OrderAck(o.ts_exch, o.ts_exch, o.cloid, o.symbol, OrderStatus.UNKNOWN,
                                    code=ErrorCode.UNKNOWN_OUTCOME))
            else:
                out.append(OrderAck(o.ts_exch, o.ts_exch, o.cloid, o.symbol, OrderStatus.REJECTED,
                                    error="connection refused", code=ErrorCode.UNAVAILABLE))
        return out

    def order_status(self, cloid):
        return self.known.get(cloid)


def test_an_ambiguous_reply_stays_pending_until_the_lookup_settles_it():
    venue = AmbiguousVenue(ErrorCode.UNKNOWN_OUTCOME)
    r = OrderRouter(venue, InMemoryIdempotencyStore(), SimClock(0), AuditLog(None, "t"))
    o = r.order_for("x", "a", "BTC", 0.01, 1e5)
    r.send(o)
    r.flush()
    assert r.unknown == {o.cloid} and r.pending("BTC") == pytest.approx(0.01)  # counted, never re-sent
    assert r.resolve_unknown() == 1
    assert r.unknown == set() and r.open[o.cloid].status == OrderStatus.OPEN
    assert [s.cloid for s in venue.submitted] == [o.cloid]  # sent exactly once


def test_a_request_that_never_left_is_sent_again_a_bounded_number_of_times():
    venue = AmbiguousVenue(ErrorCode.UNAVAILABLE)
    r = OrderRouter(venue, InMemoryIdempotencyStore(), SimClock(0), AuditLog(None, "t"))
    o = r.order_for("y", "a", "BTC", 0.01, 1e5)
    r.send(o)
    r.flush()  # refused before sending: queued again
    assert r.has_work and o.cloid in r.open
    r.flush()
    assert r.open[o.cloid].status == OrderStatus.OPEN and [s.cloid for s in venue.submitted] == [o.cloid]
