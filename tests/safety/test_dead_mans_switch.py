"""The dead man's switch (issue 11, item 11): ``scheduleCancel`` fires at its time even when
the account does nothing more, the orders it cancels report ``scheduledCancel``, and every
cancel status Hyperliquid uses normalizes to a cancel, never to a rejection."""

from __future__ import annotations

import time

import pytest
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.types import Cloid

from hlquant.core.assets import DEFAULT_ASSETS
from hlquant.core.clock import SimClock
from hlquant.core.events import CancelAck, ErrorCode, OrderRequest, OrderStatus, Side, Tif
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.hyperliquid.errors import CANCEL_STATUSES, REJECT_STATUSES, classify_status
from hlquant.hyperliquid.exchange import ExchangeClient
from hlquant.hyperliquid.info import InfoClient
from hlquant.hyperliquid.signing import Signer
from hlquant.hyperliquid.venue import HyperliquidVenue
from hlquant.hyperliquid.ws import HyperliquidFeed
from hlquant.venues.sim import SimVenue, SimVenueConfig
from tests.hyperliquid.conftest import seed_books

T0 = 1_767_225_600_000


def req(i: int, px: float) -> OrderRequest:
    return OrderRequest(T0, T0, f"0x{i:032x}", f"i{i}", "a", "BTC", Side.BUY, 0.01, px, Tif.GTC)


@pytest.mark.parametrize("feed", ["candle", "trade", "mark", "funding", "bbo"])
def test_sim_venue_fires_on_market_time_without_any_account_call(feed):
    clock = SimClock(T0)
    v = SimVenue({"BTC": DEFAULT_ASSETS["BTC"]}, SimVenueConfig(), clock=clock)
    events: list = []
    v.add_listener(events.append)
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    acks = v.submit([req(1, 90_000.0), req(2, 91_000.0)])
    v.schedule_cancel(T0 + 10_000)
    t = T0 + 10_000
    {"candle": lambda: v.on_candle("BTC", t, 1e5, 1e5, 1e5, 1e5, 1.0),
     "trade": lambda: v.on_trade("BTC", t, 1, 100_000.0, 1.0),
     "mark": lambda: v.on_mark("BTC", t, 100_000.0),
     "funding": lambda: v.on_funding("BTC", t, 1e-5, 100_000.0),
     "bbo": lambda: v.on_bbo("BTC", t, 99_999.0, 1.0, 100_001.0, 1.0)}[feed]()
    assert v.open_orders() == []
    cancels = [e for e in events if isinstance(e, CancelAck)]
    assert [c.reason for c in cancels] == ["scheduledCancel", "scheduledCancel"]
    assert all(v.order_object(a.oid).reason == "scheduledCancel" for a in acks)
    assert v.scheduled_cancel_at is None


def test_sim_venue_does_not_fire_early():
    clock = SimClock(T0)
    v = SimVenue({"BTC": DEFAULT_ASSETS["BTC"]}, SimVenueConfig(), clock=clock)
    v.on_trade("BTC", T0, 1, 100_000.0, 1.0)
    v.submit([req(1, 90_000.0)])
    v.schedule_cancel(T0 + 10_000)
    v.on_candle("BTC", T0 + 9_999, 1e5, 1e5, 1e5, 1e5, 1.0)
    assert len(v.open_orders()) == 1
    v.schedule_cancel(None)  # disarmed: nothing fires later
    v.on_candle("BTC", T0 + 60_000, 1e5, 1e5, 1e5, 1e5, 1.0)
    assert len(v.open_orders()) == 1


def test_fake_exchange_fires_on_its_own_timer_and_reports_scheduled_cancel():
    with running_fake_exchange() as fx:
        seed_books(fx.server)
        ex = Exchange(Account.from_key(fx.agent_key), fx.url, account_address=fx.master)
        info = Info(fx.url, skip_ws=True)
        cloid = Cloid.from_str("0x" + "5c" * 16)
        oid = ex.order("BTC", True, 0.01, 90_000.0, {"limit": {"tif": "Gtc"}}, cloid=cloid)["response"]["data"][
            "statuses"][0]["resting"]["oid"]
        updates: list = []
        feed = HyperliquidFeed("ws://unused", [], clock_ms=lambda: 0)
        ws_info = Info(fx.url, skip_ws=False)
        try:
            ws_info.subscribe({"type": "orderUpdates", "user": fx.master}, updates.append)
            time.sleep(0.3)  # the subscription is registered before the switch fires
            now = fx.server.clock.now_ms()
            assert ex.schedule_cancel(now + 6_000)["status"] == "ok"
            fx.server.clock.offset += 6_001  # time passes; nobody sends anything
            deadline = time.time() + 5
            while time.time() < deadline and info.open_orders(fx.master):
                time.sleep(0.02)
            assert info.open_orders(fx.master) == []
            st = info.query_order_by_oid(fx.master, oid)
            assert st["order"]["status"] == "scheduledCancel"
            deadline = time.time() + 5
            while time.time() < deadline and not any(u["data"][0]["status"] == "scheduledCancel" for u in updates):
                time.sleep(0.02)
        finally:
            ws_info.disconnect_websocket()
        pushed = [u["data"][0] for u in updates if u["data"][0]["order"]["oid"] == oid]
        assert pushed[-1]["status"] == "scheduledCancel"
        acks = feed.normalize({"channel": "orderUpdates", "data": [pushed[-1]]})
        assert acks[0].status == OrderStatus.CANCELED
        # hlquant's venue reads it as a cancel too
        iclient = InfoClient(fx.url)
        venue = HyperliquidVenue(iclient, ExchangeClient(Signer(fx.agent_key, fx.master), iclient.assets(), fx.url))
        ack = venue.order_status(cloid.to_raw())
        assert ack.status == OrderStatus.CANCELED and ack.oid == oid and ack.code == ErrorCode.NONE


@pytest.mark.parametrize("status", sorted(CANCEL_STATUSES | {"marginCanceled"}))
def test_every_cancel_status_is_a_cancel_never_a_rejection(status):
    st, code = classify_status(status)
    assert st in (OrderStatus.CANCELED, OrderStatus.MARGIN_CANCELED) and code == ErrorCode.NONE
    feed = HyperliquidFeed("ws://unused", [], clock_ms=lambda: 0)
    ack = feed.normalize({"channel": "orderUpdates", "data": [{"order": {
        "coin": "BTC", "side": "B", "limitPx": "90000.0", "sz": "0.01", "oid": 7, "timestamp": 1,
        "origSz": "0.01"}, "status": status, "statusTimestamp": 2}]})[0]
    assert ack.status != OrderStatus.REJECTED and ack.code == ErrorCode.NONE


def test_the_documented_status_list_is_covered():
    """Hyperliquid's order statuses (docs, info endpoint, "Query order status by oid or
    cloid"): the cancels and the rejections, each with its code."""
    assert CANCEL_STATUSES >= {"scheduledCancel", "reduceOnlyCanceled", "siblingFilledCanceled",
                               "selfTradeCanceled", "openInterestCapCanceled", "vaultWithdrawalCanceled",
                               "liquidatedCanceled", "delistedCanceled"}
    for status, code in REJECT_STATUSES.items():
        assert classify_status(status) == (OrderStatus.REJECTED, code)
    assert classify_status("perpMarginRejected")[1] == ErrorCode.INSUFFICIENT_MARGIN
    assert classify_status("someFutureCanceled")[0] == OrderStatus.CANCELED
