"""Recorder: live feed -> PostgreSQL, gaps backfilled, candles built from its own trades
(the archive importer's tests are in test_archive.py)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from hlquant.connectors.replay import ReplayConnector
from hlquant.core.events import BBO, MarkPrice, Side, Trade
from hlquant.data.candles import trade_candles
from hlquant.data.loaders import load_sample
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.hyperliquid.info import InfoClient
from hlquant.storage.recorder import Recorder

pytestmark = pytest.mark.postgres  # every test records into a PostgreSQL schema (pg_store)


def test_recorder_writes_the_feed_and_backfills_gaps(pg_store):
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(symbols=["BTC", "ETH"], start=t0, end=t0 + 3 * 3_600_000)
    with running_fake_exchange() as fx:
        fx.server.market.candle_history = 100_000
        rec = Recorder(pg_store, fx.ws_url, InfoClient(fx.url), ["BTC", "ETH"], flush_every=500, flush_s=0.5)
        rec.feed.backoff_base_s = rec.feed.backoff_max_s = 0.3

        async def go():
            stop = asyncio.Event()
            task = asyncio.create_task(rec.run(stop))
            await asyncio.wait_for(rec.feed.connected.wait(), 10)
            await asyncio.sleep(0.3)
            replay = asyncio.wrap_future(fx.replay(iter(ReplayConnector(md)), speed=3600))
            await asyncio.sleep(1.0)
            fx.call(fx.server.drop_connections())  # a gap mid-stream
            await replay
            await asyncio.sleep(1.0)
            stop.set()
            return await task

        out = asyncio.run(go())
        published = {(c["s"], c["t"]) for (s, _iv), rows in fx.server.market.candles.items() for c in rows}
    assert out["gaps"] >= 1 and out["feed"]["reconnects"] >= 1
    assert pg_store.count("trades") > 100 and pg_store.count("l2") > 10
    stored = pg_store.load_market()
    # every closed candle the exchange published is stored: live ones plus the backfilled gap
    assert len(stored.candles) >= len(published) - 2 * 2  # the last open candle per coin is never closed
    assert out["backfilled_candles"] > 0
    assert out["gap_intervals"][0][1] >= out["gap_intervals"][0][0]


def _record(pg_store, md, **kw):
    with running_fake_exchange() as fx:
        fx.server.market.candle_history = 100_000
        rec = Recorder(pg_store, fx.ws_url, InfoClient(fx.url), list(md.symbols), flush_every=500, flush_s=0.5,
                       **kw)

        async def go():
            stop = asyncio.Event()
            task = asyncio.create_task(rec.run(stop))
            await asyncio.wait_for(rec.feed.connected.wait(), 10)
            await asyncio.sleep(0.3)
            # not rebased: the exchange time (January 2026) stays far from this machine's
            # clock, which stamps the asset contexts (they carry no time); bars must still
            # be cut in exchange time, and keep the sample's own bar times to compare with
            await asyncio.wrap_future(fx.replay(iter(ReplayConnector(md)), speed=3600, rebase=False))
            await asyncio.sleep(1.0)
            stop.set()
            return await task

        return asyncio.run(go())


def test_recorder_builds_candles_from_its_own_trades(pg_store):
    """Without the candle channel every complete bar comes from the recorded trades, built by
    the archive's candle builder; the partial first bar is not written."""
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(symbols=["BTC", "ETH"], start=t0, end=t0 + 2 * 3_600_000)
    out = _record(pg_store, md, feed_candles=False)
    stored = pg_store.load_market()
    t = stored.trades
    assert len(t) > 1000 and out["candles_from_trades"] > 100 and out["candles_partial"] >= 1
    want = trade_candles(t["ts_exch"], t["sym"], t["px"], t["sz"], 60_000)
    key = lambda a: a["ts_exch"] * 16 + a["sym"]  # noqa: E731
    # stored bars: built from trades, plus minutes without any trade filled from REST at the end
    assert len(stored.candles) == out["candles_from_trades"] + out["backfilled_candles"]
    got = stored.candles[np.isin(key(stored.candles), key(want))]
    assert len(got) == out["candles_from_trades"]
    ref = want[np.isin(key(want), key(got))]
    for f in ("open", "high", "low", "close", "n"):
        assert np.array_equal(ref[f], got[f]), f
    assert np.allclose(ref["volume"], got["volume"])
    # ... and matches the exchange's own bars in volume and count (the sample's bars are the sum of its trades)
    src = md.candles[np.isin(md.candles["ts_exch"] * 16 + md.candles["sym"], key(got))]
    assert len(src) == len(got) and np.array_equal(src["n"], got["n"]) and np.allclose(src["volume"], got["volume"])


