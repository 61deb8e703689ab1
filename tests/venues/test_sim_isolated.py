"""SimVenue isolated margin (issue 12, item 4), tp/sl groups, and a typed code on every
refusal (issue 10, item 7), with hand-computed numbers."""

from __future__ import annotations

import pytest

from hlquant.core.assets import DEFAULT_ASSETS
from hlquant.core.clock import SimClock
from hlquant.core.errors import ExchangeError
from hlquant.core.events import CancelAck, ErrorCode, Fill, OrderRequest, OrderStatus, Side, Tif
from hlquant.venues.sim import SimVenue, SimVenueConfig

T0 = 1_767_225_600_000


def make(**cfg):
    base = dict(taker_fee=0.0, maker_fee=0.0, half_spread_bps=0.0, slippage_bps=0.0, initial_cash=100_000.0)
    v = SimVenue(dict(DEFAULT_ASSETS), SimVenueConfig(**{**base, **cfg}), clock=SimClock(T0))
    events: list = []
    v.add_listener(events.append)
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    v.on_trade("ETH", T0, 1, 3_000.0, 1.0)
    return v, events


def order(sym, side, size, px=None, tif=Tif.IOC, n=[0], **kw):  # noqa: B006 (a counter for unique cloids)
    n[0] += 1
    return OrderRequest(T0, T0, f"0x{n[0]:032x}", f"i{n[0]}", "a", sym, side, size, px, tif, **kw)


def test_isolated_position_holds_its_own_margin_and_liquidates_alone():
    v, events = make()
    v.set_leverage("BTC", 5, cross=False)
    assert v.leverage("BTC") == ("isolated", 5)
    assert v.submit([order("BTC", Side.BUY, 1.0)])[0].status == OrderStatus.FILLED
    assert v.submit([order("ETH", Side.BUY, 1.0)])[0].status == OrderStatus.FILLED  # cross
    assert v.cash == pytest.approx(80_000.0)  # 100,000 x 1 / 5 moved into the isolated position
    st = v.account_state()
    btc = st.positions["BTC"]
    assert btc.leverage_type == "isolated" and btc.isolated_margin == pytest.approx(20_000.0)
    assert btc.liquidation_px == pytest.approx((100_000.0 - 20_000.0) / (1 - 0.5 / 5))  # 88,888.89
    assert st.positions["ETH"].leverage_type == "cross"
    assert st.equity == pytest.approx(100_000.0) and st.cross_equity == pytest.approx(80_000.0)
    v.on_trade("BTC", T0 + 1, -1, 89_000.0, 0.1)  # above the liquidation price
    assert v.positions()["BTC"] == 1.0
    v.on_trade("BTC", T0 + 2, -1, 88_000.0, 0.1)
    assert "BTC" not in v.positions() and v.positions()["ETH"] == 1.0  # the cross position is untouched
    liq = [e for e in events if isinstance(e, Fill) and e.liquidity == "liquidation"]
    assert len(liq) == 1 and liq[0].px == 88_000.0
    assert v.cash == pytest.approx(80_000.0 + 20_000.0 - 12_000.0)  # margin back, the loss paid


def test_the_same_move_in_cross_does_not_liquidate():
    v, _ = make()
    v.set_leverage("BTC", 5, cross=True)
    v.submit([order("BTC", Side.BUY, 1.0)])
    v.on_trade("BTC", T0 + 2, -1, 88_000.0, 0.1)
    assert v.positions()["BTC"] == 1.0 and v.cash == pytest.approx(100_000.0)


def test_update_isolated_margin_moves_the_liquidation_price():
    v, _ = make()
    v.set_leverage("BTC", 5, cross=False)
    v.submit([order("BTC", Side.SELL, 1.0)])  # an isolated short
    liq0 = v.account_state().positions["BTC"].liquidation_px
    assert liq0 == pytest.approx((-100_000.0 - 20_000.0) / (-1 - 0.1))  # 109,090.9
    v.update_isolated_margin("BTC", 10_000.0)
    assert v.cash == pytest.approx(70_000.0)
    assert v.account_state().positions["BTC"].liquidation_px == pytest.approx((-100_000.0 - 30_000.0) / -1.1)
    with pytest.raises(ExchangeError) as e:
        v.update_isolated_margin("BTC", -15_000.0)  # below the initial margin (20,000)
    assert e.value.code == ErrorCode.INSUFFICIENT_MARGIN
    v.update_isolated_margin("BTC", -10_000.0)
    assert v.account_state().positions["BTC"].liquidation_px == pytest.approx(liq0)
    with pytest.raises(ExchangeError) as e:
        v.update_isolated_margin("ETH", 1.0)
    assert e.value.code == ErrorCode.BAD_REQUEST


def test_funding_on_an_isolated_position_moves_its_margin_not_the_cash():
    v, _ = make()
    v.set_leverage("BTC", 5, cross=False)
    v.submit([order("BTC", Side.BUY, 1.0)])
    v.on_funding("BTC", T0 + 3_600_000, 0.001, 100_000.0)  # the long pays 100
    assert v.cash == pytest.approx(80_000.0)
    assert v.account_state().positions["BTC"].isolated_margin == pytest.approx(19_900.0)


