"""HyperliquidVenue: the Venue interface on the fake exchange, lost replies and edit races."""

from __future__ import annotations

import asyncio

import pytest

from hlquant.core.events import CancelRequest, Fill, OrderRequest, OrderStatus, Side, Tif
from hlquant.hyperliquid.info import InfoClient
from hlquant.hyperliquid.venue import HyperliquidVenue
from hlquant.hyperliquid.ws import HyperliquidFeed, user_subscriptions
from hlquant.venues.base import Venue

from .conftest import now_ms


def req(cloid: str, px: float | None = 99_000.0, size=0.01, side=Side.BUY, tif=Tif.GTC, sym="BTC"):
    t = now_ms()
    return OrderRequest(t, t, cloid, "intent", "agent-a", sym, side, size, px, tif)


def C(i: int) -> str:
    return f"0x{i:032x}"


@pytest.fixture()
def venue(fx, clients):
    info, ex = clients
    return HyperliquidVenue(info, ex, symbols=["BTC", "ETH", "SOL"])


def test_is_a_venue_and_round_trips_orders(fx, venue):
    assert isinstance(venue, Venue)
    assert set(venue.assets()) == {"BTC", "ETH", "SOL"}
    a, b = venue.submit([req(C(1)), req(C(2), px=100_100.0, tif=Tif.IOC)])
    assert a.status == OrderStatus.OPEN and a.oid > 0
    assert b.status == OrderStatus.FILLED and b.avg_px == 100_010.0
    assert venue.positions() == {"BTC": pytest.approx(0.01)}
    assert [o.cloid for o in venue.open_orders()] == [C(1)]
    m = venue.modify(C(1), req(C(1), px=98_500.0, size=0.02))
    assert m.status == OrderStatus.OPEN and m.oid != a.oid and m.cloid == C(1)
    assert venue.order_status(C(1)).oid == m.oid
    assert [c.ok for c in venue.cancel([CancelRequest(0, 0, "BTC", C(1), 0, "test")])] == [True]
    assert venue.open_orders() == []
    bad = venue.submit([req(C(3), px=99_000.5)])[0]
    assert bad.status == OrderStatus.OPEN  # rounded onto the tick grid before signing
    rej = venue.submit([req(C(4), size=0.0001)])[0]
    assert rej.status == OrderStatus.REJECTED and rej.error == "Order must have minimum value of $10."


def test_lost_reply_is_resolved_by_cloid_never_duplicated(fx, venue):
    fx.server.faults.drop_next_order_reply = 1
    ack = venue.submit([req(C(7))])[0]
    assert ack.status == OrderStatus.OPEN and ack.cloid == C(7)
    assert venue.counters["lost_replies"] == 1 and venue.counters["resolved_by_status"] == 1
    assert [o["cloid"] for o in fx.server.orders_received].count(C(7)) == 1
    # an order whose reply is lost and that never reached the book is sent (once) again
    assert venue.order_status(C(8)) is None


def test_fill_on_old_oid_during_modify_is_attributed_once(fx, venue, clients):
    fills: list[Fill] = []
    venue.add_listener(lambda ev: fills.append(ev) if isinstance(ev, Fill) else None)
    feed = HyperliquidFeed(fx.ws_url, user_subscriptions(fx.master), info=InfoClient(fx.url))

    async def scenario():
        stop = asyncio.Event()

        async def pump():
            async for ev in feed.events(stop):
                venue.on_exchange_event(ev)

        task = asyncio.create_task(pump())
        await asyncio.wait_for(feed.connected.wait(), 5)
        await asyncio.sleep(0.2)
        first = await asyncio.to_thread(venue.submit, [req(C(9), px=99_000.0, size=0.02)])
        fx.server.faults.fill_before_next_modify = True
        res = await asyncio.to_thread(venue.modify, C(9), req(C(9), px=99_500.0, size=0.02))
        for _ in range(100):
            if fills:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(task, 5)
        return first[0], res

    first, res = asyncio.run(scenario())
    assert res.status == OrderStatus.REJECTED and "Cannot modify" in res.error
    assert len(fills) == 1
    f = fills[0]
    assert f.oid == first.oid and f.cloid == C(9) and f.sz == pytest.approx(0.02)
    assert fx.server.counters["modify_races"] == 1
    assert venue.open_orders() == []