def test_recorder_checks_feed_candles_against_its_trades(pg_store):
    md = load_sample()
    t0 = int(md.span()[0])
    md = md.select(symbols=["BTC"], start=t0, end=t0 + 3_600_000)
    out = _record(pg_store, md)
    assert out["candles_checked"] > 30 and out["candles_mismatch"] == 0


class _ScriptedFeed:
    """Stands in for the WebSocket feed: the given events in order, no reconnect."""

    def __init__(self, events):
        self._events, self.counters = events, {"gaps": 0}

    async def events(self, stop):
        for ev in self._events:
            yield ev


M = 1_767_571_200_000  # 2026-01-05 00:00 UTC, a minute boundary
S = 1_000


def _trade(t, px, sz, tid):
    return Trade(t, t, "BTC", Side.BUY, px, sz, tid)


def _bbo(t):
    return BBO(t, t, "BTC", 90_000.0, 1.0, 90_001.0, 1.0)


def _run_scripted(pg_store, events):
    rec = Recorder(pg_store, "ws://127.0.0.1:9/ws", None, ["BTC"], feed_candles=False)
    rec.feed = _ScriptedFeed(events)
    return asyncio.run(rec.run(asyncio.Event())), pg_store.load_market()


def test_a_mark_price_stamped_by_a_clock_ahead_does_not_cut_a_bar(pg_store):
    """activeAssetCtx has no time: its MarkPrice is stamped on receipt by the local clock.
    A clock 30 s ahead of the exchange's must not close the bar of the trades still coming."""
    ahead = 30 * S
    events = [_trade(M - 30 * S, 89_990.0, 0.5, 1),  # the first bar is partial (recorder joined late)
              _trade(M + 1 * S, 90_000.0, 0.1, 2), _trade(M + 35 * S, 90_010.0, 0.2, 3),
              MarkPrice(M + 40 * S + ahead, M + 40 * S + ahead, "BTC", 90_005.0, 90_004.0),
              _trade(M + 45 * S, 89_980.0, 0.3, 4), _trade(M + 59 * S, 89_995.0, 0.4, 5),
              _trade(M + 61 * S, 90_020.0, 0.5, 6), _bbo(M + 70 * S)]  # the BBO's time closes bar M
    out, stored = _run_scripted(pg_store, events)
    c = stored.candles
    assert out["candles_from_trades"] == 1 and out["candles_partial"] == 1 and len(c) == 1
    assert c["ts_exch"][0] == M + 60 * S and c["n"][0] == 4
    assert (c["open"][0], c["high"][0], c["low"][0], c["close"][0]) == (90_000.0, 90_010.0, 89_980.0, 89_995.0)
    assert np.isclose(c["volume"][0], 1.0)
    assert len(stored.mark) == 1 and out["candles_late_trades"] == 0  # the mark itself is kept


def test_a_trade_of_a_closed_bar_is_counted_not_merged(pg_store):
    """A trade older than the open bar is in no bar: it is counted, the next bar stays exact."""
    events = [_trade(M - 30 * S, 89_990.0, 0.5, 1), _trade(M + 1 * S, 90_000.0, 0.1, 2),
              _trade(M + 61 * S, 90_020.0, 0.5, 3), _bbo(M + 70 * S),  # bar M closed
              _trade(M + 30 * S, 70_000.0, 9.0, 4),  # of bar M, after it closed
              _trade(M + 62 * S, 90_030.0, 0.25, 5), _bbo(M + 130 * S)]  # closes bar M + 60 s
    out, stored = _run_scripted(pg_store, events)
    c = stored.candles
    assert list(c["ts_exch"]) == [M + 60 * S, M + 120 * S] and list(c["n"]) == [1, 2]
    assert c["low"][1] == 90_020.0 and np.isclose(c["volume"][1], 0.75)
    assert out["candles_from_trades"] == 2 and out.get("candles_late_trades") == 1
