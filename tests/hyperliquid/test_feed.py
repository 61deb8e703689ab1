"""The WebSocket connector against the fake exchange: data, bad frames, drops and recovery."""

from __future__ import annotations

import asyncio
import time

from hlquant.core.events import BookSnapshot, Fill, OrderAck, OrderRequest, Side, Tif, Trade
from hlquant.hyperliquid.info import InfoClient
from hlquant.hyperliquid.ws import HyperliquidFeed, market_subscriptions, user_subscriptions

from .conftest import now_ms


async def collect_until(events: list, pred, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred(events):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out; got {[type(e).__name__ for e in events][-20:]}")
        await asyncio.sleep(0.02)


def ioc_buy(size: float) -> OrderRequest:
    t = now_ms()
    return OrderRequest(t, t, "", "i", "a", "BTC", Side.BUY, size, 100_100.0, Tif.IOC)


def test_feed_streams_survives_bad_frames_and_recovers_after_drop(fx, clients):
    info, ex = clients
    subs = market_subscriptions(["BTC"], candle_interval="1m") + user_subscriptions(fx.master)
    feed = HyperliquidFeed(fx.ws_url, subs, info=InfoClient(fx.url), ping_s=0.2, silence_s=5.0,
                           backoff_base_s=1.0, backoff_max_s=2.0)

    async def scenario() -> list:
        got: list = []
        stop = asyncio.Event()

        async def pump():
            async for ev in feed.events(stop):
                got.append(ev)

        task = asyncio.create_task(pump())
        await collect_until(got, lambda g: any(isinstance(e, BookSnapshot) for e in g))
        await collect_until(got, lambda g: feed.counters["subscribed"] == len(subs))
        t = now_ms()
        fx.server.publish(Trade(t, t, "BTC", Side.SELL, 99_995.0, 0.2, 5))
        await asyncio.to_thread(ex.place, [ioc_buy(0.01)])
        await collect_until(got, lambda g: any(isinstance(e, Fill) for e in g))
        await collect_until(got, lambda g: any(isinstance(e, Trade) and e.tid == 5 for e in g))
        await collect_until(got, lambda g: feed.counters["pongs"] > 0)

        fx.call(fx.server.send_raw("{not json"))
        fx.call(fx.server.send_raw('{"channel": "l2Book", "data": {"coin": "BTC"}}'))
        await collect_until(got, lambda g: feed.counters["bad_messages"] == 2)

        # drop every connection; a fill happens while the feed is away
        fx.call(fx.server.drop_connections())
        await asyncio.sleep(0.1)
        await asyncio.to_thread(ex.place, [ioc_buy(0.02)])
        await collect_until(got, lambda g: sum(isinstance(e, Fill) for e in g) >= 2)
        n_before = len(got)
        t = now_ms()
        fx.server.publish(Trade(t, t, "BTC", Side.BUY, 100_000.0, 0.1, 6))  # resubscribed?
        await collect_until(got, lambda g: any(isinstance(e, Trade) and e.tid == 6 for e in g[n_before:]))
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, 5)
        return got

    got = asyncio.run(scenario())
    fills = [e for e in got if isinstance(e, Fill)]
    assert [f.sz for f in fills] == [0.01, 0.02], "each fill exactly once, the missed one recovered"
    assert len({f.tid for f in fills}) == 2
    c = feed.counters
    assert c["reconnects"] >= 1 and c["gaps"] >= 1 and c["resyncs"] >= 1
    assert c["recovered_fills"] >= 1 and c["bad_messages"] == 2
    assert any(isinstance(e, OrderAck) for e in got)
    books_after = [e for e in got if isinstance(e, BookSnapshot)]
    assert len(books_after) >= 2  # the resync fetched a fresh snapshot


def test_feed_backoff_is_capped_with_jitter():
    import random

    feed = HyperliquidFeed("ws://127.0.0.1:9", [], backoff_base_s=0.5, backoff_max_s=8.0, rng=random.Random(1))
    delays = [feed._backoff(a) for a in range(1, 12)]
    assert all(0 < d <= 8.0 for d in delays)
    assert delays[0] <= 0.5 and max(delays[6:]) > 4.0
    assert len(set(delays)) == len(delays)  # jittered


def test_feed_keeps_retrying_when_the_server_is_down():
    feed = HyperliquidFeed("ws://127.0.0.1:9", [{"type": "allMids"}], backoff_base_s=0.01, backoff_max_s=0.02)

    async def run():
        stop = asyncio.Event()

        async def pump():
            async for _ in feed.events(stop):
                pass

        task = asyncio.create_task(pump())
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    assert feed.counters["reconnects"] >= 3 and feed.counters["connects"] == 0


def test_stop_ends_a_reconnect_backoff_at_once():
    """A role asked to stop while its feed waits out a reconnect backoff stops now, not
    after the backoff (the soak's ingest outlived SIGTERM by a 30 s backoff)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: every connect is refused
    feed = HyperliquidFeed(f"ws://127.0.0.1:{port}/ws", [{"type": "trades", "coin": "BTC"}],
                           backoff_base_s=60.0, backoff_max_s=60.0)

    async def go() -> float:
        stop = asyncio.Event()

        async def consume():
            async for _ in feed.events(stop):
                pass

        task = asyncio.create_task(consume())
        while feed.counters["reconnects"] < 1:
            await asyncio.sleep(0.01)  # in its first (30-60 s) backoff now
        t = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, 5)
        return time.monotonic() - t

    assert asyncio.run(go()) < 1.0
