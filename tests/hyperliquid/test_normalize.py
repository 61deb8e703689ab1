"""Recorded real Hyperliquid messages parse into core events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hlquant.core.events import OrderStatus, Side
from hlquant.hyperliquid import normalize as nz
from hlquant.hyperliquid.ws import HyperliquidFeed

DATA = Path(__file__).parent / "data"


def recorded(name: str, i: int = -1):
    d = yaml.safe_load((DATA / name).read_text())
    return json.loads(d["interactions"][i]["response"]["body"]["string"])


def test_recorded_l2_book():
    book = nz.l2_book(recorded("test_get_l2_snapshot.yaml"), 1)
    assert book.symbol == "DYDX" and book.ts_exch == 1689630203930
    assert book.bids[0] == (2.111, 134.4) and book.asks[0][0] > book.bids[0][0]
    assert all(a[0] > b[0] for a, b in zip(book.bids, book.bids[1:], strict=False))


def test_recorded_candles_funding_and_fills():
    candles = [nz.candle(c, 0) for c in recorded("test_get_candles_snapshot.yaml")]
    assert candles[0].symbol == "kPEPE" and candles[0].interval == "1h"
    assert candles[0].ts_open == 1684699200000 and candles[0].ts_exch == 1684702800000
    assert candles[0].close == pytest.approx(0.001604)
    fund = nz.funding_history(recorded("test_get_funding_history1684811870000.yaml"), 0)
    assert fund[0].symbol == "BTC" and fund[0].rate == pytest.approx(-0.00061334)
    fills = [nz.fill(f, 0) for f in recorded("test_get_user_fills_by_time.yaml")]
    assert fills[0].symbol == "SUI" and fills[0].side == Side.SELL and fills[0].sz == pytest.approx(142.7)
    assert fills[0].closed_pnl == pytest.approx(-0.25686) and fills[0].liquidity == "taker"


def test_recorded_user_state_and_orders_parse_in_the_info_client(monkeypatch):
    from hlquant.hyperliquid.info import InfoClient

    info = InfoClient("http://unused")
    answers = {"clearinghouseState": recorded("test_get_user_state.yaml"),
               "openOrders": recorded("test_get_open_orders.yaml")}
    monkeypatch.setattr(info, "post", lambda body: answers[body["type"]])
    st = info.clearinghouse_state("0x")
    assert st.positions["BTC"].size == pytest.approx(-0.00785) and st.positions["BTC"].leverage == 20
    assert st.positions["BTC"].liquidation_px == pytest.approx(173198.69592357)
    oo = info.open_orders("0x")
    assert oo[0].coin == "MATIC" and oo[0].oid == 62269971 and oo[0].side == "B"


def test_ws_channels_normalize():
    feed = HyperliquidFeed("ws://unused", [], clock_ms=lambda: 42)
    assert feed.normalize("Websocket connection established.") == []
    tr = feed.normalize({"channel": "trades", "data": [
        {"coin": "BTC", "side": "A", "px": "100.5", "sz": "0.1", "hash": "0x", "time": 7, "tid": 9, "users": []}]})
    assert tr[0].side == Side.SELL and tr[0].px == 100.5 and tr[0].ts_exch == 7 and tr[0].ts_recv == 42
    upd = feed.normalize({"channel": "orderUpdates", "data": [{"order": {
        "coin": "ETH", "side": "B", "limitPx": "3000", "sz": "0.4", "oid": 5, "timestamp": 1, "origSz": "1.0",
        "cloid": "0x" + "aa" * 16}, "status": "open", "statusTimestamp": 3}]})
    assert upd[0].status == OrderStatus.OPEN and upd[0].filled_sz == pytest.approx(0.6)
    assert upd[0].cloid == "0x" + "aa" * 16
    bbo = feed.normalize({"channel": "bbo", "data": {"coin": "SOL", "time": 5, "bbo": [
        {"px": "149.9", "sz": "10", "n": 1}, {"px": "150.1", "sz": "12", "n": 2}]}})
    assert (bbo[0].bid_px, bbo[0].ask_sz) == (149.9, 12.0)
    assert feed.normalize({"channel": "somethingNew", "data": {}}) == []  # dropped and counted, never raised
    assert feed.counters["bad_messages"] == 1


def test_candles_emitted_once_when_closed():
    feed = HyperliquidFeed("ws://unused", [], clock_ms=lambda: 0)

    def c(t, close):
        return {"channel": "candle", "data": {"t": t, "T": t + 59_999, "s": "BTC", "i": "1m", "o": "1",
                                              "c": str(close), "h": "2", "l": "0.5", "v": "3", "n": 4}}

    assert feed.normalize(c(0, 1.1)) == [] and feed.normalize(c(0, 1.2)) == []
    out = feed.normalize(c(60_000, 1.3))
    assert len(out) == 1 and out[0].close == 1.2 and out[0].ts_exch == 60_000


def test_fills_deduplicated_by_tid_across_channels_and_snapshots():
    feed = HyperliquidFeed("ws://unused", [], clock_ms=lambda: 0)
    f = {"coin": "BTC", "px": "1", "sz": "1", "side": "B", "time": 1, "oid": 1, "tid": 11, "fee": "0",
         "closedPnl": "0", "crossed": True}
    assert len(feed.normalize({"channel": "userFills", "data": {"user": "0x", "fills": [f]}})) == 1
    assert feed.normalize({"channel": "user", "data": {"fills": [f]}}) == []
    snap = feed.normalize({"channel": "userFills", "data": {"isSnapshot": True, "user": "0x",
                                                            "fills": [f, {**f, "tid": 12}]}})
    assert [x.tid for x in snap] == [12]
    assert feed.counters["duplicate_fills"] == 2
