"""Recorder: live feed -> PostgreSQL, gaps backfilled, candles built from its own trades
(the archive importer's tests are in test_archive.py)."""

from __future__ import annotations

import asyncio

import numpy as np

from hlquant.connectors.replay import ReplayConnector
from hlquant.data.candles import trade_candles
from hlquant.data.loaders import load_sample
from hlquant.fakeexchange.testing import running_fake_exchange
from hlquant.hyperliquid.info import InfoClient
from hlquant.storage.recorder import Recorder


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
            # not rebased: bars stay on the minute grid, as the exchange's are
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
