"""SimVenue: Hyperliquid's rules and the documented fill model, with hand-computed numbers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hlquant.core.assets import DEFAULT_ASSETS
from hlquant.core.clock import SimClock
from hlquant.core.errors import ExchangeError
from hlquant.core.events import (
    CancelAck,
    CancelRequest,
    Fill,
    FundingPayment,
    OrderAck,
    OrderRequest,
    OrderStatus,
    Side,
    Tif,
)
from hlquant.venues.base import Venue
from hlquant.venues.sim import SimVenue, SimVenueConfig

T0 = 1_767_225_600_000
_N = itertools.count(1)


def make(**cfg):
    clock = SimClock(T0)
    v = SimVenue(dict(DEFAULT_ASSETS), SimVenueConfig(**cfg), clock=clock)
    events: list = []
    v.add_listener(events.append)
    return v, clock, events


def order(sym="BTC", side=Side.BUY, size=0.1, px=None, tif=Tif.GTC, reduce_only=False,
          trigger_px=None, tpsl=None, cloid=None):
    n = next(_N)
    return OrderRequest(T0, T0, cloid or f"0x{n:032x}", f"i{n}", "agent", sym, side, size, px, tif,
                        reduce_only, trigger_px, tpsl)


def book(v, sym, t, bids, asks):
    bp, bs = np.array([p for p, _ in bids], float), np.array([s for _, s in bids], float)
    ap, as_ = np.array([p for p, _ in asks], float), np.array([s for _, s in asks], float)
    v.on_book(sym, t, bp, bs, ap, as_)


def fills(events):
    return [e for e in events if isinstance(e, Fill)]


def test_implements_the_venue_protocol():
    v, _, _ = make()
    assert isinstance(v, Venue)


# --- validation -----------------------------------------------------------------
@pytest.mark.parametrize("req, err", [
    (dict(size=0.123456), "Order has invalid size."),  # BTC szDecimals 5
    (dict(px=100000.5), "Price must be divisible by tick size. asset=0"),  # 6 significant figures
    (dict(sym="ETH", px=3000.123), "Price must be divisible by tick size. asset=1"),  # > 6-4 decimals
    (dict(size=0.0001, px=99000.0), "Order must have minimum value of $10."),  # $9.90
])
def test_rule_violations_use_the_exchange_texts(req, err):
    v, _, _ = make()
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    v.on_trade("ETH", T0, 1, 3000.0, 1.0)
    ack = v.submit([order(**req)])[0]
    assert ack.status == OrderStatus.REJECTED
    assert ack.error == err


def test_valid_prices_integer_and_five_significant_figures():
    v, _, _ = make()
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    v.on_trade("SOL", T0, 1, 150.0, 1.0)
    assert v.submit([order(px=99_999.0)])[0].status == OrderStatus.OPEN  # integer: always valid
    assert v.submit([order(px=9_999.5)])[0].status == OrderStatus.OPEN  # 5 sig figs, 1 decimal
    assert v.submit([order(sym="SOL", size=1.0, px=149.55)])[0].status == OrderStatus.OPEN
    assert v.submit([order(sym="SOL", size=1.0, px=149.555)])[0].error.startswith("Price must be")


def test_duplicate_cloid_rejected():
    v, _, _ = make()
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    o = order(px=90_000.0)
    assert v.submit([o])[0].status == OrderStatus.OPEN
    assert "Duplicate" in v.submit([o])[0].error


def test_insufficient_margin_respects_leverage():
    v, _, _ = make(initial_cash=10_000.0, default_leverage=5)  # 50k of buying power
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    assert v.submit([order(size=0.6)])[0].error == "Insufficient margin to place order. asset=0"
    ok = v.submit([order(size=0.4)])[0]
    assert ok.status == OrderStatus.FILLED
    v.set_leverage("BTC", 10)
    assert v.submit([order(size=0.4)])[0].status == OrderStatus.FILLED  # 80k <= 100k at 10x
    with pytest.raises(ExchangeError, match="Invalid leverage"):
        v.set_leverage("BTC", 41)  # BTC max leverage 40


def test_reduce_only_never_increases_and_is_clipped():
    v, _, ev = make()
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    assert v.submit([order(reduce_only=True)])[0].error == (
        "Reduce only order would increase position. asset=0")
    v.submit([order(size=0.1)])
    assert v.submit([order(side=Side.BUY, size=0.1, reduce_only=True)])[0].status == OrderStatus.REJECTED
    ack = v.submit([order(side=Side.SELL, size=0.5, reduce_only=True)])[0]
    assert ack.status == OrderStatus.FILLED and ack.filled_sz == pytest.approx(0.1)
    assert v.positions() == {}


# --- taker fills ------------------------------------------------------------------
def test_taker_walks_the_l2_book_at_vwap_with_taker_fee():
    v, _, ev = make()
    book(v, "BTC", T0, bids=[(99_990.0, 1.0)], asks=[(100_000.0, 0.1), (100_010.0, 0.2), (100_020.0, 5.0)])
    ack = v.submit([order(size=0.25, px=100_020.0, tif=Tif.IOC)])[0]
    assert ack.status == OrderStatus.FILLED
    f = fills(ev)
    assert [(x.px, x.sz) for x in f] == [(100_000.0, 0.1), (100_010.0, 0.15)]
    vwap = (100_000 * 0.1 + 100_010 * 0.15) / 0.25
    assert ack.avg_px == pytest.approx(vwap)
    assert sum(x.fee for x in f) == pytest.approx(vwap * 0.25 * 0.00045)
    assert all(x.liquidity == "taker" for x in f)


def test_ioc_remainder_is_cancelled_and_limit_is_respected():
    v, _, ev = make()
    book(v, "BTC", T0, bids=[(99_990.0, 1.0)], asks=[(100_000.0, 0.1), (100_050.0, 1.0)])
    ack = v.submit([order(size=0.3, px=100_010.0, tif=Tif.IOC)])[0]
    assert ack.filled_sz == pytest.approx(0.1)  # 100,050 is beyond the limit
    assert v.open_orders() == []
    miss = v.submit([order(size=0.3, px=99_000.0, tif=Tif.IOC)])[0]
    assert miss.status == OrderStatus.REJECTED
    assert miss.error == "Order could not immediately match against any resting orders. asset=0"


def test_gtc_remainder_rests_then_fills_as_maker_when_traded_through():
    v, _, ev = make()
    book(v, "BTC", T0, bids=[(99_990.0, 1.0)], asks=[(100_000.0, 0.1)])
    ack = v.submit([order(size=0.3, px=100_000.0, tif=Tif.GTC)])[0]
    assert ack.status == OrderStatus.OPEN and ack.filled_sz == pytest.approx(0.1)
    v.on_trade("BTC", T0 + 1000, -1, 100_000.0, 1.0)  # at the price: no fill (through only)
    assert len(fills(ev)) == 1
    v.on_trade("BTC", T0 + 2000, -1, 99_999.0, 0.05)  # through: fills up to the trade's size
    v.on_trade("BTC", T0 + 3000, -1, 99_998.0, 1.0)
    f = fills(ev)
    assert [(x.px, x.sz, x.liquidity) for x in f[1:]] == [(100_000.0, 0.05, "maker"), (100_000.0, 0.15, "maker")]
    assert f[1].fee == pytest.approx(100_000 * 0.05 * 0.00015)
    assert v.order_status(ack.cloid).status == OrderStatus.FILLED


def test_resting_orders_share_a_trade_in_price_time_priority():
    v, _, ev = make()
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    a = v.submit([order(size=0.1, px=99_000.0)])[0]
    b = v.submit([order(size=0.1, px=99_500.0)])[0]  # better price: first
    c = v.submit([order(size=0.1, px=99_500.0)])[0]  # same price, later: after b
    v.on_trade("BTC", T0 + 1, -1, 98_000.0, 0.15)
    got = [(x.cloid, x.sz) for x in fills(ev)]
    assert got == [(b.cloid, 0.1), (c.cloid, 0.05)]
    assert v.order_status(a.cloid).status == OrderStatus.OPEN


def test_candle_range_and_book_cross_fill_resting_orders():
    v, _, ev = make()
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    buy = v.submit([order(size=0.1, px=99_000.0)])[0]
    sell = v.submit([order(side=Side.SELL, size=0.1, px=101_000.0)])[0]
    v.on_candle("BTC", T0 + 60_000, 100_000, 100_500, 98_900, 100_100, 10.0)
    assert [x.cloid for x in fills(ev)] == [buy.cloid]
    book(v, "BTC", T0 + 61_000, bids=[(101_100.0, 1.0)], asks=[(101_200.0, 1.0)])
    assert [x.cloid for x in fills(ev)] == [buy.cloid, sell.cloid]
    assert fills(ev)[1].px == 101_000.0 and fills(ev)[1].liquidity == "maker"


def test_alo_rejected_when_crossing_else_rests():
    v, _, _ = make()
    book(v, "BTC", T0, bids=[(99_990.0, 1.0)], asks=[(100_000.0, 1.0)])
    bad = v.submit([order(px=100_000.0, tif=Tif.ALO)])[0]
    assert bad.status == OrderStatus.REJECTED
    assert bad.error == "Post only order would have immediately matched, bbo was 99990.0@100000.0. asset=0"
    assert v.submit([order(px=99_995.0, tif=Tif.ALO)])[0].status == OrderStatus.OPEN


def test_bbo_then_synthetic_book_when_no_fresh_l2():
    v, _, ev = make(half_spread_bps=2.0, slippage_bps=1.0, book_max_age_ms=1_000)
    v.on_bbo("BTC", T0, 99_990.0, 0.05, 100_000.0, 0.05)
    ack = v.submit([order(size=0.1, px=100_100.0, tif=Tif.IOC)])[0]
    assert ack.filled_sz == pytest.approx(0.05) and fills(ev)[0].px == 100_000.0  # best level only
    v.on_trade("BTC", T0 + 5_000, 1, 100_000.0, 1.0)
    clock = v.clock
    clock.advance_to(T0 + 5_000)  # BBO now stale: synthetic book around the last trade
    ack2 = v.submit([order(size=0.1, tif=Tif.IOC)])[0]  # market order
    assert ack2.status == OrderStatus.FILLED
    assert fills(ev)[-1].px == pytest.approx(100_000 * (1 + 2e-4) * (1 + 1e-4))


# --- latency ------------------------------------------------------------------------
def test_latency_executes_against_the_market_at_arrival():
    v, clock, ev = make(latency_ms=200)
    book(v, "BTC", T0, bids=[(99_990.0, 1.0)], asks=[(100_000.0, 1.0)])
    ack = v.submit([order(size=0.1, px=100_100.0, tif=Tif.IOC)])[0]
    assert ack.status == OrderStatus.PENDING and not fills(ev)
    book(v, "BTC", T0 + 100, bids=[(100_040.0, 1.0)], asks=[(100_050.0, 1.0)])  # market moved
    assert not fills(ev)
    v.advance(T0 + 200)
    f = fills(ev)
    assert len(f) == 1 and f[0].px == 100_050.0 and f[0].ts_exch == T0 + 200
    acks = [e for e in ev if isinstance(e, OrderAck)]
    assert acks[-1].status == OrderStatus.FILLED


# --- triggers -------------------------------------------------------------------------
def test_stop_loss_triggers_and_executes_on_the_way_down():
    v, _, ev = make(half_spread_bps=0.0, slippage_bps=0.0)
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    v.submit([order(size=0.1)])
    stop = v.submit([order(side=Side.SELL, size=0.1, trigger_px=98_000.0, tpsl="sl", reduce_only=True)])[0]
    assert stop.status == OrderStatus.OPEN
    v.on_trade("BTC", T0 + 1, -1, 98_500.0, 1.0)
    assert len(fills(ev)) == 1
    v.on_trade("BTC", T0 + 2, -1, 97_900.0, 1.0)
    statuses = [e.status for e in ev if isinstance(e, OrderAck) and e.cloid == stop.cloid]
    assert OrderStatus.TRIGGERED in statuses
    f = fills(ev)[-1]
    assert f.cloid == stop.cloid and f.side == Side.SELL and f.px == pytest.approx(97_900.0)
    assert v.positions() == {}


def test_take_profit_inside_a_candle_and_gap_through_fills_at_open():
    v, _, ev = make(half_spread_bps=0.0, slippage_bps=0.0)
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    v.submit([order(size=0.2)])
    tp = v.submit([order(side=Side.SELL, size=0.1, trigger_px=102_000.0, tpsl="tp", reduce_only=True)])[0]
    sl = v.submit([order(side=Side.SELL, size=0.1, trigger_px=97_000.0, tpsl="sl", reduce_only=True)])[0]
    v.on_candle("BTC", T0 + 60_000, 100_000, 102_500, 99_800, 101_000, 5.0)
    tp_fill = [x for x in fills(ev) if x.cloid == tp.cloid]
    assert len(tp_fill) == 1 and tp_fill[0].px == pytest.approx(102_000.0)
    v.on_candle("BTC", T0 + 120_000, 96_000, 96_500, 95_500, 96_200, 5.0)  # gapped below the stop
    sl_fill = [x for x in fills(ev) if x.cloid == sl.cloid]
    assert len(sl_fill) == 1 and sl_fill[0].px == pytest.approx(96_000.0)


# --- modify / cancel / dead man's switch ---------------------------------------------
def test_modify_replaces_with_new_oid_same_cloid():
    v, _, _ = make()
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    a = v.submit([order(px=90_000.0, cloid="0x" + "ab" * 16)])[0]
    b = v.modify(a.cloid, order(px=91_000.0, size=0.2, cloid="0x" + "ab" * 16))
    assert b.status == OrderStatus.OPEN and b.oid != a.oid and b.cloid == a.cloid
    st = v.order_status(a.cloid)
    assert st.oid == b.oid
    assert [o.oid for o in v.open_orders()] == [b.oid]
    assert v.modify("0x" + "cd" * 16, order(px=1.0)).error == "Cannot modify canceled or filled order"


def test_cancel_by_oid_and_by_cloid_and_unknown():
    v, _, _ = make()
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    a = v.submit([order(px=90_000.0)])[0]
    b = v.submit([order(px=90_000.0)])[0]
    res = v.cancel([CancelRequest(T0, T0, "BTC", a.cloid, a.oid, "x"),
                    CancelRequest(T0, T0, "BTC", b.cloid, 0, "x"),
                    CancelRequest(T0, T0, "BTC", "", 999, "x")])
    assert [r.ok for r in res] == [True, True, False]
    assert res[2].error == "Order was never placed, already canceled, or filled."
    assert v.open_orders() == []


def test_schedule_cancel_fires_at_its_time():
    v, clock, ev = make()
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    v.submit([order(px=90_000.0), order(px=91_000.0)])
    with pytest.raises(ExchangeError, match="at least 5 seconds"):
        v.schedule_cancel(T0 + 1000)
    v.schedule_cancel(T0 + 10_000)
    v.advance(T0 + 9_999)
    assert len(v.open_orders()) == 2
    v.advance(T0 + 10_000)
    assert v.open_orders() == []
    cancels = [e for e in ev if isinstance(e, CancelAck)]
    assert len(cancels) == 2 and all(c.reason == "scheduledCancel" for c in cancels)


# --- funding / margin ----------------------------------------------------------------
def test_funding_longs_pay_positive_rates():
    v, _, ev = make()
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    v.submit([order(size=0.1)])
    cash = v.cash
    v.on_funding("BTC", T0 + 3_600_000, 0.0001, 101_000.0)
    pay = [e for e in ev if isinstance(e, FundingPayment)]
    assert len(pay) == 1 and pay[0].amount == pytest.approx(-0.1 * 101_000 * 0.0001)
    assert v.cash - cash == pytest.approx(pay[0].amount)
    v.submit([order(side=Side.SELL, size=0.2)])  # now short 0.1
    v.on_funding("BTC", T0 + 7_200_000, 0.0001, 100_000.0)
    assert [e for e in ev if isinstance(e, FundingPayment)][-1].amount == pytest.approx(+1.0)


def test_pnl_accounting_round_trip():
    v, _, ev = make(half_spread_bps=0.0, slippage_bps=0.0)
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    v.submit([order(size=0.1)])
    v.on_trade("BTC", T0 + 1, 1, 101_000.0, 1.0)
    assert v.equity() == pytest.approx(100_000 - 100_000 * 0.1 * 0.00045 + 100.0)
    v.submit([order(side=Side.SELL, size=0.1)])
    f = fills(ev)
    assert f[-1].closed_pnl == pytest.approx(100.0)
    fees = sum(x.fee for x in f)
    assert v.cash == pytest.approx(100_000 + 100.0 - fees)


def test_liquidation_closes_everything_below_maintenance():
    v, _, ev = make(initial_cash=2_000.0, default_leverage=10, half_spread_bps=0.0, slippage_bps=0.0)
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    v.submit([order(size=0.15)])  # 15k notional, 1.5k initial margin, 750 maintenance
    resting = v.submit([order(px=90_000.0, size=0.01)])[0]
    v.on_trade("BTC", T0 + 1, -1, 92_000.0, 1.0)  # equity ~ 2000 - 1200 = 800 > 0.5*1380
    assert v.positions()
    v.on_trade("BTC", T0 + 2, -1, 91_000.0, 1.0)  # equity ~ 650 < 0.5*1365
    assert v.positions() == {}
    assert fills(ev)[-1].liquidity == "liquidation"
    assert v.order_status(resting.cloid).status == OrderStatus.MARGIN_CANCELED


def test_deterministic():
    def run():
        v, _, ev = make(latency_ms=50)
        book(v, "BTC", T0, bids=[(99_990.0, 1.0)], asks=[(100_000.0, 0.2), (100_010.0, 1.0)])
        v.submit([order(size=0.3, px=100_010.0, cloid="0x" + "11" * 16)])
        v.on_trade("BTC", T0 + 60, 1, 100_005.0, 0.1)
        v.advance(T0 + 100)
        return [(e.px, e.sz, e.ts_exch) for e in fills(ev)]

    assert run() == run()


def test_liquidation_fires_at_the_first_print_below_maintenance_after_many_small_moves():
    """The slack shortcut never delays a liquidation: compare with a brute-force check."""
    v, _, ev = make(initial_cash=2_000.0, default_leverage=10, half_spread_bps=0.0, slippage_bps=0.0)
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    v.submit([order(size=0.15)])
    entry, size, cash = 100_000.0, 0.15, v.cash
    px, expected = 100_000.0, None
    for i in range(1, 2000):
        px -= 5.0
        eq = cash + size * (px - entry)
        mm = 0.5 * size * px / 10
        if expected is None and eq < mm:
            expected = i
        v.on_trade("BTC", T0 + i, -1, px, 0.01)
        if not v.positions():
            assert i == expected
            break
    else:
        raise AssertionError("never liquidated")
    assert fills(ev)[-1].liquidity == "liquidation"


def test_prints_inside_the_margin_band_need_no_liquidation_pass():
    """Prices going back and forth near the entry cannot use up the margin of safety,
    however long they travel: one full pass, then every print is inside its band."""
    v, _, _ = make(initial_cash=100_000.0, default_leverage=10, half_spread_bps=0.0, slippage_bps=0.0)
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    v.submit([order(size=0.15)])
    v.on_trade("BTC", T0 + 1, 1, 100_000.0, 1.0)
    passes = v.margin_passes
    for i in range(2, 20_000):  # 20,000 x 100 of path: far more than the ~99k of slack / 0.15
        v.on_trade("BTC", T0 + i, 1, 100_050.0 if i % 2 else 99_950.0, 0.01)
    assert v.positions()
    assert v.margin_passes == passes


def test_liquidation_with_several_positions_fires_at_the_first_print_below_maintenance():
    """Band per position (slack shared among them) against a brute-force check on every print."""
    rng = np.random.default_rng(5)
    v, _, ev = make(initial_cash=3_000.0, default_leverage=10, half_spread_bps=0.0, slippage_bps=0.0)
    px = {"BTC": 100_000.0, "ETH": 3_000.0}
    for s, p in px.items():
        v.on_trade(s, T0, 1, p, 1.0)
    v.submit([order("BTC", size=0.1), order("ETH", Side.SELL, size=3.0)])
    size = {"BTC": 0.1, "ETH": -3.0}
    entry = dict(px)
    cash = v.cash
    for i in range(1, 200_000):
        s = "BTC" if rng.random() < 0.5 else "ETH"
        px[s] = round(px[s] * (1 + rng.normal(-0.0002 if s == "BTC" else 0.0002, 0.001)), 1)
        eq = cash + sum(size[k] * (px[k] - entry[k]) for k in px)
        mm = 0.5 * sum(abs(size[k]) * px[k] / 10 for k in px)
        v.on_trade(s, T0 + i, 1, px[s], 0.001)
        if eq < mm:
            assert not v.positions(), f"not liquidated at print {i}"
            break
        assert v.positions(), f"liquidated early at print {i}"
    else:
        raise AssertionError("never liquidated")
    assert fills(ev)[-1].liquidity == "liquidation"
    assert v.margin_passes < i / 4  # most prints were answered by the bands


def test_trades_fill_only_the_levels_they_cross_on_either_side():
    v, _, ev = make()
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    bids = [v.submit([order(size=0.1, px=p)])[0] for p in (99_900.0, 99_800.0, 99_700.0)]
    asks = [v.submit([order(side=Side.SELL, size=0.1, px=p)])[0] for p in (100_300.0, 100_100.0, 100_200.0)]
    v.on_trade("BTC", T0 + 1, 1, 100_150.0, 1.0)  # through the 100,100 ask only
    assert [f.cloid for f in fills(ev)] == [asks[1].cloid]
    v.on_trade("BTC", T0 + 2, -1, 99_750.0, 1.0)  # through 99,900 and 99,800 bids, best first
    assert [f.cloid for f in fills(ev)][1:] == [bids[0].cloid, bids[1].cloid]
    assert sorted(o.cloid for o in v.open_orders()) == sorted([bids[2].cloid, asks[0].cloid, asks[2].cloid])
