from __future__ import annotations

import numpy as np
import pytest

from hlquant.bus.base import InMemoryBus
from hlquant.connectors import Connector, ReplayConnector, topic_for
from hlquant.core.events import (
    MARKET_DTYPES,
    BookSnapshot,
    Candle,
    FundingRate,
    MarketKind,
    MarkPrice,
    Side,
    Trade,
)
from hlquant.data.loaders import load_sample
from hlquant.data.market import MarketData

T0 = 1_767_571_200_000
KIND_OF = {
    "FundingRate": MarketKind.FUNDING,
    "BookSnapshot": MarketKind.L2,
    "BBO": MarketKind.BBO,
    "Trade": MarketKind.TRADE,
    "Candle": MarketKind.CANDLE,
    "MarkPrice": MarketKind.MARK,
}


@pytest.fixture(scope="module")
def hours() -> MarketData:
    return load_sample().select(end="2026-01-05 03:00")


def test_exports():
    assert issubclass(ReplayConnector, Connector) and callable(topic_for)


def test_iteration_follows_merged_order(hours):
    c = ReplayConnector(hours)
    events = list(c)
    assert len(events) == len(hours) == len(c)
    ts, kind, _ = hours.merged()
    assert [e.ts_exch for e in events] == ts.tolist()
    assert [int(KIND_OF[e.kind]) for e in events] == kind.tolist()
    assert c.counters["messages"] == c.counters["events"] == len(events)
    # across symbols and streams at one instant: funding < book < trades < candles, then symbol
    on_hour = [e for e in events if e.ts_exch == T0 + 3_600_000]
    kinds = [(int(KIND_OF[e.kind]), hours.symbols.index(e.symbol)) for e in on_hour]
    assert kinds == sorted(kinds)
    assert {e.kind for e in on_hour} >= {"FundingRate", "BookSnapshot", "Candle"}


def test_normalize_round_trip(hours):
    c = ReplayConnector(hours)
    c.connect()
    events = list(c)
    back = MarketData.from_events(events, symbols=hours.symbols)
    assert back.interval_ms == hours.interval_ms
    assert back.fingerprint() == hours.fingerprint()

    row = 5
    (ev,) = c.normalize((MarketKind.CANDLE, row))
    rec = hours.candles[row]
    assert isinstance(ev, Candle) and ev.interval == "1m"
    assert ev.ts_open == ev.ts_exch - 60_000 and ev.ts_exch == rec["ts_exch"]
    assert (ev.open, ev.high, ev.low, ev.close, ev.volume, ev.n) == tuple(
        rec[["open", "high", "low", "close", "volume", "n"]].item()
    )
    assert ev.symbol == hours.symbols[rec["sym"]] and isinstance(ev.ts_recv, int)
    (tr,) = c.normalize((int(MarketKind.TRADE), 0))
    assert isinstance(tr, Trade) and isinstance(tr.side, Side) and tr.tid == hours.trades["tid"][0]
    (fr,) = c.normalize((MarketKind.FUNDING, 0))
    assert isinstance(fr, FundingRate) and fr.rate == hours.funding["rate"][0]
    (bk,) = c.normalize((MarketKind.L2, 0))
    assert isinstance(bk, BookSnapshot) and len(bk.bids) == len(bk.asks) == 10
    assert bk.bids[0] == (hours.l2["bid_px"][0, 0], hours.l2["bid_sz"][0, 0])


def test_bbo_mark_and_padded_book():
    bbo = np.array([(T0, T0 + 3, 0, 99.0, 1.0, 101.0, 2.0)], MARKET_DTYPES[MarketKind.BBO])
    mark = np.array([(T0, T0 + 4, 0, 100.0, 99.9)], MARKET_DTYPES[MarketKind.MARK])
    l2 = np.zeros(1, MARKET_DTYPES[MarketKind.L2])
    l2["ts_exch"] = T0
    l2["bid_px"], l2["ask_px"] = np.nan, np.nan
    l2["bid_px"][0, 0], l2["bid_sz"][0, 0] = 99.0, 5.0
    md = MarketData(bbo=bbo, mark=mark, l2=l2, symbols=["X"])
    events = list(ReplayConnector(md))
    assert [e.kind for e in events] == ["BookSnapshot", "BBO", "MarkPrice"]
    assert events[0].bids == [(99.0, 5.0)] and events[0].asks == []
    assert isinstance(events[2], MarkPrice) and events[2].oracle_px == 99.9
    assert MarketData.from_events(events, symbols=["X"]).fingerprint() == md.fingerprint()


def test_run_emits_on_bus_by_topic(hours):
    bus = InMemoryBus()
    seen: dict[str, int] = {}
    last = [0]

    def on(topic, ev):
        seen[topic] = seen.get(topic, 0) + 1
        assert ev.ts_exch >= last[0]
        last[0] = ev.ts_exch

    bus.subscribe("*", on)
    c = ReplayConnector(hours)
    assert c.run(bus) == len(hours)
    assert bus.published == len(hours) and c.counters["events"] == len(hours)
    n_candles = len(hours.candles) // 3
    assert seen["Candle:{BTC}"] == seen["Candle:{SOL}"] == n_candles
    assert sum(v for k, v in seen.items() if k.startswith("Trade:")) == len(hours.trades)
    with pytest.raises(RuntimeError):
        ReplayConnector(hours).emit(iter([]))  # no bus


def test_stream_tuples_and_bad_kind(hours):
    c = ReplayConnector(hours)
    got = list(c.stream())
    ts, kind, row = hours.merged()
    assert got[:3] == list(zip(ts[:3].tolist(), kind[:3].tolist(), row[:3].tolist(), strict=True))
    assert len(got) == len(hours) and all(type(x) is int for x in got[0])
    with pytest.raises(ValueError, match="unknown market kind"):
        c.normalize((9, 0))
    assert c.counters["bad_messages"] == 1
