"""InfoClient and ExchangeClient against the fake exchange."""

from __future__ import annotations

import pytest

from hlquant.core.errors import ExchangeError
from hlquant.core.events import Candle, OrderRequest, Side, Tif
from hlquant.hyperliquid.limits import WeightLimiter, exchange_weight, info_weight, items_weight

from .conftest import now_ms


def req(sym="BTC", side=Side.BUY, size=0.01, px=99_000.0, tif=Tif.GTC, cloid="", reduce_only=False):
    t = now_ms()
    return OrderRequest(t, t, cloid, "i", "a", sym, side, size, px, tif, reduce_only)


def test_info_meta_is_cached_and_typed(fx, clients):
    info, _ = clients
    assets = info.assets()
    assert assets["BTC"].asset_id == 0 and assets["SOL"].asset_id == 5 and assets["ETH"].sz_decimals == 4
    n = fx.server.counters["info:meta"]
    info.meta()
    info.meta()
    assert fx.server.counters["info:meta"] == n  # served from the TTL cache
    info.meta(fresh=True)
    assert fx.server.counters["info:meta"] == n + 1
    book = info.l2_book("BTC")
    assert book.bids[0] == (99_990.0, 2.0)


def test_candles_paginate_past_the_per_request_cap(fx, clients):
    info, _ = clients
    fx.server.market.candle_page = 500
    fx.server.market.candle_history = 100_000
    t0 = (now_ms() // 60_000 - 2000) * 60_000
    for i in range(1440):
        t = t0 + i * 60_000
        fx.server.publish(Candle(t + 60_000, t + 60_000, "ETH", "1m", 3000, 3007, 2999, 3000 + i % 7, 1.0, 3, t))
    got = info.candles("ETH", "1m", t0, t0 + 1439 * 60_000)
    assert len(got) == 1440
    assert [c.ts_open for c in got] == [t0 + i * 60_000 for i in range(1440)]
    assert fx.server.counters["info:candleSnapshot"] == 3


def test_orders_cancel_modify_through_the_exchange_client(fx, clients):
    info, ex = clients
    st = ex.place([req(cloid="0x" + "01" * 16), req(px=100_100.0, tif=Tif.IOC),
                   req(px=99_000.5)])  # the last one rounds onto the tick grid (5 sig figs)
    assert "resting" in st[0] and "filled" in st[1] and "resting" in st[2]
    oo = {o.oid: o for o in info.open_orders(fx.master)}
    assert sorted(o.limit_px for o in oo.values()) == [99_000.0, 99_000.0]
    ex.modify("0x" + "01" * 16, req(px=98_000.0, size=0.02, cloid="0x" + "01" * 16))
    rec = info.order_status(fx.master, "0x" + "01" * 16)
    assert rec["status"] == "open" and rec["order"]["limitPx"] == "98000.0"
    assert ex.cancel_by_cloid([("BTC", "0x" + "01" * 16)]) == ["success"]
    assert info.order_status(fx.master, "0x" + "01" * 16)["status"] == "canceled"
    assert info.order_status(fx.master, "0x" + "99" * 16) is None
    with pytest.raises(ExchangeError, match="Cannot modify"):
        ex.modify("0x" + "01" * 16, req(px=97_000.0))
    ex.update_leverage("BTC", 3)
    ex.schedule_cancel(now_ms() + 60_000)
    pos = info.clearinghouse_state(fx.master).positions["BTC"]
    assert pos.size == pytest.approx(0.01) and pos.leverage == 3


def test_market_order_needs_and_uses_a_reference_price(fx, clients):
    _, ex = clients
    st = ex.place([req(px=None, tif=Tif.IOC)], {"BTC": 100_000.0})
    assert float(st[0]["filled"]["avgPx"]) == 100_010.0
    with pytest.raises(ExchangeError, match="reference price"):
        ex.place([req(px=None, tif=Tif.IOC)])


def test_weights_match_the_published_formula():
    assert [exchange_weight(n) for n in (1, 39, 40, 79, 80)] == [1, 1, 2, 2, 3]
    assert info_weight("l2Book") == 2 and info_weight("meta") == 20 and info_weight("userRole") == 60
    assert items_weight("userFills", 100) == 5 and items_weight("candleSnapshot", 5000) == 83


def test_weight_limiter_blocks_then_refills():
    t = [0]
    lim = WeightLimiter(per_min=60, clock_ms=lambda: t[0])  # 1 weight per second
    assert lim.acquire(60, block=False)
    assert not lim.acquire(1, block=False)
    t[0] += 2_000
    assert lim.acquire(2, block=False) and not lim.acquire(1, block=False)


def test_client_side_budget_prevents_429(fx):
    from hlquant.hyperliquid.info import InfoClient

    fx.server.faults.weight_per_min = 60
    info = InfoClient(fx.url, limiter=WeightLimiter(per_min=60))
    for _ in range(25):
        info.l2_book("BTC")  # 50 weight: within budget, never refused
    assert fx.server.counters["rate_limited"] == 0