def test_closing_and_flipping_release_and_take_margin():
    v, _ = make()
    v.set_leverage("BTC", 4, cross=False)
    v.submit([order("BTC", Side.BUY, 1.0)])
    assert v.cash == pytest.approx(75_000.0)
    v.submit([order("BTC", Side.SELL, 0.5)])  # half released
    assert v.account_state().positions["BTC"].isolated_margin == pytest.approx(12_500.0)
    v.submit([order("BTC", Side.SELL, 1.5)])  # flips: all released, the short takes 25,000
    p = v.account_state().positions["BTC"]
    assert p.size == -1.0 and p.isolated_margin == pytest.approx(25_000.0) and v.cash == pytest.approx(75_000.0)


def test_leverage_type_cannot_change_under_an_open_position():
    v, _ = make()
    v.submit([order("BTC", Side.BUY, 0.1)])
    with pytest.raises(ExchangeError) as e:
        v.set_leverage("BTC", 5, cross=False)
    assert e.value.code == ErrorCode.INVALID_LEVERAGE
    with pytest.raises(ExchangeError) as e:
        v.set_leverage("BTC", 1000)
    assert e.value.code == ErrorCode.INVALID_LEVERAGE


@pytest.mark.parametrize("req, code", [
    (dict(sym="BTC", side=Side.BUY, size=0.123456, px=90_000.0), ErrorCode.INVALID_SIZE),
    (dict(sym="BTC", side=Side.BUY, size=0.1, px=100_000.5), ErrorCode.INVALID_PRICE),
    (dict(sym="BTC", side=Side.BUY, size=0.0001, px=90_000.0), ErrorCode.MIN_VALUE),
    (dict(sym="BTC", side=Side.SELL, size=0.1, px=90_000.0, reduce_only=True), ErrorCode.REDUCE_ONLY),
    (dict(sym="BTC", side=Side.BUY, size=10.0, px=90_000.0), ErrorCode.INSUFFICIENT_MARGIN),
    (dict(sym="BTC", side=Side.BUY, size=0.1, px=100_020.0, tif=Tif.ALO), ErrorCode.POST_ONLY_MATCH),
    (dict(sym="BTC", side=Side.BUY, size=0.1, px=90_000.0, tif=Tif.IOC), ErrorCode.IOC_NO_MATCH),
    (dict(sym="DOGE", side=Side.BUY, size=1.0, px=1.0), ErrorCode.UNKNOWN_ASSET),
])
def test_every_refusal_carries_a_code(req, code):
    v, _ = make(half_spread_bps=1.0)
    sym = req.pop("sym")
    ack = v.submit([order(sym, req.pop("side"), req.pop("size"), req.pop("px"), req.pop("tif", Tif.GTC), **req)])[0]
    assert ack.status == OrderStatus.REJECTED and ack.code == code and ack.error
    assert v.order_status(ack.cloid) is None or v.order_status(ack.cloid).code == code


def test_cancel_and_modify_of_unknown_orders_are_not_found():
    v, _ = make()
    from hlquant.core.events import CancelRequest

    assert v.cancel([CancelRequest(T0, T0, "BTC", "0x" + "ee" * 16)])[0].code == ErrorCode.NOT_FOUND
    assert v.modify("0x" + "ee" * 16, order("BTC", Side.BUY, 0.1, 90_000.0, Tif.GTC)).code == ErrorCode.NOT_FOUND
    with pytest.raises(ExchangeError) as e:
        v.schedule_cancel(T0 + 1)
    assert e.value.code == ErrorCode.BAD_REQUEST


def test_position_tpsl_legs_are_siblings():
    v, events = make()
    v.submit([order("BTC", Side.BUY, 0.1)])
    tp = order("BTC", Side.SELL, 0.1, None, Tif.GTC, reduce_only=True, trigger_px=110_000.0, tpsl="tp")
    sl = order("BTC", Side.SELL, 0.1, None, Tif.GTC, reduce_only=True, trigger_px=95_000.0, tpsl="sl")
    acks = v.submit([tp, sl], grouping="positionTpsl")
    assert [a.status for a in acks] == [OrderStatus.OPEN, OrderStatus.OPEN]
    v.on_trade("BTC", T0 + 5, -1, 94_000.0, 1.0)
    assert "BTC" not in v.positions()
    assert v.order_object(acks[1].oid).status == OrderStatus.FILLED
    assert v.order_object(acks[0].oid).reason == "siblingFilledCanceled"
    assert [c.reason for c in events if isinstance(c, CancelAck)] == ["siblingFilledCanceled"]


def test_the_venue_instance_stays_under_the_shared_key_limit():
    """CPython shares instance-dict keys (and specializes attribute access) only below 30
    attributes; the SimVenue crossing it made every market event ~20% slower."""
    v, _ = make()
    assert len(vars(v)) < 30
